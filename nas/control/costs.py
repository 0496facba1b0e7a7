"""The costs a search can constrain or trade off, by name, and where each number comes from.

*Known* costs are computed before training from the parameters alone, with
the cost model of the built-in families (:mod:`nas.models.footprint`), exactly
the numbers ``splinenas cost`` prints: ``gmacs`` (multiply-accumulates per
image / 1e9), ``params_m`` (parameters / 1e6) and ``memory_gib`` (peak
training memory per device), and for an own model whatever its ``[model]
costs`` function returns (:mod:`nas.control.usercosts`). *Measured* costs
exist only once a point is
trained: ``device_hours`` (from its result file) and any other metric of
its ``result.json`` (stored with the point at ingest). A search predicts a
measured cost of an untrained candidate through a spline of the measured
ones (:mod:`nas.control.frontier`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.config import ConfigError, Experiment
from nas.control.usercosts import UserCosts, load_user_costs
from nas.record.state import Point, PointStatus, State
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.models.footprint import Cost
    from nas.search.optimizer import SplineOptimizer
    from nas.search.tradeoff import Predictor

log = logging.getLogger(__name__)

#: Known costs: name -> (what it counts, how it is read off a cost estimate).
KNOWN_COSTS: dict[str, tuple[str, Callable[[Cost], float]]] = {
    "gmacs": ("multiply-accumulates per image / 1e9", lambda c: c.macs / 1e9),
    "params_m": ("trainable parameters / 1e6", lambda c: c.parameters / 1e6),
    "memory_gib": ("peak training memory per device, GiB", lambda c: c.memory_bytes / 2**30),
}
#: The measured cost every result file carries (device-hours of the training).
DEVICE_HOURS = "device_hours"


def is_known(name: str) -> bool:
    """Whether ``name`` is computed from the parameters (not measured)."""
    return name in KNOWN_COSTS


def estimate_for(
    experiment: Experiment, params: Mapping[str, Any], num_classes: int | None = None
) -> Cost:
    """The cost model's estimate of one candidate under ``experiment``.

    The experiment's fixed model settings merged with ``params``, at its
    resolution (224 without a ``[data]`` table), batch per device and
    precision: the one estimate ``splinenas cost``, the memory feasibility
    and the known costs share.

    Raises:
        ConfigError: no ``[model]`` table, or the number of classes is unknown.
        ModelConfigError: the parameters describe no network.
    """
    if experiment.model is None:
        raise ConfigError(experiment.source, "model", None, "missing table; costs need it")
    if experiment.model.family is None:
        raise ConfigError(
            experiment.source, "model", "family", "not set; known costs need a built-in family"
        )
    classes = num_classes if num_classes is not None else experiment.num_classes()
    if classes is None:
        raise ConfigError(
            experiment.source, "model", "num_classes", "not set; the cost model needs it"
        )
    from nas.models.footprint import estimate

    resolution = experiment.data.resolution if experiment.data is not None else 224
    return estimate(
        experiment.model.family,
        {**experiment.model.fixed, **params},
        classes,
        resolution=resolution,
        batch_per_gpu=experiment.train.batch_per_gpu,
        amp=experiment.train.amp != "off",
    )


#: Estimates already made in this process, by (experiment text, parameters): a
#: controller rebuilds its study every cycle and asks for the same candidates again.
_ESTIMATES: dict[tuple[str, tuple[tuple[str, Any], ...]], Cost | None] = {}
#: Most estimates kept (a few hundred bytes each).
MAX_ESTIMATES = 100_000


def estimator(experiment: Experiment) -> Callable[[Params], Cost | None]:
    """A cached :func:`estimate_for`; None for parameters that describe no network."""
    from nas.models import ModelConfigError

    def cached(params: Params) -> Cost | None:
        key = (experiment.text, tuple(sorted(params.items())))
        if key not in _ESTIMATES:
            if len(_ESTIMATES) >= MAX_ESTIMATES:
                _ESTIMATES.clear()
            try:
                _ESTIMATES[key] = estimate_for(experiment, params)
            except ModelConfigError as exc:
                log.info("candidate %s describes no network: %s", params, exc)
                _ESTIMATES[key] = None
        return _ESTIMATES[key]

    return cached


def known_cost(experiment: Experiment, name: str) -> Callable[[Params], float]:
    """The known cost ``name`` of a candidate (NaN where it describes no network)."""
    if name not in KNOWN_COSTS:
        raise ValueError(f"{name!r} is not a known cost; known costs are {sorted(KNOWN_COSTS)}")
    read = KNOWN_COSTS[name][1]
    estimate = estimator(experiment)

    def cost(params: Params) -> float:
        found = estimate(params)
        return math.nan if found is None else float(read(found))

    return cost


def measured_cost(point: Point, name: str) -> float:
    """The measured cost ``name`` of a trained point; NaN when its result did not carry it."""
    if name == DEVICE_HOURS:
        pace = point.extra.get("pace", {})
        value = pace.get(DEVICE_HOURS) if isinstance(pace, Mapping) else None
        if value is None and point.gpu_hours:
            value = point.gpu_hours
    else:
        metrics = point.extra.get("metrics", {})
        value = metrics.get(name) if isinstance(metrics, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


@dataclass(frozen=True)
class CostSource:
    """One named cost of a search: known (``known`` computes it) or measured."""

    name: str
    known: Callable[[Params], float] | None

    def of_point(self, point: Point) -> float:
        """The cost of a point: computed when known, else what its result measured."""
        if self.known is not None:
            return self.known(point.params)
        return measured_cost(point, self.name)


def cost_source(experiment: Experiment, name: str, cwd: Path | None = None) -> CostSource:
    """The source of cost ``name`` under ``experiment``.

    A built-in family's known cost comes from the cost model, a name the
    ``[model] costs`` function returns from that function (imported from
    :func:`~nas.control.usercode.code_folder`), any other name is measured.

    Raises:
        ConfigError: a known cost that neither a built-in family nor the
            ``[model] costs`` function provides, or a cost function that fails.
    """
    if is_known(name) and has_cost_model(experiment):
        return CostSource(name, known_cost(experiment, name))
    users = user_costs(experiment, cwd)
    if users is not None and name in users.names:
        return CostSource(name, users.cost(name))
    if is_known(name):
        raise ConfigError(
            experiment.source,
            "model",
            "family",
            f"not set; the known cost {name} needs a built-in family "
            "(or a [model] costs function that returns it)",
        )
    return CostSource(name, None)


def reserved_names(experiment: Experiment) -> dict[str, str]:
    """Cost names a ``[model] costs`` function may not return, each with what claims it."""
    reserved = {
        DEVICE_HOURS: "the measured device-hours of every result",
        experiment.experiment.metric: "the metric the search optimises",
    }
    if has_cost_model(experiment):
        family = experiment.model.family
        reserved |= {name: f"the cost model of family {family!r}" for name in KNOWN_COSTS}
    return reserved


def user_costs(experiment: Experiment, cwd: Path | None = None) -> UserCosts | None:
    """The experiment's ``[model] costs`` function, loaded and checked (None without one).

    Raises:
        ConfigError: it cannot be imported, or fails on the first design point.
    """
    return load_user_costs(experiment, cwd, reserved_names(experiment))


def has_cost_model(experiment: Experiment) -> bool:
    """Whether the experiment's network is a built-in family, whose costs the model knows."""
    return experiment.model is not None and experiment.model.family is not None


def measured(state: State) -> list[Point]:
    """The points with a finite measurement, in id order."""
    return [
        p
        for p in state.with_status(PointStatus.DONE)
        if p.value is not None and math.isfinite(p.value)
    ]


def unmeasured(state: State, experiment: Experiment, source: CostSource) -> str | None:
    """Why no measured point has cost ``source``, naming the costs they do have; else None.

    Any name that is not a known cost is read from the results, so a typo
    (``gmacz``) is a cost no result carries: "no point meets gmacz <= 20"
    would hide that, while the names the results do carry show the slip.
    """
    points = measured(state)
    if source.known is not None or any(math.isfinite(source.of_point(p)) for p in points):
        return None
    carried = carried_costs(state, experiment)
    known = list(KNOWN_COSTS) if has_cost_model(experiment) else []
    users = user_costs(experiment)
    known += [] if users is None else sorted(users.names)
    return (
        f"no measured point has a cost named {source.name!r} "
        f"(measured: {', '.join(sorted(carried)) or 'none'}; known: {', '.join(known) or 'none'})"
        + imported_without(points, source)
    )


def imported_without(points: Sequence[Point], source: CostSource) -> str:
    """A clause for the measured ``points`` that lack cost ``source`` because they were
    imported from a file that carries only the metric (CSV, JSON); "" when none are.

    Without it, "no measured point has a cost named device_hours" after ``import``
    of a CSV sends the person hunting for a typo in a name that is right.
    """
    lacking = [p for p in points if not math.isfinite(source.of_point(p))]
    imported = [
        p for p in lacking if isinstance(i := p.extra.get("import"), Mapping) and not i.get("costs")
    ]
    if not imported:
        return ""
    return (
        f"; {len(imported)} of the {len(lacking)} point(s) without it were imported from a file "
        "that carries no measured costs (a CSV or JSON file brings the metric only; "
        "`splinenas import` of the campaign's state file (.h5) brings its costs too)"
    )


def carried_costs(state: State, experiment: Experiment) -> set[str]:
    """The measured costs some measured point carries (:func:`costs_carried_by`)."""
    return costs_carried_by(measured(state), experiment.experiment.metric)


def costs_carried_by(points: Sequence[Point], metric: str) -> set[str]:
    """The measured costs some of ``points`` carries: device-hours and its results' metrics
    but the searched ``metric``, which is never a cost (:func:`_metric_as_cost`)."""
    names = {DEVICE_HOURS}.union(
        *(m for p in points if isinstance(m := p.extra.get("metrics"), Mapping))
    ) - {metric}
    return {n for n in names if any(math.isfinite(measured_cost(p, n)) for p in points)}


def cost_predictor(state: State, experiment: Experiment, source: CostSource) -> Predictor:
    """A known cost as computed (error 0), a measured one through a spline of the measured costs
    (:class:`CostModel`)."""
    if source.known is not None:
        known = source.known

        def computed(many: Sequence[Params]) -> tuple[np.ndarray, np.ndarray]:
            values = np.array([known(p) for p in many], dtype=float)
            return values, np.zeros(len(many))

        return computed
    model = cost_model(state, experiment, source)

    def predicted(many: Sequence[Params]) -> tuple[np.ndarray, np.ndarray]:
        from nas.search.spline import SplineError

        try:
            return model.predict_interval(list(many))
        except SplineError:  # singular cost data: unknown, as before enough is measured
            return np.full(len(many), math.nan), np.full(len(many), math.nan)

    return predicted


@dataclass(frozen=True)
class CostModel:
    """A spline of a measured cost, fitted to ``log(cost)`` when ``log`` (see :func:`cost_model`).

    Costs are positive and mostly products of widths and depths (device-hours
    grow as g1·g2·d1): a spline of the raw numbers bends below zero between
    measured points and predicted negative device-hours, a spline of their
    logarithm is exact for such a power law and can only predict positive costs.
    """

    spline: SplineOptimizer
    log: bool

    def predict_interval(self, many: Sequence[Params]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted costs and their errors, in the cost's units.

        On the log scale the spline predicts ``m`` with error ``e``; the cost is
        ``exp(m)`` and its error ``exp(m + e) - exp(m)``, the upper side of the
        log-scale interval ``[exp(m - e), exp(m + e)]`` (which is asymmetric): the
        bound rule reads ``cost + error`` (:func:`nas.control.constraints.candidate_rule`),
        which thus is the log-scale interval's upper end. A raw-scale fit (some
        measured cost is 0 or below) keeps its error and is clipped at 0.
        """
        values, errors = self.spline.predict_interval(list(many))
        if not self.log:
            return np.maximum(values, 0.0), errors
        with np.errstate(over="ignore"):
            middle = np.exp(values)
            return middle, np.exp(values + errors) - middle


def cost_model(state: State, experiment: Experiment, source: CostSource) -> CostModel:
    """A spline model of the measured cost ``source``, told every point that measured it:
    of its logarithm when every measured value is positive, else of the raw values.

    Its :meth:`CostModel.predict_interval` is NaN while too few points measured
    the cost to fit a spline.
    """
    from nas.search.optimizer import SplineOptimizer
    from nas.search.settings import SearchSettings

    cfg = experiment.experiment
    model = SplineOptimizer(state.space, SearchSettings(seed=cfg.seed, smoothing=cfg.smoothing))
    told = [(p.params, c) for p in measured(state) if math.isfinite(c := source.of_point(p))]
    log = bool(told) and all(cost > 0 for _, cost in told)
    for params, cost in told:
        model.tell(params, math.log(cost) if log else cost)
    return CostModel(model, log)


def cost_problems(experiment: Experiment, cwd: Path | None = None) -> list[ConfigError]:
    """Costs the experiment cannot compute: a failing ``[model] costs`` function, or a known
    cost named in a bound or the trade-off that neither a built-in family nor that function gives."""
    try:
        users = user_costs(experiment, cwd)
    except ConfigError as exc:
        return [exc]
    given = () if users is None else users.names
    return _metric_as_cost(experiment) + [
        ConfigError(
            experiment.source,
            "experiment",
            key,
            f"the known cost {name} needs a [model] table with a built-in family "
            "(or a [model] costs function that returns it) to compute it",
        )
        for key, name in _named(experiment)
        if is_known(name) and not has_cost_model(experiment) and name not in given
    ]


def _metric_as_cost(experiment: Experiment) -> list[ConfigError]:
    """A bound or trade-off on the searched metric itself: a front of the metric against
    itself holds every point, and a bound on it caps what the search maximises (or, for a
    loss, only restates the goal); either is a slip for a cost."""
    metric = experiment.experiment.metric
    return [
        ConfigError(
            experiment.source,
            "experiment",
            key,
            f"{name!r} is the searched metric; a bound or trade-off takes a cost "
            f"(a known one, {DEVICE_HOURS}, or another metric of the results)",
        )
        for key, name in _named(experiment)
        if name == metric
    ]


def cost_warnings(experiment: Experiment, cwd: Path | None = None) -> list[str]:
    """Names of measured costs that no result file of the built-in trainer carries (a typo?).

    None while the ``[model] costs`` function fails: :func:`cost_problems` reports that.
    """
    try:
        users = user_costs(experiment, cwd)
    except ConfigError:
        return []
    given = () if users is None else users.names
    return [
        f"{experiment.source}: [experiment] cost {name!r} is neither a known cost "
        f"({', '.join([*KNOWN_COSTS, *given])}) nor {DEVICE_HOURS}: it is read from the metrics "
        "of each result.json, and a point whose result lacks it has no cost"
        for name in dict.fromkeys(name for _, name in _named(experiment))
        if not is_known(name)
        and name not in (DEVICE_HOURS, experiment.experiment.metric)
        and name not in given
    ]


#: A bound on a known cost this many times above the largest cost of the box's corners
#: is taken for one written in another unit (MACs for GMACs, bytes for GiB).
UNIT_SLIP_FACTOR = 1e3


def bound_scale_warnings(experiment: Experiment, cwd: Path | None = None) -> list[str]:
    """Bounds on known costs far above every cost of the box's design corners: a bound in
    another unit (``gmacs = 1.8e9``, a network's MAC count) rules nothing out, silently.

    The corners (:meth:`~nas.search.space.SearchSpace.initial_design`) hold the
    widest and deepest networks, whose costs are the largest: a bound
    :data:`UNIT_SLIP_FACTOR` times above all of them is no bound.
    """
    warnings = []
    corners = experiment.space.initial_design()
    for name, limit in experiment.experiment.constraints.items():
        try:
            source = cost_source(experiment, name, cwd)
        except ConfigError:  # cost_problems names it
            continue
        if source.known is None:
            continue
        costs = [c for p in corners if math.isfinite(c := source.known(p))]
        largest = max(costs, default=math.nan)
        if largest > 0 and limit >= UNIT_SLIP_FACTOR * largest:
            what = f" ({KNOWN_COSTS[name][0]})" if name in KNOWN_COSTS else ""
            warnings.append(
                f"{experiment.source}: [experiment.constraints] {name} = {limit:g} is "
                f"{limit / largest:.3g} times the largest {name} of the box's corners "
                f"({largest:.4g}) and rules nothing out: is it in another unit? {name}{what}"
            )
    return warnings


def _named(experiment: Experiment) -> list[tuple[str, str]]:
    """(key, cost name) of every bound and of the trade-off, as ``[experiment]`` names them."""
    cfg = experiment.experiment
    named = [(f"constraints.{name}", name) for name in cfg.constraints]
    return named + ([("tradeoff", cfg.tradeoff)] if cfg.tradeoff is not None else [])
