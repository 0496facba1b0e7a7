"""A study's trade-off front and constraints: its measured points and costs, read through the search.

Glue between a :class:`~nas.control.policy.Study` and the pure numerics of
:mod:`nas.search.pareto` and :mod:`nas.search.tradeoff`: which points are
measured and what each costs (:mod:`nas.control.costs`), the metric's
predictions with their errors, and for a measured cost a spline of the
measured costs (with its own leave-one-out errors).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nas.control import tradeoffs
from nas.control.costs import CostSource, cost_source
from nas.control.policy import Study
from nas.control.tradeoffs import MeasuredPoint, measured_front
from nas.record.state import Point
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.search.tradeoff import PredictedPoint


#: How a cost and the limit it is held to are printed: with the 6 significant digits of
#: ``Constraint.__str__`` (``:g``), so that a cost shown next to its limit is never rounded
#: above it while reported within (0.003304 against a limit of 0.00330374).
COST_FORMAT = ".6g"


def cost_texts(cost: float, limit: float) -> tuple[str, str]:
    """``cost`` and ``limit`` as text, alike (:data:`COST_FORMAT`); with every digit where
    they differ but would read the same, so that the text never hides which one is larger."""
    texts = (format(cost, COST_FORMAT), format(limit, COST_FORMAT))
    if texts[0] == texts[1] and cost != limit:
        return repr(float(cost)), repr(float(limit))
    return texts


def measured_points(study: Study, source: CostSource) -> list[MeasuredPoint]:
    """Every measured point of the study with its cost, in id order."""
    return tradeoffs.measured_points(study.state, source)


def predicted_front(
    study: Study, source: CostSource, pool_size: int | None = None
) -> list[PredictedPoint]:
    """The front the spline predicts over a candidate pool of the study's space
    (:func:`nas.control.tradeoffs.predicted_front`)."""
    return tradeoffs.predicted_front(
        study.state, study.experiment, study.optimizer, study.admissible(), source, pool_size
    )


def source_for(study: Study, name: str | None) -> CostSource:
    """The cost source named ``name``; without a name the default cost, ``gmacs``."""
    return cost_source(study.experiment, name or "gmacs")


def cost_summary(study: Study) -> dict[str, Any] | None:
    """What ``status`` says of costs: each constraint, whether it binds and the best within it,
    and with ``tradeoff`` the measured front's size. None when the experiment declares neither.

    A bound on a measured cost that the measured points cannot predict (no
    result carries it: a typo; too few for its spline) *cannot be evaluated*
    (``unknown`` says why): it refuses no candidate, which "does not bind"
    would hide. A constraint *binds* when the search would prefer a point the bound rules
    out: the spline's predicted optimum without the bounds (the feasibility
    rules of memory and ``[model] feasible`` still applied), or the best
    measured point (e.g. one added by hand), breaks it. The stored fit cannot
    say: its optimum is the best point within the bounds.
    """
    from nas.control.constraints import best_within, declared, sources

    cfg = study.experiment.experiment
    if not cfg.constraints and cfg.tradeoff is None:
        return None
    bounds = sources(study.experiment, declared(cfg.constraints))
    unconstrained = best_within(study.state, study.experiment, [])
    free = study.optimizer.maximum(study.feasible) if study.state.fits else None
    preferred = [] if unconstrained is None else [("best measured point", unconstrained.params)]
    if free is not None:
        preferred.insert(0, ("spline's predicted optimum without the bounds", free[0]))
    rows = []
    for constraint, source in bounds:
        best = best_within(study.state, study.experiment, [constraint])
        unknown = None if source.known is not None else study.measured_cost_blocker(source.name)
        why = None if unknown else _binds(study, source, constraint.limit, preferred)
        rows.append(
            {
                "name": constraint.name,
                "limit": constraint.limit,
                "binds": why is not None,
                "why": why,
                "unknown": unknown,
                "best": _point_cost(best, source),
            }
        )
    within_all = best_within(study.state, study.experiment, [c for c, _ in bounds])
    doc: dict[str, Any] = {
        "constraints": rows,
        "best_within_all": None
        if within_all is None
        else {"id": within_all.id, "params": within_all.params, "value": within_all.value},
        "front": None,
    }
    if cfg.tradeoff is not None:
        source = cost_source(study.experiment, cfg.tradeoff)
        points = measured_points(study, source)
        front = measured_front(points, cfg.goal)
        doc["front"] = {
            "cost": cfg.tradeoff,
            "size": len(front),
            "ids": [p.id for p in front],
            "without_cost": sum(not math.isfinite(p.cost) for p in points),
        }
    return doc


def _binds(
    study: Study, source: CostSource, limit: float, preferred: list[tuple[str, Params]]
) -> str | None:
    """How the bound binds: the first of ``preferred`` (what, params) that breaks it; or None."""
    for what, params in preferred:
        cost = _candidate_cost(study, source, params)
        if cost is not None and cost > limit:
            return f"the {what} costs {cost_texts(cost, limit)[0]}"
    return None


def _candidate_cost(study: Study, source: CostSource, params: Params) -> float | None:
    """A candidate's cost: computed when known, else as measured at a point with these params."""
    if source.known is not None:
        return _number(source.known(params))
    point = study.state.find(params)
    return None if point is None else _number(source.of_point(point))


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _point_cost(point: Point | None, source: CostSource) -> dict[str, Any] | None:
    if point is None:
        return None
    return {
        "id": point.id,
        "params": point.params,
        "value": point.value,
        "cost": _number(source.of_point(point)),
    }


def cost_lines(doc: dict[str, Any] | None) -> list[str]:
    """The lines of :func:`cost_summary` for people, one per constraint and one for the front."""
    if doc is None:
        return []
    lines = []
    for row in doc["constraints"]:
        best, limit = row["best"], row["limit"]
        found = (
            "no measured point within it"
            if best is None
            else f"best within: point {best['id']} = {best['value']:.6g} at {row['name']} "
            f"{'unknown' if best['cost'] is None else cost_texts(best['cost'], limit)[0]}"
        )
        state = f"binds ({row['why']})" if row["binds"] else "does not bind"
        if row.get("unknown"):  # a state's summary may come from before the key existed
            state = f"cannot be evaluated, so it refuses no candidate: {row['unknown']}"
        shown = format(limit, COST_FORMAT)
        if best is not None and best["cost"] is not None:
            shown = cost_texts(best["cost"], limit)[1]
        lines.append(f"constraint {row['name']} <= {shown}: {state}; {found}")
    front = doc["front"]
    if front is not None:
        lines.append(
            f"trade-off front against {front['cost']}: {front['size']} measured point(s) "
            f"({', '.join(map(str, front['ids'])) or 'none'}); `splinenas front` lists them"
        )
    return lines


def point_constraints(study: Study, point: Point) -> list[dict[str, Any]]:
    """Each declared constraint at one point: its cost there, whether it is within, whether it binds.

    A known cost is computed for any point; a measured one only once the point is measured.
    """
    from nas.control.constraints import declared, sources

    bounds = sources(study.experiment, declared(study.experiment.experiment.constraints))
    if not bounds:
        return []
    cost_summary_doc = cost_summary(study) or {"constraints": []}
    binds = {row["name"]: row["binds"] for row in cost_summary_doc["constraints"]}
    rows = []
    for constraint, source in bounds:
        cost = _number(source.of_point(point))
        rows.append(
            {
                "name": constraint.name,
                "limit": constraint.limit,
                "cost": cost,
                "within": None if cost is None else cost <= constraint.limit,
                "binds": binds.get(constraint.name, False),
            }
        )
    return rows


def point_constraint_lines(rows: list[dict[str, Any]]) -> list[str]:
    """:func:`point_constraints` for people."""
    lines = []
    for row in rows:
        cost, limit = "unknown until measured", format(row["limit"], COST_FORMAT)
        if row["cost"] is not None:
            cost, limit = cost_texts(row["cost"], row["limit"])
        verdict = "" if row["within"] is None else ("within" if row["within"] else "BREAKS it")
        binds = "; binds the search" if row["binds"] else ""
        lines.append(f"{row['name']} {cost} (limit {limit}) {verdict}{binds}".rstrip())
    return lines
