"""The coordinates each model family accepts, as data and without torch.

An experiment names a family and gives a flat parameter dict: its fixed model
settings merged with the search coordinates of one candidate. Each family
declares its coordinates here (kind, default, allowed values), so that the
trainer building a network (:mod:`nas.models.registry`) and ``splinenas init``
checking an experiment on a login node apply the same rule: a name that is
unknown, a required one that is absent, or a value of the wrong kind is a
:class:`~nas.models.ModelConfigError` that names it and lists the valid names.
Search dims arrive as floats even when integral (``64.0``), so integers are
accepted from any integral number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.models import ModelConfigError

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
    #: Inclusive bounds of an ``int`` or ``float`` coordinate (None: unbounded).
    low: float | None = None
    high: float | None = None
    #: A channel count that the width multiplier ``phi`` scales; :data:`MAX_WIDTH`
    #: bounds it after scaling too (:func:`nas.models.specs.spec_for`).
    width: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def coerce(self, family: str, value: object) -> object:
        """``value`` as this coordinate's kind, or a ModelConfigError naming it."""
        converted = _CONVERTERS[self.kind](value, self.choices)
        if converted is None or not self._within(converted):
            article = "an" if self.kind == "int" else "a"
            expected = f"one of {list(self.choices)}" if self.choices else f"{article} {self.kind}"
            if converted is not None:
                expected += f" in [{self.low}, {self.high}]"
            raise ModelConfigError(
                f"family {family!r}: coordinate {self.name!r} must be {expected}, got {value!r}"
            )
        return converted

    def _within(self, value: object) -> bool:
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        return not isinstance(value, int | float) or low <= value <= high


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


#: Most blocks in one stage: ResNet-1202 (He et al. 2016) has 200.
MAX_DEPTH = 256
#: Widest stage in channels: 32x a ResNet-50's widest bottleneck input.
MAX_WIDTH = 65536


def _width(name: str) -> Coordinate:
    return Coordinate(name, "int", low=1, high=MAX_WIDTH, width=True)


def _widths(prefix: str) -> tuple[Coordinate, ...]:
    return tuple(_width(f"{prefix}{i}") for i in range(1, 5))


def _depths() -> tuple[Coordinate, ...]:
    return tuple(Coordinate(f"d{i}", "int", low=1, high=MAX_DEPTH) for i in range(1, 5))


_RESNET_COMMON = (
    _width("c1"),
    *_widths("g"),
    *_depths(),
    Coordinate("stem", "choice", "conv7", ("conv7", "basic")),
    Coordinate("maxpool", "bool", True),
    Coordinate("phi", "float", 1.0),
)

#: Every family's coordinates, in declaration order.
COORDINATES: dict[str, tuple[Coordinate, ...]] = {
    "resnet": (Coordinate("block", "choice", choices=("basic", "bottleneck")), *_RESNET_COMMON),
    "resnext": (*_RESNET_COMMON, Coordinate("groups", "int"), Coordinate("width_per_group", "int")),
    "blresnext": (
        *_widths("w"),
        *_depths(),
        Coordinate("alpha", "int"),
        Coordinate("beta", "int"),
        Coordinate("cardinality", "int"),
        Coordinate("basewidth", "int"),
        Coordinate("phi", "float", 1.0),
    ),
}


def coordinates_of(family: str) -> tuple[Coordinate, ...]:
    """The coordinates of ``family``, or a ModelConfigError listing the families."""
    try:
        return COORDINATES[family]
    except KeyError:
        raise ModelConfigError(
            f"unknown model family {family!r}; expected one of {sorted(COORDINATES)}"
        ) from None


def coordinate_names(family: str) -> tuple[str, ...]:
    """Every parameter name ``family`` accepts, required ones first in declaration order."""
    coordinates = coordinates_of(family)
    return tuple(c.name for c in coordinates if c.required) + tuple(
        c.name for c in coordinates if not c.required
    )


def unknown_names(family: str, names: Iterable[str]) -> list[str]:
    """The ``names`` that are no coordinate of ``family``, sorted."""
    return sorted(set(names) - set(coordinate_names(family)))


def missing_names(family: str, names: Iterable[str]) -> list[str]:
    """The required coordinates of ``family`` that ``names`` lacks, in declaration order."""
    given = set(names)
    return [c.name for c in coordinates_of(family) if c.required and c.name not in given]


def coerce_params(family: str, params: Mapping[str, object]) -> dict[str, object]:
    """Every coordinate of ``family``: the given value in its kind, else its default.

    Raises:
        ModelConfigError: unknown family, unknown or missing coordinate, a value
            of the wrong kind; the message names it and lists the valid names.
    """
    valid = list(coordinate_names(family))
    unknown = unknown_names(family, params)
    if unknown:
        raise ModelConfigError(
            f"family {family!r}: unknown coordinate(s) {unknown}; valid names are {valid}"
        )
    missing = missing_names(family, params)
    if missing:
        raise ModelConfigError(
            f"family {family!r}: missing coordinate(s) {missing}; valid names are {valid}"
        )
    return {
        c.name: c.coerce(family, params[c.name]) if c.name in params else c.default
        for c in coordinates_of(family)
    }


def width_names(family: str) -> tuple[str, ...]:
    """The coordinates of ``family`` that ``phi`` multiplies, in declaration order."""
    return tuple(c.name for c in coordinates_of(family) if c.width)


def coordinate(family: str, name: str) -> Coordinate:
    """The coordinate ``name`` of ``family`` (a name :func:`unknown_names` accepts)."""
    return next(c for c in coordinates_of(family) if c.name == name)
