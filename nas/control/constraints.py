"""Upper bounds on costs: ``gmacs <= 20``, ``device_hours <= 3000``.

One bound is a :class:`Constraint`; an experiment declares them in
``[experiment.constraints]`` (name = limit) and ``splinenas best --where``
takes them on the command line. A known cost is checked exactly with the
cost model; a measured one is known exactly for a measured point and, for a
candidate, through the spline of the measured costs: a candidate is allowed
when its predicted cost plus the leave-one-out error estimate stays within
the limit (:mod:`nas.search.uncertainty`), so the search does not bet a
training on an optimistic cost prediction. Before that spline can be fitted
a measured bound cannot be judged and lets every candidate through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nas.config import Experiment
from nas.control.costs import CostSource, cost_predictor, cost_source, measured
from nas.names import NAME_PATTERN
from nas.record.state import FitRecord, Point, State
from nas.search.space import Params

#: ``NAME<=NUMBER``; NAME is a cost name (:func:`nas.search.settings.cost_name_problem`).
_WHERE = re.compile(rf"^\s*({NAME_PATTERN.pattern})\s*<=\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``name <= limit`` on one cost."""

    name: str
    limit: float

    def __str__(self) -> str:
        return f"{self.name} <= {self.limit:g}"


def parse_where(text: str) -> Constraint:
    """``NAME<=NUMBER`` from the command line.

    Raises:
        ValueError: another form, or a limit that is not a finite number.
    """
    match = _WHERE.match(text)
    if match is None:
        raise ValueError(f"expected NAME<=NUMBER (e.g. gmacs<=20), got {text!r}")
    try:
        limit = float(match.group(2))
    except ValueError:
        raise ValueError(f"{text!r}: {match.group(2)!r} is not a number") from None
    if not math.isfinite(limit):
        raise ValueError(f"{text!r}: the limit must be finite")
    return Constraint(match.group(1), limit)


def declared(table: Mapping[str, float]) -> list[Constraint]:
    """The constraints of ``[experiment.constraints]``, in the order given."""
    return [Constraint(name, float(limit)) for name, limit in table.items()]


def point_within(point: Point, bounds: Sequence[tuple[Constraint, CostSource]]) -> bool:
    """Whether a measured point's costs meet every bound (an unknown cost does not)."""
    return all(source.of_point(point) <= c.limit for c, source in bounds)


def sources(
    experiment: Experiment, constraints: Iterable[Constraint]
) -> list[tuple[Constraint, CostSource]]:
    """Each constraint with the source of its cost under ``experiment``."""
    return [(c, cost_source(experiment, c.name)) for c in constraints]


def best_within(
    state: State, experiment: Experiment, constraints: Iterable[Constraint]
) -> Point | None:
    """The best measured point whose costs meet every bound: the one rule of every reader's
    "best" (with no bound, the best of all).

    ``status``, ``report``, ``best`` and a constraint's "best within" name the
    same point, so a bound that rules nothing out never changes which point is
    best. Without ``[experiment] noise`` the best measurement wins. With it,
    one lucky measurement must not: points are ranked by the last stored
    fit's smoothed values (:func:`last_smoothed`), a point measured after that
    fit by its measurement (a fit from a file that stored no smoothed values
    ranks the point it named best first). Ties go to the earlier point.
    """
    allowed = within(state, experiment, constraints)
    sign = 1.0 if experiment.experiment.goal == "maximize" else -1.0
    smoothed = last_smoothed(state, experiment)
    noisy = experiment.experiment.noise is not None
    named = state.fits[-1].best_id if noisy and state.fits and not smoothed else -1
    return max(
        allowed,
        key=lambda p: (p.id == named, sign * smoothed.get(p.id, p.value), -p.id),
        default=None,
    )


def within(state: State, experiment: Experiment, constraints: Iterable[Constraint]) -> list[Point]:
    """The measured points whose costs meet every bound, in id order (every one without a
    bound): known costs computed from the params, measured ones read from the results."""
    bounds = sources(experiment, constraints)
    return [p for p in measured(state) if point_within(p, bounds)]


def bounds_of(experiment: Experiment) -> list[Constraint]:
    """The experiment's own bounds, ``[experiment.constraints]``: those the search and every
    reader's "best" respect unless told otherwise."""
    return declared(experiment.experiment.constraints)


def last_smoothed(state: State, experiment: Experiment) -> dict[int, float]:
    """With ``[experiment] noise``, the last stored fit's smoothed values by point id: what
    readers rank by and show next to a measurement (empty without noise or such a fit)."""
    if experiment.experiment.noise is None or not state.fits:
        return {}
    return smoothed_values(state.fits[-1])


def smoothed_values(fit: FitRecord) -> dict[int, float]:
    """``fit``'s smoothed value of each point it was fitted on (empty: it stored none)."""
    return dict(zip(fit.support_ids, fit.fitted, strict=True)) if fit.fitted else {}


def candidate_rule(
    state: State, experiment: Experiment, constraints: Iterable[Constraint]
) -> Callable[[Params], bool]:
    """A predicate on candidates: every known cost within its limit, every measured one
    predicted within it with its error (or not yet predictable)."""
    checks = []
    for constraint, source in sources(experiment, constraints):
        limit = constraint.limit
        if source.known is not None:  # closed-form, about a millisecond a candidate
            checks.append(lambda p, cost=source.known, limit=limit: cost(p) <= limit)
        else:
            predict = cost_predictor(state, experiment, source)
            checks.append(
                lambda p, predict=predict, limit=limit: predicted_within(predict, p, limit)
            )
    return lambda params: all(check(params) for check in checks)


def predicted_within(predict: Callable, params: Params, limit: float) -> bool:
    """Whether the predicted cost plus its error is within ``limit``; a cost that cannot be
    predicted yet (NaN) is."""
    value, error = predict([params])
    upper = float(value[0] + error[0])
    return not math.isfinite(float(value[0])) or (math.isfinite(upper) and upper <= limit)
