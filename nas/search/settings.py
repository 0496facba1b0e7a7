"""The search settings, declared once: name, default, bounds, choices and meaning.

:class:`SearchSettings` is what :class:`~nas.search.optimizer.SplineOptimizer`
is built from. ``[experiment]`` of an experiment file (:mod:`nas.config`)
takes the metadata of the same fields (:func:`declared`), the controller,
the plots and the benchmarks pass a :class:`SearchSettings`, and
:func:`check_value` is the one check of a declared value, so a setting that
one reader accepts no other reader refuses.

A field is declared with :func:`option`: its TOML/Python type (``kind``),
``choices``, an inclusive ``minimum``/``maximum``, an exclusive ``below``, an
extra ``check`` returning a problem or None, and ``doc``. Bounds that depend
on the search space (a space-filling design needs d+1 points) are in
:meth:`SearchSettings.space_problem`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.errors import UserError
from nas.names import name_problem
from nas.numbers import finite_number
from nas.search.space import SearchSpace

#: Goal -> sign that turns the measurement into a value to maximise.
GOALS = {"maximize": 1.0, "minimize": -1.0}
#: Proposal strategies of :data:`nas.search.strategies.STRATEGIES`.
STRATEGY_NAMES = ("default", "paper")
#: Stopping rules of :func:`nas.search.stopping.decide`.
STOP_RULES = ("default", "paper")
#: Initial designs of :func:`nas.search.design.initial_design`; the first is the default.
DESIGNS = ("space-filling", "corners")
#: How batch slots 2..q are chosen (:class:`nas.search.strategies.DefaultStrategy`); the
#: first is the default strategy's, "believer" the only one of Algorithm 1.
BATCH_FILLS = ("thompson", "dycors", "liar", "merit", "believer")
#: The fills that refit the spline to each chosen slot's fantasy value and rank again
#: (the others rank one pool of candidates, :mod:`nas.search.batch`).
FANTASY_FILLS = ("liar", "believer")
#: The capping quantile measured in ``benchmarks/results/capping.md`` (``capping``):
#: every value worse than the told values' lower quartile counts as that quartile.
MEASURED_CAPPING = 0.25
#: Input warps of the spline (:mod:`nas.search.warp`): "auto" puts each positive numeric
#: dimension on a log scale where that lowers the leave-one-out error; the first is the
#: default strategy's, "off" Algorithm 1's.
WARPINGS = ("auto", "off")
#: When the search polls the best's neighbours, one level on coarse integer axes and one
#: step inward from a face on the others (:mod:`nas.search.climb`): once the best stalls,
#: or never; the first is the default strategy's, "off" Algorithm 1's.
CLIMBS = ("stall", "off")
#: How categories are modelled: one spline over all of them (:mod:`nas.search.categories`)
#: or one spline per category (Algorithm 1).
CATEGORY_MODELS = ("shared", "separate")

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


class SettingError(UserError, ValueError):
    """A value its declaration refuses; ``key`` names the setting, ``detail`` says why."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail


def option(
    default: Any = dataclasses.MISSING,
    *,
    kind: type | tuple[type, ...],
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    optional: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field that knows how to validate its value (:func:`check_value`)."""
    meta = {
        "kind": kind,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "below": below,
        "check": check,
        "optional": optional,
        "doc": doc,
    }
    if isinstance(default, (dict, list)):
        frozen = type(default)(default)
        return field(default_factory=lambda: type(frozen)(frozen), metadata=meta)
    return field(default=default, metadata=meta)


def describe(kind: type | tuple[type, ...]) -> str:
    """``kind`` in words: "an integer", "a number or a string"."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = [_TYPE_NAMES.get(k, "a table" if k is dict else "a list") for k in kinds]
    return " or ".join(dict.fromkeys(names))


def _convert(value: Any, kind: type | tuple[type, ...]) -> Any:
    """Return the value in its field's type (an int where a float is declared), or raise TypeError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise TypeError
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value) if finite_number(value) else math.inf  # 10**400: "not finite"
    if isinstance(value, kinds):
        return value
    raise TypeError


def check_value(value: Any, meta: Mapping[str, Any], key: str) -> Any:
    """``value`` converted to its declared kind, or SettingError saying what was expected."""
    try:
        value = _convert(value, meta["kind"])
    except TypeError:
        raise SettingError(
            key, f"expected {describe(meta['kind'])}, got {type(value).__name__} {value!r}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(key, f"expected a finite number, got {value!r}")
    if value is None:  # an optional field given as null (JSON)
        return value
    if meta["choices"] is not None and value not in meta["choices"]:
        choices = ", ".join(repr(c) for c in meta["choices"])
        raise SettingError(key, f"expected one of {choices}, got {value!r}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise SettingError(key, f"expected at least {meta['minimum']}, got {value!r}")
    if meta["maximum"] is not None and value > meta["maximum"]:
        raise SettingError(key, f"expected at most {meta['maximum']}, got {value!r}")
    if meta.get("below") is not None and value >= meta["below"]:
        raise SettingError(key, f"expected less than {meta['below']}, got {value!r}")
    if meta["check"] is not None:
        problem = meta["check"](value)
        if problem:
            raise SettingError(key, problem)
    return value


def _check_noise(value: float | str) -> str | None:
    if value == "auto" or (not isinstance(value, str) and value >= 0):
        return None
    return f"expected a number >= 0 or 'auto', got {value!r}"


def cost_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a cost, or None when it can.

    A cost is a known cost, ``device_hours``, a metric of the result files or a
    name a ``[model] costs`` function answers. The metric is a name
    (:func:`nas.names.name_problem`), so every cost name follows that one rule:
    a bound, ``tradeoff``, ``--where`` and a cost function's answer all check it here.
    """
    if name_problem(name) is None:
        return None
    return f"expected a cost name of letters, digits, '_', '.' or '-', got {name!r}"


def _check_constraints(value: Mapping[str, Any]) -> str | None:
    for name, limit in value.items():
        problem = cost_name_problem(name)
        if problem:
            return problem
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            return f"{name}: expected a number (the cost's upper bound), got {limit!r}"
        if not math.isfinite(limit) or limit < 0:
            return f"{name}: expected a finite number >= 0, got {limit!r}"
    return None


def minimum_design_points(space: SearchSpace) -> int:
    """The smallest space-filling design that can determine a spline: d+1 points."""
    return space.d + 1


@dataclass(frozen=True)
class SearchSettings:
    """Every setting of the spline search, checked on construction (raises SettingError)."""

    goal: str = option("maximize", kind=str, choices=tuple(GOALS))
    tolerance: float = option(
        0.5, kind=float, minimum=0.0, doc="stop when |measured - predicted| <= tolerance"
    )
    stop: str | None = option(
        None,
        kind=str,
        choices=STOP_RULES,
        optional=True,
        doc="stopping rule; 'paper': one proposal within tolerance; default: the strategy's",
    )
    batch_size: int = option(1, kind=int, minimum=1, doc="proposals per batch after the design")
    seed: int = option(0, kind=int, minimum=0)
    strategy: str = option(
        "default",
        kind=str,
        choices=STRATEGY_NAMES,
        doc="'paper' is Algorithm 1 as published; 'default' also explores near the incumbent",
    )
    batch_fill: str | None = option(
        None,
        kind=str,
        choices=BATCH_FILLS,
        optional=True,
        doc="how batch slots 2..q are chosen: 'thompson' (each slot the best DYCORS candidate of "
        "its own draw from the spline's posterior), 'dycors' (DYCORS candidates ranked by value "
        "and distance), 'liar' (each slot taken as measured 2 % of the told range below its "
        "prediction, the spline refitted and ranked again), 'merit' (perturbations of every "
        "coordinate, ranked as 'dycors') or 'believer' (each slot's prediction taken as "
        "measured); default: 'believer' for the 'paper' strategy, else 'thompson'",
    )
    smoothing: float = option(0.0, kind=float, minimum=0.0, doc="spline smoothing lambda")
    noise: float | str | None = option(
        None,
        kind=(float, str),
        check=_check_noise,
        optional=True,
        doc="run-to-run sd of the metric, or 'auto': the sd measured from the data at every fit "
        "(restricted maximum likelihood; 0 while the data cannot tell it from zero)",
    )
    design: str | None = option(
        None,
        kind=str,
        choices=DESIGNS,
        optional=True,
        doc="initial design: a seeded Sobol design with the all-high corner, or 2d+3 corners "
        "and centre; default: 'corners' for the 'paper' strategy (Algorithm 1), else "
        "'space-filling'",
    )
    design_points: int | None = option(
        None,
        kind=int,
        minimum=2,
        optional=True,
        doc="space-filling design size, at least d+1 (default d+2); the corner design ignores it",
    )
    capping: float = option(
        0.0,
        kind=float,
        minimum=0.0,
        below=1.0,
        doc="quantile of the measured values below which the spline that ranks proposals "
        "sees every worse value as that quantile (0: no capping); predictions and the stop "
        f"rule use the exact spline; measured: {MEASURED_CAPPING}",
    )
    warping: str | None = option(
        None,
        kind=str,
        choices=WARPINGS,
        optional=True,
        doc="'auto': each positive numeric dimension not declared log is given to the spline on "
        "a log scale where that lowers its leave-one-out error (widths and depths usually act "
        "by their logarithm); 'off': the scales as declared; default: 'off' for the 'paper' "
        "strategy, else 'auto'",
    )
    min_distance: float = option(
        1e-3, kind=float, minimum=0.0, below=1.0, doc="unit-box distance between points"
    )
    categories: str | None = option(
        None,
        kind=str,
        choices=CATEGORY_MODELS,
        optional=True,
        doc="one spline over all categories ('shared') or one per category ('separate'); "
        "default: 'separate' for the 'paper' strategy, else 'shared'",
    )
    climb: str | None = option(
        None,
        kind=str,
        choices=CLIMBS,
        optional=True,
        doc="'stall': once the best has not risen by the tolerance over the stop rule's window "
        "of the search's own proposals (the design does not count), measure the best's "
        "one-level neighbours on integer axes of at most 8 levels (depths, block counts) and, "
        "where it sits on a face of another numeric axis, its point one eighth of that range "
        "inward, and climb from any that beats it; the search does not stop during a climb; "
        "'off': never; default: 'off' for the 'paper' strategy, else 'stall'",
    )

    constraints: dict = option(
        {},
        kind=dict,
        check=_check_constraints,
        doc="upper bounds on costs, name = limit: gmacs, params_m, memory_gib (known from the "
        "cost model), device_hours or a result metric (measured); never proposed beyond them",
    )
    tradeoff: str | None = option(
        None,
        kind=str,
        check=cost_name_problem,
        optional=True,
        doc="a cost to trade the metric off against: the search aims at the front of "
        "(metric, cost) instead of one maximum",
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is not None or not spec.metadata["optional"]:
                object.__setattr__(self, spec.name, check_value(value, spec.metadata, spec.name))
        if self.strategy == "paper" and self.fill != "believer":
            raise SettingError(
                "batch_fill",
                f"the 'paper' strategy fills batches by the believer rule only, got {self.fill!r}",
            )

    @property
    def stop_rule(self) -> str:
        """``stop``, or the strategy's own rule when unset."""
        return self.stop or ("paper" if self.strategy == "paper" else "default")

    @property
    def design_kind(self) -> str:
        """``design``, or the strategy's own design when unset."""
        return self.design or ("corners" if self.strategy == "paper" else DESIGNS[0])

    @property
    def warp_kind(self) -> str:
        """``warping``, or the strategy's own when unset."""
        return self.warping or ("off" if self.strategy == "paper" else WARPINGS[0])

    @property
    def fill(self) -> str:
        """``batch_fill``, or the strategy's own fill when unset."""
        return self.batch_fill or ("believer" if self.strategy == "paper" else BATCH_FILLS[0])

    @property
    def climb_kind(self) -> str:
        """``climb``, or the strategy's own when unset."""
        return self.climb or ("off" if self.strategy == "paper" else CLIMBS[0])

    @property
    def category_model(self) -> str:
        """``categories``, or the strategy's own model when unset."""
        return self.categories or ("separate" if self.strategy == "paper" else "shared")

    def space_problem(self, space: SearchSpace) -> SettingError | None:
        """What these settings cannot do in ``space`` (a design too small for it), or None."""
        least = minimum_design_points(space)
        if self.design_kind == "space-filling" and self.design_points is not None:
            if self.design_points < least:
                return SettingError(
                    "design_points",
                    f"a space-filling design in {space.d} dimensions needs at least "
                    f"d+1 = {least} points, got {self.design_points}",
                )
        return None


def declared(name: str) -> Any:
    """A new dataclass field with the default and metadata of setting ``name``.

    Lets a table of the experiment file expose a setting without declaring it again.
    """
    spec = SETTINGS[name]
    if spec.default_factory is not dataclasses.MISSING:
        return field(default_factory=spec.default_factory, metadata=spec.metadata)
    return field(default=spec.default, metadata=spec.metadata)


#: Every setting's field, by name.
SETTINGS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(SearchSettings)}
