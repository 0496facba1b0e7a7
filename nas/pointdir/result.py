"""The files a training run leaves for the controller: result, progress and error.

``result.json`` (format 1), written atomically by rank 0 when training completes::

    {
      "format": 1, "point_id": 7, "params": {...},
      "metrics": {"top1": 71.3, "top5": 90.2},   # percent, whole validation split
      "val_images": 50000, "bad_images": 0,
      "epochs": 60, "world_size": 204,
      "device": "cuda",                          # "cuda" or "cpu"
      "device_hours": 1234.5,                    # wall hours x ranks (GPU-hours on GPUs)
      "wall_seconds": 21785.0,                   # all segments together
      "started": "2024-01-01T00:00:00+00:00", "finished": "...",
      "package_version": "0.1.0",
      "input_hash": "sha256 of point.json",
      "images_per_second": 2510.4,               # optional: per rank, steady-state steps
      "data_wait_share": 0.03                    # optional: share of that time spent
    }                                            #   waiting for the data loader

The two optional fields came later: results written without them still validate.

The controller calls :func:`validate_result`; any :class:`ResultError` means
the file is set aside with the reason and the point is treated as failed.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.config import ConfigError, option, section_from_dict
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import ERROR_FILE, PROGRESS_FILE, RESULT_FILE
from nas.pointdir.point import METRICS

RESULT_FORMAT = 1
TRACEBACK_LINES = 40


class ResultError(ValueError):
    """A result file the controller must not trust; ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


#: The speed figures of a result that ``status`` and ``show`` print.
PACE_FIGURES = ("images_per_second", "data_wait_share", "device_hours")


#: torch device types whose hours count as GPU hours: CUDA (NVIDIA, AMD ROCm) and Intel XPU.
GPU_DEVICE_TYPES = frozenset({"cuda", "xpu"})


@dataclass(frozen=True)
class Result:
    """One validated measurement."""

    point_id: int
    params: dict[str, Any]
    metrics: dict[str, float]
    val_images: int
    bad_images: int
    epochs: int
    world_size: int
    device: str
    device_hours: float
    wall_seconds: float
    started: str
    finished: str
    package_version: str
    input_hash: str
    images_per_second: float | None = None
    data_wait_share: float | None = None

    def pace(self) -> dict[str, float]:
        """The speed figures for people (:func:`read_pace`'s), stored in the state at ingest."""
        figures = {key: getattr(self, key) for key in PACE_FIGURES}
        return {key: float(value) for key, value in figures.items() if value is not None}

    @property
    def gpu_hours(self) -> float:
        """Device-hours spent on GPUs; a CPU run costs no GPU budget."""
        return self.device_hours if self.device in GPU_DEVICE_TYPES else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The file's document; optional figures that were not measured are left out."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {"format": RESULT_FORMAT, **fields}


def now_iso(timestamp: float | None = None) -> str:
    """A UTC time (default: now) as an ISO-8601 string with offset."""
    moment = (
        datetime.now(timezone.utc)
        if timestamp is None
        else datetime.fromtimestamp(timestamp, timezone.utc)
    )
    return moment.isoformat(timespec="seconds")


def write_result(directory: str | Path, result: Result) -> Path:
    """Atomically write ``directory/result.json``."""
    path = Path(directory) / RESULT_FILE
    atomic_write_json(path, result.to_dict())
    return path


def validate_result(path: str | Path, point_id: int, params: Mapping[str, Any]) -> Result:
    """Read ``result.json`` and check it belongs to this point and carries usable metrics.

    Checks the schema (every field, its type), the point id, the params (equal
    to the ones the controller proposed), and that every metric is a finite
    percentage in [0, 100].

    Raises:
        ResultError: the first problem found, as ``reason``.
    """
    try:
        document = read_json_object(path)
    except ValueError as exc:
        raise ResultError(path, str(exc).removeprefix(f"{path}: ")) from None
    known = {key: document[key] for key in _SCHEMA_KEYS if key in document}  # newer writers may add
    try:
        fields = dataclasses.asdict(section_from_dict(_Schema, known, str(path), "result"))
    except ConfigError as exc:
        raise ResultError(path, f"{exc.key}: {exc.detail}" if exc.key else exc.detail) from None
    del fields["format"]
    if fields["point_id"] != point_id:
        raise ResultError(path, f"point_id {fields['point_id']} but expected {point_id}")
    if fields["params"] != dict(params):
        raise ResultError(path, f"params {fields['params']} differ from {dict(params)}")
    for name in METRICS:
        value = fields["metrics"].get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResultError(path, f"metrics.{name}: expected a number, got {value!r}")
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise ResultError(path, f"metrics.{name}: {value!r} is not a percentage in [0, 100]")
    fields["metrics"] = {name: float(fields["metrics"][name]) for name in METRICS}
    return Result(**fields)


def _result_format(value: int) -> str | None:
    return None if value == RESULT_FORMAT else f"unsupported format {value}"


@dataclass(frozen=True)
class _Schema:
    """``result.json``, declared like the experiment's tables (metrics are checked apart)."""

    format: int = option(kind=int, check=_result_format)
    point_id: int = option(kind=int)
    params: dict = option(kind=dict)
    metrics: dict = option(kind=dict)
    val_images: int = option(kind=int, minimum=1)
    bad_images: int = option(kind=int, minimum=0)
    epochs: int = option(kind=int, minimum=1)
    world_size: int = option(kind=int, minimum=1)
    device: str = option(kind=str)
    device_hours: float = option(kind=float, minimum=0.0)
    wall_seconds: float = option(kind=float, minimum=0.0)
    started: str = option(kind=str)
    finished: str = option(kind=str)
    package_version: str = option(kind=str)
    input_hash: str = option(kind=str)
    images_per_second: float | None = option(None, kind=float, minimum=0.0, optional=True)
    data_wait_share: float | None = option(
        None, kind=float, minimum=0.0, maximum=1.0, optional=True
    )


_SCHEMA_KEYS = tuple(f.name for f in dataclasses.fields(_Schema))


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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            pace[key] = float(value)
    return pace or None


def pace_text(pace: dict[str, float]) -> str:
    """``2480 img/s per rank, data wait 3 %, 12.3 device-h`` (the figures present)."""
    parts = []
    if "images_per_second" in pace:
        parts.append(f"{pace['images_per_second']:.1f} img/s per rank")
    if "data_wait_share" in pace:
        parts.append(f"data wait {100.0 * pace['data_wait_share']:.1f} %")
    if "device_hours" in pace:
        parts.append(f"{pace['device_hours']:.3g} device-h")
    return ", ".join(parts)


# --------------------------------------------------------------------------- other outcomes


def write_progress(
    directory: str | Path, *, point_id: int, epoch: int, step: int, reason: str
) -> Path:
    """``progress.json``: where an incomplete run stopped and why (rank 0 only)."""
    path = Path(directory) / PROGRESS_FILE
    document = {
        "point_id": point_id,
        "epochs_completed": epoch,
        "step_in_epoch": step,
        "reason": reason,
        "time": now_iso(),
    }
    atomic_write_json(path, document)
    return path


def write_error(
    directory: str | Path,
    *,
    rank: int,
    exc: BaseException,
    oom: bool,
    kind: str | None = None,
    exit_code: int | None = None,
) -> bool:
    """``error.json`` for the first rank that fails (later ranks keep the first report).

    ``kind`` (e.g. ``"environment"``) tells the controller not to retry.

    Returns:
        True if this call wrote the file.
    """
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines).splitlines()[-TRACEBACK_LINES:]
    document = {
        "rank": rank,
        "exception": type(exc).__name__,
        "message": str(exc),
        "traceback": tail,
        "oom": oom,
        "time": now_iso(),
    }
    if kind is not None:
        document["kind"] = kind
    if exit_code is not None:
        document["exit_code"] = exit_code
    return atomic_write_json(Path(directory) / ERROR_FILE, document, exclusive=True)


#: ``error.json`` ``kind`` of a run stopped by the divergence guard.
DIVERGED = "diverged"


def write_divergence(
    directory: str | Path,
    *,
    reason: str,
    epoch: int,
    curve: list[dict[str, Any]],
    saved_seconds: float,
    world_size: int,
    device: str,
) -> bool:
    """``error.json`` with ``kind = "diverged"``, the curve so far and what stopping saved.

    ``saved_seconds`` is the wall time of the segment the run did not use
    (to its deadline, or its remaining epochs when it has none);
    ``saved_device_hours`` is that times the ranks. Written by rank 0 only.
    """
    document = {
        "kind": DIVERGED,
        "rank": 0,
        "exception": "Diverged",
        "message": reason,
        "traceback": [],
        "oom": False,
        "epoch": epoch,
        "curve": curve,
        "saved_seconds": max(0.0, saved_seconds),
        "saved_device_hours": max(0.0, saved_seconds) * world_size / 3600.0,
        "device": device,
        "time": now_iso(),
    }
    return atomic_write_json(Path(directory) / ERROR_FILE, document, exclusive=True)
