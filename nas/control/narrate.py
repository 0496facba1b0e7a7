"""The controller's log as a person reads it: one line per change, a summary when it matters.

Every change the controller makes to a point or to the plan is already an
event of the state (a submission, a start, a failure with its reason, a
retry, an infeasible or diverged point, an applied request with what it did,
a new phase, a fit, a proposal). :class:`Narrator` prints each event of a
cycle as one line, and the cycle's one-line summary only when the cycle
changed something, when it stops, or every ``every`` seconds while nothing
happens: a search that waits hours for its jobs writes a line every ten
minutes, not one per poll.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from nas.control.cycle import CycleSummary
from nas.names import printable
from nas.record.state import Event

#: Seconds between summaries of cycles that changed nothing.
SUMMARY_EVERY_SECONDS = 600.0
#: A log tail in an event is cut to this many characters on its one line.
LINE_LIMIT = 400


def event_line(event: Event) -> str:
    """``event`` on one line: local time, the point, what happened (a log tail joined with |).

    A message carries text from files jobs write (an error's message, a log
    tail): a character a terminal does not show as itself (an escape sequence
    that recolours or retitles the terminal, a bidirectional override) is
    printed escaped (:func:`nas.names.printable`), as ``status`` prints it.
    """
    clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
    parts = (printable(part.strip()) for part in event.message.splitlines())
    text = " | ".join(part for part in parts if part)
    if len(text) > LINE_LIMIT:
        text = text[: LINE_LIMIT - 3] + "..."
    subject = "" if event.point_id is None else f"point {event.point_id} "
    return f"{clock} {subject}{event.kind}: {text}"


class Narrator:
    """The default progress report of ``splinenas run``: events, then a summary when it matters."""

    def __init__(
        self,
        out: TextIO | None = None,
        every: float = SUMMARY_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.every = every
        self.clock = clock
        self._last_summary: float | None = None

    def __call__(self, summary: CycleSummary) -> None:
        out = self.out or sys.stderr
        for event in summary.changes:
            out.write(event_line(event) + "\n")
        now = self.clock()
        quiet_for = None if self._last_summary is None else now - self._last_summary
        if summary.changes or summary.stop or quiet_for is None or quiet_for >= self.every:
            out.write(summary.line() + "\n")
            self._last_summary = now
        out.flush()
