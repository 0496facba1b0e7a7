"""``splinenas front`` and ``splinenas best``: the trade-off of metric and cost, and the best under a budget.

``front`` lists the measured non-dominated points of (metric, cost) and the
front the spline predicts over the rest of the box, each prediction with its
leave-one-out error estimate. ``best --where gmacs<=20`` names the best
measured point whose costs meet every bound. Known costs (``gmacs``,
``params_m``, ``memory_gib``) are the numbers ``splinenas cost`` prints;
measured ones (``device_hours``, any metric of the result files) are read
from the state.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from nas.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    emit_json,
    json_number,
    json_option,
    number_text,
    params_text,
    reported,
    state_option,
    whole_number_arg,
    write_table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parents = [state_option(), json_option()]
    front = subparsers.add_parser(
        "front",
        parents=parents,
        help="measured and predicted trade-off front of metric against a cost",
        description=(
            "List the measured points that no other beats in both the metric and the cost "
            "(id, params, metric, cost), and the front the spline predicts over a pool of "
            "candidates, each prediction with its error estimate (RMS leave-one-out error of the "
            "nearest measured points)."
        ),
    )
    front.add_argument(
        "--cost",
        help="gmacs, params_m, memory_gib (known), a name [model] costs returns, device_hours or "
        "a result metric (measured); default: [experiment] tradeoff, else gmacs (a built-in "
        "family)",
    )
    front.add_argument(
        "--pool",
        type=whole_number_arg,
        default=None,
        help="quasi-random candidates per category (default 256)",
    )
    front.add_argument(
        "--measured-only", action="store_true", help="leave out the predicted front (no fit)"
    )
    front.set_defaults(func=run_front)
    best = subparsers.add_parser(
        "best",
        parents=parents,
        help="the best measured point under cost bounds (--where gmacs<=20)",
        description=(
            "Name the best measured point whose costs meet every --where bound; with "
            "[experiment] noise the one with the best smoothed value, as status names it."
        ),
    )
    best.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="NAME<=LIMIT",
        help="a bound on a cost, e.g. gmacs<=20 or device_hours<=3000; repeat for several",
    )
    best.set_defaults(func=run_best)


def _study(path: Any) -> Any:
    """The study of the state at ``path``, with the controller's memory predicate where it has one."""
    from nas.control.feasible import commands_rule
    from nas.control.plan import warn_source_drift
    from nas.control.policy import Study, experiment_of
    from nas.record.store import StateStore

    state = StateStore.read(path)
    experiment = experiment_of(state, path)
    warn_source_drift(state, path)
    return Study(state, experiment, commands_rule(experiment))


def cost_name(study: Any, given: str | None) -> str:
    """The cost a front is drawn against: the option, else the experiment's trade-off, else
    gmacs for a built-in family.

    An empty or malformed ``--cost`` is refused by the rule of every cost name
    (it is no default: ``--cost ''`` would otherwise draw against gmacs). An
    own model has no gmacs: the refusal names the costs it has instead.

    Raises:
        UsageError: a malformed name, or no cost to fall back on.
    """
    from nas.search.settings import cost_name_problem

    if given is not None:
        problem = cost_name_problem(given)
        if problem:
            raise UsageError(f"--cost: {problem}")
        return given
    tradeoff = getattr(study.experiment.experiment, "tradeoff", None)
    if tradeoff:
        return tradeoff
    from nas.control.costs import has_cost_model

    if has_cost_model(study.experiment):
        return "gmacs"
    raise UsageError(f"give --cost NAME: {_own_costs(study)}")


def refuse_metric(study: Any, name: str, option: str) -> None:
    """Refuse the searched metric where a cost belongs (``front --cost``, ``best --where``):
    every point would be on its "front", and a bound on it caps what the search maximises,
    as ``init`` refuses it in ``[experiment.constraints]``.

    Raises:
        UsageError: ``name`` is the searched metric.
    """
    if name == study.experiment.experiment.metric:
        raise UsageError(
            f"{option} {name}: is the searched metric; a front or a bound takes a cost "
            "(gmacs, device_hours, another metric of the results)"
        )


def left_out_note(count: int, name: str) -> str:
    """The note of ``front`` and ``best`` on measured points that lack cost ``name``."""
    return f"note: {count} measured point(s) have no {name}; left out"


def _own_costs(study: Any) -> str:
    """The costs of an experiment without a built-in family, for the refusal of a bare ``front``."""
    from nas.control.costs import carried_costs, user_costs

    users = user_costs(study.experiment)
    known = ", ".join(users.names) if users is not None else "none ([model] costs is not set)"
    measured = carried_costs(study.state, study.experiment)
    return (
        "the model has no built-in family, so no gmacs, and [experiment] tradeoff is not set; "
        f"its costs: known {known}; measured {', '.join(sorted(measured)) or 'none yet'}"
    )


@reported
def run_front(args: argparse.Namespace) -> int:
    from nas.search.tradeoff import MAX_POOL_SIZE

    if args.pool is not None and not 1 <= args.pool <= MAX_POOL_SIZE:
        raise UsageError(f"--pool must be from 1 to {MAX_POOL_SIZE:,}, got {args.pool}")
    from nas.control import frontier
    from nas.control.costs import cost_source, unmeasured

    study = _study(args.state)
    name = cost_name(study, args.cost)
    refuse_metric(study, name, "--cost")
    source = cost_source(study.experiment, name)
    goal = study.experiment.experiment.goal
    points = frontier.measured_points(study, source)
    unknown = sum(not math.isfinite(p.cost) for p in points)
    front = frontier.measured_front(points, goal)
    predicted = [] if args.measured_only else _predicted(study, source, args.pool)
    document = {
        "state": str(args.state),
        "metric": study.experiment.experiment.metric,
        "goal": goal,
        "cost": name,
        "measured": [
            {"id": p.id, "params": p.params, "metric": p.metric, "cost": p.cost} for p in front
        ],
        "predicted": [
            {
                "params": p.params,
                "metric": json_number(p.metric),
                "metric_error": json_number(p.metric_error),
                "cost": json_number(p.cost),
                "cost_error": json_number(p.cost_error),
            }
            for p in predicted
        ],
        "without_cost": unknown,
    }
    if args.json:
        emit_json(document)
    else:
        _print_front(document)
    if unknown:
        print(left_out_note(unknown, name), file=sys.stderr)
        why = unmeasured(study.state, study.experiment, source)
        if why:
            print(f"note: {why}", file=sys.stderr)
    return EXIT_OK


def _predicted(study: Any, source: Any, pool: int | None) -> list:
    """The predicted front, or none (with a note) while no spline can be fitted: the
    metric's, or a measured cost's that some points carry (without it every candidate's
    cost is unknown, and an empty front would say nothing of why). A cost that no point
    carries gets its note from :func:`~nas.control.costs.unmeasured` (in ``run_front``)."""
    from nas.control import frontier
    from nas.control.costs import unmeasured

    if study.fit_summary() is None:
        print(f"note: no predicted front yet: {study.fit_blocker()}", file=sys.stderr)
        return []
    why = None if source.known is not None else study.measured_cost_blocker(source.name)
    if why and unmeasured(study.state, study.experiment, source) is None:
        print(
            f"note: no predicted front: the spline of {source.name} cannot be fitted: {why}",
            file=sys.stderr,
        )
    return [] if why else frontier.predicted_front(study, source, pool)


def _print_front(doc: dict[str, Any]) -> None:
    metric, cost = doc["metric"], doc["cost"]
    print(f"measured front of {metric} ({doc['goal']}) against {cost}:")
    rows = [["id", metric, cost, "params"]]
    rows += [
        [str(p["id"]), number_text(p["metric"]), number_text(p["cost"]), params_text(p["params"])]
        for p in doc["measured"]
    ]
    write_table(rows, sys.stdout)
    if doc["predicted"]:
        print(f"predicted front ({metric} +/- leave-one-out error estimate):")
        rows = [[metric, "+/-", cost, "params"]]
        rows += [
            [
                number_text(p["metric"]),
                number_text(p["metric_error"]),
                number_text(p["cost"]),
                params_text(p["params"]),
            ]
            for p in doc["predicted"]
        ]
        write_table(rows, sys.stdout)


@reported
def run_best(args: argparse.Namespace) -> int:
    from nas.control.constraints import (
        best_within,
        bounds_of,
        last_smoothed,
        parse_where,
        sources,
    )
    from nas.control.costs import measured, unmeasured

    try:
        given = [parse_where(text) for text in args.where]
    except ValueError as exc:
        raise UsageError(f"--where: {exc}") from None
    study = _study(args.state)
    for bound in given:
        refuse_metric(study, bound.name, "--where")
    # The experiment's own bounds hold too: its best is the one status and run name.
    bounds = [*bounds_of(study.experiment), *given]
    costed = sources(study.experiment, bounds)
    without = _without_cost(study, [s for _, s in costed])
    point = best_within(study.state, study.experiment, bounds)
    costs = {}
    if point is not None:
        costs = {c.name: json_number(s.of_point(point)) for c, s in costed}
    smoothed = None if point is None else last_smoothed(study.state, study.experiment).get(point.id)
    document = {
        "state": str(args.state),
        "where": [str(b) for b in bounds],
        "best": None
        if point is None
        else {
            "id": point.id,
            "params": point.params,
            "value": point.value,
            "smoothed": json_number(smoothed),
            "costs": costs,
        },
        "without_cost": without,
    }
    if args.json:
        emit_json(document)
    if point is None:
        where = " and ".join(document["where"])
        nothing = not measured(study.state)
        print(
            "no point is measured yet" if nothing else f"no measured point meets {where}",
            file=sys.stderr,
        )
    for name, count in without.items():
        print(left_out_note(count, name), file=sys.stderr)
    if point is None:
        why = [unmeasured(study.state, study.experiment, s) for _, s in costed]
        for line in filter(None, why):
            print(f"note: {line}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        shown = ", ".join(f"{k} {number_text(v)}" for k, v in costs.items())
        print(
            f"point {point.id} ({params_text(point.params)}) = {number_text(point.value)}"
            + ("" if smoothed is None else f" (smoothed {number_text(smoothed)})")
            + (f"; {shown}" if shown else "")
        )
    return EXIT_OK


def _without_cost(study: Any, costed: list[Any]) -> dict[str, int]:
    """How many measured points lack each cost of ``costed`` (those that lack none left out):
    ``best`` leaves them out of its choice, and says so as ``front`` does."""
    from nas.control.costs import measured

    points = measured(study.state)
    counts = {s.name: sum(not math.isfinite(s.of_point(p)) for p in points) for s in costed}
    return {name: count for name, count in counts.items() if count}
