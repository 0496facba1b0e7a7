"""``result.json``: the measurement a training leaves for the controller.

Rank 0 writes it atomically when training completes, in the point folder
(contract version 1, README "Search your own model"). The minimal form is
enough::

    {"metrics": {"score": 0.93}}

``metrics`` must hold the experiment's ``[experiment] metric`` as a finite
number within its valid range (``value_range``; [0, 100] for ``top1`` and
``top5``); other metrics are kept when they are finite numbers. Every other
key is optional and checked when present; the built-in trainer writes them
all (format 1)::

    {
      "format": 1, "point_id": 7, "params": {...},
      "metrics": {"top1": 71.3, "top5": 90.2},   # percent, whole validation split
      "rank": 0,                                 # who wrote it: only rank 0 may
      "val_images": 50000, "bad_images": 0,
      "epochs": 60, "world_size": 204,
      "device": "cuda",                          # "cuda", "xpu", "cpu", ...
      "device_hours": 1234.5,                    # wall hours x ranks (GPU-hours on cuda/xpu)
      "wall_seconds": 21785.0,                   # all segments together
      "started": "2024-01-01T00:00:00+00:00", "finished": "...",
      "package_version": "0.1.0",
      "input_hash": "sha256 of point.json",
      "images_per_second": 2510.4,               # per rank, steady-state steps
      "data_wait_share": 0.03,                   # share of that time spent
                                                 #   waiting for the data loader
      "bus_bandwidth_gbps": 15.9,                # the last segment's start-up
      "expected_bus_bandwidth_gbps": 8.0         #   all-reduce and the site's expectation
    }

A ``point_id`` or ``params`` that is present must be this point's; a
``rank`` other than 0 is refused. ``NaN`` and ``Infinity`` (Python's
``json.dump`` writes them) in another metric or in an optional figure
(``device_hours``, ``images_per_second``, ...) do not cost the measurement:
that entry is dropped and named in :attr:`Result.dropped`, which the
controller logs with the result. The controller calls
:func:`validate_result`; any :class:`ResultError` means the file is set aside
with the reason and the point is failed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import ConfigError, option, section_from_dict
from nas.numbers import amount_text, finite_number, nonfinite_float
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import RESULT_FILE
from nas.pointdir.outcome import (
    DIVERGED,
    now_iso,
    write_contract_failure,
    write_divergence,
    write_error,
    write_progress,
)

__all__ = [
    "DIVERGED",
    "Result",
    "ResultError",
    "now_iso",
    "validate_result",
    "write_contract_failure",
    "write_divergence",
    "write_error",
    "write_progress",
    "write_result",
]

RESULT_FORMAT = 1


class ResultError(ValueError):
    """A result file the controller must not trust; ``reason`` says why.

    ``contract`` marks a file that breaks the trainer contract in a way that
    training again the same way cannot mend (no metric, not a number, not
    written by rank 0); the controller does not retry those.
    """

    def __init__(self, path: str | Path, reason: str, *, contract: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.contract = str(path), reason, contract


#: The speed figures of a result that ``status`` and ``show`` print.
PACE_FIGURES = (
    "images_per_second",
    "data_wait_share",
    "device_hours",
    "bus_bandwidth_gbps",
    "expected_bus_bandwidth_gbps",
)


#: torch device types whose hours count as GPU hours: CUDA (NVIDIA, AMD ROCm) and Intel XPU.
GPU_DEVICE_TYPES = frozenset({"cuda", "xpu"})


@dataclass(frozen=True)
class Measured:
    """What a valid result must carry: the searched metric, within its valid range."""

    metric: str = "top1"
    valid: tuple[float, float] | None = (0.0, 100.0)


#: The default search's: top-1 accuracy in percent.
TOP1 = Measured()


@dataclass(frozen=True)
class Result:
    """One validated measurement; only ``metrics`` is required of a trainer."""

    metrics: dict[str, float]
    point_id: int | None = None
    params: dict[str, Any] | None = None
    rank: int | None = None
    val_images: int | None = None
    bad_images: int | None = None
    epochs: int | None = None
    world_size: int | None = None
    device: str | None = None
    device_hours: float | None = None
    wall_seconds: float | None = None
    started: str | None = None
    finished: str | None = None
    package_version: str | None = None
    input_hash: str | None = None
    images_per_second: float | None = None
    data_wait_share: float | None = None
    bus_bandwidth_gbps: float | None = None
    expected_bus_bandwidth_gbps: float | None = None
    #: What the file held that is not kept, as ``key (value)``: not part of the file's document.
    dropped: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def pace(self) -> dict[str, float]:
        """The speed figures for people (:func:`read_pace`'s), stored in the state at ingest."""
        figures = {key: getattr(self, key) for key in PACE_FIGURES}
        return {key: float(value) for key, value in figures.items() if value is not None}

    @property
    def gpu_hours(self) -> float:
        """Device-hours spent on GPUs (``device`` "cuda" or "xpu"); other runs cost no GPU budget."""
        return self.device_hours or 0.0 if self.device in GPU_DEVICE_TYPES else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The file's document; optional figures that were not measured are left out."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        del fields["dropped"]
        return {"format": RESULT_FORMAT, **fields}


def write_result(directory: str | Path, result: Result) -> Path:
    """Atomically write ``directory/result.json``."""
    path = Path(directory) / RESULT_FILE
    atomic_write_json(path, result.to_dict())
    return path


def validate_result(
    path: str | Path,
    point_id: int,
    params: Mapping[str, Any],
    measured: Measured = TOP1,
) -> Result:
    """Read ``result.json`` and check it belongs to this point and carries its metric.

    Checks the type of every key present, the point id and the params (equal
    to the ones the controller proposed) where given, that rank 0 wrote it,
    and that ``metrics`` holds ``measured.metric`` as a finite number in
    ``measured.valid``. Other metrics that are not finite numbers, and
    optional figures that are NaN or infinite, are dropped and named in
    :attr:`Result.dropped`: one unmeasured side figure must not cost a
    training's measurement.

    Raises:
        ResultError: the first problem found, as ``reason``.
    """
    try:
        document = read_json_object(path, constants=True)
    except ValueError as exc:
        raise ResultError(path, str(exc).removeprefix(f"{path}: ")) from None
    known = {key: document[key] for key in _SCHEMA_KEYS if key in document}  # newer writers may add
    dropped = [f"{key} ({known.pop(key)!r})" for key in _FIGURES if nonfinite_float(known.get(key))]
    try:
        fields = dataclasses.asdict(section_from_dict(_Schema, known, str(path), "result"))
    except ConfigError as exc:
        raise ResultError(path, f"{exc.key}: {exc.detail}" if exc.key else exc.detail) from None
    del fields["format"]
    if fields["rank"] not in (None, 0):
        raise ResultError(
            path, f"written by rank {fields['rank']}; only rank 0 writes result.json", contract=True
        )
    if fields["point_id"] not in (None, point_id):
        raise ResultError(path, f"point_id {fields['point_id']} but expected {point_id}")
    if fields["params"] is not None and fields["params"] != dict(params):
        raise ResultError(path, f"params {fields['params']} differ from {dict(params)}")
    fields["metrics"] = _metrics(path, fields["metrics"], measured)
    dropped += [
        f"metrics.{key} ({value!r})"
        for key, value in document["metrics"].items()
        if key not in fields["metrics"]
    ]
    return Result(**fields, dropped=tuple(dropped))


def _metrics(path: str | Path, metrics: Mapping[str, Any], measured: Measured) -> dict[str, float]:
    """The finite numeric metrics; the searched one must be there and in its range."""
    name = measured.metric
    if name not in metrics:
        found = ", ".join(sorted(metrics)) or "none"
        raise ResultError(
            path, f"metrics has no {name!r} ([experiment] metric); it has: {found}", contract=True
        )
    value = metrics[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultError(path, f"metrics.{name}: expected a number, got {value!r}", contract=True)
    if not finite_number(value):
        raise ResultError(path, f"metrics.{name}: expected a finite number, got {value!r}")
    low, high = measured.valid or (-math.inf, math.inf)
    if not low <= value <= high:
        raise ResultError(
            path, f"metrics.{name}: {value!r} is outside its valid range [{low:g}, {high:g}]"
        )
    return {key: float(item) for key, item in metrics.items() if finite_number(item)}


def _result_format(value: int) -> str | None:
    return None if value == RESULT_FORMAT else f"unsupported format {value}"


@dataclass(frozen=True)
class _Schema:
    """``result.json``, declared like the experiment's tables (metrics are checked apart)."""

    metrics: dict = option(kind=dict)
    format: int = option(RESULT_FORMAT, kind=int, check=_result_format)
    point_id: int | None = option(None, kind=int, optional=True)
    params: dict | None = option(None, kind=dict, optional=True)
    rank: int | None = option(None, kind=int, minimum=0, optional=True)
    val_images: int | None = option(None, kind=int, minimum=1, optional=True)
    bad_images: int | None = option(None, kind=int, minimum=0, optional=True)
    epochs: int | None = option(None, kind=int, minimum=1, optional=True)
    world_size: int | None = option(None, kind=int, minimum=1, optional=True)
    device: str | None = option(None, kind=str, optional=True)
    device_hours: float | None = option(None, kind=float, minimum=0.0, optional=True)
    wall_seconds: float | None = option(None, kind=float, minimum=0.0, optional=True)
    started: str | None = option(None, kind=str, optional=True)
    finished: str | None = option(None, kind=str, optional=True)
    package_version: str | None = option(None, kind=str, optional=True)
    input_hash: str | None = option(None, kind=str, optional=True)
    images_per_second: float | None = option(None, kind=float, minimum=0.0, optional=True)
    data_wait_share: float | None = option(
        None, kind=float, minimum=0.0, maximum=1.0, optional=True
    )
    bus_bandwidth_gbps: float | None = option(None, kind=float, minimum=0.0, optional=True)
    expected_bus_bandwidth_gbps: float | None = option(None, kind=float, minimum=0.0, optional=True)


_SCHEMA_KEYS = tuple(f.name for f in dataclasses.fields(_Schema))
#: The optional figures that are numbers: NaN or infinity there is dropped, not refused.
_FIGURES = tuple(f.name for f in dataclasses.fields(_Schema) if f.metadata["kind"] is float)


def read_pace(directory: str | Path) -> dict[str, float] | None:
    """The speed figures of ``directory/result.json`` for people, None without a result.

    For points measured before the controller stored :meth:`Result.pace` in
    the state. Lenient on purpose (for ``status`` and ``show``): an
    unreadable file or a figure the file lacks (written before these fields
    existed) is left out.
    """
    path = Path(directory) / RESULT_FILE
    if not path.exists():
        return None
    try:
        document = read_json_object(path)
    except ValueError:
        return None
    pace = {}
    for key in PACE_FIGURES:
        value = document.get(key)
        if finite_number(value):
            pace[key] = float(value)
    return pace or None


def pace_text(pace: dict[str, float]) -> str:
    """``2480 img/s per rank, data wait 3 %, 12.3 device-h`` (the figures present)."""
    parts = []
    if "images_per_second" in pace:
        parts.append(f"{amount_text(pace['images_per_second'])} img/s per rank")
    if "data_wait_share" in pace:
        parts.append(f"data wait {100.0 * pace['data_wait_share']:.1f} %")
    if "device_hours" in pace:
        parts.append(f"{pace['device_hours']:.3g} device-h")
    if "bus_bandwidth_gbps" in pace:
        parts.append(bandwidth_text(pace))
    return ", ".join(parts)


def bandwidth_text(figures: Mapping[str, Any]) -> str:
    """``all-reduce 15.9 GB/s bus``, with a warning below the site's expectation."""
    bus, expected = figures["bus_bandwidth_gbps"], figures.get("expected_bus_bandwidth_gbps")
    text = f"all-reduce {bus:.3g} GB/s bus"
    if isinstance(expected, (int, float)) and bus < expected:
        text += f" (WARNING: below the site's {expected:g} GB/s)"
    return text
