"""What the next cycle will do: stop, propose a batch, or submit which points as which jobs.

The controller (:class:`nas.control.cycle.Controller`) applies these
selections and ``splinenas run --dry-run`` (:func:`dry_run`) shows them:
both call the same functions on the committed state, so the dry run cannot
drift from what a cycle does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nas.cluster.render import write_job_script
from nas.config import Experiment
from nas.control import policy
from nas.control.feasible import Feasibility
from nas.control.prepare import (
    PREPARE_ERRORS,
    JobSettings,
    feasibility,
    job_name,
    run_problems,
)
from nas.pointdir import layout
from nas.record.state import ACTIVE, READY, SPLINE_ORIGINS, Point, PointStatus, State
from nas.record.store import StateStore

log = logging.getLogger(__name__)

_S = PointStatus


@dataclass(frozen=True)
class Stop:
    """Why the controller stops; ``ok`` is False when a person must act."""

    reason: str
    ok: bool = True


def next_batch(study: policy.Study, *, dry_run: bool = False) -> tuple[Stop | None, list]:
    """When no point is unfinished: why to stop (converged, budget) or the next batch.

    The first batch is the whole initial design, later ones ``batch_size``
    spline proposals. With ``[experiment] refill`` a batch need not be
    finished: once the design is, the free slots of ``batch_size`` are
    proposed as spline points finish (:func:`free_slots`). Returns the
    stored points (proposals with ``dry_run``).
    """
    state = study.state
    size = free_slots(study)
    if not size:
        return None, []
    if state.with_status(*READY, *ACTIVE):
        # a refill: where the search may stop, or finds nothing to propose now (a bound or
        # the GPU-hours the points still out are predicted to cost), they finish first
        if study.converged() or study.budget_reason():
            return None, []
        stop, made = _propose(study, size, dry_run)
        return (None, []) if stop is not None else (stop, made)
    if state.points and study.converged():
        _store_last_fit(study, dry_run)
        best = study.best()
        where = "" if best is None else f"; best point {best.id} = {best.value:.6g}"
        return Stop(f"converged: {study.stop_evidence().reason}{where}"), []
    reason = study.budget_reason()
    if reason:
        _store_last_fit(study, dry_run)
        return Stop(reason), []
    return _propose(study, size if state.points else len(study.optimizer.initial_design()), dry_run)


def _propose(study: policy.Study, size: int, dry_run: bool) -> tuple[Stop | None, list]:
    """Propose ``size`` points (:meth:`policy.Study.propose`); a search that cannot, stopped."""
    from nas.search.optimizer import SearchStalled
    from nas.search.propose import SearchError
    from nas.search.spline import SplineError

    try:
        made = study.propose(size, dry_run=dry_run)
    except SearchStalled:  # a person must act: most points failed, or no new point is allowed
        return Stop(f"nothing to propose: {study.fit_blocker()}", ok=False), []
    except SearchError as exc:
        rules = study.rules_text()
        held = f" (candidates are held to {rules})" if rules else ""
        notes = "".join(f"; {note}" for note in study.rule_notes())
        return Stop(f"no candidate left to propose: {exc}{held}{notes}"), []
    except (SplineError, policy.StudyError) as exc:
        return Stop(f"cannot propose: {exc}", ok=False), []
    if not made:
        return Stop(f"nothing to propose: {study.fit_blocker()}", ok=False), []
    return None, made


def free_slots(study: policy.Study) -> int:
    """How many points the next batch may hold now (0: wait for unfinished ones).

    With nothing unfinished, ``batch_size`` (the first batch, the design, is
    sized by :func:`next_batch`). With unfinished points, none, unless
    ``[experiment] refill`` is on and every unfinished point is a spline
    proposal: then ``batch_size`` less those. The design, and points added or
    retried by hand, are waited for: the spline's next proposals need them.
    A batch waits for its slowest training; training times of a family's
    networks differ several-fold, so refills keep the GPUs busy. The points
    still out are the first slots of the batch a refill continues
    (:meth:`~nas.search.optimizer.SplineOptimizer.suggest`), so it spreads
    as a batch's fills do (``benchmarks/results/batch_fill.md``).
    """
    cfg = study.experiment.experiment
    unfinished = study.state.with_status(*READY, *ACTIVE)
    if not unfinished:
        return cfg.batch_size
    if not cfg.refill or any(p.origin not in SPLINE_ORIGINS for p in unfinished):
        return 0
    return max(cfg.batch_size - len(unfinished), 0)


def submission_plan(
    state: State, experiment: Experiment, feasible: Feasibility | None
) -> tuple[list[tuple[Point, str]], list[tuple[Point, Point]]]:
    """What a cycle submits: pending points that cannot fit a GPU (with the reason), and
    (point, its next submission) for the ready points that fit, up to the job limit.

    The controller applies it; ``run --dry-run`` shows it: both use this one selection.
    """
    infeasible = []
    if feasible is not None:
        infeasible = [
            (p, feasible.reason(p.params))
            for p in state.with_status(_S.PENDING)
            if not feasible(p.params)
        ]
    excluded = {p.id for p, _ in infeasible}
    slots = experiment.cluster.max_concurrent_jobs - len(state.with_status(*ACTIVE))
    ready = [p for p in ready_points(state.points) if p.id not in excluded][: max(slots, 0)]
    return infeasible, [(p, next_submission(p, experiment.experiment.name)) for p in ready]


def _store_last_fit(study: policy.Study, dry_run: bool) -> None:
    """Keep the fit on every measured point of a stopped search for its readers."""
    from nas.search.propose import SearchError
    from nas.search.spline import SplineError

    if not dry_run:
        try:
            study.store_fit()
        except (SearchError, SplineError) as exc:
            log.warning("no final fit: %s", exc)


def ready_points(points: list[Point]) -> list[Point]:
    """Points waiting for a job: incomplete ones (training under way) first, then by id."""
    return sorted(
        (p for p in points if p.status in READY),
        key=lambda p: (p.status is not _S.INCOMPLETE, p.id),
    )


def next_submission(point: Point, experiment: str) -> Point:
    """The point as its next job will see it: the next segment, or the next attempt."""
    if point.status is _S.INCOMPLETE:
        nxt = dataclasses.replace(point, segment=point.segment + 1)
    else:
        nxt = dataclasses.replace(point, attempts=point.attempts + 1)
    return dataclasses.replace(nxt, job_name=job_name(experiment, nxt))


def warn_source_drift(
    state: State, state_path: str | os.PathLike, stream: TextIO | None = None
) -> str | None:
    """Say on ``stream`` (stderr) that the experiment file was edited after ``init``
    (:func:`nas.control.policy.source_drift`); the line said, or None.

    Every command that reads the experiment calls it (``run`` logs the same line):
    a bound tightened in the file and checked with a dry run, ``propose``,
    ``status``, ``front`` or ``best`` would otherwise be silently ignored there.
    """
    drift = policy.source_drift(state, state_path)
    if drift:
        print(f"warning: {drift}", file=stream or sys.stderr)
    return drift


def dry_run(
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
    warn_source_drift(state, state_path)
    if max_points is not None:  # in memory only: the read state is never committed
        policy.raise_budget(state, experiment, max_points, "run --dry-run --max-points")
    settings, unchecked = _offline_settings(experiment, cwd or Path.cwd(), state_path)
    run = layout.run_dir(state_path)
    feasible = feasibility(experiment, settings.workdir)
    infeasible, submissions = submission_plan(state, experiment, feasible)
    submit, unpreparable = [], []
    for point, nxt in submissions:
        try:
            text = settings.check(run, nxt)
        except PREPARE_ERRORS as exc:  # what the cycle does with such a point: fails it
            reason = f"its job cannot be prepared: {exc}"
            unpreparable.append({"id": point.id, "params": point.params, "reason": reason})
            continue
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
        "fail": unpreparable,
        "propose": [
            {"params": p.params, "predicted": p.predicted, "origin": p.origin} for p in proposals
        ],
        "stop": None if stop is None else dataclasses.asdict(stop),
        "unchecked": unchecked,
    }


def _offline_settings(
    experiment: Experiment, cwd: Path, state: Path
) -> tuple[JobSettings, list[str]]:
    """The job settings for a dry run, and the paths that do not exist on this machine.

    A dry run shows the scripts of an experiment written for another machine
    (``init --offline``): its env file, data root and index are used as given
    and named as unchecked instead of refused; everything else refuses as ``run`` does.

    Raises:
        ConfigError: the first problem that is not a path on this machine.
    """
    problems = run_problems(experiment, cwd, offline=True, state=state)
    if problems:
        raise problems[0]
    offline = {str(p) for p in problems}
    checked = run_problems(experiment, cwd, state=state)
    unchecked = [str(p) for p in checked if str(p) not in offline]
    return JobSettings.resolved(experiment, cwd), unchecked
