"""Glue between a :class:`~nas.record.state.State` and the :class:`~nas.search.optimizer.SplineOptimizer`.

The optimizer keeps no state of its own between commands: a :class:`Study`
rebuilds it from the state (measured points told with the prediction
they had when proposed; every other point marked pending so that nothing
is proposed on or near it), so an answer depends only on the state file and
the experiment's settings. No files or processes are touched here; callers
load and commit the state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.config import Experiment, parse_experiment
from nas.errors import UserError
from nas.numbers import amount_text, exact_text, plural
from nas.pointdir.result import Measured
from nas.record.state import (
    APART_FROM_AGREEMENTS,
    CHECK,
    EARLIER_ATTEMPTS,
    POLL,
    SPLINE_ORIGINS,
    UNCLIPPED,
    FitRecord,
    Point,
    PointStatus,
    State,
)
from nas.search.space import Params, SearchSpace, indicator_count, params_text

if TYPE_CHECKING:
    from nas.cluster import Scheduler
    from nas.control.budget import GpuBudget
    from nas.search.failures import FailureZones
    from nas.search.optimizer import FitSummary, Proposal, SplineOptimizer
    from nas.search.stopping import StopEvidence

#: Points that will not be measured and do not count against ``max_points``.
_NOT_SPENT = frozenset({PointStatus.CANCELLED, PointStatus.INFEASIBLE})
#: Origins of points this campaign did not train (they do not count against ``max_points``).
_NOT_TRAINED = frozenset({"import"})


def _imported(point: Point) -> bool:
    """Whether a point's measurement came from elsewhere and this campaign never trained it:
    imported as a new point, or a point of its own (a pending design point) that an import
    gave its value before any job of it was submitted (a job name is given at submission;
    ``rerun`` clears it but keeps the attempts made, :data:`EARLIER_ATTEMPTS`)."""
    if point.origin in _NOT_TRAINED:
        return True
    trained = point.job_name or point.extra.get(EARLIER_ATTEMPTS)
    return "import" in point.extra and not trained


#: How a spent point budget is raised, for the message that says it is spent.
RAISE_BUDGET = (
    "raise it with `splinenas run --max-points N` (queued for a running controller), or "
    "`--max-points N` on `splinenas propose` or `splinenas expand`"
)


#: What a person does about a measured cost the results do not carry (:meth:`Study.cost_blocker`).
FIX_COST = (
    "correct the cost's name in the experiment file (for a new state) or have the trainer's "
    "result.json carry it among its metrics for every point"
)


class StudyError(UserError, RuntimeError):
    """A request the search cannot serve, e.g. a spent budget."""


# ---------------------------------------------------------------------------- phases
#
# A phase begins at ``init`` and at each expand or refine that adds work: the box
# or the region of interest changed, so a prediction made before cannot stop the
# search after it. Phases live in ``state.meta["phases"]`` as
# ``{"number", "first_id", "time", "why"}``; a state without them is in phase 0.


def phases(state: State) -> list[dict[str, Any]]:
    """Every phase of the search, phase 0 (from the first point) first."""
    start = {"number": 0, "first_id": 0, "time": state.created, "why": "init"}
    return [start, *state.meta.get("phases", [])]


def current_phase(state: State) -> dict[str, Any]:
    """The phase the search is in: only its predictions can stop it."""
    return phases(state)[-1]


def start_phase(state: State, first_id: int, why: str) -> dict[str, Any]:
    """Begin a new phase whose first point has id ``first_id`` (logged as an event)."""
    phase = {"number": len(phases(state)), "first_id": first_id, "time": time.time(), "why": why}
    state.meta = {**state.meta, "phases": [*state.meta.get("phases", []), phase]}
    state.log("phase", f"phase {phase['number']} begins at point {first_id}: {why}")
    return phase


#: The largest magnitude a measurement may have. The spline's fit squares the
#: measurements and their leave-one-out errors and sums the squares: at 1e150 a square is
#: 1e300, which leaves a factor of 1e8 below the largest float (1.8e308) for the sums and
#: for errors larger than the values. Beyond it the fit overflows into NaN (from about
#: 1e154 on), so such a value, most often a typo (``1e308`` for ``1e3.08``) or a loss
#: that blew up, is refused where it enters: ``record``, ``add``, ``import`` and a
#: result file the controller reads.
MAX_MEASUREMENT = 1e150


def value_range(experiment: Experiment) -> tuple[float, float] | None:
    """The range a measurement must lie in (:meth:`ExperimentConfig.valid_range`)."""
    return experiment.experiment.valid_range()


def measured(experiment: Experiment) -> Measured:
    """What a result file must carry for this experiment: its metric, in :func:`value_range`
    and within :data:`MAX_MEASUREMENT`."""
    low, high = value_range(experiment) or (-MAX_MEASUREMENT, MAX_MEASUREMENT)
    return Measured(
        experiment.experiment.metric, (max(low, -MAX_MEASUREMENT), min(high, MAX_MEASUREMENT))
    )


def check_value(experiment: Experiment, value: float, where: str) -> float:
    """``value`` as a float when it is finite, within :data:`MAX_MEASUREMENT` and in
    :func:`value_range`; else a StudyError naming ``where``."""
    value = float(value)
    valid = value_range(experiment)
    if not math.isfinite(value):
        raise StudyError(f"{where}: the measurement must be finite, got {value}")
    if abs(value) > MAX_MEASUREMENT:
        metric = experiment.experiment.metric
        raise StudyError(f"{where}: {metric} = {_too_large(value)}; is it a typo?")
    if valid is not None and not valid[0] <= value <= valid[1]:
        metric = experiment.experiment.metric
        raise StudyError(
            f"{where}: {metric} = {exact_text(value)} is outside its valid range "
            f"[{valid[0]:g}, {valid[1]:g}]"
            " ([experiment] value_range)"
        )
    return value


def _overflow_said() -> contextlib.AbstractContextManager:
    """numpy's overflow warnings silenced where a non-finite result is refused in one line
    (:func:`unusable_fit`): a dozen warnings with source lines would only repeat it."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def oversized(state: State) -> Point | None:
    """The measurement of largest magnitude when it lies beyond :data:`MAX_MEASUREMENT`
    (stored before that was checked, or told through the API), else None."""
    done = [p for p in state.with_status(PointStatus.DONE) if p.value is not None]
    largest = max(done, key=lambda p: abs(p.value), default=None)
    return largest if largest is not None and abs(largest.value) > MAX_MEASUREMENT else None


def unusable_fit(state: State) -> str:
    """Why the spline gives no numbers to go by, and what a person does about it.

    A measurement beyond :data:`MAX_MEASUREMENT` overflows the fit (some of its
    numbers, if not all, are not finite): it is named so that it can be
    corrected. Without one, the measured points make an unstable system.
    """
    point = oversized(state)
    if point is None:
        return "the spline's numbers are not finite: the measured points make an unstable fit"
    return (
        f"point {point.id} measured {_too_large(point.value)}; correct it with "
        f"`splinenas record --replace {point.id} VALUE`"
    )


def _too_large(value: float) -> str:
    """``value`` with why a fit cannot take it (:data:`MAX_MEASUREMENT`)."""
    return (
        f"{exact_text(value)}, beyond ±{MAX_MEASUREMENT:g}: more than a spline fit can take "
        "(its squares overflow)"
    )


def clip_prediction(experiment: Experiment, value: float) -> float:
    """``value`` within :func:`value_range`: no measurement can lie outside it.

    A spline extrapolates past the metric's bounds (108 % top-1); a proposal's
    prediction is what its measurement is compared with, so it is clipped.
    """
    valid = value_range(experiment)
    return value if valid is None else min(max(value, valid[0]), valid[1])


def outside_range(experiment: Experiment, value: float | None) -> bool:
    """Whether a prediction lies outside :func:`value_range` (shown flagged by readers).

    An undefined prediction (None, NaN) lies nowhere: :func:`unusable_fit` says why it is.
    """
    defined = value is not None and not math.isnan(value)
    return defined and clip_prediction(experiment, value) != value


def max_points(state: State, experiment: Experiment) -> int:
    """The point budget: ``max_points`` of the experiment, unless raised with ``expand --max-points``."""
    return int(state.meta.get("max_points", experiment.experiment.max_points))


def raise_budget(state: State, experiment: Experiment, points: int, by: str) -> None:
    """Record a new point budget, logged with who set it (``expand --max-points``)."""
    old = max_points(state, experiment)
    if points != old:
        state.meta = {**state.meta, "max_points": int(points)}
        state.log("budget", f"max_points {old} -> {points} by {by}")


#: ``state.meta`` key of the folder the search runs in (:func:`record_folder`).
FOLDER_KEY = "workdir"
#: Event kind of a controller started in another folder than the search ran in before.
FOLDER_MOVED = "folder"


def record_folder(state: State, folder: Path) -> None:
    """Record the folder the search runs in (``init``'s, then the controller's).

    Readers take the search's own code from there (:attr:`Experiment.folder`),
    so they import what the controller imports wherever they run. A controller
    started in another folder records that one, and the events say so.
    """
    path = str(folder.absolute())
    before = state.meta.get(FOLDER_KEY)
    if path == before:
        return
    state.meta = {**state.meta, FOLDER_KEY: path}
    if before is not None:
        state.log(FOLDER_MOVED, f"the search runs in {path} now (before: {before})")


#: ``state.meta`` key of the experiment file ``init`` read (:func:`record_source`).
SOURCE_KEY = "experiment_file"


def record_source(state: State, path: Path) -> None:
    """Record the experiment file a new state was made from, so that :func:`source_drift`
    can say when it is edited later (the state keeps its own copy)."""
    state.meta = {**state.meta, SOURCE_KEY: str(path.absolute())}


def source_drift(state: State, state_path: str | os.PathLike) -> str | None:
    """Why the experiment file ``init`` read no longer is what the search runs on; None when
    it is (or it is gone, or was never recorded).

    The state keeps the file's text from ``init`` and every command reads that
    copy: a walltime, account or command edited in the file afterwards changed
    nothing, and nothing said so.
    """
    source = state.meta.get(SOURCE_KEY)
    if not isinstance(source, str):
        return None
    try:
        text = Path(source).read_bytes().decode("utf-8")  # as init read it: newlines kept
    except (OSError, UnicodeDecodeError):
        return None
    if text == state.experiment_text:
        return None
    return (
        f"{source} was edited after init: the search runs on the copy of it stored in "
        f"{state_path} and reads none of the changes; to run under the edited settings, "
        f"`splinenas init {source} --state NEW.h5`, then `splinenas import --state NEW.h5 "
        f"{state_path}` brings this campaign's measurements"
    )


def experiment_of(state: State, state_path: str | os.PathLike) -> Experiment:
    """The experiment stored in the state at ``state_path``, with the folder it runs in
    (:func:`record_folder`); errors name that file."""
    experiment = parse_experiment(state.experiment_text, f"{state_path}:experiment_toml")
    return dataclasses.replace(experiment, folder=state.meta.get(FOLDER_KEY))


def scheduler_of(experiment: Experiment, state_path: str | os.PathLike) -> Scheduler:
    """The scheduler of the search at ``state_path``: local jobs live in its run folder."""
    from nas.cluster import get_scheduler  # the backends load only when a command needs one
    from nas.pointdir import layout

    jobs = layout.jobs_dir(layout.run_dir(state_path))
    return get_scheduler(experiment.cluster, local_root=jobs)


class Study:
    """One search: its state, its experiment (parsed once) and the optimizer built from both.

    The optimizer is rebuilt only when the state has changed since it was
    built (``State.revision``), so a cycle that asks whether the search
    converged, what is best and what to propose next builds it once.

    Measured points are told with their stored prediction (so convergence is
    judged on the prediction made when the point was proposed). Failed,
    infeasible and cancelled points are told as failures: never proposed
    again, and an initial-design point among them does not hold up the first
    fit; cancelled ones as withdrawn, so that their region is not ranked as
    failing. Points still to be measured are marked pending: in no fit, but
    nothing is proposed on or near them.
    """

    def __init__(
        self,
        state: State,
        experiment: Experiment,
        feasible: Callable[[Params], bool] | None = None,
    ) -> None:
        self.state = state
        self.experiment = experiment
        self.feasible = feasible
        self._optimizer: SplineOptimizer | None = None
        self._built_at = -1
        #: The rules the state's own measurements make, and the revision they were made at.
        self._spent: tuple[GpuBudget | None, FailureZones | None] = (None, None)
        self._spent_at = -1

    @classmethod
    def of(
        cls,
        state: State,
        state_path: str | os.PathLike,
        feasible: Callable[[Params], bool] | None = None,
    ) -> Study:
        """The study of the state read from ``state_path``."""
        return cls(state, experiment_of(state, state_path), feasible)

    @property
    def optimizer(self) -> SplineOptimizer:
        """An optimizer that knows everything in the state as it is now."""
        if self._optimizer is None or self._built_at != self.state.revision:
            self._optimizer = self._build()
            self._built_at = self.state.revision
        return self._optimizer

    def _build(self) -> SplineOptimizer:
        from nas.search.optimizer import (
            SplineOptimizer,  # scipy.stats: slow to import, only needed here
        )

        admissible = self.admissible()
        optimizer = SplineOptimizer(
            self.state.space,
            self.experiment.experiment.search_settings(),
            feasible=admissible,
            design=self._cost_design(admissible),
            design_space=self.first_box(),
            eligible=self._eligible_rule(),
        )
        first_id = current_phase(self.state)["first_id"]
        for point in self.state.points:
            if point.status is PointStatus.DONE:
                # a prediction of an earlier phase was made for another box: it cannot stop this one
                predicted = point.judged_prediction if point.id >= first_id else None
                optimizer.tell(
                    point.params,
                    point.value,
                    predicted=predicted,
                    fill=point.origin == "fill",
                    check=point.origin == CHECK,
                    batch=point.batch,
                    poll=point.origin == POLL,
                )
            elif point.status.is_finished():
                with warnings.catch_warnings():  # a known failure, not a bad measurement
                    warnings.simplefilter("ignore", RuntimeWarning)
                    withdrawn = point.status is PointStatus.CANCELLED  # a person's choice
                    optimizer.tell(point.params, math.nan, withdrawn=withdrawn)
            else:
                optimizer.mark_pending(point.params, batch=point.batch, origin=point.origin)
        return optimizer

    def first_box(self) -> SearchSpace | None:
        """The box the campaign's initial design was drawn in: the experiment's, which
        ``expand`` never rewrites (it widens the state's space and adds a design of its
        own, origin ``expand``). None where it is not within the state's box (the
        search's box, then, as for a state whose experiment says otherwise).

        An optimizer drawing its design in the widened box found that design
        unissued and proposed it on top of expand's (an independent check: three
        of seven remaining trainings spent on "initial" points without
        predictions, one next to a measured point).
        """
        from nas.search.optimizer import within  # with the optimizer: slow to import

        box = self.experiment.space
        return box if within(box, self.state.space) else None

    def _cost_design(self, admissible: Callable[[Params], bool] | None) -> list[Params] | None:
        """With ``tradeoff`` on a known cost, a design spread over that cost; else None (the
        experiment's ``design``, its points beyond ``[experiment.constraints]`` left out)."""
        if self.experiment.experiment.tradeoff is None:
            return None
        from nas.control import tradeoffs

        return tradeoffs.design(self.state, self.experiment, admissible)

    def admissible(self) -> Callable[[Params], bool] | None:
        """What a candidate must satisfy: the memory predicate, ``[experiment.constraints]``
        and what is left of ``max_gpu_hours`` (:mod:`nas.control.budget`).

        A measured cost's bound and the budget read the measured costs, so the
        predicate is rebuilt with the optimizer whenever the state changed.
        """
        rules = [] if self.feasible is None else [self.feasible]
        bounds = self.experiment.experiment.constraints
        if bounds:
            from nas.control.constraints import candidate_rule, declared

            rules.append(candidate_rule(self.state, self.experiment, declared(bounds)))
        budget, zones = self._spent_rules()
        spent = ([] if budget is None else [budget.fits]) + (
            [] if zones is None else [zones.allows]
        )
        if spent:
            rules.append(self._beside_own_points(spent))
        if len(rules) <= 1:
            return rules[0] if rules else None
        return lambda params: all(rule(params) for rule in rules)

    def _beside_own_points(self, rules: list[Callable[[Params], bool]]) -> Callable[[Params], bool]:
        """``rules`` for every candidate but the campaign's own points, which pass.

        The budget and the balls around failures are drawn from what the campaign
        spent and measured; its own points are never proposed again, and an initial
        design whose measured corners they refused would be topped up with new
        points as if those had never been measured.
        """
        space = self.state.space
        own = {space.key(p.params) for p in self.state.points}
        return lambda params: space.key(params) in own or all(rule(params) for rule in rules)

    def _spent_rules(self) -> tuple[GpuBudget | None, FailureZones | None]:
        """:meth:`gpu_budget` and :meth:`failure_zones`, made once per state revision: the
        optimizer's predicate, a batch's cut, the rules text and ``status`` read them."""
        if self._spent_at != self.state.revision:
            from nas.control.budget import gpu_budget
            from nas.search.failures import failure_zones

            failed = self.state.with_status(PointStatus.FAILED, PointStatus.INFEASIBLE)
            measured = self.state.with_status(PointStatus.DONE)
            zones = failure_zones(
                self.state.space, [p.params for p in failed], [p.params for p in measured]
            )
            self._spent = (gpu_budget(self.state, self.experiment), zones)
            self._spent_at = self.state.revision
        return self._spent

    def failure_zones(self) -> FailureZones | None:
        """The neighbourhoods of failed and infeasible points that proposals keep away from
        (:mod:`nas.search.failures`); None where none has one. Cancelled points are a
        person's choice, not a property of their region.
        """
        return self._spent_rules()[1]

    def gpu_budget(self) -> GpuBudget | None:
        """What is left of ``max_gpu_hours`` once results counted GPU-hours (else None)."""
        return self._spent_rules()[0]

    def rules_text(self) -> str:
        """The rules a candidate is held to beyond the box, for a search that found none
        they allow: "infeasible" alone named no file key to loosen."""
        cfg = self.experiment
        rules = [f"{name} <= {bound:g}" for name, bound in cfg.experiment.constraints.items()]
        rules = [f"[experiment.constraints] {', '.join(rules)}"] if rules else []
        if cfg.cluster.max_gpu_memory_gib is not None:
            rules.append(f"[cluster] max_gpu_memory_gib = {cfg.cluster.max_gpu_memory_gib:g}")
        if cfg.model is not None and cfg.model.feasible:
            rules.append(f"[model] feasible = {cfg.model.feasible!r}")
        budget = self.gpu_budget()
        if budget is not None:
            rules.append(budget.text())
        zones = self.failure_zones()
        if zones is not None:
            rules.append(zones.text())
        return "; ".join(rules)

    def rule_notes(self) -> list[str]:
        """What the feasibility rules noted so far (:meth:`Feasibility.notes`: the user's
        ``[model] feasible`` failing for candidates, which it made infeasible)."""
        from nas.control.feasible import Feasibility

        return self.feasible.notes() if isinstance(self.feasible, Feasibility) else []

    # ------------------------------------------------------------------ budget
    def budget_reason(self, now: float | None = None) -> str | None:
        """Why no more points may be proposed (``max_points``, GPU-hours, wall time), or None."""
        cfg = self.experiment.experiment
        spent = self.spent_points()
        limit = max_points(self.state, self.experiment)
        if spent >= limit:
            imported = self.imported_points()
            apart = f"; {imported} imported points not counted" if imported else ""
            return f"max_points reached: {spent} trainings of {limit}{apart}; {RAISE_BUDGET}"
        gpu_hours = sum(p.gpu_hours for p in self.state.points)
        if cfg.max_gpu_hours is not None and gpu_hours >= cfg.max_gpu_hours:
            # the limit's own decimals: "9.5 of 9.48" read as an overshoot that was not there
            limit_text = f"{cfg.max_gpu_hours:g}"
            places = len(limit_text.partition(".")[2]) if "e" not in limit_text else 1
            used = amount_text(gpu_hours, max(places, 1))
            return f"max_gpu_hours reached: {used} of {limit_text} GPU-hours used"
        hours = ((time.time() if now is None else now) - self.state.created) / 3600.0
        if cfg.max_wall_hours is not None and hours >= cfg.max_wall_hours:
            return f"max_wall_hours reached: search started {hours:.1f} h ago (limit {cfg.max_wall_hours:g} h)"
        return None

    def spent_points(self) -> int:
        """Trainings of this campaign, which ``max_points`` counts.

        All points but cancelled and infeasible ones and those imported from
        elsewhere: a warm start's measurements cost this campaign nothing.
        """
        return sum(p.status not in _NOT_SPENT and not _imported(p) for p in self.state.points)

    def imported_points(self) -> int:
        """Measured points imported from elsewhere (shown apart from the budget)."""
        return sum(map(_imported, self.state.points))

    def remaining_points(self) -> int:
        """How many more points ``max_points`` allows."""
        return max(max_points(self.state, self.experiment) - self.spent_points(), 0)

    # ------------------------------------------------------------------ proposing
    def propose(self, n: int | None = None, dry_run: bool = False) -> list[Point] | list[Proposal]:
        """Propose up to ``n`` points (default ``batch_size``) and store them as one pending batch.

        The remaining initial design comes first, then spline proposals (their
        predictions clipped to :func:`value_range`); the number is capped by
        the ``max_points`` budget. A fit behind spline
        proposals is recorded in the state. With ``dry_run`` nothing is stored
        and the proposals are returned instead of points.

        Raises:
            StudyError: the budget is spent, a measured cost that a bound or the
                trade-off needs cannot be predicted (:meth:`cost_blocker`), or the fit
                predicts no finite value (:func:`unusable_fit`): such a point is never
                proposed.
            SearchError: no feasible distinct candidate is left.
            SplineError: the measurements make an unstable system.
        """
        reason = self.budget_reason()
        if reason:
            raise StudyError(f"no more points may be proposed: {reason}")
        self._refuse_unknown_costs(dry_run)
        n = self.experiment.experiment.batch_size if n is None else n
        optimizer = self.optimizer
        self._optimizer = None  # suggesting marks the proposals pending in it
        with _overflow_said():
            raw = self._suggest(optimizer, min(n, self.remaining_points()))
        raw = self._within_budget(raw, dry_run)
        predicted = [p.predicted for p in raw if p.predicted is not None]
        if predicted and (not np.isfinite(predicted).all() or oversized(self.state)):
            raise StudyError(f"nothing proposed: {unusable_fit(self.state)}")
        proposals = [
            p
            if p.predicted is None
            else dataclasses.replace(p, predicted=clip_prediction(self.experiment, p.predicted))
            for p in raw
        ]
        if dry_run:
            return proposals
        if any(p.origin in SPLINE_ORIGINS for p in proposals):
            self._record_fit(optimizer)
        batch = self.state.next_batch()
        points = [
            self.state.add_point(
                p.params,
                p.origin,
                batch,
                predicted=p.predicted,
                # the spline's own number, which its measurement is judged against
                extra={UNCLIPPED: own.predicted} if own.predicted != p.predicted else None,
            )
            for p, own in zip(proposals, raw, strict=True)
        ]
        for point in points:
            if point.origin == CHECK:
                self.state.log(CHECK, check_text(point, optimizer.stop_evidence()), point.id)
            elif point.origin == POLL:
                self.state.log(POLL, poll_text(point, optimizer.stop_evidence()), point.id)
        return points

    def _within_budget(self, raw: list[Proposal], dry_run: bool) -> list[Proposal]:
        """The proposals, cut where together they would cost more than ``max_gpu_hours`` has
        left (each fits alone: :meth:`admissible`); a cut is an event ``budget``."""
        budget = self.gpu_budget()
        kept = len(raw) if budget is None else budget.trim([p.params for p in raw])
        if kept < len(raw) and not dry_run:
            cut = "; ".join(params_text(p.params) for p in raw[kept:])
            from nas.control.budget import BUDGET_EVENT

            self.state.log(BUDGET_EVENT, f"{plural(len(raw) - kept, 'proposal')} left out of the batch "
                           f"({cut}): with the {kept} before, past {budget.text()}")  # fmt: skip
        return raw[:kept]

    def _refuse_unknown_costs(self, dry_run: bool) -> None:
        """Raise :meth:`cost_blocker`'s reason, keeping the fit for readers of a stopped search.

        Raises:
            StudyError: a measured cost that a bound or the trade-off needs cannot be predicted.
        """
        blocker = self.cost_blocker()
        if blocker is None:
            return
        if not dry_run:
            from nas.search.spline import SplineError

            with contextlib.suppress(SplineError):  # a singular fit says so at the next proposal
                self.store_fit()
        raise StudyError(f"{blocker}; {FIX_COST}")

    def _suggest(self, optimizer: SplineOptimizer, n: int) -> list[Proposal]:
        """The optimizer's suggestions; with ``tradeoff``, once the design is measured and a
        spline fitted, the candidates that add most to the (metric, cost) front instead.

        Raises:
            SearchError: the trade-off search has no admissible new candidate left.
        """
        if (
            self.experiment.experiment.tradeoff is None
            or optimizer.unissued_design
            or optimizer.fit() is None
        ):
            return optimizer.suggest(n)
        from nas.control import tradeoffs
        from nas.search.optimizer import Proposal
        from nas.search.propose import SearchError

        picks = tradeoffs.propose(self.state, self.experiment, optimizer, self.admissible(), n)
        if not picks:
            raise SearchError("no admissible new candidate for the trade-off front is left")
        return [Proposal(params, predicted, "incremental") for params, predicted in picks]

    def initial_batch(self) -> list[Point]:
        """Store the whole initial design (within the budget) as batch 0.

        What a cost-spread design changes of the file's own settings is in the
        events (:func:`~nas.control.tradeoffs.design_notes`).
        """
        from nas.control import tradeoffs
        from nas.search.optimizer import SearchStalled

        for note in tradeoffs.design_notes(self.experiment):
            self.state.log(note.kind, note.text)
        try:
            return self.propose(n=len(self.optimizer.initial_design()))
        except SearchStalled:  # not one point of the box passes the rules
            raise StudyError(
                f"{self.experiment.source}: no point of the box is allowed by "
                f"{self.rules_text() or 'the rules of the search'}: loosen a bound or "
                "change the box"
            ) from None

    def _record_fit(self, optimizer: SplineOptimizer) -> None:
        """Store ``optimizer``'s fit: support point ids, coefficients, LOO error, argmax.

        With noise also the best smoothed point, so that readers name it
        without fitting again.
        """
        summary = optimizer.fit()
        if summary is None:
            return
        supported = [
            p
            for p in self.state.with_status(PointStatus.DONE)
            if self.state.space.category_of(p.params) in summary.splines
        ]
        support = [p.id for p in supported]
        noisy = self.experiment.experiment.noise is not None
        smoothed = optimizer.best if noisy else None
        best = None if smoothed is None else self.state.find(smoothed[0])
        best_id = -1 if best is None else best.id
        fitted = optimizer.fitted_values([p.params for p in supported]) or []
        noise = None if summary.noise is None else summary.noise.as_record()
        stored = current_fit(self.state)
        if stored is not None and _records(stored, support, summary, best_id, noise):
            return  # proposing again on the same measurements: that fit is stored already
        self.state.add_fit(
            support,
            summary.coefficients,
            summary.loo_rmse,
            summary.argmax,
            summary.predicted_max,
            best_id=best_id,
            local_loo=summary.local_loo,
            noise=noise,
            fitted=[v for v in fitted if v is not None],
            warped=summary.warped,
        )
        for warning in summary.warnings:  # readers show them without refitting
            self.state.log(FIT_WARNING, f"{warning} (smoothing {summary.smoothing:.3g})")

    # ------------------------------------------------------------------ answers
    def fit_summary(self) -> FitSummary | None:
        """The fit over all measured points, or None while too few are measured."""
        return self.optimizer.fit()

    def store_fit(self) -> None:
        """Store the fit over every measured point unless it is stored already (a search's last fit)."""
        if current_fit(self.state) is None:
            self._record_fit(self.optimizer)

    def predict(
        self, params: Mapping[str, Any], extrapolate: bool = False
    ) -> tuple[float, FitSummary]:
        """The spline's prediction at ``params`` (as given with ``extrapolate``) and its fit.

        Raises:
            StudyError: too few points are measured to fit a spline, or its prediction
                is not finite (:func:`unusable_fit`).
        """
        if oversized(self.state):
            raise StudyError(f"no prediction: {unusable_fit(self.state)}")
        with _overflow_said():
            summary = self.fit_summary()
            if summary is None:
                raise StudyError(f"cannot predict yet: {self.fit_blocker()}")
            value = self.optimizer.predict(params, extrapolate)
        if not math.isfinite(value):
            raise StudyError(f"no prediction: {unusable_fit(self.state)}")
        return value, summary

    def converged(self) -> bool:
        """The stopping rule on the proposals of the current phase (:mod:`nas.search.stopping`)."""
        return self.stop_evidence().stop

    def stop_evidence(self, exact: bool = True) -> StopEvidence:
        """Why the search does or does not stop: the last gaps, the stall, the tolerance applied.

        ``exact`` is the controller's decision, the optimizer's own: the rule's
        last conditions ask the spline's argmax and its leave-one-out errors
        (a fit and a search). Readers
        pass False and get the same rule (:func:`nas.search.stopping.decide`)
        on the stored points without building an optimizer: the last stored
        fit's prediction stands in for the argmax and its stored leave-one-out
        error near the best for a new one; "no fit stored" counts as a promise
        not yet ruled out, so they never claim a stop the
        controller would not make. A point told in an earlier phase carries no
        prediction: it was made for another box.
        """
        evidence = self.optimizer.stop_evidence() if exact else self._stored_evidence()
        if self.experiment.experiment.tradeoff is None:
            return evidence
        from nas.control import tradeoffs

        front = tradeoffs.evidence(
            self.state,
            self.experiment,
            self.optimizer,
            self.admissible(),
            evidence.gaps,
            evidence.k,
        )
        return dataclasses.replace(evidence, rule="tradeoff", stop=front.stop, reason=front.reason)

    def _stored_evidence(self) -> StopEvidence:
        """:meth:`stop_evidence` from the stored points and fit alone (no optimizer)."""
        from nas.search.stopping import counted, decide

        cfg = self.experiment.experiment
        sign = 1.0 if cfg.goal == "maximize" else -1.0
        first_id = current_phase(self.state)["first_id"]
        measured = [p for p in self.state.with_status(PointStatus.DONE) if math.isfinite(p.value)]
        values = [sign * p.value for p in measured]
        current = [p.id >= first_id and p.judged_prediction is not None for p in measured]
        proposals = [
            (sign * p.value, sign * p.judged_prediction)
            for p, ok in zip(measured, current, strict=True)
            if ok and p.origin not in APART_FROM_AGREEMENTS
        ]
        checks = [
            (i, sign * p.value, sign * p.judged_prediction, p.batch)
            for i, (p, ok) in enumerate(zip(measured, current, strict=True))
            if ok and p.origin == CHECK
        ]
        smoothed = _stored_smoothed(self.state, sign, measured) if cfg.noise is not None else None
        eligible = self._eligible_mask(measured)
        kept = [i for i in range(len(measured)) if eligible is None or eligible[i]]
        evidence = decide(
            self.stop_rule,
            values,
            proposals,
            self.state.space.d,
            cfg.tolerance,
            self._stored_noise_sd(),
            gain=functools.partial(
                _stored_gain,
                self.state,
                sign,
                [measured[i] for i in kept],
                None if smoothed is None else [smoothed[i] for i in kept],
            ),
            local_error=functools.partial(_stored_local_error, self.state),
            checks=checks,
            smoothed=smoothed,
            eligible=eligible,
        )
        return self._stored_climb(evidence, measured, current, counted(values, eligible))

    def _eligible_rule(self) -> Callable[[Params], bool] | None:
        """:meth:`returnable` as the optimizer asks it, a predicate on params (:mod:`nas.search`
        knows no costs); None without bounds (every point). A measured cost is read from
        the point's result, so it is rebuilt with the optimizer whenever the state changed."""
        if not self.experiment.experiment.constraints:
            return None
        space = self.state.space
        keys = {space.key(p.params) for p in self.returnable()}
        return lambda params: space.key(params) in keys

    def _eligible_mask(self, measured: list[Point]) -> list[bool] | None:
        """Which of ``measured`` :meth:`returnable` holds; None without bounds (all of them)."""
        if not self.experiment.experiment.constraints:
            return None
        ids = {p.id for p in self.returnable()}
        return [p.id in ids for p in measured]

    def _stored_climb(
        self,
        evidence: StopEvidence,
        measured: list[Point],
        proposed: list[bool],
        values: list[float],
    ) -> StopEvidence:
        """``evidence`` held back while a climb on a stall is under way, as the optimizer
        holds it (:func:`nas.search.climb.hold`), from the stored points: the polls told,
        pending and still due around the best the readers see. ``proposed``: which of
        ``measured`` the optimizer is told with a prediction (:meth:`_build`); ``values``:
        their measurements, higher is better."""
        from nas.search.climb import climb_polls, hold

        settings = self.experiment.experiment.search_settings()
        best = self.best(exact=False)
        if settings.climb_kind == "off" or best is None:
            return evidence
        # pending as _build marks it: not finished (DONE is one of the finished statuses)
        pending = sum(p.origin == POLL and not p.status.is_finished() for p in self.state.points)
        due = climb_polls(
            self.state.space,
            best.params,
            [p.origin == POLL for p in measured],
            best.origin == POLL,
            evidence.stall,
            {self.state.space.key(p.params) for p in self.state.points},
            self.admissible(),
            settings.min_distance,
            pending,
            proposed,
            values,
        )
        return hold(evidence, len(due), pending > 0)

    def _stored_noise_sd(self) -> float:
        """The noise sd the stop tolerance respects, for readers: ``[experiment] noise`` or,
        with ``"auto"``, the one the last stored fit measured (0 without either)."""
        noise = self.experiment.experiment.noise
        if noise != "auto":
            return 0.0 if noise is None else float(noise)
        stored = self.state.fits[-1].noise.get("sd") if self.state.fits else None
        return 0.0 if stored is None else float(stored)

    @property
    def stop_rule(self) -> str:
        """``[experiment] stop``, or the rule that goes with the strategy."""
        cfg = self.experiment.experiment
        if cfg.stop is not None:
            return cfg.stop
        return "paper" if cfg.strategy == "paper" else "default"

    def best(self, exact: bool = True) -> Point | None:
        """The best measured point within ``[experiment.constraints]``, respecting the goal;
        ties go to the earlier point (None while no measured point meets the bounds).

        Not the spline's predicted maximum: :meth:`fit_summary` has that.
        With ``[experiment] noise`` it is the measured point with the best
        smoothed value (:meth:`raw_best` is the best measurement); readers
        pass ``exact=False`` and get it by the stored fit's smoothed values
        (:func:`nas.control.constraints.best_within` with the experiment's
        bounds) instead of fitting again. A point beyond a bound is never
        "the best": the search cannot return it.
        """
        if self.experiment.experiment.noise is not None and not exact:
            from nas.control.constraints import best_within, bounds_of

            return best_within(self.state, self.experiment, bounds_of(self.experiment))
        if self.experiment.experiment.noise is not None:
            best = self.optimizer.best
            return None if best is None else self.state.find(best[0])
        return self.raw_best()

    def raw_best(self) -> Point | None:
        """The best measurement within ``[experiment.constraints]``, respecting the goal; ties
        go to the earlier point."""
        sign = 1.0 if self.experiment.experiment.goal == "maximize" else -1.0
        return max(self.returnable(), key=lambda p: (sign * p.value, -p.id), default=None)

    def returnable(self) -> list[Point]:
        """The measured points the search may return as its best: every one, or under
        ``[experiment.constraints]`` those whose costs meet every bound
        (:func:`nas.control.constraints.within`)."""
        if not self.experiment.experiment.constraints:
            return self.state.with_status(PointStatus.DONE)
        from nas.control.constraints import bounds_of, within

        return within(self.state, self.experiment, bounds_of(self.experiment))

    def unmeasured_text(self) -> str:
        """``"2 failed, 3 cancelled"``: the points the search was told as failures, by status.

        The search counts cancelled and infeasible points as failed points (never
        proposed again); a person who cancelled them reads which they are.
        """
        told = (PointStatus.FAILED, PointStatus.CANCELLED, PointStatus.INFEASIBLE)
        counts = [(len(self.state.with_status(status)), status.value) for status in told]
        return ", ".join(f"{n} {word}" for n, word in counts if n)

    def fit_blocker(self) -> str:
        """Why no fit is there, for people: too few measurements per category, or (when the
        measured points determine a spline) that none is stored yet.

        Readers call it when the state holds no fit; the controller stores one
        with its next proposal or when it stops, so "a fit needs 3 points" next
        to three such points would contradict itself.
        """
        space = self.state.space
        need = space.d + 1
        rows = [p.params for p in self.state.with_status(PointStatus.DONE)]
        if not rows:
            return f"no point is measured yet; a fit needs {need} affinely independent points"
        counts = support_counts(space, rows)
        if determines_spline(counts, space.d):
            return (
                f"the measured points determine one ({support_text(counts)}) but none is stored "
                "yet; the controller stores it with its next proposal or when it stops"
            )
        shared = ""
        if space.categorical and self.experiment.experiment.strategy != "paper":
            shared = (
                f" (per category; or {need + indicator_count(space)} over all categories, every categorical "
                "choice measured, for the spline they share)"
            )
        return (
            f"a fit needs {need} affinely independent measured points{shared}: "
            f"{support_text(counts)}"
        )

    def cost_blocker(self) -> str | None:
        """Why the search cannot go on once its metric's spline can be fitted: a measured cost
        that a bound or the trade-off needs and too few results carry; None when none.

        Before a measured cost's own spline is fitted its bound lets every candidate
        through and a trade-off has no cost to trade against; that is how the design
        gets measured. After the design it would mean spending trainings on a search
        that is not the one asked for (a key ``latncy_ms`` that no result carries is
        never enforced), so the controller stops for a person instead (exit 1).
        """
        named = self._measured_costs()  # most searches have none: nothing to count
        if not named:
            return None
        points = self.state.with_status(PointStatus.DONE)
        counts = support_counts(self.state.space, [p.params for p in points])
        if not determines_spline(counts, self.state.space.d):
            return None
        for key, name in named:
            blocker = self._cost_blocker(name, points, counts)
            if blocker:
                return f"{key} cannot be evaluated: {blocker}"
        return None

    def _measured_costs(self) -> list[tuple[str, str]]:
        """(key, cost name) of each bound and of the trade-off whose cost is measured."""
        from nas.control.costs import cost_source

        cfg = self.experiment.experiment
        named = [(f"[experiment.constraints] {name}", name) for name in cfg.constraints]
        named += [("[experiment] tradeoff", cfg.tradeoff)] if cfg.tradeoff is not None else []
        return [(k, n) for k, n in named if cost_source(self.experiment, n).known is None]

    def measured_cost_blocker(self, name: str) -> str | None:
        """Why measured cost ``name`` cannot be predicted for a candidate: no measured point
        carries it (naming the costs they do carry), or, once the metric's spline can be
        fitted, too few for the cost's spline (how many carry it, how many it needs); None
        otherwise, and before anything is measured."""
        points = self.state.with_status(PointStatus.DONE)
        counts = support_counts(self.state.space, [p.params for p in points])
        return self._cost_blocker(name, points, counts)

    def _cost_blocker(
        self, name: str, points: list[Point], counts: dict[tuple, tuple[int, int]]
    ) -> str | None:
        """:meth:`measured_cost_blocker` of the measured ``points`` (``counts``: their
        :func:`support_counts`, which every measured cost shares)."""
        from nas.control.costs import cost_source, measured_cost, unmeasured

        space = self.state.space
        carried = [p.params for p in points if math.isfinite(measured_cost(p, name))]
        if points and not carried:
            return unmeasured(self.state, self.experiment, cost_source(self.experiment, name))
        if not determines_spline(counts, space.d):
            return None
        carried_counts = support_counts(space, carried)
        if determines_spline(carried_counts, space.d):
            return None
        return (
            f"only {len(carried)} of {len(points)} measured points carry {name} "
            f"({support_text(carried_counts)}); its spline needs {space.d + 1} affinely "
            "independent ones, as the metric's does"
        )


def support_counts(space: SearchSpace, rows: list[Params]) -> dict[tuple, tuple[int, int]]:
    """Per category of ``rows``: (how many, how many of them affinely independent)."""
    by_category: dict[tuple, list[Params]] = {}
    for params in rows:
        by_category.setdefault(space.category_of(params), []).append(params)
    counts = {}
    for cat, members in by_category.items():
        x = space.to_unit_many(members)
        counts[cat] = (len(members), int(np.linalg.matrix_rank(x - x.mean(axis=0))) + 1)
    return counts


def determines_spline(counts: dict[tuple, tuple[int, int]], d: int) -> bool:
    """Whether points of :func:`support_counts` ``counts`` determine a spline in some category:
    d+1 of them affinely independent (:func:`nas.search.optimizer.determined`)."""
    return any(rank >= d + 1 for _, rank in counts.values())


def support_text(counts: dict[tuple, tuple[int, int]]) -> str:
    """:func:`support_counts` for people: "4 measured point(s) of which 3 affinely independent"."""
    return (
        "; ".join(
            f"{n} measured point(s){f' in category {list(cat)}' if cat else ''} of which "
            f"{rank} affinely independent"
            for cat, (n, rank) in counts.items()
        )
        or "none measured"
    )


#: Event kind of a warning about a stored fit (e.g. the smoothing an unstable system needed).
FIT_WARNING = "fit-warning"


def check_text(point: Point, evidence: StopEvidence) -> str:
    """The event of a check point: why the search looks away from the best before it stops."""
    return (
        "checking convergence away from the best: conditions (a)-(d) of the stop rule hold; "
        f"the search stops only if this point, predicted {point.predicted:.6g}, measures no more "
        f"than {evidence.tolerance:g} better than predicted"
    )


def poll_text(point: Point, evidence: StopEvidence) -> str:
    """The event of a climb's poll: why the search measures a neighbour of the best."""
    from nas.search.climb import POLLED

    return (
        f"climbing on a stall: the best rose by less than the tolerance over {evidence.stall} "
        f"measurements, so its neighbours ({POLLED}) are measured; this one is predicted "
        f"{_number(point.predicted)}, and if it beats the best the climb goes on from it"
    )


def _number(value: float | None) -> str:
    return "(no spline for its category yet)" if value is None else f"{value:.6g}"


def _stored_gain(
    state: State, sign: float, measured: list[Point], smoothed: list[float] | None = None
) -> float:
    """The last stored fit's predicted gain over the best of ``measured`` (the points the
    search may return), or over their best smoothed value where the fit stored them (inf:
    no fit stored, or none of them)."""
    fit = current_fit(state)
    if fit is None or not measured:
        return math.inf
    top = max(smoothed) if smoothed else max(sign * p.value for p in measured)
    return sign * fit.predicted_max - top


def _stored_smoothed(state: State, sign: float, measured: list[Point]) -> list[float] | None:
    """The stored fit's smoothed values of ``measured`` (higher is better), a point outside
    its support counting its measurement; None without a current fit that stored them."""
    from nas.control.constraints import smoothed_values

    fit = current_fit(state)
    if fit is None or not fit.fitted:
        return None
    by_id = smoothed_values(fit)
    return [sign * by_id.get(p.id, p.value) for p in measured]


def _stored_local_error(state: State) -> float:
    """The last stored fit's leave-one-out error near the best (inf: none stored; NaN: not recorded)."""
    fit = current_fit(state)
    return math.inf if fit is None else fit.local_loo


def current_fit(state: State) -> FitRecord | None:
    """The last stored fit when it is on exactly the measured points of the present box.

    Readers (``status``, ``report``) use it instead of fitting again, which
    needs scipy: slow to import on a login node.
    """
    if not state.fits:
        return None
    fit = state.fits[-1]
    measured = {p.id for p in state.with_status(PointStatus.DONE)}
    expanded = any(e.kind == "expand" and e.time >= fit.time for e in state.events)
    return fit if set(fit.support_ids) == measured and not expanded else None


def _records(
    stored: FitRecord,
    support: list[int],
    summary: FitSummary,
    best_id: int,
    noise: Mapping[str, Any] | None,
) -> bool:
    """Whether ``stored`` holds exactly this fit: same support, coefficients and answers.

    A fit is a function of the measured points and the settings, so a second
    proposal before any new measurement recomputes the stored one; a changed
    setting (smoothing, noise) changes the coefficients and is stored anew.
    """
    numbers = (summary.loo_rmse, summary.predicted_max, summary.local_loo)
    return (
        stored.support_ids == tuple(support)
        and stored.best_id == best_id
        and stored.noise == dict(noise or {})
        and stored.warped == tuple(summary.warped)
        and stored.argmax == dict(summary.argmax)
        and np.array_equal(stored.coefficients, np.asarray(summary.coefficients, dtype=float))
        and np.array_equal(
            (stored.loo_rmse, stored.predicted_max, stored.local_loo), numbers, equal_nan=True
        )
    )


def existing_point(state: State, params: Mapping[str, Any]) -> Point | None:
    """The point at ``params``, or else the one point that tables show as ``params``.

    ``status`` and ``propose`` show a float to six significant digits
    (:func:`~nas.search.space.params_text`); pasted into ``add`` with its
    measurement, the shown text made a twin a hair away while the point that
    was trained stayed pending, and the two near-equal points ruined the fit
    (an independent check: a predicted maximum of 1.1e8). Where the shown text
    names more than one point nothing is guessed.
    """
    point = state.find(params)
    if point is not None:
        return point
    text = params_text(params)
    shown_so = [p for p in state.points if params_text(p.params) == text]
    return shown_so[0] if len(shown_so) == 1 else None


def add_manual(
    state: State,
    params: Mapping[str, Any],
    value: float | None = None,
    replace: bool = False,
) -> tuple[Point, bool]:
    """Add a point measured (or to be measured) by hand; return it and whether it is new.

    A point that exists already (after snapping, or shown as these params:
    :func:`existing_point`) gets the value instead of a twin; a different value
    for a measured point needs ``replace``.
    """
    point = existing_point(state, params)
    created = point is None
    if point is None:
        point = state.add_point(params, "manual", state.next_batch())
    if value is not None:
        point = state.record(point.id, value, replace=replace, given=True)
    return point, created
