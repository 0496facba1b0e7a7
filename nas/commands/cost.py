"""``splinenas cost``: size, MACs and training memory of one candidate of an experiment.

A person checks a candidate before spending GPU-hours on it, with the same
closed-form estimate (no torch) that the search uses as its feasibility
predicate and for its known costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from nas.commands.common import EXIT_OK, UsageError, emit_json, reported, whole_number_arg
from nas.config import ConfigError, Experiment, ModelConfig, load_experiment, parse_params
from nas.errors import UserError
from nas.search.settings import SettingError, check_value
from nas.search.space import SearchSpace, SpaceError

GIB = 2**30


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="parameters, GMACs and GPU memory of one candidate",
        description=(
            "Estimate the parameters, multiply-accumulates per image and peak training memory "
            "per GPU of one candidate: the experiment's fixed model settings merged with "
            "--params, at its resolution, batch per GPU and precision."
        ),
    )
    parser.add_argument("experiment", help="experiment TOML file")
    parser.add_argument(
        "--params",
        required=True,
        help="candidate coordinates as k=v,k=v (override the fixed model settings)",
    )
    parser.add_argument(
        "--num-classes",
        type=whole_number_arg,
        help="classifier size when the experiment's [model] num_classes is not set",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run_cost)


@reported
def run_cost(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args.params)
    except ValueError as exc:
        raise UsageError(f"--params: {exc}") from None
    if args.num_classes is not None:
        _check_num_classes(args.num_classes)
    experiment = load_experiment(args.experiment)
    params = checked_params(experiment, params)
    document = cost_document(experiment, params, args.num_classes)
    if args.json:
        emit_json(document)
    else:
        print(_text(document))
    return EXIT_OK


def checked_params(experiment: Experiment, params: dict[str, Any]) -> dict[str, Any]:
    """``--params`` held to the search's box as ``add`` and ``predict`` hold them.

    A price is worth asking only for a candidate the search could train: a
    value outside the box is refused and an integer dimension's value is
    priced as the search would snap it (with a note). An own model's function
    is also spared names it would silently ignore and a missing dimension (its
    ``KeyError`` would read as a broken function); a built-in family's unknown
    or missing coordinate is named by the family's own lists, as the same
    mistake of the command line (exit 2) for either kind of model.

    Raises:
        UsageError: an unknown or missing name, or a value the space refuses.
        UserError: a value outside the box.
    """
    space, model = experiment.space, experiment.model
    fixed = {} if model is None else model.fixed
    if model is not None and model.family is None:
        _check_own_names(space, fixed, params)
    if model is not None and model.family is not None:
        _check_family_names(model.family, fixed, params)
    searched = {k: v for k, v in params.items() if k in space.names}
    if len(searched) < len(space.names):
        return params  # the family's check names what is missing
    try:
        snapped, notes, outside = space.snap_report(searched)
    except SpaceError as exc:
        raise UsageError(f"--params: {exc}") from None
    if outside:
        from nas.control.imports import given_part

        given = "; ".join(map(given_part, outside))
        raise UserError(
            f"--params: {given} outside the box ({space.box_text()}): the search never trains it"
        )
    for note in notes:
        print(f"note: {note.replace(' stored as ', ' priced as ', 1)}", file=sys.stderr)
    return {**params, **snapped}


def _check_own_names(space: SearchSpace, fixed: dict[str, Any], params: dict[str, Any]) -> None:
    """An own model's ``--params``: every name a dimension or a fixed key, every dimension given
    (here or in ``[model] fixed``).

    Raises:
        UsageError: naming the unknown or missing names and the ones there are.
    """
    names = f"the [[space]] dimensions are {', '.join(space.names)}"
    names += f" and the [model] fixed keys {', '.join(fixed)}" if fixed else ""
    unknown = [k for k in params if k not in space.names and k not in fixed]
    if unknown:
        raise UsageError(f"--params: unknown name(s) {', '.join(unknown)}; {names}")
    missing = [n for n in space.names if n not in params and n not in fixed]
    if missing:
        raise UsageError(f"--params lacks {', '.join(missing)}; {names}")


def _check_family_names(family: str, fixed: dict[str, Any], params: dict[str, Any]) -> None:
    """A built-in family's ``--params``: every name one of its coordinates, every required
    coordinate given (here or in ``[model] fixed``).

    Raises:
        UsageError: naming the unknown or missing coordinates and the valid ones.
    """
    from nas.models.coordinates import coordinate_names, missing_names, unknown_names

    valid = f"family {family!r}: valid names are {list(coordinate_names(family))}"
    unknown = unknown_names(family, params)
    if unknown:
        raise UsageError(f"--params: unknown coordinate(s) {unknown}; {valid}")
    missing = missing_names(family, {**fixed, **params})
    if missing:
        raise UsageError(f"--params: missing coordinate(s) {missing}; {valid}")


def _check_num_classes(value: int) -> None:
    """``--num-classes`` held to ``[model] num_classes``'s own declaration (its minimum)."""
    meta = next(f.metadata for f in dataclasses.fields(ModelConfig) if f.name == "num_classes")
    try:
        check_value(value, meta, "--num-classes")
    except SettingError as exc:
        raise UsageError(str(exc)) from None


def cost_document(
    experiment: Experiment, params: dict[str, Any], num_classes: int | None
) -> dict[str, Any]:
    """The costs of ``params`` under ``experiment`` as a JSON-ready dict.

    A built-in family's estimate (its fields at the top level) and, under
    ``costs``, every known cost by name: the family's and those of the
    ``[model] costs`` function.
    """
    model = experiment.model
    if model is None:
        raise ConfigError(experiment.source, "model", None, "missing table; `cost` needs it")
    if model.family is None and model.costs is None:
        raise ConfigError(
            experiment.source,
            "model",
            "costs",
            "not set; an own model's costs come from a [model] costs function "
            "(a built-in one's from [model] family)",
        )
    from nas.control.costs import user_costs

    merged = {**model.fixed, **params}
    document: dict[str, Any] = {"params": merged, "costs": {}}
    if model.family is not None:
        document |= _estimate_document(experiment, params, num_classes)
    users = user_costs(experiment)
    if users is not None:
        try:
            document["costs"] |= users.check(merged)
        except ValueError as exc:
            raise ConfigError(
                experiment.source, "model", "costs", f"{model.costs} for {merged}: {exc}"
            ) from None
    return document


def _estimate_document(
    experiment: Experiment, params: dict[str, Any], num_classes: int | None
) -> dict[str, Any]:
    """The cost model's estimate of a built-in family's candidate, with the memory verdict."""
    from nas.control.costs import KNOWN_COSTS, estimate_for
    from nas.models.footprint import fits, usable_bytes

    classes = num_classes if num_classes is not None else experiment.num_classes()
    if classes is None:
        raise UsageError(f"{experiment.source}: [model] num_classes is not set; pass --num-classes")
    cost = estimate_for(experiment, params, classes)
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    return {
        **cost.to_dict(),
        "num_classes": classes,
        "max_gpu_memory_gib": limit,
        "memory_margin": margin,
        "usable_bytes": None if limit is None else usable_bytes(limit, margin),
        "fits": fits(cost, limit, margin),
        "costs": {name: read(cost) for name, (_, read) in KNOWN_COSTS.items()},
    }


def _text(doc: dict[str, Any]) -> str:
    params = ",".join(f"{k}={v}" for k, v in doc["params"].items())
    lines = [f"params      {params}"]
    if "family" in doc:
        lines = [f"family      {doc['family']}: {doc['description']}", *lines, *_model_lines(doc)]
    from nas.control.costs import KNOWN_COSTS

    users = {k: v for k, v in doc["costs"].items() if k not in KNOWN_COSTS or "family" not in doc}
    if users:
        lines.append("costs       " + ", ".join(f"{k} = {v:.6g}" for k, v in users.items()))
    return "\n".join(lines)


def _model_lines(doc: dict[str, Any]) -> list[str]:
    """The cost model's lines: size, MACs, memory and the memory verdict."""
    limit = doc["max_gpu_memory_gib"]
    verdict = (
        "no limit set ([cluster] max_gpu_memory_gib)"
        if limit is None
        else f"{'fits' if doc['fits'] else 'does NOT fit'} {doc['usable_bytes'] / GIB:.2f} GiB "
        f"per GPU ({doc['memory_margin']:g} of {limit:g} GiB)"
    )
    precision = "mixed precision" if doc["amp"] else "fp32"
    return [
        f"parameters  {doc['parameters']:,} ({doc['parameters'] / 1e6:.2f} M)",
        f"GMACs       {doc['macs'] / 1e9:.3f} per {doc['resolution']}px image",
        f"memory/GPU  {doc['memory_bytes'] / GIB:.2f} GiB at batch {doc['batch_per_gpu']}, "
        f"{precision} (state {doc['state_bytes'] / GIB:.2f} GiB, activations "
        f"{doc['activation_bytes'] / GIB:.2f} GiB, backward {doc['transient_bytes'] / GIB:.2f}"
        f" GiB, workspace {doc['workspace_bytes'] / GIB:.2f} GiB)",
        f"verdict     {verdict}",
    ]
