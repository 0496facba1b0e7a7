"""Model families by name: flat search coordinates -> spec -> network.

The coordinates each family accepts, and how a flat parameter dict is checked
against them, live torch-free in :mod:`nas.models.coordinates` (``splinenas
init`` applies the same rule); here the checked values become a frozen spec
and the spec a module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from nas.models import ModelConfigError
from nas.models.biglittle import BigLittleSpec, build_biglittle
from nas.models.coordinates import coerce_params
from nas.models.coordinates import coordinate_names as coordinate_names  # re-exported
from nas.models.resnet import ResNetSpec, build_resnet

ModelSpec = ResNetSpec | BigLittleSpec


def _resnet_spec(p: Mapping[str, Any]) -> ResNetSpec:
    return ResNetSpec(
        block=p.get("block", "bottleneck"),
        depths=tuple(p[f"d{i}"] for i in range(1, 5)),
        widths=tuple(p[f"g{i}"] for i in range(1, 5)),
        stem=p["stem"],
        stem_width=p["c1"],
        maxpool=p["maxpool"],
        groups=p.get("groups", 1),
        width_per_group=p.get("width_per_group", 64),
        phi=p["phi"],
    )


def _biglittle_spec(p: Mapping[str, Any]) -> BigLittleSpec:
    return BigLittleSpec(
        depths=tuple(p[f"d{i}"] for i in range(1, 5)),
        widths=tuple(p[f"w{i}"] for i in range(1, 5)),
        alpha=p["alpha"],
        beta=p["beta"],
        cardinality=p["cardinality"],
        basewidth=p["basewidth"],
        phi=p["phi"],
    )


#: Each family's spec builder; its coordinates are :data:`~nas.models.coordinates.COORDINATES`.
SPEC_BUILDERS: dict[str, Callable[[Mapping[str, Any]], ModelSpec]] = {
    "resnet": _resnet_spec,
    "resnext": _resnet_spec,
    "blresnext": _biglittle_spec,
}


def spec_for(family: str, params: Mapping[str, object]) -> ModelSpec:
    """Validate ``params`` against ``family`` and return its frozen spec.

    Raises:
        ModelConfigError: unknown family, unknown or missing coordinate, a value
            of the wrong kind, or a combination the family cannot build.
    """
    values = coerce_params(family, params)
    try:
        return SPEC_BUILDERS[family](values)
    except ModelConfigError as exc:
        raise ModelConfigError(f"family {family!r}: {exc}") from None


def build_from_spec(spec: ModelSpec, num_classes: int) -> nn.Module:
    """Build the network of any family's spec."""
    if isinstance(spec, BigLittleSpec):
        return build_biglittle(spec, num_classes)
    return build_resnet(spec, num_classes)


def build_model(family: str, params: Mapping[str, object], num_classes: int) -> nn.Module:
    """Build one candidate network of ``family`` from its flat parameter dict."""
    return build_from_spec(spec_for(family, params), num_classes)
