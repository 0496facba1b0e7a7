"""The costs a search can constrain or trade off, by name, and where each number comes from.

*Known* costs are computed before training from the parameters alone, with
the cost model of the built-in families (:mod:`nas.models.cost`), exactly
the numbers ``splinenas cost`` prints: ``gmacs`` (multiply-accumulates per
image / 1e9), ``params_m`` (parameters / 1e6) and ``memory_gib`` (peak
training memory per device). *Measured* costs exist only once a point is
trained: ``device_hours`` (from its result file) and any other metric of
its ``result.json`` (stored with the point at ingest). A search predicts a
measured cost of an untrained candidate through a spline of the measured
ones (:mod:`nas.control.frontier`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.config import ConfigError, Experiment
from nas.record.state import Point
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.models.cost import Cost

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
    classes = num_classes if num_classes is not None else experiment.num_classes()
    if classes is None:
        raise ConfigError(
            experiment.source, "model", "num_classes", "not set; the cost model needs it"
        )
    from nas.models.cost import estimate  # torch: only when a cost is asked for

    resolution = experiment.data.resolution if experiment.data is not None else 224
    return estimate(
        experiment.model.family,
        {**experiment.model.fixed, **params},
        classes,
        resolution=resolution,
        batch_per_gpu=experiment.train.batch_per_gpu,
        amp=experiment.train.amp != "off",
    )


def estimator(experiment: Experiment) -> Callable[[Params], Cost | None]:
    """A cached :func:`estimate_for`; None for parameters that describe no network."""

    @functools.lru_cache(maxsize=8192)
    def cached(key: tuple[tuple[str, Any], ...]) -> Cost | None:
        from nas.models import ModelConfigError

        try:
            return estimate_for(experiment, dict(key))
        except ModelConfigError as exc:
            log.info("candidate %s describes no network: %s", dict(key), exc)
            return None

    return lambda params: cached(tuple(sorted(params.items())))


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


def cost_source(experiment: Experiment, name: str) -> CostSource:
    """The source of cost ``name`` under ``experiment``.

    Raises:
        ConfigError: a known cost without a built-in ``[model]`` family to compute it.
    """
    if not is_known(name):
        return CostSource(name, None)
    if experiment.model is None:
        raise ConfigError(
            experiment.source, "model", None, f"missing table; the known cost {name} needs it"
        )
    return CostSource(name, known_cost(experiment, name))
