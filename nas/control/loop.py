"""The controller loop behind ``splinenas run``, and its dry run.

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

from nas.cluster import get_scheduler
from nas.cluster.render import write_job_script
from nas.config import Experiment
from nas.control import liveness, policy
from nas.control.cycle import (
    Controller,
    CycleSummary,
    next_batch,
    submission_plan,
)
from nas.control.narrate import Narrator
from nas.control.prepare import JobSettings, feasibility, run_problems
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
        cwd: where relative paths of the experiment are resolved (default: the working dir).

    Raises:
        LockError: another controller holds the state.
        ConfigError, ScriptError: the experiment cannot be run as configured.
    """
    state_path = Path(state_path)
    event = stop_event or threading.Event()
    received: list[str] = []
    with StateStore.open(state_path) as store, _stop_on_signals(event, received):
        experiment = policy.experiment_of(store.state, state_path)
        settings = JobSettings.from_experiment(experiment, cwd or Path.cwd())
        run = layout.run_dir(state_path)
        scheduler = get_scheduler(experiment.cluster, local_root=layout.jobs_dir(run))
        controller = Controller(store, settings, scheduler, run)
        pulse = liveness.Pulse(state_path, poll)
        result = None
        try:
            result = _cycles(controller, progress or Narrator(), event, poll, max_cycles, pulse)
            if received:
                result = dataclasses.replace(result, signal=received[0])
        finally:
            pulse.stopped("ended by an error" if result is None else result.reason)
        return result


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


def plan(
    state_path: str | Path,
    *,
    cwd: Path | None = None,
    out: Path | None = None,
    max_points: int | None = None,
) -> dict[str, object]:
    """What the next cycle would submit or propose, from the committed state (``--dry-run``).

    ``max_points`` is the budget ``run --max-points`` would set. Writes nothing: each job script the next cycle would submit is returned
    as text, or written to ``out/<job name>.sh`` when ``out`` is given (a
    folder of the user's choosing, never the run folder).
    """
    state_path = Path(state_path)
    state = StateStore.read(state_path)
    experiment = policy.experiment_of(state, state_path)
    if max_points is not None:  # in memory only: the read state is never committed
        policy.raise_budget(state, experiment, max_points, "run --dry-run --max-points")
    settings, unchecked = _offline_settings(experiment, cwd or Path.cwd())
    run = layout.run_dir(state_path)
    feasible = feasibility(experiment, settings.workdir)
    infeasible, submissions = submission_plan(state, experiment, feasible)
    submit = []
    for point, nxt in submissions:
        text = settings.script_text(run, nxt)
        entry = {"id": point.id, "params": point.params, "job_name": nxt.job_name}
        if out is None:
            entry.update(script=None, text=text)
        else:
            out.mkdir(parents=True, exist_ok=True)
            entry.update(script=str(write_job_script(out / f"{nxt.job_name}.sh", text)))
        submit.append(entry)
    stop, proposals = next_batch(policy.Study(state, experiment, feasible), dry_run=True)
    return {
        "infeasible": [{"id": p.id, "params": p.params, "reason": r} for p, r in infeasible],
        "submit": submit,
        "propose": [
            {"params": p.params, "predicted": p.predicted, "origin": p.origin} for p in proposals
        ],
        "stop": None if stop is None else dataclasses.asdict(stop),
        "unchecked": unchecked,
    }


def _offline_settings(experiment: Experiment, cwd: Path) -> tuple[JobSettings, list[str]]:
    """The job settings for a dry run, and the paths that do not exist on this machine.

    A dry run shows the scripts of an experiment written for another machine
    (``init --offline``): its env file, data root and index are used as given
    and named as unchecked instead of refused; everything else refuses as ``run`` does.

    Raises:
        ConfigError: the first problem that is not a path on this machine.
    """
    problems = run_problems(experiment, cwd, offline=True)
    if problems:
        raise problems[0]
    offline = {str(p) for p in problems}
    unchecked = [str(p) for p in run_problems(experiment, cwd) if str(p) not in offline]
    return JobSettings.resolved(experiment, cwd), unchecked


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
