"""When to stop early: a deadline, a segment length, or the scheduler's signal.

Schedulers warn before killing a job at its time limit (Slurm ``--signal``
sends SIGUSR2 or SIGTERM, LSF ``-wa``); the controller also passes the job's
end as ``--deadline``. A stop happens only at a safe point (between optimizer
steps or epochs) and all ranks agree on it through one tiny all-reduce, so no
rank leaves a collective half done.

The handlers cover the whole segment, from before its slow start-up (data,
network, checkpoint, rendezvous) to the result file: a signal that arrives
before the first step stops the segment at its first check, one that arrives
during the final evaluation lets that short evaluation finish. The module
imports no torch, so a caller can install them before importing it.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import TYPE_CHECKING

from nas.train.launch import all_reduce

if TYPE_CHECKING:
    import torch

STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopControl:
    """Tracks the deadline and the signals; :meth:`check` is a collective call."""

    def __init__(self, deadline: float | None, device: torch.device | None = None) -> None:
        self.deadline = deadline
        self.device = device  # for the all-reduce of :meth:`check`; set it once it is known
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Catch SIGUSR2 and SIGTERM: note them and stop at the next safe point.

        Installing again keeps the first call's handlers to restore, so a caller
        may install before its start-up and the segment again.
        """
        if self._previous:
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._note)

    def restore(self) -> None:
        """Put back the handlers that :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    def local_reason(self, reserve_seconds: float) -> int:
        """0 to go on, 1 for a signal, 2 if the deadline is closer than ``reserve_seconds``."""
        if self.signal_name is not None:
            return 1
        if self.deadline is not None and time.time() + reserve_seconds >= self.deadline:
            return 2
        return 0

    def check(self, reserve_seconds: float) -> str | None:
        """The reason any rank wants to stop ("signal SIGUSR2", "deadline"), else None.

        Every rank must call this at the same point: it is an all-reduce.
        """
        code = int(all_reduce([float(self.local_reason(reserve_seconds))], self.device, "max")[0])
        if code == 0:
            return None
        if code == 1:
            return f"signal {self.signal_name}" if self.signal_name else "signal (another rank)"
        return "deadline"
