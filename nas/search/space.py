"""Search space: dimensions, the unit-box mapping, snapping and the initial design.

All fitting and searching happens in the unit box: x~ = (x - low) / (high -
low) per numeric dimension, after a logarithm where ``log`` is set. Points
leave the unit box only through :meth:`SearchSpace.from_unit`, which snaps
them to legal values. Parameter dicts hold plain ``int``/``float``/``str``
values so they serialise to JSON unchanged.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.numbers import as_number, finite_number

DIM_TYPES = ("int", "float", "categorical")
#: Above this many combinations of roundings, :meth:`SearchSpace.lattice_neighbours`
#: varies one integer coordinate at a time.
MAX_ROUNDINGS = 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: The largest magnitude of an int dimension's bound. The search computes in float64,
#: which holds every integer up to 2**53 exactly but not all beyond: a box up to
#: 99999999999999999999 would get the design point 100000000000000000000, outside it.
MAX_EXACT_INT = 2**53

Value = int | float | str
Params = dict[str, Value]


class SpaceError(UserError, ValueError):
    """An invalid dimension, space or parameter set; ``key``: the dimension's field at fault."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Dim:
    """One dimension of the search space.

    Numeric dims (``int``, ``float``) need ``low < high``; ``log`` maps them
    logarithmically to the unit box and needs ``low > 0``. Categorical dims
    need distinct ``choices`` and no bounds.
    """

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Value, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpaceError(f"dimension name {self.name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if self.type not in DIM_TYPES:
            raise SpaceError(
                f"dimension {self.name!r}: type {self.type!r} is not one of {DIM_TYPES}"
            )
        object.__setattr__(self, "choices", tuple(_plain_choice(c) for c in self.choices))
        if self.type == "categorical":
            self._check_categorical()
        else:
            self._check_numeric()

    def _check_categorical(self) -> None:
        if self.low is not None or self.high is not None or self.log:
            raise SpaceError(f"categorical dimension {self.name!r} takes no low/high/log")
        if len(self.choices) < 2:
            raise SpaceError(
                f"categorical dimension {self.name!r} needs at least 2 choices, got "
                f"{list(self.choices)}; a single value is not searched: fix it instead",
                key="choices",
            )
        for choice in self.choices:
            if isinstance(choice, bool) or not isinstance(choice, int | float | str):
                raise SpaceError(
                    f"dimension {self.name!r}: choice {choice!r} must be a str, int or float"
                )
            if isinstance(choice, float) and math.isnan(choice):
                raise SpaceError(
                    f"dimension {self.name!r}: choice {choice!r} can never be given: "
                    "NaN equals no value, itself included"
                )
        if len(set(self.choices)) != len(self.choices):
            raise SpaceError(
                f"dimension {self.name!r}: choices {list(self.choices)} are not distinct"
            )

    def _check_numeric(self) -> None:
        if self.choices:
            raise SpaceError(f"{self.type} dimension {self.name!r} takes no choices")
        for bound in ("low", "high"):
            given = getattr(self, bound)
            value = as_number(given)  # numpy's scalars too: bounds computed with numpy
            if value is None:
                raise SpaceError(
                    f"dimension {self.name!r}: {bound} must be a number, got {given!r}"
                )
            if not finite_number(value):
                raise SpaceError(f"dimension {self.name!r}: {bound} must be finite, got {given!r}")
            if self.type == "int" and value != int(value):
                raise SpaceError(
                    f"int dimension {self.name!r}: {bound} = {value!r} is not integral"
                )
            if self.type == "int" and abs(int(value)) > MAX_EXACT_INT:
                raise SpaceError(
                    f"int dimension {self.name!r}: {bound} = {int(value)} is beyond ±2**53 "
                    f"({MAX_EXACT_INT}), the largest integers the search computes with "
                    "exactly; use a float dimension (with log = true for a wide range)",
                    key=bound,
                )
            cast = int(value) if self.type == "int" else float(value)
            object.__setattr__(self, bound, cast)
        if not self.low < self.high:
            raise SpaceError(
                f"dimension {self.name!r}: low = {self.low} must be < high = {self.high}"
            )
        if not math.isfinite(float(self.high) - float(self.low)):
            raise SpaceError(
                f"dimension {self.name!r}: [{self.low}, {self.high}] is too wide to compute with "
                f"(its width overflows a float)"
            )
        if self.log and self.low <= 0:
            raise SpaceError(f"dimension {self.name!r}: log scale needs low > 0, got {self.low}")

    @property
    def is_numeric(self) -> bool:
        """True for int and float dimensions."""
        return self.type != "categorical"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        if self.is_numeric:
            return {
                "name": self.name,
                "type": self.type,
                "low": self.low,
                "high": self.high,
                "log": self.log,
            }
        return {"name": self.name, "type": self.type, "choices": list(self.choices)}


class SearchSpace:
    """An ordered set of dimensions with the unit-box mapping of its numeric part."""

    def __init__(self, dims: Sequence[Dim]) -> None:
        self.dims: tuple[Dim, ...] = tuple(dims)
        if not self.dims:
            raise SpaceError("a search space needs at least one dimension")
        names = [dim.name for dim in self.dims]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise SpaceError(f"duplicate dimension names: {duplicated}")
        self.names: tuple[str, ...] = tuple(names)
        self.numeric: tuple[Dim, ...] = tuple(dim for dim in self.dims if dim.is_numeric)
        self.categorical: tuple[Dim, ...] = tuple(dim for dim in self.dims if not dim.is_numeric)
        if not self.numeric:
            raise SpaceError("a search space needs at least one numeric (int or float) dimension")
        self.d: int = len(self.numeric)
        self._lo = np.array([_forward(dim, dim.low) for dim in self.numeric])
        self._width = np.array([_forward(dim, dim.high) for dim in self.numeric]) - self._lo
        self._is_int = np.array([dim.type == "int" for dim in self.numeric])
        self._is_log = np.array([dim.log for dim in self.numeric])
        self._lows = np.array([dim.low for dim in self.numeric], dtype=np.float64)  # as given
        self._highs = np.array([dim.high for dim in self.numeric], dtype=np.float64)

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.dims)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.dims == other.dims

    def __hash__(self) -> int:
        return hash(self.dims)

    # -- parameter dicts -------------------------------------------------------------

    def snap(self, params: Mapping[str, Any]) -> Params:
        """Legal parameters: ints rounded, numbers clipped to the box, choices checked.

        Raises
        ------
        SpaceError
            Missing or unknown keys (all named), non-numeric or non-finite
            numeric values, a categorical value that is not a choice.
        """
        self._check_keys(params)
        for dim in self.numeric:
            value = params[dim.name]
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise SpaceError(f"parameter {dim.name!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SpaceError(f"parameter {dim.name!r} must be finite, got {value!r}")
        values = np.array([float(params[dim.name]) for dim in self.numeric])
        return self._assemble(self._snap_values(values), self._category(params))

    def snap_report(self, params: Mapping[str, Any]) -> tuple[Params, list[str], list[str]]:
        """The snapped parameters and what snapping changed, for people.

        Returns ``(snapped, notes, outside)``: ``notes`` names every value that
        changed ("g1=2 stored as 4, the lower bound"), ``outside`` the subset
        that lay outside the box (callers refuse those unless asked to snap).

        Raises
        ------
        SpaceError
            As :meth:`snap`.
        """
        snapped = self.snap(params)
        notes, outside = [], []
        for dim in self.numeric:
            given, stored = float(params[dim.name]), snapped[dim.name]
            if given == stored:
                continue
            bound = _passed_bound(dim, given)
            if bound is not None:
                note = f"{dim.name}={params[dim.name]} stored as {stored}, the {bound} bound"
                outside.append(note)
            else:
                note = f"{dim.name}={params[dim.name]} stored as {stored}, the nearest integer"
            notes.append(note)
        return snapped, notes, outside

    def inside(self, params: Mapping[str, Any], remedy: str = "") -> tuple[Params, list[str]]:
        """The snapped parameters of a point in the box, and :meth:`snap_report`'s notes of
        the values snapping moved onto the lattice; ``remedy`` ends the refusal of a
        value outside the box (how the caller's caller asks for one there).

        A value outside the box is refused, as the command line refuses it: clipped,
        a measurement made at width 1000 was filed under the bound 256 and fitted there.

        Raises
        ------
        SpaceError
            As :meth:`snap`, or a value outside the box (each named with its value).
        """
        snapped, notes, _ = self.snap_report(params)
        beyond = [
            f"{dim.name}={params[dim.name]}"
            for dim in self.numeric
            if _passed_bound(dim, float(params[dim.name])) is not None
        ]
        if beyond:
            box = self.box_text()
            raise SpaceError(f"{'; '.join(beyond)} outside the box ({box}){remedy}")
        return snapped, notes

    def box_text(self) -> str:
        """``width in [16, 256], mult in [0.5, 2.0]``: the numeric dimensions' bounds, for people."""
        return ", ".join(f"{dim.name} in [{dim.low}, {dim.high}]" for dim in self.numeric)

    def to_unit_unsnapped(self, params: Mapping[str, Any]) -> np.ndarray:
        """Unit-box coordinates (d,) of the numeric values as given: no rounding or clipping.

        Outside [0, 1] where ``params`` leave the box (extrapolation).
        """
        self.snap(params)  # validates keys, types and choices
        values = np.array([float(params[dim.name]) for dim in self.numeric])
        logs = zip(self.numeric, values, self._is_log, strict=True)
        bad = [dim.name for dim, value, log in logs if log and value <= 0]
        if bad:
            given = ", ".join(f"{name}={params[name]}" for name in bad)
            raise SpaceError(
                f"{given}: a log-scale dimension needs a positive value, even to extrapolate"
            )
        return self._values_to_unit(values)

    def _check_keys(self, params: Mapping[str, Any]) -> None:
        missing = [name for name in self.names if name not in params]
        unknown = sorted(str(key) for key in params if key not in self.names)
        if missing or unknown:
            raise SpaceError(
                f"parameters do not match the space: missing {missing}, unknown {unknown}"
            )

    def _category(self, params: Mapping[str, Any]) -> tuple[Value, ...]:
        for dim in self.categorical:
            value = params[dim.name]
            if isinstance(value, bool | np.bool_) or value not in dim.choices:
                raise SpaceError(
                    f"parameter {dim.name!r} = {value!r} is not one of {list(dim.choices)}"
                )
        return tuple(dim.choices[dim.choices.index(params[dim.name])] for dim in self.categorical)

    def key(self, params: Mapping[str, Any]) -> tuple[Value, ...]:
        """Hashable identity of the snapped parameters, in dimension order (deduplication)."""
        snapped = self.snap(params)
        return tuple(snapped[name] for name in self.names)

    def category_of(self, params: Mapping[str, Any]) -> tuple[Value, ...]:
        """Values of the categorical dimensions, in their order (``()`` without any)."""
        self._check_keys(params)
        return self._category(params)

    def categories(self) -> list[tuple[Value, ...]]:
        """Every combination of categorical values; ``[()]`` without categorical dims."""
        return list(itertools.product(*(dim.choices for dim in self.categorical)))

    # -- unit box --------------------------------------------------------------------

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Unit-box coordinates (d,) of the numeric parameters (snapped first)."""
        snapped = self.snap(params)
        values = np.array([float(snapped[dim.name]) for dim in self.numeric])
        return self._values_to_unit(values)

    def to_unit_many(self, many: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Unit-box coordinates (N, d) of several parameter dicts."""
        out = np.empty((len(many), self.d))
        for row, params in enumerate(many):
            out[row] = self.to_unit(params)
        return out

    def from_unit(self, x: Sequence[float] | np.ndarray, category: Sequence[Value] = ()) -> Params:
        """Legal parameters for unit-box point ``x`` (clipped) in the given category."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape != (self.d,):
            raise SpaceError(f"expected a unit-box point of shape ({self.d},), got {arr.shape}")
        category = tuple(category)
        if len(category) != len(self.categorical):
            raise SpaceError(
                f"expected a category of {len(self.categorical)} values "
                f"{[dim.name for dim in self.categorical]}, got {category!r}"
            )
        params = dict(zip((dim.name for dim in self.categorical), category, strict=True))
        cat = self._category(params)
        return self._assemble(self._snap_values(self._unit_to_values(arr[None, :])[0]), cat)

    def snap_unit(self, x: np.ndarray) -> np.ndarray:
        """Vectorised snapping of unit-box points (M, d) to the unit coordinates of legal values."""
        values = self._unit_to_values(np.asarray(x, dtype=np.float64))
        return self._values_to_unit(self._snap_values(values))

    def lattice_neighbours(self, x: np.ndarray) -> np.ndarray:
        """Legal unit points around unit point ``x`` (d,), as (M, d); ``x`` snapped is among them.

        Each integer coordinate takes its value rounded down and up, or, where
        it is integral already, one step down, itself and one step up (within
        the bounds); float coordinates keep their value. All combinations are
        returned when there are at most ``MAX_ROUNDINGS``, else the rounded
        point with one coordinate changed at a time.
        """
        values = self._unit_to_values(np.asarray(x, dtype=np.float64).reshape(1, self.d))[0]
        base = self._snap_values(values)
        options = []
        for k in np.flatnonzero(self._is_int):
            dim = self.numeric[k]
            value = values[k]
            if abs(value - round(value)) <= 1e-9 * max(1.0, abs(value)):
                value = round(value)  # integral up to the unit-box round trip
            low, high = math.floor(value), math.ceil(value)
            steps = {low, high} if low != high else {low - 1, low, low + 1}
            options.append((k, sorted(v for v in steps if dim.low <= v <= dim.high)))
        if math.prod(len(opts) for _, opts in options) <= MAX_ROUNDINGS:
            rows = np.repeat(base[None, :], 1, axis=0)
            for k, opts in options:
                rows = np.repeat(rows, len(opts), axis=0)
                rows[:, k] = np.tile(opts, len(rows) // len(opts))
        else:
            rows = [base] + [_replaced(base, k, v) for k, opts in options for v in opts]
        return self._values_to_unit(np.asarray(rows, dtype=np.float64))

    def unit_distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Euclidean distance in the unit box; infinite between different categories."""
        if self.category_of(a) != self.category_of(b):
            return math.inf
        return float(np.linalg.norm(self.to_unit(a) - self.to_unit(b)))

    def _values_to_unit(self, values: np.ndarray) -> np.ndarray:
        forward = np.where(self._is_log, np.log(np.where(self._is_log, values, 1.0)), values)
        return (forward - self._lo) / self._width

    def _unit_to_values(self, x: np.ndarray) -> np.ndarray:
        """The values of unit points; a face of the box is its bound exactly.

        ``exp(log(low) + 1 * (log(high) - log(low)))`` is 0.49999999999999994
        for a high of 0.5: a design corner would reach the command as that, and
        ``add lr=0.5`` would not find it.
        """
        unit = np.clip(x, 0.0, 1.0)
        forward = self._lo + unit * self._width
        values = np.where(self._is_log, np.exp(np.where(self._is_log, forward, 0.0)), forward)
        return np.where(unit == 0.0, self._lows, np.where(unit == 1.0, self._highs, values))

    def _snap_values(self, values: np.ndarray) -> np.ndarray:
        rounded = np.where(self._is_int, np.floor(values + 0.5), values)
        return np.clip(rounded, self._lows, self._highs)

    def _assemble(self, values: np.ndarray, category: tuple[Value, ...]) -> Params:
        numeric = {
            dim.name: int(v) if dim.type == "int" else float(v)
            for dim, v in zip(self.numeric, values.tolist(), strict=True)
        }
        categorical = dict(zip((dim.name for dim in self.categorical), category, strict=True))
        return {
            name: numeric[name] if name in numeric else categorical[name] for name in self.names
        }

    # -- design and editing ----------------------------------------------------------

    def initial_design(self) -> list[Params]:
        """The 2d+3 support points of DESIGN section 1 for every category combination.

        In unit coordinates: all ones, all zeros, the centre (0.5, the
        geometric mean on log dims), then e_k flipped low in an all-high
        point for each k, then high in an all-low point for each k. Points
        are snapped and deduplicated with their order kept.
        """
        design: dict[tuple[Value, ...], Params] = {}
        for category in self.categories():
            for row in self.corner_unit():
                params = self.from_unit(row, category)
                design.setdefault(self.key(params), params)
        return list(design.values())

    def corner_unit(self) -> np.ndarray:
        """The 2d+3 unit rows of :meth:`initial_design`, in its order (before snapping)."""
        eye = np.eye(self.d)
        return np.vstack([np.ones(self.d), np.zeros(self.d), np.full(self.d, 0.5), 1.0 - eye, eye])

    def with_bounds(
        self, name: str, low: float | None = None, high: float | None = None
    ) -> SearchSpace:
        """A copy with new bounds for numeric dimension ``name`` (growing or refining the box)."""
        if name not in self.names:
            raise SpaceError(f"unknown dimension {name!r}; known: {list(self.names)}")
        dims = []
        for dim in self.dims:
            if dim.name == name:
                if not dim.is_numeric:
                    raise SpaceError(f"dimension {name!r} is categorical and has no bounds")
                dim = Dim(
                    dim.name,
                    dim.type,
                    dim.low if low is None else low,
                    dim.high if high is None else high,
                    dim.log,
                )
            dims.append(dim)
        return SearchSpace(dims)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; :meth:`from_dict` inverts it."""
        return {"dims": [dim.to_dict() for dim in self.dims]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Rebuild a space from :meth:`to_dict` output, naming any malformed entry."""
        if not isinstance(data, Mapping) or set(data) != {"dims"}:
            raise SpaceError(f"a space description is {{'dims': [...]}}, got {data!r}")
        if not isinstance(data["dims"], list):
            raise SpaceError(f"'dims' must be a list, got {type(data['dims']).__name__}")
        dims = []
        allowed = {"name", "type", "low", "high", "log", "choices"}
        for position, entry in enumerate(data["dims"]):
            if not isinstance(entry, Mapping):
                raise SpaceError(f"dims[{position}] must be a mapping, got {entry!r}")
            unknown = sorted(set(entry) - allowed)
            if unknown:
                raise SpaceError(
                    f"dims[{position}]: unknown keys {unknown}; allowed {sorted(allowed)}"
                )
            if "name" not in entry or "type" not in entry:
                raise SpaceError(f"dims[{position}] needs 'name' and 'type'")
            fields = dict(entry)
            fields["choices"] = tuple(fields.get("choices", ()))
            dims.append(Dim(**fields))
        return cls(dims)


def _plain_choice(choice: Any) -> Any:
    """A categorical choice as Python holds it: choices listed with numpy (``np.arange``,
    ``np.unique``) come as numpy scalars, which equal Python's but were refused as neither
    str, int nor float. Anything else is left for the dimension's check to name."""
    if isinstance(choice, str):
        return str(choice)
    number = as_number(choice)
    return choice if number is None else number


def _passed_bound(dim: Dim, value: float) -> str | None:
    """``"lower"`` or ``"upper"``: the bound of numeric ``dim`` that ``value`` lies beyond
    (None inside the box)."""
    if value < dim.low:
        return "lower"
    return "upper" if value > dim.high else None


def _replaced(values: np.ndarray, k: int, value: float) -> np.ndarray:
    out = values.copy()
    out[k] = value
    return out


def _forward(dim: Dim, value: float) -> float:
    """Bound in the coordinate that is mapped linearly to [0, 1]."""
    return math.log(value) if dim.log else float(value)


def params_text(params: Mapping[str, Any]) -> str:
    """``k=v,k=v`` as the command line takes it back (booleans as true/false)."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    return ",".join(f"{key}={text(value)}" for key, value in params.items())


def indicator_count(space: SearchSpace) -> int:
    """Indicator coordinates of the categories' shared model (:mod:`nas.search.categories`):
    one per non-first choice of each categorical dimension."""
    return sum(len(dim.choices) - 1 for dim in space.categorical)
