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
      "input_hash": "9f86d0...",                 # sha256 of point.json's document as
                                                 #   canonical JSON (nas.pointdir.point)
      "images_per_second": 2510.4,               # per rank, steady-state steps
      "data_wait_share": 0.03,                   # share of that time spent
                                                 #   waiting for the data loader
      "bus_bandwidth_gbps": 15.9,                # the last segment's start-up
      "expected_bus_bandwidth_gbps": 8.0         #   all-reduce and the site's expectation
    }

``result.json`` must be a regular file (not a symlink, folder or FIFO). A
``point_id`` that is present must be this point's; ``params`` that are
present must be its searched params, optionally with values of point.json's
``fixed`` as they are there (a script that echoes its whole config,
``nas.trial.point().values``); a ``rank`` other than 0 is refused. Another
metric that is not a finite number, and an optional figure (``device_hours``,
``epochs``, ``device``, ...) that its schema refuses (``NaN`` or
``Infinity``, which Python's ``json.dump`` writes, an integer no float holds,
a share above 1, a count of 0, a number written as a string) do not cost the
measurement: that entry is dropped and named in :attr:`Result.dropped`,
which the controller logs with the result. The controller calls
:func:`validate_result`; any :class:`ResultError` means the file is set aside
with the reason and the point is failed, without a retry when the file breaks
the contract the same way every attempt (:attr:`ResultError.contract`); a
searched metric that is NaN or infinite is a :class:`ResultDiverged`, the
divergence a new seed may avoid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import (  # the settings' value rule, through the layer pointdir may read
    ConfigError,
    SettingError,
    check_value,
    option,
    section_from_dict,
)
from nas.numbers import amount_text, finite_number, json_int, nonfinite_float
from nas.pointdir.jsonio import (
    NotRegularFile,
    atomic_write_json,
    parse_json,
    read_bounded,
    read_json_object,
)
from nas.pointdir.layout import POINT_FILE, RESULT_FILE
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
    "ResultDiverged",
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
    training again the same way cannot mend (not a regular file, not a JSON
    object, a key given twice, no ``metrics`` or no metric, a metric that is
    not a number or outside its valid range, a bad ``format``, another
    point's ``point_id`` or ``params``, not written by rank 0); the
    controller does not retry those: each retry is a whole training.
    """

    def __init__(self, path: str | Path, reason: str, *, contract: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.contract = str(path), reason, contract


class ResultDiverged(ResultError):
    """The searched metric is NaN or infinite: the training diverged.

    Not a contract breach (another seed may train to a number), and not a
    transient failure either: the same seed diverges again. Its own class so
    that the controller can treat it as an exit 5 (``[train] on_divergence``)
    rather than retry the same training.
    """


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
#: The device types a result may name for a GPU: torch's, and ``[cluster] accelerator``'s "gpu".
_GPU_DEVICE_NAMES = GPU_DEVICE_TYPES | {"gpu"}
#: Why a result's device-hours are not GPU-hours when it names no device.
NO_DEVICE = (
    "result.json names no device and its job asked for no GPUs ([cluster] gpus_per_node = 0)"
)


def gpu_device(device: object) -> bool:
    """Whether a reported device is a GPU: its type before any ``:<index>``, in any case.

    The one reading of a device name (a result's, a divergence report's):
    ``str(torch.device("cuda:0"))`` is ``"cuda:0"`` and people write ``"CUDA"``;
    an exact match counted neither, and ``max_gpu_hours`` never bound.
    """
    if not isinstance(device, str):
        return False
    return device.partition(":")[0].strip().lower() in _GPU_DEVICE_NAMES


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
        """Device-hours spent on GPUs as the file alone proves them (its ``device``)."""
        return self.counted_gpu_hours(job_gpus=False)[0]

    def counted_gpu_hours(self, *, job_gpus: bool) -> tuple[float, str]:
        """(GPU-hours, why the device-hours are not counted as such: "" when they are).

        The ``device`` the file names decides (:func:`gpu_device`); a file that
        names none ran on what its job asked for, ``job_gpus`` (``[cluster]
        gpus_per_node > 0``): ``nas.trial.write_result`` writes no device, and its
        hours must not escape ``max_gpu_hours``. ``device_hours`` is already
        wall hours x ranks: it is counted once, never times the GPUs per node.
        """
        hours = self.device_hours or 0.0
        if self.device is None:
            on_gpu, why = job_gpus, NO_DEVICE
        else:
            on_gpu = gpu_device(self.device)
            why = f"its device {self.device!r} is none of {', '.join(sorted(_GPU_DEVICE_NAMES))}"
        return (hours, "") if on_gpu or not hours else (0.0, why)

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

    The keys that say what was measured and for whom (:data:`_STRICT_KEYS`) are
    checked strictly: their types, the point id and the params (the ones the
    controller proposed, optionally with values of point.json's ``fixed``:
    :func:`_check_params`) where given, that rank 0 wrote it, and that
    ``metrics`` holds ``measured.metric`` as a finite number in
    ``measured.valid``. Other metrics that are not finite numbers, and optional
    figures that their schema refuses, are dropped and named in
    :attr:`Result.dropped`: one wrong side figure must not cost a training's
    measurement, nor retry a training that would write it again.

    Raises:
        ResultDiverged: the searched metric is NaN or infinite.
        ResultError: the first problem found, as ``reason``; ``contract`` when
            the file breaks the contract (every attempt writes it again).
    """
    document = _read(path)
    strict = _strict_fields(path, document)
    if strict["rank"] not in (None, 0):
        raise ResultError(
            path, f"written by rank {strict['rank']}; only rank 0 writes result.json", contract=True
        )
    if strict["point_id"] not in (None, point_id):
        raise ResultError(
            path,
            f"point_id {strict['point_id']!r} but expected {point_id}: write point.json's "
            "point_id (nas.trial.point().point_id) or leave it out",
            contract=True,
        )
    if strict["params"] is not None:
        _check_params(path, strict["params"], params)
    figures, dropped = _optional_figures(document)
    metrics = _metrics(path, strict.pop("metrics"), measured)
    dropped += [
        f"metrics.{key} ({value!r})"
        for key, value in document["metrics"].items()
        if key not in metrics
    ]
    return Result(metrics=metrics, **strict, **figures, dropped=tuple(dropped))


def _check_params(path: str | Path, given: Mapping[str, Any], searched: Mapping[str, Any]) -> None:
    """Refuse ``params`` that are not this point's: each searched value, and beyond them only
    values of point.json's ``fixed`` as they are there (what ``{name}`` fields see).

    A script that echoes its whole config writes the fixed values too; point.json
    is read only then, from the result's folder (self-contained: the controller
    wrote it). Params that are wrong now are wrong every attempt: contract.

    Raises:
        ResultError: they are not; ``contract``.
    """
    wrong = [key for key, value in searched.items() if key not in given or given[key] != value]
    others = {key: value for key, value in given.items() if key not in searched}
    fixed = _point_fixed(path) if others else {}
    wrong += [key for key, value in others.items() if key not in fixed or fixed[key] != value]
    if wrong:
        raise ResultError(
            path,
            f"params {dict(given)} differ from this point's at {', '.join(map(repr, wrong))}: "
            f"write its searched params {dict(searched)}, optionally with [model] fixed values "
            f"as point.json has them ({fixed or 'none'}), or leave params out",
            contract=True,
        )


def _point_fixed(path: str | Path) -> dict[str, Any]:
    """``fixed`` of the point.json beside ``path``; empty when it cannot be read as one."""
    try:
        fixed = read_json_object(Path(path).with_name(POINT_FILE)).get("fixed", {})
    except ValueError:
        return {}
    return fixed if isinstance(fixed, dict) else {}


@dataclass(frozen=True)
class _TooLarge:
    """An integer of a result file that no float holds (:func:`nas.numbers.json_int`).

    Read as this marker instead of refusing the whole file, so that a side
    figure holding one is dropped and named like any other bad figure; no
    number check accepts it, and the searched metric holding one is out of range.
    """

    digits: int

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits (too large for a number)"


def _result_int(text: str) -> int | _TooLarge:
    """``parse_int`` of a result file: the integer, or :class:`_TooLarge` for one no float holds."""
    try:
        return json_int(text)
    except ValueError:
        return _TooLarge(len(text.lstrip("-")))


def _read(path: str | Path) -> dict[str, Any]:
    """The file's JSON object; one of a wrong shape breaks the contract (:func:`_well_formed`),
    and so does something other than a regular file (the job's own link, folder or FIFO)."""
    try:
        return read_json_object(path, constants=True, parse_int=_result_int)
    except NotRegularFile as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ResultError(
            path,
            f"{reason}: write {RESULT_FILE} as a regular file (copy a file, do not link it)",
            contract=True,
        ) from None
    except ValueError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ResultError(path, reason, contract=_well_formed(path)) from None


def _well_formed(path: str | Path) -> bool:
    """Whether ``path`` is a readable file of well-formed JSON.

    Then what :func:`read_json_object` refused is its shape (not an object, a
    key given twice), which the program writes again every attempt; a torn or
    unreadable file (a writer that died) may not recur, so it is retried.
    """
    try:
        parse_json(read_bounded(path), parse_constant=float, parse_int=_result_int)
    except ValueError:
        return False
    return True


def _strict_fields(path: str | Path, document: Mapping[str, Any]) -> dict[str, Any]:
    """The identity keys and ``metrics``, type-checked by :class:`_Schema` (``format`` checked
    and left out); a wrong type there is the program's, the same every attempt."""
    given = {key: document[key] for key in _STRICT_KEYS if key in document}
    try:
        section = section_from_dict(_Schema, given, str(path), "result")
    except ConfigError as exc:
        reason = f"{exc.key}: {exc.detail}" if exc.key else exc.detail
        raise ResultError(path, reason, contract=True) from None
    return {key: getattr(section, key) for key in _STRICT_KEYS if key != "format"}


def _optional_figures(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The optional figures their declarations in :class:`_Schema` accept, and the others
    as ``key (nan)`` or, for a value that is not NaN or infinite, ``key (why, got value)``.

    A null is an unmeasured figure, left out like a missing one.
    """
    figures: dict[str, Any] = {}
    dropped: list[str] = []
    for key, declaration in _OPTIONAL.items():
        value = document.get(key)
        if value is None:
            continue
        try:
            figures[key] = check_value(value, declaration, key)
        except SettingError as exc:
            unmeasured = nonfinite_float(value) or isinstance(value, _TooLarge)
            dropped.append(f"{key} ({value!r})" if unmeasured else f"{key} ({exc.detail})")
    return figures, dropped


def _metrics(path: str | Path, metrics: Mapping[str, Any], measured: Measured) -> dict[str, float]:
    """The finite numeric metrics; the searched one must be there and in its range.

    Raises:
        ResultDiverged: the searched one is NaN or infinite.
        ResultError: it is missing, no number or out of range; ``contract``.
    """
    name = measured.metric
    if name not in metrics:
        found = ", ".join(sorted(metrics)) or "none"
        raise ResultError(
            path, f"metrics has no {name!r} ([experiment] metric); it has: {found}", contract=True
        )
    value = metrics[name]
    if nonfinite_float(value):
        raise ResultDiverged(
            path,
            f"metrics.{name}: expected a finite number, got {value!r}: the training diverged "
            "(a trainer that sees it can say so by exiting 5)",
        )
    _check_in_range(path, name, value, measured.valid or (-math.inf, math.inf))
    return {key: float(item) for key, item in metrics.items() if finite_number(item)}


def _check_in_range(path: str | Path, name: str, value: Any, valid: tuple[float, float]) -> None:
    """Refuse a searched metric that is no number, or outside ``valid`` (an integer no float
    holds is): the trainer writes it again every attempt (a percent where a fraction belongs).

    Raises:
        ResultError: ``contract``.
    """
    low, high = valid
    if isinstance(value, _TooLarge) or (finite_number(value) and not low <= value <= high):
        raise ResultError(
            path,
            f"metrics.{name}: {value!r} is outside its valid range [{low:g}, {high:g}]: "
            "check the unit the trainer writes, or [experiment] value_range",
            contract=True,
        )
    if not finite_number(value):
        raise ResultError(path, f"metrics.{name}: expected a number, got {value!r}", contract=True)


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


#: The keys that say what was measured and for whom: refused when wrong, never dropped.
_STRICT_KEYS = ("metrics", "format", "point_id", "params", "rank")
#: The optional figures with their declarations: one its declaration refuses is dropped.
_OPTIONAL = {f.name: f.metadata for f in dataclasses.fields(_Schema) if f.name not in _STRICT_KEYS}


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
