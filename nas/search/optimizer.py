"""SplineOptimizer: the ask/tell interface of the spline search (Algorithm 1).

The optimizer holds no hidden state beyond what it is told: the controller
rebuilds it every cycle from the state file (tell every measured point with
its stored prediction, mark the pending ones), so every answer is a function
of (seed, data). Measurements are maximised internally; ``goal="minimize"``
negates them on the way in and out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.search.categories import EmbeddedSpace, views
from nas.search.design import initial_design
from nas.search.noise import choose_smoothing
from nas.search.propose import Candidate, propose
from nas.search.settings import GOALS, SearchSettings
from nas.search.space import Params, SearchSpace, Value
from nas.search.spline import PolyharmonicSpline, SplineError
from nas.search.stopping import StopEvidence, decide
from nas.search.strategies import STRATEGIES, DefaultStrategy, Strategy, spline_maxima
from nas.search.threads import in_search_threads
from nas.search.uncertainty import local_error

#: How many times the first size a top-up design may grow to find feasible new points.
TOP_UP_GROWTH = 16


@dataclass(frozen=True)
class Proposal:
    """A point to measure; ``predicted`` is None for initial-design points."""

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
    warnings: tuple[str, ...] = ()
    splines: Mapping[tuple[Value, ...], PolyharmonicSpline] = field(
        default_factory=dict, compare=False, repr=False
    )
    coefficients: tuple[float, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Record:
    """A told measurement (``value`` is NaN for a failure; ``fill``: a diverse batch fill)."""

    params: Params
    value: float
    predicted: float | None
    fill: bool = False


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

    Raises:
        SettingError: The settings cannot serve ``space`` (a design smaller than d+1).
    """

    def __init__(
        self,
        space: SearchSpace,
        settings: SearchSettings | None = None,
        *,
        feasible: Callable[[Params], bool] | None = None,
    ) -> None:
        settings = SearchSettings() if settings is None else settings
        if not isinstance(space, SearchSpace) or not isinstance(settings, SearchSettings):
            raise TypeError(
                f"expected a SearchSpace and SearchSettings, got {space!r}, {settings!r}"
            )
        _require(
            feasible is None or callable(feasible), "feasible must be callable or None", feasible
        )
        problem = settings.space_problem(space)
        if problem is not None:
            raise problem
        self.space, self.settings, self.feasible = space, settings, feasible
        self.strategy: Strategy = (
            DefaultStrategy(batch_fill=settings.fill)
            if settings.strategy == "default"
            else STRATEGIES[settings.strategy]()
        )
        self.stop, self.categories = settings.stop_rule, settings.category_model
        shared = self.categories == "shared" and bool(space.categorical)
        self._embedded = EmbeddedSpace(space) if shared else None
        self._design = initial_design(
            space, settings.design_kind, settings.design_points, settings.seed, shared
        )
        self._sign = GOALS[settings.goal]
        self._records: dict[tuple[Value, ...], Record] = {}
        self._pending: dict[tuple[Value, ...], Params] = {}
        self._suggested: dict[tuple[Value, ...], float | None] = {}
        self._fills: set[tuple[Value, ...]] = set()
        self._splines: dict[tuple[Value, ...], PolyharmonicSpline] | None = None
        self._joint: PolyharmonicSpline | None = None

    # -- data ------------------------------------------------------------------------

    def tell(
        self,
        params: Mapping[str, Any],
        value: float,
        predicted: float | None = None,
        fill: bool | None = None,
    ) -> None:
        """Record a measurement; NaN or infinite values record a failure (with a warning).

        ``predicted`` and ``fill`` default to what :meth:`suggest` said of this
        point (``fill``: proposed as a diverse batch fill, whose agreement with
        its prediction does not count towards the stop rule's (a)). A failed
        point may be told again with a value; a measured one may not.
        """
        snapped = self.space.snap(params)
        key = self.space.key(snapped)
        old = self._records.get(key)
        if old is not None and math.isfinite(old.value):
            raise ValueError(f"point {snapped} was already told a value ({old.value})")
        if predicted is None:
            predicted = self._suggested.get(key)
        if fill is None:
            fill = key in self._fills
        value = float(value)
        if not math.isfinite(value):
            warnings.warn(
                f"measurement {value} for {snapped} recorded as a failure",
                RuntimeWarning,
                stacklevel=2,
            )
            value = math.nan
        predicted = None if predicted is None else float(predicted)
        self._records[key] = Record(snapped, value, predicted, bool(fill))
        self._pending.pop(key, None)
        self._splines = None

    def mark_pending(self, params: Mapping[str, Any]) -> None:
        """An issued, unmeasured point: in no fit, but no suggestion lands on or near it."""
        snapped = self.space.snap(params)
        key = self.space.key(snapped)
        if key in self._records:
            raise ValueError(f"point {snapped} is already told and cannot be pending")
        self._pending[key] = snapped

    def forget_pending(self, params: Mapping[str, Any]) -> None:
        """Undo :meth:`mark_pending` (e.g. a cancelled job)."""
        key = self.space.key(params)
        if self._pending.pop(key, None) is None:
            raise KeyError(f"point {self.space.snap(params)} is not pending")

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
        """The decision of ``rule`` (default: ``stop``) with its evidence (:mod:`nas.search.stopping`)."""
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
        return decide(
            self.stop if rule is None else rule,
            [self._sign * r.value for r in measured],
            [(r.value, r.predicted) for r in measured if r.predicted is not None and not r.fill],
            self.space.d,
            self.settings.tolerance,
            self.noise_sd(),
            gain=self.predicted_gain,
            local_error=self.local_loo_error,
        )

    def predicted_gain(self) -> float:
        """How far the spline's legal argmax is predicted above the best measurement (>= 0 is a gain)."""
        summary = self.fit()
        best = self.raw_best
        if summary is None or best is None:
            return math.inf
        return self._sign * (summary.predicted_max - best[1])

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
        """The noise sd the stopping tolerance respects: given, estimated (``"auto"``) or 0.

        The estimate is the RMS residual of the smoothed fit, which
        underestimates the sd: the tolerance errs towards searching longer.
        """
        if self.settings.noise is None:
            return 0.0
        if self.settings.noise != "auto":
            return float(self.settings.noise)
        _, splines = self._model()
        residuals = [s.values - s(s.points) for s in splines.values()]
        return float(np.sqrt(np.mean(np.concatenate(residuals) ** 2))) if residuals else 0.0

    def initial_design(self) -> list[Params]:
        """The initial design (``design``), before any is measured or excluded."""
        return list(self._design)

    @property
    def best(self) -> tuple[Params, float] | None:
        """Best measured point and its measured value, None before any measurement.

        Noise-free: the best measurement. With ``noise``: the measured point
        whose smoothed value is best (one lucky measurement does not win);
        :attr:`raw_best` is then still the best measurement.
        """
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
        if not measured:
            return None
        splines = self._fit_all() if self.settings.noise is not None else {}
        fitted = [r for r in measured if self.space.category_of(r.params) in splines]
        if not fitted:
            return self.raw_best
        smoothed = [
            float(splines[self.space.category_of(r.params)](self.space.to_unit(r.params)))
            for r in fitted
        ]
        top = fitted[int(np.argmax(smoothed))]
        return dict(top.params), top.value

    @property
    def raw_best(self) -> tuple[Params, float] | None:
        """Best measurement (respecting ``goal``), None before any."""
        measured = [r for r in self._records.values() if math.isfinite(r.value)]
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
        maxima = []
        for index, (cat, spline) in enumerate(splines.items()):
            rng = np.random.default_rng([self.settings.seed, index])
            snap = space.snap_unit
            x, fx, legal = spline_maxima(spline, snap, space.lattice_neighbours, rng)
            candidates = np.vstack([legal, snap(x[int(np.argmax(fx))][None, :])])
            values = spline(candidates)
            best = int(np.argmax(values))
            maxima.append((float(values[best]), index, space.from_unit(candidates[best], cat)))
        value, _, argmax = max(maxima, key=lambda m: (m[0], -m[1]))
        loo = np.concatenate([spline.loo_errors() for spline in splines.values()])
        return FitSummary(
            n_support=sum(s.points.shape[0] for s in splines.values()),
            loo_rmse=float(np.sqrt(np.mean(loo**2))),
            argmax=argmax,
            predicted_max=self._sign * value,
            smoothing=max(spline.smoothing_used for spline in splines.values()),
            local_loo=self.local_loo_error(),
            warnings=tuple(
                f"category {cat}: {spline.conditioning}" if cat else spline.conditioning
                for cat, spline in splines.items()
                if spline.conditioning
            ),
            splines=self._fit_all(),
            coefficients=tuple(
                float(c)
                for spline in splines.values()
                for c in (*spline.coefficients, *spline.poly)
            ),
        )

    def predict(self, params: Mapping[str, Any], extrapolate: bool = False) -> float:
        """Spline prediction at ``params`` in measurement units.

        ``params`` are snapped to legal values first; with ``extrapolate``
        they are used as given, also outside the box.
        """
        cat = self.space.category_of(params)
        splines = self._fit_all()
        if cat not in splines:
            raise ValueError(f"no spline for category {cat} yet: too few measurements")
        x = self.space.to_unit_unsnapped(params) if extrapolate else self.space.to_unit(params)
        return self._sign * float(splines[cat](x))

    def predict_interval(
        self, many: Sequence[Mapping[str, Any]], extrapolate: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions at the (snapped) ``many`` and their leave-one-out error estimates.

        Both in measurement units; the error is :func:`nas.search.uncertainty.local_error`
        (NaN with the prediction where a category has no spline yet). With
        ``extrapolate`` the parameters are used as given, as in :meth:`predict`.
        """
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
                x = self.space.to_unit_many([many[i] for i in index])
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

    def _fit_joint(self) -> PolyharmonicSpline | None:
        """The shared spline over every measurement; None while a choice is unmeasured."""
        rows = [r for r in self._records.values() if math.isfinite(r.value)]
        x = np.array([self._embedded.to_unit(r.params) for r in rows]).reshape(
            len(rows), self._embedded.d
        )
        return self._solve(x, rows, "all categories")

    def _support(self) -> dict[tuple[Value, ...], list[Record]]:
        support: dict[tuple[Value, ...], list[Record]] = {}
        for record in self._records.values():
            if math.isfinite(record.value):
                support.setdefault(self.space.category_of(record.params), []).append(record)
        return support

    def _fit_category(
        self, cat: tuple[Value, ...], rows: list[Record]
    ) -> PolyharmonicSpline | None:
        return self._solve(
            self.space.to_unit_many([r.params for r in rows]),
            rows,
            f"category {cat}" if cat else "",
        )

    def _solve(self, x: np.ndarray, rows: list[Record], where: str) -> PolyharmonicSpline | None:
        """The spline through unit points ``x`` of ``rows``; None while they do not determine one."""
        d = x.shape[1]
        if len(rows) < d + 1 or np.linalg.matrix_rank(x - x.mean(axis=0)) < d:
            return None
        y = self._sign * np.array([r.value for r in rows])
        try:
            if self.settings.noise is None:
                return PolyharmonicSpline(x, y, self.settings.smoothing)
            return choose_smoothing(x, y, self.settings.noise, floor=self.settings.smoothing)
        except SplineError as exc:
            named = [rows[i].params for i in exc.indices]
            prefix = f"{where}: " if where else ""
            points = f"; points: {named}" if named else ""
            raise SplineError(f"{prefix}{exc}{points}", exc.indices) from exc

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
        Fewer than ``n`` come back while no spline can be fitted yet. When the
        design is spent, nothing is pending and still no spline can be fitted
        (design points failed or were infeasible: a space-filling design of
        d+2 points has one to spare) while at least half of the told points
        were measured, more space-filling points come instead.
        The optimizer does not mark them pending: do so before the next call.

        Raises:
            SearchError: No feasible distinct candidate is left.
        """
        n = self.settings.batch_size if n is None else n
        _require(isinstance(n, int) and n >= 1, "n must be an int >= 1", n)
        out = [Proposal(p, None, "initial") for p in self._unissued_initial()[:n]]
        space, splines = self._model()
        if len(out) < n and splines:
            avoid = [r.params for r in self._records.values()] + list(self._pending.values())
            avoid += [p.params for p in out]
            candidates = propose(
                space,
                splines,
                q=n - len(out),
                avoid=avoid,
                feasible=self.feasible,
                min_distance=self.settings.min_distance,
                strategy=self.strategy,
                seed=self.settings.seed,
            )
            out += [self._incremental(c) for c in candidates]
        elif not out and not splines and not self._pending and self._mostly_measured():
            out = self._top_up(n)
        return out

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
        size = len(told) + n + self.space.d + 2
        shared = self._embedded is not None
        for _ in range(TOP_UP_GROWTH.bit_length()):
            fresh = [
                p
                for p in initial_design(
                    self.space, "space-filling", size, self.settings.seed + 1, shared
                )
                if self.space.key(p) not in told and (self.feasible is None or self.feasible(p))
            ]
            if len(fresh) >= n:
                break
            size *= 2
        return [Proposal(p, None, "initial") for p in fresh[:n]]

    def _incremental(self, candidate: Candidate) -> Proposal:
        predicted = self._sign * candidate.predicted
        key = self.space.key(candidate.params)
        self._suggested[key] = predicted
        if candidate.fill:
            self._fills.add(key)
        return Proposal(candidate.params, predicted, "fill" if candidate.fill else "incremental")

    def ask(self, n: int | None = None) -> list[Params]:
        """Parameters of :meth:`suggest`."""
        return [p.params for p in self.suggest(n)]


def _require(ok: bool, message: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
