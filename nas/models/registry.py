"""Model families by name: flat search coordinates -> spec -> network.

An experiment names a family and gives a flat parameter dict: its fixed model
settings merged with the search coordinates of one candidate. Each family
declares its coordinates as data (kind, default, allowed values); a value that
is required but absent, unknown, or of the wrong kind is a
:class:`~nas.models.ModelConfigError` that names it and lists the valid names.
Search dims arrive as floats even when integral (``64.0``), so integers are
accepted from any integral number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from nas.models import ModelConfigError
from nas.models.biglittle import BigLittleSpec, build_biglittle
from nas.models.resnet import ResNetSpec, build_resnet

ModelSpec = ResNetSpec | BigLittleSpec

_REQUIRED = object()
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Coordinate:
    """One named model parameter: ``kind`` is ``int``, ``float``, ``bool`` or ``choice``."""

    name: str
    kind: str
    default: object = _REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def coerce(self, family: str, value: object) -> object:
        """``value`` as this coordinate's kind, or a ModelConfigError naming it."""
        converted = _CONVERTERS[self.kind](value, self.choices)
        if converted is None:
            expected = f"one of {list(self.choices)}" if self.choices else f"a {self.kind}"
            raise ModelConfigError(
                f"family {family!r}: coordinate {self.name!r} must be {expected}, got {value!r}"
            )
        return converted


def _to_int(value: object, _: tuple[str, ...]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def _to_float(value: object, _: tuple[str, ...]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value) if math.isfinite(value) else None


def _to_bool(value: object, _: tuple[str, ...]) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _to_choice(value: object, choices: tuple[str, ...]) -> str | None:
    return value if isinstance(value, str) and value in choices else None


_CONVERTERS: dict[str, Callable[[object, tuple[str, ...]], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "choice": _to_choice,
}


def _stages(prefix: str) -> tuple[Coordinate, ...]:
    return tuple(Coordinate(f"{prefix}{i}", "int") for i in range(1, 5))


_RESNET_COMMON = (
    Coordinate("c1", "int"),
    *_stages("g"),
    *_stages("d"),
    Coordinate("stem", "choice", "conv7", ("conv7", "basic")),
    Coordinate("maxpool", "bool", True),
    Coordinate("phi", "float", 1.0),
)


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


@dataclass(frozen=True)
class Family:
    """A family's coordinates and the function that turns coerced values into its spec."""

    coordinates: tuple[Coordinate, ...]
    make_spec: Callable[[Mapping[str, Any]], ModelSpec]


FAMILIES: dict[str, Family] = {
    "resnet": Family(
        (Coordinate("block", "choice", choices=("basic", "bottleneck")), *_RESNET_COMMON),
        _resnet_spec,
    ),
    "resnext": Family(
        (*_RESNET_COMMON, Coordinate("groups", "int"), Coordinate("width_per_group", "int")),
        _resnet_spec,
    ),
    "blresnext": Family(
        (
            *_stages("w"),
            *_stages("d"),
            Coordinate("alpha", "int"),
            Coordinate("beta", "int"),
            Coordinate("cardinality", "int"),
            Coordinate("basewidth", "int"),
            Coordinate("phi", "float", 1.0),
        ),
        _biglittle_spec,
    ),
}


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown model family {name!r}; expected one of {sorted(FAMILIES)}"
        ) from None


def coordinate_names(family: str) -> tuple[str, ...]:
    """Every parameter name ``family`` accepts, required ones first in declaration order."""
    coordinates = _family(family).coordinates
    return tuple(c.name for c in coordinates if c.required) + tuple(
        c.name for c in coordinates if not c.required
    )


def spec_for(family: str, params: Mapping[str, object]) -> ModelSpec:
    """Validate ``params`` against ``family`` and return its frozen spec.

    Raises:
        ModelConfigError: unknown family, unknown or missing coordinate, a value
            of the wrong kind, or a combination the family cannot build.
    """
    fam = _family(family)
    valid = coordinate_names(family)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"family {family!r}: unknown coordinate(s) {unknown}; valid names are {list(valid)}"
        )
    missing = [c.name for c in fam.coordinates if c.required and c.name not in params]
    if missing:
        raise ModelConfigError(
            f"family {family!r}: missing coordinate(s) {missing}; valid names are {list(valid)}"
        )
    values = {
        c.name: c.coerce(family, params[c.name]) if c.name in params else c.default
        for c in fam.coordinates
    }
    try:
        return fam.make_spec(values)
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
