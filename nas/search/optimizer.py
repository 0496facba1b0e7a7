"""SplineOptimizer: the ask/tell interface of the spline search (Algorithm 1).

The optimizer holds no hidden state beyond what it is told: the controller
rebuilds it every cycle from the state file (tell every measured point with
its stored prediction, mark the pending ones), so every answer is a function
of (seed, data). Measurements are maximised internally; ``goal="minimize"``
negates them on the way in and out.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.numbers import as_number
from nas.search.categories import EmbeddedSpace, views
from nas.search.climb import climb_polls, hold
from nas.search.design import default_size, initial_design
from nas.search.exploration import AlongAxes, AwayFromBest, NearSurprise, next_check
from nas.search.maximize import best_admissible
from nas.search.noise import NoiseEstimate, smooth_fit
from nas.search.propose import Candidate, SearchError, feasible_mask, propose
from nas.search.settings import GOALS, SearchSettings
from nas.search.space import Params, SearchSpace, Value
from nas.search.spline import Conditioning, PolyharmonicSpline, SplineError
from nas.search.stopping import (
    CHECKS_NEEDED,
    Check,
    StopEvidence,
    check_progress,
    counted,
    decide,
    fresh_checks,
    surprise_centre,
)
from nas.search.strategies import STRATEGIES, DefaultStrategy, Strategy, spline_maxima
from nas.search.threads import in_search_threads
from nas.search.uncertainty import local_error
from nas.search.warp import (
    Warp,
    WarpChoice,
    choose,
    identity_warp,
    over_unit,
    warp_of,
)

#: How many times the first size a top-up design may grow to find feasible new points.
TOP_UP_GROWTH = 16
#: Seed offset per told point of the check's candidates (:meth:`SplineOptimizer._check`).
CHECK_SEED_STEP = 7919
#: Why an extrapolated prediction is refused: r^3 of a point 1e100 ranges away overflows
#: float64, and NaN or inf is no prediction to print or store.
#: How a caller of :meth:`SplineOptimizer.predict` asks for a value outside the box.
_EXTRAPOLATE = "extrapolate=True evaluates the spline there"

_OVERFLOW = (
    "the spline cannot be evaluated that far outside the box: its terms overflow; "
    "give values nearer the box"
)


def capped_values(values: np.ndarray, quantile: float) -> np.ndarray:
    """``values`` (higher is better) with every one below their ``quantile`` raised to it.

    The capping of Gutmann's and Regis & Shoemaker's RBF methods (Regis &
    Shoemaker, "Constrained global optimization of expensive black box
    functions using radial basis functions", J. Global Optim. 31, 2005; pySOT's
    ``SurrogateCapped`` caps at the median). A spline through the capped
    values is flat where the search has nothing to find and keeps its shape
    where the good values are. ``quantile`` 0 leaves them as they are.
    """
    values = np.asarray(values, dtype=np.float64)
    if quantile <= 0.0 or values.size == 0:
        return values
    return np.maximum(values, np.quantile(values, quantile))


class SearchStalled(SearchError):
    """:meth:`SplineOptimizer.suggest` can propose nothing, nothing pending will change that,
    and a person must act: most told points failed, or ``feasible`` allows no point.

    A :class:`SearchError` (the docstring's promise): the loop ``while not opt.converged:
    for p in opt.ask()`` spun forever on the empty list that came back instead. Not the
    end of a search that has tried every candidate, though: a caller that stops on a
    SearchError stops here for a person.
    """


@dataclass(frozen=True)
class Verdict:
    """A ``feasible`` rule as the search calls it: its answer must be a bool.

    ``[model] feasible`` (:mod:`nas.control.feasible`) returns None for a trainable
    candidate and the reason for one that is not; a function of that convention
    given here had every answer read inverted (None is falsy, a reason truthy),
    without a word, and the search measured only what it refuses.
    """

    rule: Callable[[Params], bool]

    def __call__(self, params: Params) -> bool:
        answer = self.rule(params)
        if isinstance(answer, bool | np.bool_):
            return bool(answer)
        raise TypeError(
            f"feasible must return a bool (True: the point may be measured), got {answer!r} "
            f"for {params}; a [model] feasible function returns None (trainable) or the reason "
            "it is not: give `feasible=lambda params: rule(params) is None`"
        )


def verdict(rule: Callable[[Params], bool] | None) -> Verdict | None:
    """``rule`` checked as :class:`Verdict` (None stays None: every point is allowed)."""
    return None if rule is None or isinstance(rule, Verdict) else Verdict(rule)


@dataclass(frozen=True)
class Proposal:
    """A point to measure; ``predicted`` is None for initial-design points.

    ``origin``: ``"initial"``, ``"incremental"``, ``"fill"`` (a diverse batch
    fill), ``"check"`` (the stop rule's look away from the best,
    :mod:`nas.search.exploration`) or ``"poll"`` (a neighbour of the best
    in a climb on a stall, :mod:`nas.search.climb`).
    """

    params: Params
    predicted: float | None
    origin: str


@dataclass(frozen=True)
class FitSummary:
    """One refit over all categories, in the units of the measurements.

    ``splines`` has a spline per category (for the shared model, views of the
    one spline); ``coefficients`` are those of the splines actually solved:
    per category the kernel coefficients then the linear tail, or once for
    the shared spline (its tail ends with one entry per category indicator).
    ``argmax`` and ``predicted_max`` are the spline's maximum over the points
    the optimizer's ``feasible`` allows (a cost bound, the GPU-memory limit):
    the stop rule's promised gain is of a network the search may train.
    """

    n_support: int
    loo_rmse: float
    argmax: Params
    predicted_max: float
    #: Largest smoothing any category's spline used (above the configured one when the
    #: exact system was ill-conditioned; ``warnings`` then says where and why).
    smoothing: float = 0.0
    #: :meth:`SplineOptimizer.local_loo_error` of this fit (the stop rule's condition (d)).
    local_loo: float = math.inf
    #: With ``noise = "auto"``: the noise sd measured from this fit's data, else None.
    noise: NoiseEstimate | None = None
    warnings: tuple[str, ...] = ()
    #: Numeric dimensions the spline sees on a log scale (``warping``, :mod:`nas.search.warp`).
    warped: tuple[str, ...] = ()
    splines: Mapping[tuple[Value, ...], PolyharmonicSpline] = field(
        default_factory=dict, compare=False, repr=False
    )
    coefficients: tuple[float, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Record:
    """A told measurement (``value`` is NaN for a failure; ``fill``: a diverse batch fill;
    ``check``: the stop rule's check away from the best; ``batch``: for a check, the batch
    it was proposed in, None when not known; ``poll``: a neighbour of the best polled in a
    climb)."""

    params: Params
    value: float
    predicted: float | None
    fill: bool = False
    check: bool = False
    batch: int | None = None
    poll: bool = False
    #: A failure a person chose (a cancelled point): never proposed again, no sign of its region.
    withdrawn: bool = False


class SplineOptimizer:
    """Suggest points to measure and learn from their measurements.

    Args:
        space: The search space.
        settings: Every setting of the search (:class:`~nas.search.settings.SearchSettings`:
            batch size, tolerance, seed, goal, strategy, stop rule, smoothing,
            noise, initial design, minimum distance, category model). With
            ``noise`` the smoothing is chosen per fit (:mod:`nas.search.noise`),
            :attr:`best` is the measured point with the best smoothed value and
            the stop tolerance is at least 2 sd. The shared category model falls
            back to separate splines while some categorical choice has no measurement.
        feasible: Predicate on parameters; rejected points are never suggested.
        eligible: Predicate on the parameters of measured points: those :attr:`best` may name
            (default all). A caller whose bounds a measured point can break (a measured
            cost over its limit) gives the points that meet them: the others stay in the
            fit, valid data of the metric, but the stop rule's stall, promised gain and
            neighbour check (:mod:`nas.search.stopping`) and the climb concern the best
            of these, the point the search returns.
        design: The initial design to measure first, in place of ``settings.design``
            (a trade-off search brings its own, :func:`nas.search.tradeoff.tradeoff_design`);
            each point checked as :meth:`tell` checks one (a point outside the box is
            refused, not clipped to it, and snapping onto the lattice is warned of).
        design_space: The box the initial design was issued in (default ``space``): a
            search's first box, once ``splinenas expand`` has widened it. A campaign
            measures one initial design, its first box's; ``expand`` adds a design of
            the widened box of its own (origin ``"expand"``). An optimizer rebuilt
            for the widened box that drew its design there would find that design
            unissued and propose it on top of both. Same dimensions as ``space``,
            its box within ``space``'s (an expanded box contains the old one).

    Raises:
        SettingError: The settings cannot serve ``space`` (a design smaller than d+1).
    """

    def __init__(
        self,
        space: SearchSpace,
        settings: SearchSettings | None = None,
        *,
        feasible: Callable[[Params], bool] | None = None,
        design: Sequence[Params] | None = None,
        design_space: SearchSpace | None = None,
        eligible: Callable[[Params], bool] | None = None,
    ) -> None:
        settings = SearchSettings() if settings is None else settings
        if not isinstance(space, SearchSpace) or not isinstance(settings, SearchSettings):
            raise TypeError(
                f"expected a SearchSpace and SearchSettings, got {space!r}, {settings!r}"
            )
        _require(
            feasible is None or callable(feasible), "feasible must be callable or None", feasible
        )
        _require(
            eligible is None or callable(eligible), "eligible must be callable or None", eligible
        )
        self.eligible = eligible
        design_space = space if design_space is None else design_space
        _require(
            within(design_space, space),
            f"design_space must have the dimensions of {space} and lie within its box",
            design_space,
        )
        problem = settings.space_problem(space)
        if problem is not None:
            raise problem
        self.space, self.settings, self.feasible = space, settings, verdict(feasible)
        self.strategy: Strategy = (
            DefaultStrategy(batch_fill=settings.fill)
            if settings.strategy == "default"
            else STRATEGIES[settings.strategy]()
        )
        self.stop, self.categories = settings.stop_rule, settings.category_model
        shared = self.categories == "shared" and bool(space.categorical)
        self._embedded = EmbeddedSpace(space) if shared else None
        if design is None:
            self._design = [space.snap(p) for p in self._drawn_design(design_space, shared)]
        else:
            self._design = [self._given_point(p, "design") for p in design]
        self._sign = GOALS[settings.goal]
        self._records: dict[tuple[Value, ...], Record] = {}
        self._pending: dict[tuple[Value, ...], Params] = {}
        self._suggested: dict[tuple[Value, ...], float | None] = {}
        self._fills: set[tuple[Value, ...]] = set()
        self._checks: set[tuple[Value, ...]] = set()
        #: Keys proposed as polls of a climb (:mod:`nas.search.climb`).
        self._polls: set[tuple[Value, ...]] = set()
        #: Keys proposed as a batch's head (the spline's own choice, neither fill nor check).
        self._heads: set[tuple[Value, ...]] = set()
        #: The batch each check was proposed in (its own numbering unless told otherwise).
        self._check_batches: dict[tuple[Value, ...], int] = {}
        self._evidence: dict[str, StopEvidence] = {}
        self._splines: dict[tuple[Value, ...], PolyharmonicSpline] | None = None
        self._joint: PolyharmonicSpline | None = None
        #: Splines that rank, by the capping quantile they were fitted with (:meth:`_ranking_model`).
        self._ranking: dict[float, dict[tuple[Value, ...], PolyharmonicSpline] | None] = {}
        #: With ``noise = "auto"``: the estimate of each solved spline's data, by where.
        self._noise: dict[str, NoiseEstimate] = {}
        #: The input warp of each exact spline (:meth:`_choose_warp`), by where.
        self._warps: dict[str, Warp] = {}
        #: The conditioning note of each exact spline that has one, by where (:meth:`_solve`).
        self._conditioning: dict[str, str] = {}

    # -- data ------------------------------------------------------------------------

    def tell(
        self,
        params: Mapping[str, Any],
        value: float,
        predicted: float | None = None,
        fill: bool | None = None,
        check: bool | None = None,
        batch: int | None = None,
        poll: bool | None = None,
        withdrawn: bool = False,
    ) -> None:
        """Record a measurement; NaN or infinite values record a failure (with a warning).

        ``withdrawn`` with a NaN value: a point a person withdrew (cancelled), never
        proposed again like a failure, but no sign that its region fails: the
        rankings do not see it as the worst value (:meth:`_failed_as_worst`).

        ``predicted``, ``fill``, ``check``, ``batch`` and ``poll`` default to
        what :meth:`suggest` said of this point (``fill``: proposed as a
        diverse batch fill, kept in :attr:`history`; ``check``: proposed as
        the stop rule's check away from the best, judged by condition (e),
        not as an agreement of (a); ``batch``: the batch a check
        was proposed in, so that checks proposed together are known as such,
        :func:`~nas.search.stopping.check_progress`; ``poll``: a neighbour of
        the best polled in a climb, :mod:`nas.search.climb`, no agreement of
        (a) either). A failed point may be told again with a value; a
        measured one may not.

        ``params`` are those of a point in the box: a value outside it is refused
        (a SpaceError), one that snapping moves onto the lattice (a fraction of
        an int dimension) is stored snapped with a warning. ``value`` and
        ``predicted`` are real numbers (numpy's scalars too); a bool, a string,
        None or an array is refused (a TypeError).
        """
        snapped = self._given_point(params, "tell")
        value = _real(value, "value")
        predicted = None if predicted is None else _real(predicted, "predicted")
        key = self.space.key(snapped)
        old = self._records.get(key)
        if old is not None and math.isfinite(old.value):
            raise ValueError(
                f"point {_as_given(params, snapped)} was already told a value ({old.value})"
            )
        if predicted is None:
            predicted = self._suggested.get(key)
        if fill is None:
            fill = key in self._fills
        if check is None:
            check = key in self._checks
        if batch is None:
            batch = self._check_batches.get(key)
        if poll is None:
            poll = key in self._polls
        if not math.isfinite(value):
            warnings.warn(
                f"measurement {value} for {snapped} recorded as a failure",
                RuntimeWarning,
                stacklevel=2,
            )
            value = math.nan
        self._records[key] = Record(
            snapped,
            value,
            predicted,
            bool(fill),
            bool(check),
            batch if check else None,
            bool(poll),
            withdrawn=bool(withdrawn) and math.isnan(value),
        )
        self._pending.pop(key, None)
        self._splines = None
        self._ranking = {}
        self._evidence = {}

    def mark_pending(
        self,
        params: Mapping[str, Any],
        check: bool = False,
        batch: int | None = None,
        origin: str | None = None,
    ) -> None:
        """An issued, unmeasured point: in no fit, and no suggestion lands on it.

        ``check``: the point is the stop rule's check away from the best; while
        one is pending, :meth:`suggest` proposes no other. ``batch``: the
        batch it was proposed in (see :meth:`tell`). ``origin``: what proposed
        it, as :attr:`Proposal.origin` says (``"incremental"``, ``"fill"``,
        ``"check"``, ``"poll"``; default: what :meth:`suggest` said of it, for an
        optimizer rebuilt from a record). Pending ``"incremental"`` and
        ``"fill"`` points are the batch later suggestions continue
        (:meth:`_issued_batch`). ``params`` are checked as :meth:`tell` checks them.
        """
        snapped = self._given_point(params, "mark_pending")
        key = self.space.key(snapped)
        if key in self._records:
            raise ValueError(
                f"point {_as_given(params, snapped)} is already told and cannot be pending"
            )
        self._pending[key] = snapped
        if origin == "incremental":
            self._heads.add(key)
        elif origin == "fill":
            self._fills.add(key)
        elif origin == "poll":
            self._polls.add(key)
        check = check or origin == "check"
        if check:
            self._checks.add(key)
            if batch is not None:
                self._check_batches[key] = batch

    def forget_pending(self, params: Mapping[str, Any]) -> None:
        """Undo :meth:`mark_pending` (e.g. a cancelled job); ``params`` checked as :meth:`tell`
        checks them (clipped, width 300 forgot the point pending at the bound 256)."""
        snapped = self._given_point(params, "forget_pending")
        if self._pending.pop(self.space.key(snapped), None) is None:
            raise KeyError(f"point {_as_given(params, snapped)} is not pending")

    def _given_point(
        self, params: Mapping[str, Any], method: str, remedy: str = "", stores: bool = True
    ) -> Params:
        """The snapped ``params`` a caller of ``method`` gave, with a warning for each value
        snapping moved onto the lattice (:meth:`SearchSpace.inside`; a value outside the
        box is refused, its message followed by ``remedy``). A point the optimizer
        proposed or stored is moved by nothing, so rebuilding a search from its history
        warns of nothing. Unless ``method`` ``stores`` the point, the warning says where
        it is evaluated instead of where it is stored, as ``splinenas predict`` says."""
        snapped, notes = self.space.inside(params, f"; {remedy}" if remedy else "")
        if not stores:
            notes = [note.replace(" stored as ", " evaluated at ", 1) for note in notes]
        for note in notes:
            warnings.warn(f"{method}: {note}", UserWarning, stacklevel=3)
        return snapped

    @property
    def history(self) -> list[Record]:
        """Told points in the order they were told."""
        return list(self._records.values())

    @property
    def n_measured(self) -> int:
        """Number of successful measurements."""
        return sum(math.isfinite(r.value) for r in self._records.values())

    @property
    def pending(self) -> list[Params]:
        """Points marked pending."""
        return list(self._pending.values())

    @property
    def converged(self) -> bool:
        """Whether the stopping rule (``stop``) says the search is done."""
        return self.stop_evidence().stop

    def stop_evidence(self, rule: str | None = None) -> StopEvidence:
        """The decision of ``rule`` (default: ``stop``) with its evidence (:mod:`nas.search.stopping`).

        The default rule does not stop while a climb is under way
        (:meth:`due_polls`, a poll pending): its polls are the evidence the
        rule waits for.
        """
        rule = self.stop if rule is None else rule
        evidence = self._rule_evidence(rule)
        if rule != "default":
            return evidence
        return hold(evidence, len(self.due_polls(evidence.stall)), self._pending_polls() > 0)

    def due_polls(self, stall: int | None = None) -> list[Params]:
        """The polls a climb on a stall asks for now (:mod:`nas.search.climb`), in order.

        Empty with ``climb = "off"``, before a measurement, and while no climb
        is due or the best's neighbours a climb polls are all told or pending.
        ``stall``: condition (b)'s count, when the caller has it.
        """
        best = self.best
        if self.settings.climb_kind == "off" or best is None:
            return []
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
        return climb_polls(
            self.space,
            best[0],
            [r.poll for r in measured],
            self._records[self.space.key(best[0])].poll,
            self._rule_evidence("default").stall if stall is None else stall,
            set(self._records) | set(self._pending),
            self.feasible,
            self.settings.min_distance,
            self._pending_polls(),
            [r.predicted is not None for r in measured],
            counted([self._sign * r.value for r in measured], self._eligible_mask(measured)),
        )

    def _pending_polls(self) -> int:
        """How many of the pending points are a climb's polls."""
        return sum(key in self._polls for key in self._pending)

    def _rule_evidence(self, rule: str) -> StopEvidence:
        """:func:`~nas.search.stopping.decide` of ``rule`` on the told points, kept until the next tell."""
        if rule not in self._evidence:
            measured = [r for r in self._records.values() if math.isfinite(r.value)]
            self._evidence[rule] = decide(
                rule,
                [self._sign * r.value for r in measured],
                [
                    (self._sign * r.value, self._sign * r.predicted)
                    for r in measured
                    if counts_as_agreement(r)
                ],
                self.space.d,
                self.settings.tolerance,
                self.noise_sd(),
                gain=self.predicted_gain,
                local_error=self.local_loo_error,
                checks=self._told_checks(measured),
                smoothed=self._smoothed(measured),
                eligible=self._eligible_mask(measured),
            )
        return self._evidence[rule]

    def _eligible_mask(self, measured: Sequence[Record]) -> list[bool] | None:
        """Which of ``measured`` :attr:`best` may name (``eligible``); None: all of them."""
        if self.eligible is None:
            return None
        return [bool(self.eligible(r.params)) for r in measured]

    def _returnable(self) -> list[Record]:
        """The measured records :attr:`best` chooses among: those ``eligible`` allows."""
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
        mask = self._eligible_mask(measured)
        return measured if mask is None else [r for r, ok in zip(measured, mask, strict=True) if ok]

    def predicted_gain(self) -> float:
        """How far the spline's legal argmax is predicted above the best measurement (>= 0 is a gain).

        With ``noise``: above the best smoothed value of a measured point,
        which the argmax's own (smoothed) prediction is comparable with; the
        best raw measurement is biased up by the luckiest draw. Only points
        ``eligible`` allows count: the argmax is within the bounds, and against
        a measurement beyond them the gain was negative for good.
        """
        summary = self.fit()
        best = self.raw_best
        if summary is None or best is None:
            return math.inf
        smoothed = self._smoothed(self._returnable())
        top = self._sign * best[1] if smoothed is None else max(smoothed)
        return self._sign * summary.predicted_max - top

    def fitted_values(self, points: Sequence[Params]) -> list[float | None] | None:
        """With ``noise``: the fit's smoothed value at each of ``points`` (measurement units).

        A point whose category has no spline yet keeps its own measurement's
        place: None is returned for it. None altogether without ``noise``
        (the spline interpolates: its values are the measurements).
        """
        if self.settings.noise is None:
            return None
        splines = self._fit_all()
        rows: dict[tuple[Value, ...], list[int]] = {}
        for i, p in enumerate(points):
            rows.setdefault(self.space.category_of(p), []).append(i)
        out: list[float | None] = [None] * len(points)
        for category, where in rows.items():
            if category in splines:  # one evaluation per category, not one per point
                unit = self.space.to_unit_many([points[i] for i in where])
                for i, v in zip(where, splines[category](unit), strict=True):
                    out[i] = self._sign * float(v)
        return out

    def _smoothed(self, measured: Sequence[Record]) -> list[float] | None:
        """:meth:`fitted_values` of ``measured`` as the stop rule takes them (higher is better),
        a point without a spline counting its measurement; None without ``noise``."""
        fitted = self.fitted_values([r.params for r in measured])
        if fitted is None:
            return None
        return [
            self._sign * (r.value if f is None else f)
            for r, f in zip(measured, fitted, strict=True)
        ]

    def local_loo_error(self) -> float:
        """Largest leave-one-out error among the d+1 measured points nearest the best.

        In measurement units; distances in the unit box of the best's category.
        inf while no spline covers the best or an error is undefined (a point
        whose removal leaves an ill-posed system): unknown is not small.
        """
        best = self.best
        splines = self._fit_all()
        category = None if best is None else self.space.category_of(best[0])
        if category not in splines:
            return math.inf
        spline = splines[category]
        distance = np.linalg.norm(spline.points - self.space.to_unit(best[0]), axis=1)
        nearest = np.argsort(distance, kind="stable")[: self.space.d + 1]
        errors = np.abs(spline.loo_errors()[nearest])
        return float(np.max(errors)) if np.all(np.isfinite(errors)) else math.inf

    def noise_sd(self) -> float:
        """The noise sd the stopping tolerance respects: given, measured (``"auto"``) or 0.

        A noise the data do not measure (:func:`nas.search.noise.estimate_noise`)
        counts as 0: the tolerance errs towards searching longer.
        """
        if self.settings.noise is None:
            return 0.0
        if self.settings.noise != "auto":
            return float(self.settings.noise)
        estimate = self.noise_estimate()
        return 0.0 if estimate is None else estimate.sd

    def noise_estimate(self) -> NoiseEstimate | None:
        """With ``noise = "auto"``: the sd measured from the spline with the most support.

        None without the option or while no spline can be fitted. Separate
        splines per category each measure their own data; the one with the
        most points speaks for the search.
        """
        if self.settings.noise != "auto":
            return None
        self._fit_all()
        return max(self._noise.values(), key=lambda e: e.support, default=None)

    def initial_design(self) -> list[Params]:
        """The initial design (``design``), before any is measured or excluded."""
        return list(self._design)

    @property
    def best(self) -> tuple[Params, float] | None:
        """Best measured point and its measured value, None before any measurement.

        Noise-free: the best measurement. With ``noise``: the measured point
        whose smoothed value is best (one lucky measurement does not win);
        :attr:`raw_best` is then still the best measurement. Either among the
        points ``eligible`` allows (None while none of them is measured).
        """
        measured = self._returnable()
        if not measured:
            return None
        values = self.fitted_values([r.params for r in measured])
        fitted = (
            []
            if values is None
            else [(v, r) for v, r in zip(values, measured, strict=True) if v is not None]
        )
        if not fitted:
            return self.raw_best
        top = fitted[int(np.argmax([self._sign * v for v, _ in fitted]))][1]
        return dict(top.params), top.value

    @property
    def raw_best(self) -> tuple[Params, float] | None:
        """Best measurement (respecting ``goal``) of a point ``eligible`` allows, None before any."""
        measured = self._returnable()
        if not measured:
            return None
        top = max(measured, key=lambda r: self._sign * r.value)
        return dict(top.params), top.value

    # -- model -----------------------------------------------------------------------

    @in_search_threads
    def fit(self) -> FitSummary | None:
        """Fit the model of the categories (``categories``); None while no spline can be fitted.

        A separate spline is fitted as soon as its category's measurements
        determine it: d+1 affinely independent points; the shared spline needs
        d+1 plus one per non-first categorical choice over all categories, each
        choice measured. Whether they are the initial design
        does not matter (the design is only what :meth:`suggest` asks for
        first); points measured elsewhere, e.g. in an earlier campaign, are
        support points like any other.

        Raises:
            SplineError: Measurements of a category are singular (duplicates
                with no smoothing); the message names the offending parameters.
        """
        space, splines = self._model()
        if not splines:
            return None
        argmax, value = self._maximum(space, splines, self.feasible)
        loo = np.concatenate([spline.loo_errors() for spline in splines.values()])
        return FitSummary(
            n_support=sum(s.points.shape[0] for s in splines.values()),
            loo_rmse=float(np.sqrt(np.mean(loo**2))),
            argmax=argmax,
            predicted_max=self._sign * value,
            smoothing=max(spline.smoothing_used for spline in splines.values()),
            local_loo=self.local_loo_error(),
            noise=self.noise_estimate(),
            warnings=tuple(self._conditioning.values()),
            warped=tuple(self.warped_dimensions()),
            splines=self._fit_all(),
            coefficients=tuple(
                float(c)
                for spline in splines.values()
                for c in (*spline.coefficients, *spline.poly)
            ),
        )

    @in_search_threads
    def maximum(
        self, feasible: Callable[[Params], bool] | None = None
    ) -> tuple[Params, float] | None:
        """The spline's legal argmax among the points ``feasible`` allows, and its value in
        measurement units; None while no spline can be fitted.

        :meth:`fit` gives it under the optimizer's own ``feasible``; with
        another rule (none: the whole box) a reader asks whether a bound
        changes the optimum, i.e. whether it binds.
        """
        space, splines = self._model()
        if not splines:
            return None
        argmax, value = self._maximum(space, splines, verdict(feasible))
        return argmax, self._sign * value

    def _maximum(
        self,
        space: SearchSpace | EmbeddedSpace,
        splines: Mapping[tuple[Value, ...], PolyharmonicSpline],
        feasible: Callable[[Params], bool] | None,
    ) -> tuple[Params, float]:
        """The best legal point over the categories' splines that ``feasible`` allows (the
        unbounded one when none is), with its value on the higher-is-better scale."""
        maxima = []
        for index, (cat, spline) in enumerate(splines.items()):
            rng = np.random.default_rng([self.settings.seed, index])
            snap = space.snap_unit
            admissible = feasible_mask(space, cat, feasible)
            x, fx, legal = spline_maxima(
                spline, snap, space.lattice_neighbours, rng, admissible=admissible
            )
            candidates = np.vstack([legal, snap(x[int(np.argmax(fx))][None, :])])
            values = spline(candidates)
            best = best_admissible(values, candidates, admissible)
            if best is None:  # nothing feasible found: the unbounded maximum, as a last resort
                best = int(np.argmax(values))
            maxima.append((float(values[best]), index, space.from_unit(candidates[best], cat)))
        value, _, argmax = max(maxima, key=lambda m: (m[0], -m[1]))
        return argmax, value

    def predict(self, params: Mapping[str, Any], extrapolate: bool = False) -> float:
        """Spline prediction at ``params`` in measurement units.

        ``params`` are snapped to legal values first (with a warning where that moves
        one); a value outside the box is refused, since clipped it answered for the
        bound without saying so. With ``extrapolate`` they are used as given, also
        outside the box.

        Raises:
            SpaceError: a value outside the box without ``extrapolate``.
            ValueError: no spline for the point's category yet.
        """
        if not extrapolate:
            params = self._given_point(params, "predict", _EXTRAPOLATE, stores=False)
        cat = self.space.category_of(params)
        splines = self._fit_all()
        if cat not in splines:
            raise ValueError(f"no spline for category {cat} yet: too few measurements")
        if not extrapolate:
            return self._sign * float(splines[cat](self.space.to_unit(params)))
        with np.errstate(over="ignore", invalid="ignore"):
            value = self._sign * float(splines[cat](self.space.to_unit_unsnapped(params)))
        if not math.isfinite(value):
            raise ValueError(_OVERFLOW)
        return value

    def predict_interval(
        self, many: Sequence[Mapping[str, Any]], extrapolate: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions at ``many`` and their leave-one-out error estimates.

        Both in measurement units; the error is :func:`nas.search.uncertainty.local_error`
        (NaN with the prediction where a category has no spline yet). Each point is
        checked as :meth:`predict` checks one: snapped with a warning where that moves a
        value, refused outside the box (clipped, it answered for the bound without
        saying so). With ``extrapolate`` the parameters are used as given.

        Raises:
            SpaceError: a point outside the box without ``extrapolate``.
        """
        if not extrapolate:
            checked = []
            for params in many:  # a loop, not a comprehension: the warning names the caller
                checked.append(self._given_point(params, "predict_interval", _EXTRAPOLATE, False))
            many = checked
        splines = self._fit_all()
        values = np.full(len(many), math.nan)
        errors = np.full(len(many), math.nan)
        rows: dict[tuple[Value, ...], list[int]] = {}
        for i, params in enumerate(many):
            rows.setdefault(self.space.category_of(params), []).append(i)
        for cat, index in rows.items():
            if cat not in splines:
                continue
            if extrapolate:
                x = np.array([self.space.to_unit_unsnapped(many[i]) for i in index])
            else:
                x = self.space.to_unit_many([many[i] for i in index])  # checked above
            with np.errstate(over="ignore", invalid="ignore") if extrapolate else nullcontext():
                values[index] = self._sign * splines[cat](x)
                errors[index] = local_error(splines[cat], x)
        return values, errors

    @property
    def unissued_design(self) -> list[Params]:
        """Initial-design points not yet told, pending or infeasible: what :meth:`suggest` asks first."""
        return self._unissued_initial()

    def _fit_all(self) -> dict[tuple[Value, ...], PolyharmonicSpline]:
        """A spline per category that has one (views of the shared spline when it is fitted)."""
        if self._splines is None:
            self._noise, self._warps, self._conditioning = {}, {}, {}
            self._joint = self._fit_joint() if self._embedded is not None else None
            if self._joint is not None:
                self._splines = views(self._joint, self._embedded)
            else:
                self._splines = {}
                for cat, rows in self._support().items():
                    spline = self._fit_category(cat, rows)
                    if spline is not None:
                        self._splines[cat] = spline
        return self._splines

    def _model(self) -> tuple[SearchSpace | EmbeddedSpace, dict[tuple, PolyharmonicSpline]]:
        """The space proposals are searched in and the splines actually solved, by category."""
        splines = self._fit_all()
        if self._joint is not None:
            return self._embedded, {(): self._joint}
        return self.space, splines

    def _search_model(self) -> dict[tuple[Value, ...], PolyharmonicSpline] | None:
        """The splines the search ranks its own proposals on, keyed as :meth:`_model`'s;
        None without ``capping`` and failures: the exact splines rank them too.

        With ``capping`` (:attr:`~nas.search.settings.SearchSettings.capping`)
        they are fitted to :func:`capped_values`: the poor corners of a design
        (a network too narrow to learn, 30-50 % below the best) otherwise
        dominate an interpolant's shape, bending it steeply near the good
        points and making its argmax overshoot. They also see each failed point
        (:meth:`_failed_as_worst`). Only the ranking uses them: predictions, the
        stop rule, its checks and every reader see the exact spline of :meth:`_model`.
        """
        return self._ranking_model(self.settings.capping)

    def _ranking_model(self, capping: float) -> dict[tuple[Value, ...], PolyharmonicSpline] | None:
        """Splines keyed as :meth:`_model`'s through the measured values capped at the
        ``capping`` quantile and the failed points at the worst value; None where that
        is the exact fit (no capping, no failure)."""
        failed = self._failed_as_worst()
        if capping <= 0.0 and not failed:
            return None
        if capping not in self._ranking:
            try:
                self._ranking[capping] = self._fit_ranking(capping, failed)
            except SplineError:  # a failure too near a measurement: rank without failures
                self._ranking[capping] = self._fit_ranking(capping, []) if capping > 0 else None
        return self._ranking[capping]

    def _fit_ranking(
        self, capping: float, failed: Sequence[Record]
    ) -> dict[tuple[Value, ...], PolyharmonicSpline]:
        """The splines of :meth:`_ranking_model`, ``failed`` among their rows."""
        exact = self._model()[1]
        if self._joint is not None:
            return {(): self._fit_joint(capping, extra=failed)}
        support = self._support()
        return {
            cat: self._fit_category(
                cat,
                support[cat] + [r for r in failed if self.space.category_of(r.params) == cat],
                capping,
            )
            for cat in exact
        }

    def predict_interval_seeing_failures(
        self, many: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_interval` at legal points ``many``, its predictions from a spline
        that also sees each failed point as the worst measured value
        (:meth:`_failed_as_worst`), uncapped; the exact predictions where nothing failed.

        For rankings made outside the optimizer (the trade-off front's): a candidate
        next to a failure then ranks as the failure does, not as its measured
        neighbours would have it. What a proposal is judged against stays the exact
        prediction; the error is the exact spline's.
        """
        values, errors = self.predict_interval(many)
        ranking = self._ranking_model(0.0)
        if ranking is None:
            return values, errors
        space, _ = self._model()
        values = np.full(len(many), math.nan)
        for i, params in enumerate(many):
            snapped = self.space.snap(params)
            cat = () if self._joint is not None else self.space.category_of(snapped)
            spline = ranking.get(cat)
            if spline is not None:
                values[i] = self._sign * float(spline(space.to_unit(snapped)[None, :])[0])
        return values, errors

    def _failed_as_worst(self) -> list[Record]:
        """The failed points, each as if it had measured the worst value measured so far.

        A failed point is never proposed again, but the exact spline knows nothing
        of it: its argmax moved one lattice step and every later proposal landed
        next to the failure, whose cause (out of memory, a divergence, a walltime
        a larger network cannot meet) its neighbours share (five of five failed in
        a search whose trainings failed beyond one width). The splines that rank
        proposals (:meth:`_search_model`) see a failure as the worst measurement,
        so they fall towards it and the ranking leaves its region; the exact spline,
        the predictions and the stop rule do not see it. The imputation of the
        worst observed value follows Forrester, Sobester and Keane, "Optimization
        with missing data", Proc. R. Soc. A 462 (2006).
        """
        values = [r.value for r in self._records.values() if math.isfinite(r.value)]
        failed = [
            r for r in self._records.values() if not math.isfinite(r.value) and not r.withdrawn
        ]
        if not values or not failed:
            return []
        worst = min(values, key=lambda v: self._sign * v)
        return [dataclasses.replace(r, value=worst) for r in failed]

    def _fit_joint(
        self, capping: float | None = None, extra: Sequence[Record] = ()
    ) -> PolyharmonicSpline | None:
        """The shared spline over every measurement (and ``extra``, :meth:`_failed_as_worst`);
        None while a choice is unmeasured."""
        rows = [r for r in self._records.values() if math.isfinite(r.value)] + list(extra)
        x = np.array([self._embedded.to_unit(r.params) for r in rows]).reshape(
            len(rows), self._embedded.d
        )
        return self._solve(x, rows, "all categories", capping)

    def _support(self) -> dict[tuple[Value, ...], list[Record]]:
        support: dict[tuple[Value, ...], list[Record]] = {}
        for record in self._records.values():
            if math.isfinite(record.value):
                support.setdefault(self.space.category_of(record.params), []).append(record)
        return support

    def _fit_category(
        self, cat: tuple[Value, ...], rows: list[Record], capping: float | None = None
    ) -> PolyharmonicSpline | None:
        return self._solve(
            self.space.to_unit_many([r.params for r in rows]),
            rows,
            f"category {cat}" if cat else "",
            capping,
        )

    def _solve(
        self, x: np.ndarray, rows: list[Record], where: str, capping: float | None = None
    ) -> PolyharmonicSpline | None:
        """The spline through unit points ``x`` of ``rows``; None while they do not determine one.

        ``capping`` (a ranking fit, :meth:`_ranking_model`; None: the exact fit):
        through the :func:`capped_values` at that quantile, smoothed as much as the
        noise sd of the exact fit asks for (not measured again from data whose
        low values the capping made equal), on the exact fit's scales.
        """
        if not determined(x):
            return None
        y = self._sign * np.array([r.value for r in rows])
        noise = self.settings.noise
        smoothing = self.settings.smoothing
        capped = capping is not None
        if capped:
            y = capped_values(y, capping)
            noise = self.noise_sd() or None

        def fit(points: np.ndarray, values: np.ndarray) -> PolyharmonicSpline:
            if noise is None:
                return PolyharmonicSpline(points, values, smoothing)
            spline, estimate = smooth_fit(points, values, noise, smoothing)
            if estimate is not None:
                self._noise[where] = estimate
            return spline

        try:
            inner = None
            if not capped:  # the capped fit reads the exact fit's scales
                choice = self._choose_warp(x, y)
                self._warps[where] = choice.warp
                if noise is None:  # the interpolant it scored, where it fitted one
                    inner = choice.spline
            warp = self._warps.get(where, identity_warp(x.shape[1]))
            if inner is None:
                inner = fit(warp.forward(x), y)
        except SplineError as exc:
            named = [rows[i].params for i in exc.indices]
            points = f"; points: {named}" if named else ""
            raise SplineError(f"{_where(where)}{exc}{points}", exc.indices) from exc
        if not capped and inner.conditioning_note is not None:
            self._conditioning[where] = _where(where) + _named(inner.conditioning_note, rows)
        return over_unit(inner, warp, x)

    def _choose_warp(self, x: np.ndarray, y: np.ndarray) -> WarpChoice:
        """The spline's input warp for unit points ``x`` (:mod:`nas.search.warp`), with the
        interpolant that scored it.

        Candidates are the positive numeric dimensions not declared
        logarithmic; a shared model's category indicators (the columns
        after the numeric ones) are never warped.
        """
        d = x.shape[1]
        if self.settings.warp_kind == "off":
            return WarpChoice(identity_warp(d))
        dims = self.space.numeric
        extra = [0.0] * (d - len(dims))
        candidates = warp_of(
            np.array([dim.low > 0 and not dim.log for dim in dims] + [False] * len(extra)),
            np.array([float(dim.low) for dim in dims] + extra),
            np.array([float(dim.high) for dim in dims] + extra),
        )
        return choose(x, y, candidates, self.settings.smoothing)

    def warped_dimensions(self) -> list[str]:
        """Names of the numeric dimensions the current fit puts on a log scale, in order."""
        self._fit_all()
        names = [dim.name for dim in self.space.numeric]
        warped: set[str] = set()
        for warp in self._warps.values():
            warped.update(warp.names(names))
        return [name for name in names if name in warped]

    # -- suggestions -----------------------------------------------------------------

    def _unissued_initial(self) -> list[Params]:
        return [
            p
            for p in self._design
            if self.space.key(p) not in self._records
            and self.space.key(p) not in self._pending
            and (self.feasible is None or self.feasible(p))
        ]

    @in_search_threads
    def suggest(self, n: int | None = None) -> list[Proposal]:
        """Up to ``n`` (default ``batch_size``) points to measure next.

        Remaining initial-design points come first, then spline proposals.
        While a climb on a stall is due (:meth:`due_polls`), the batch is
        its polls alone (origin ``"poll"``), up to ``n`` of them: the climb
        goes on from whichever beats the best once they are told.
        When conditions (a)-(d) of the default stop rule hold and no check is
        pending, the last slots are its checks away from the best (origin
        ``"check"``, :mod:`nas.search.exploration`): one with ``n = 1``, else
        up to ``n - 1`` of those still needed.
        Fewer than ``n`` come back while no spline can be fitted yet. When the
        design is spent, nothing is pending and still no spline can be fitted
        (design points failed: a space-filling design of d+2 points has one
        to spare) while at least half of the told points were measured, more
        space-filling points come instead. Those that make up for design
        points beyond a bound are part of the design from the start
        (:meth:`_within_bounds`).
        The optimizer does not mark them pending: do so before the next call.
        Pending spline proposals (not checks or design points) are the first
        slots of the batch the new proposals continue (:meth:`_issued_batch`,
        ``issued`` of :func:`~nas.search.propose.propose`): asked again while
        they train, the search fills that batch instead of proposing the
        spline's argmax's neighbours.

        An empty list comes back only while points are pending: their
        measurements are what the search waits for. Otherwise a search that
        can propose nothing raises, so that an ask/tell loop ends.

        Raises:
            SearchError: No feasible distinct candidate is left.
            SearchStalled: No spline can be fitted, nothing is pending and no
                point can be proposed: most told points failed (more would
                fail too: the search waits for a person), or ``feasible``
                allows no new point of the design or of a space-filling draw.
            TypeError: ``n`` is not an int (a bool is none).
        """
        n = self.settings.batch_size if n is None else _count(n)
        out = [Proposal(p, None, "initial") for p in self._unissued_initial()[:n]]
        space, splines = self._model()
        polls = self.due_polls()[: n - len(out)] if len(out) < n and splines else []
        if polls:
            out += [self._poll(p) for p in polls]
        elif len(out) < n and splines:
            issued = self._issued_batch()
            slots = {self.space.key(p) for p in issued}
            avoid = [r.params for r in self._records.values()] + [p.params for p in out]
            avoid += [p for key, p in self._pending.items() if key not in slots]
            checks = self._checks_now(space, splines, [*avoid, *issued], n - len(out))
            avoid += [c.params for c in checks]
            q = n - len(out) - len(checks)
            candidates = (
                propose(
                    space,
                    splines,
                    ranked_on=self._search_model(),
                    q=q,
                    avoid=avoid,
                    issued=issued,
                    feasible=self.feasible,
                    min_distance=self.settings.min_distance,
                    strategy=self.strategy,
                    seed=self.settings.seed,
                )
                if q
                else []
            )
            out += [self._incremental(c) for c in candidates]
            batch = 1 + max(self._check_batches.values(), default=-1)
            out += [self._incremental(c, check=True, batch=batch) for c in checks]
        elif not out and not splines and not self._pending:
            out = self._top_up(n) if self._mostly_measured() else []
            if not out:
                raise SearchStalled(self._stall_reason())
        return out

    def _stall_reason(self) -> str:
        """Why :meth:`suggest` can propose nothing while nothing is pending, and what to do."""
        told, measured = len(self._records), self.n_measured
        if not self._mostly_measured() and told > measured:
            return (
                f"{told - measured} of {told} told points failed and the {measured} measured "
                "do not determine a spline: more points would likely fail too; fix the cause, "
                "then measure the failed points again"
            )
        allowed = "" if self.feasible is None else " that feasible allows"
        return (
            f"no spline can be fitted from the {measured} measured points and neither the "
            f"initial design nor a space-filling draw has a new point{allowed}"
        )

    def _issued_batch(self) -> list[Params]:
        """Pending points as the first slots of the batch :meth:`suggest` continues.

        The pending spline proposals (heads, the spline's own choice, and
        fills; not checks or design points), in the order they were marked,
        take the first slots, and new proposals are the slots after them:
        fills ranked on the spline refitted with whatever was measured since.
        The batch goes on while any of its proposals is out; once none is, a
        new head comes first. A pipeline that keeps q points in flight and
        asks for one each time one finishes reached 1 % regret in fewer
        evaluations this way than with a new head whenever the last one was
        measured (``benchmarks/results/batch_fill.md``).
        """
        return [p for key, p in self._pending.items() if key in self._heads or key in self._fills]

    def _mostly_measured(self) -> bool:
        """At least half of the told points measured: failures look local, not systematic.

        When most points fail (a broken environment, a wrong data path) more
        points would only fail too: the search then waits for a person.
        """
        measured = sum(math.isfinite(r.value) for r in self._records.values())
        return measured > 0 and 2 * measured >= len(self._records)

    def _top_up(self, n: int) -> list[Proposal]:
        """Up to ``n`` new space-filling points, for a search whose design could not be fitted.

        The design grows (up to ``TOP_UP_GROWTH`` times) while too few of its
        points are new and feasible: a tight feasibility predicate (a cost
        bound) leaves few of them.
        """
        told = set(self._records) | set(self._pending)
        return [Proposal(p, None, "initial") for p in self._top_up_points(told, n)]

    def _top_up_points(
        self, told: set[tuple[Value, ...]], n: int, box: SearchSpace | None = None
    ) -> list[Params]:
        """Up to ``n`` space-filling points of ``box`` (default the search's) not in ``told``
        that ``feasible`` allows (:meth:`_top_up`)."""
        box = self.space if box is None else box
        size = len(told) + n + box.d + 2
        shared = self._embedded is not None
        for _ in range(TOP_UP_GROWTH.bit_length()):
            fresh = [
                p
                for p in initial_design(box, "space-filling", size, self.settings.seed + 1, shared)
                if self.space.key(p) not in told and (self.feasible is None or self.feasible(p))
            ]
            if len(fresh) >= n:
                break
            size *= 2
        return fresh[:n]

    def _drawn_design(self, box: SearchSpace, shared: bool) -> list[Params]:
        """``settings.design`` of ``box`` with the top-ups a bound calls for (:meth:`_within_bounds`)."""
        settings = self.settings
        design = initial_design(
            box, settings.design_kind, settings.design_points, settings.seed, shared
        )
        return self._within_bounds(design, box)

    def _within_bounds(self, design: list[Params], box: SearchSpace) -> list[Params]:
        """``design`` and, where ``feasible`` leaves too few of its points to fit a spline,
        the top-up points it needs, drawn now in ``box``, the design's own.

        Under a bound (a cost limit, the memory limit) about half of a design
        can lie beyond it. The points that make up for them are those
        :meth:`_top_up` would give one at a time once the rest were measured;
        drawn up front they join the first batch, so a campaign of batches
        trains its design in one round instead of two. A search of single
        proposals measures the same points in the same order as before.
        """
        if self.feasible is None:
            return design
        kept = [p for p in design if self.feasible(p)]
        extra: list[Params] = []
        room = default_size(self.space, self._embedded is not None)  # a rule may pin a coordinate
        while len(extra) < room and not self._determines(kept + extra):
            more = self._top_up_points({self.space.key(p) for p in kept + extra}, 1, box)
            if not more:
                break
            extra += more
        return design + extra

    def _determines(self, points: Sequence[Params]) -> bool:
        """Whether measurements at ``points`` would let a spline be fitted (as :meth:`_fit_all`
        judges: the shared spline, or else any category's own)."""
        embedded = self._embedded
        if embedded is not None and determined(np.array([embedded.to_unit(p) for p in points])):
            return True
        groups: dict[tuple[Value, ...], list[Params]] = {}
        for p in points:
            groups.setdefault(self.space.category_of(p), []).append(p)
        return any(determined(self.space.to_unit_many(g)) for g in groups.values())

    def _wants_check(self) -> bool:
        """The stop rule waits for a check away from the best, and none is pending."""
        if any(key in self._checks for key in self._pending):
            return False
        return self.stop_evidence().explore

    def _checks_now(
        self,
        space: SearchSpace | EmbeddedSpace,
        splines: Mapping[tuple[Value, ...], PolyharmonicSpline],
        avoid: list[Params],
        room: int,
    ) -> list[Candidate]:
        """The checks of this batch, with ``room`` slots left after the design (each added to
        ``avoid``): those :meth:`_check_strategies` asks for, none unless the stop rule waits
        for them."""
        if not self._wants_check():
            return []
        out = []
        for i, strategy in enumerate(self._check_strategies(room)):
            check = self._check(space, splines, avoid, strategy, i)
            if check is None:
                break
            avoid.append(check.params)
            out.append(check)
        return out

    def _check(
        self,
        space: SearchSpace | EmbeddedSpace,
        splines: Mapping[tuple[Value, ...], PolyharmonicSpline],
        avoid: list[Params],
        strategy: AwayFromBest | AlongAxes | NearSurprise,
        slot: int = 0,
    ) -> Candidate | None:
        """The check point ``strategy`` ranks first (None when no admissible one is left).

        One of :data:`~nas.search.exploration.CHECK_ORDER`, or near the
        best check measured better than predicted
        (:class:`~nas.search.exploration.NearSurprise`). Seeded by the number
        of told points and the slot too, so a later check draws new candidates.
        A check around a point (the surprise, or the best: its axis lines, its
        neighbourhood) is sought in that point's category only. With one spline
        per category each ranks around its own best, and their merits are
        scaled apart, so the lines through a worse category's best were
        checked instead of the best's own (11 of 20 axis checks on
        ``tests/test_separate_categories.py``'s space before this rule).
        """
        if self._embedded is None and (isinstance(strategy, NearSurprise) or strategy.around_best):
            best = self._check_best()
            category = (
                self.space.category_of(self._fresh_checks()[1])
                if isinstance(strategy, NearSurprise)
                else self.space.category_of(best)
                if best is not None
                else max(splines, key=lambda cat: float(np.max(splines[cat].values)))
            )
            splines = {category: splines[category]} if category in splines else splines
        try:
            (check,) = propose(
                space,
                splines,
                avoid=avoid,
                feasible=self.feasible,
                min_distance=self.settings.min_distance,
                strategy=strategy,
                seed=self.settings.seed + CHECK_SEED_STEP * (len(self._records) + slot),
            )
        except SearchError:
            return None
        return check

    def _fresh_checks(self) -> tuple[list[Check], Params | None]:
        """The checks told since the best last rose (as :func:`decide` takes them) and the
        centre of the open surprise among them (None when none is open)."""
        evidence = self.stop_evidence()
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
        fresh = fresh_checks(self._told_checks(measured), len(measured), evidence.stall)
        centre = surprise_centre(fresh, evidence.tolerance)
        return fresh, None if centre is None else measured[centre].params

    def _told_checks(self, measured: Sequence[Record]) -> list[Check]:
        """The measured checks as :func:`decide` takes them: (position in ``measured``,
        measured, predicted, batch), higher is better."""
        return [
            (i, self._sign * r.value, self._sign * r.predicted, r.batch)
            for i, r in enumerate(measured)
            if r.check and r.predicted is not None
        ]

    def _check_strategies(self, room: int) -> list[AwayFromBest | AlongAxes | NearSurprise]:
        """Where this batch's checks look, with ``room`` slots for them and the search.

        While a surprise is open, one check around the best surprising one
        (the next depends on how it is measured); else the checks still
        needed, next in :data:`~nas.search.exploration.CHECK_ORDER` (far from
        the best, along its axes, in its wider neighbourhood): one with one
        slot, else up to ``room - 1``.
        """
        fresh, centre = self._fresh_checks()
        if centre is not None:
            space = self._embedded if self._embedded is not None else self.space
            return [NearSurprise(space.to_unit(centre))]
        passed = check_progress(fresh, self.stop_evidence().tolerance)[0]
        count = 1 if room == 1 else min(room - 1, max(CHECKS_NEEDED - passed, 1))
        centre = self._check_centre()
        return [dataclasses.replace(next_check(passed + i), centre=centre) for i in range(count)]

    def _check_best(self) -> Params | None:
        """The point checks centre on where it is not the spline's best support point: with
        ``eligible`` set, the best point it allows (None without ``eligible`` or such a point)."""
        best = None if self.eligible is None else self.best
        return None if best is None else best[0]

    def _check_centre(self) -> tuple[float, ...] | None:
        """:meth:`_check_best` in unit coordinates of the space the splines are in."""
        best = self._check_best()
        if best is None:
            return None
        space = self._embedded if self._embedded is not None else self.space
        return tuple(float(v) for v in space.to_unit(best))

    def _incremental(
        self, candidate: Candidate, check: bool = False, batch: int | None = None
    ) -> Proposal:
        predicted = self._sign * candidate.predicted
        key = self.space.key(candidate.params)
        self._suggested[key] = predicted
        if candidate.fill:
            self._fills.add(key)
        if check:
            self._checks.add(key)
            if batch is not None:
                self._check_batches[key] = batch
            return Proposal(candidate.params, predicted, "check")
        if not candidate.fill:
            self._heads.add(key)
        return Proposal(candidate.params, predicted, "fill" if candidate.fill else "incremental")

    def _poll(self, params: Params) -> Proposal:
        """A climb's poll (:meth:`due_polls`) as a proposal, with the spline's prediction
        (None where its category has no spline yet)."""
        key = self.space.key(params)
        try:
            predicted: float | None = self.predict(params)
        except ValueError:
            predicted = None
        self._suggested[key] = predicted
        self._polls.add(key)
        return Proposal(params, predicted, "poll")

    def ask(self, n: int | None = None) -> list[Params]:
        """Parameters of :meth:`suggest` (empty only while points are pending; it raises as
        :meth:`suggest` does)."""
        return [p.params for p in self.suggest(n)]


def within(inner: SearchSpace, outer: SearchSpace) -> bool:
    """Whether ``inner`` has ``outer``'s dimensions (names, types, choices, scales) and a box
    inside ``outer``'s, so that every legal point of ``inner`` is one of ``outer``."""
    return inner.names == outer.names and all(
        (a.type, a.log, a.choices) == (b.type, b.log, b.choices)
        and (not a.is_numeric or b.low <= a.low <= a.high <= b.high)
        for a, b in zip(inner.dims, outer.dims, strict=True)
    )


def determined(x: np.ndarray) -> bool:
    """Whether unit points ``x`` (shape (N, d)) determine a spline with a linear tail: at
    least d+1 of them, not all in one hyperplane."""
    if x.ndim != 2 or len(x) < x.shape[1] + 1:
        return False
    return bool(np.linalg.matrix_rank(x - x.mean(axis=0)) >= x.shape[1])


def counts_as_agreement(record: Record) -> bool:
    """Whether a measured record's agreement with its prediction counts towards the stop rule's (a).

    Checks do not: condition (e) judges them, one-sided; nor do a climb's polls, chosen
    for their place next to the best, not for their value. A batch's fills do:
    they are where the batch looked, and with heads alone (a) needed k
    batches of agreeing heads, which 8-dimensional batch searches seldom
    had (``benchmarks/results/stop_rule.md``, "Fills count").
    """
    return record.predicted is not None and not record.check and not record.poll


def _real(value: Any, name: str) -> float:
    """``value`` of argument ``name`` as a float: a real number, numpy's scalars included
    (:func:`nas.numbers.as_number`). A bool, a string, None or an array is refused: ``True``
    was stored as 1.0 and ``"70.5"`` as 70.5 without a word."""
    number = as_number(value)
    if number is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(number)


def _count(n: Any) -> int:
    """``n`` of :meth:`SplineOptimizer.suggest`: an int >= 1 (numpy's too; ``True`` is no
    count, and was taken as 1)."""
    count = as_number(n)
    if not isinstance(count, int):
        raise TypeError(f"n must be an int >= 1, got {n!r}")
    _require(count >= 1, "n must be an int >= 1", n)
    return count


def _as_given(given: Mapping[str, Any], snapped: Params) -> str:
    """``given`` for a message, with what it was stored as where snapping moved it."""
    if dict(given) == snapped:
        return str(snapped)
    return f"{dict(given)} (stored as {snapped})"


def _where(where: str) -> str:
    """The prefix of a fit's message that says which spline it is about ('' for the only one)."""
    return f"{where}: " if where else ""


def _named(note: Conditioning, rows: Sequence[Record]) -> str:
    """``note`` naming its pair of support points by their parameters: its row numbers are
    the fit's own order, which people read as point ids."""
    first, second = (str(rows[i].params) for i in note.pair)
    return note.naming(first, second)


def _require(ok: bool, message: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
