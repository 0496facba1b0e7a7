"""The controller loop behind ``splinenas run``.

:func:`run_controller` takes the state's lock, builds the scheduler and the
job settings, and repeats :meth:`nas.control.cycle.Controller.cycle` every
``poll`` seconds until the search converges, its budget is spent, or a
signal asks it to stop (after the current cycle has committed).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nas.control import inbox, liveness, policy
from nas.control.cycle import (
    Controller,
    CycleSummary,
)
from nas.control.narrate import Narrator, event_line
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.record.store import StateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """How :func:`run_controller` ended."""

    reason: str
    ok: bool
    cycles: int
    summary: CycleSummary | None
    #: The signal that stopped the loop (``"SIGINT"``: Ctrl-C), if one did.
    signal: str | None = None


def run_controller(
    state_path: str | Path,
    *,
    poll: float = 60.0,
    max_cycles: int | None = None,
    progress: Callable[[CycleSummary], None] | None = None,
    stop_event: threading.Event | None = None,
    cwd: Path | None = None,
) -> RunResult:
    """Run cycles every ``poll`` seconds until converged, out of budget or stopped.

    SIGINT and SIGTERM (in the main thread), or ``stop_event``, end the loop
    after the current cycle has committed.

    Args:
        state_path: the state file; its run folder is derived from it.
        poll: seconds between cycles.
        max_cycles: stop after this many cycles (``--once`` is 1).
        progress: called with every cycle's summary (default: a
            :class:`~nas.control.narrate.Narrator` on stderr).
        stop_event: set it to stop after the current cycle.
        cwd: where relative paths of the experiment are resolved and its own code is
            imported from (default: the working dir); recorded in the state for readers.

    Raises:
        LockError: another controller holds the state.
        ConfigError, ScriptError: the experiment cannot be run as configured.
    """
    state_path = Path(state_path)
    event = stop_event or threading.Event()
    received: list[str] = []
    with StateStore.open(state_path) as store, _stop_on_signals(event, received):
        folder = (cwd or Path.cwd()).absolute()
        policy.record_folder(store.state, folder)
        experiment = policy.experiment_of(store.state, state_path)
        drift = policy.source_drift(store.state, state_path)
        if drift:
            log.warning("%s", drift)
        settings = JobSettings.from_experiment(experiment, folder, state_path)
        scheduler = policy.scheduler_of(experiment, state_path)
        controller = Controller(store, settings, scheduler, layout.run_dir(state_path))
        pulse = liveness.Pulse(state_path, poll, max_cycles)
        result = None
        try:
            result = _cycles(controller, progress or Narrator(), event, poll, max_cycles, pulse)
            if received:
                result = dataclasses.replace(result, signal=received[0])
        finally:
            pulse.stopped("ended by an error" if result is None else result.reason)
        _last_requests(controller)
        return result


def _last_requests(controller: Controller) -> None:
    """Apply the requests posted since the last cycle read the inbox, before the lock goes.

    An operator command queues a request only while the heartbeat says the
    controller runs (:func:`nas.control.liveness.controller_holder`), and it
    says so no more once :meth:`~nas.control.liveness.Pulse.stopped` is
    written: this look, after that and under the lock, leaves none behind
    that a command was told the controller applies. The run ends all the
    same, as after a command that applied them by hand. A controller that
    ends by an error does not come here; its requests wait for the next run.
    """
    first = len(controller.state.events)
    inbox.process(controller.run, controller.state, controller.store.commit, controller.scheduler)
    for event in controller.state.events[first:]:
        log.info("as the controller stops: %s", event_line(event))


def _cycles(
    controller: Controller,
    progress: Callable[[CycleSummary], None],
    event: threading.Event,
    poll: float,
    max_cycles: int | None,
    pulse: liveness.Pulse,
) -> RunResult:
    """Cycle until a stop, ``max_cycles`` or ``event``; a heartbeat after each cycle."""
    cycle = 0
    while True:
        cycle += 1
        stop = controller.cycle()
        pulse.cycled(cycle)
        summary = controller.summary(cycle, stop)
        progress(summary)
        if stop is not None:
            return RunResult(stop.reason, stop.ok, cycle, summary)
        if max_cycles is not None and cycle >= max_cycles:
            return RunResult(f"{cycle} cycle(s) done", True, cycle, summary)
        if event.wait(poll):
            return RunResult("stopped by a signal after committing", True, cycle, summary)


@contextmanager
def _stop_on_signals(event: threading.Event, received: list[str]) -> Iterator[None]:
    """SIGINT/SIGTERM set ``event`` (their names go to ``received``); a second one acts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: object) -> None:
        log.warning("%s: stopping after this cycle", signal.Signals(signum).name)
        signal.signal(signum, previous[signum])
        received.append(signal.Signals(signum).name)
        event.set()

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
