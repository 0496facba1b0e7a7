"""``point.json``: everything one candidate's training needs, in its own folder.

The controller writes it with :func:`write_point_file`; the trainer reads it
with :func:`read_point_file`. It is self-contained on purpose: a person reruns
a point by hand with ``python -m nas.train --point-dir DIR`` (or the job script
next to it) without the experiment file or the state file.

Format (version 1)::

    {
      "format": 1,
      "point_id": 7,                       # integer id in the state file
      "experiment": "imagenet22k",         # experiment name
      "family": "resnext",                 # model family (nas.models.registry)
      "params": {"width": 64, ...},        # the searched coordinates of this point
      "fixed": {"groups": 32, ...},        # [model] fixed, merged under params
      "num_classes": null,                 # null: the number of classes in the data
      "data": {...},                       # the [data] table (nas.config.DataConfig)
      "train": {...},                      # the [train] table (nas.config.TrainConfig)
      "seed": 0,                           # seed of the model initialisation and sampler
      "metric": "top1"                     # metric the search optimises (top1 or top5)
    }

Paths in ``data`` (``root``, ``index``) are used as written, so the
controller writes absolute ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import ConfigError, DataConfig, TrainConfig, option, section_from_dict
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import POINT_FILE

POINT_FORMAT = 1
METRICS = ("top1", "top5")

Scalar = bool | int | float | str


class PointFileError(ValueError):
    """A ``point.json`` that cannot be used; the message names the file and the key."""

    def __init__(self, path: str | Path, key: str | None, message: str) -> None:
        super().__init__(f"{path}: {key + ': ' if key else ''}{message}")
        self.path, self.key, self.detail = str(path), key, message


@dataclass(frozen=True)
class PointFile:
    """The parsed ``point.json`` of one candidate."""

    point_id: int
    experiment: str
    family: str
    params: dict[str, Scalar]
    fixed: dict[str, Scalar]
    num_classes: int | None
    data: DataConfig
    train: TrainConfig
    seed: int
    metric: str

    def model_params(self) -> dict[str, Scalar]:
        """The builder's parameters: fixed settings overridden by the searched coordinates."""
        return {**self.fixed, **self.params}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POINT_FORMAT,
            "point_id": self.point_id,
            "experiment": self.experiment,
            "family": self.family,
            "params": dict(self.params),
            "fixed": dict(self.fixed),
            "num_classes": self.num_classes,
            "data": _table(self.data),
            "train": _table(self.train),
            "seed": self.seed,
            "metric": self.metric,
        }


def _table(section: DataConfig | TrainConfig) -> dict[str, Any]:
    """A config table as a dict; unset optional keys are left out, as in TOML."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


def point_document(
    path: str | Path,
    *,
    point_id: int,
    experiment: str,
    family: str,
    params: Mapping[str, Scalar],
    data: DataConfig,
    train: TrainConfig,
    fixed: Mapping[str, Scalar] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    metric: str = "top1",
) -> dict[str, Any]:
    """The ``point.json`` document of these values, checked as the reader will check it.

    Raises:
        PointFileError: a value that :func:`read_point_file` would reject.
    """
    point = PointFile(
        point_id=point_id,
        experiment=experiment,
        family=family,
        params=dict(params),
        fixed=dict(fixed or {}),
        num_classes=num_classes,
        data=data,
        train=train,
        seed=seed,
        metric=metric,
    )
    document = point.to_dict()
    parse_point(document, path)
    return document


def write_point_file(directory: str | Path, **values: Any) -> Path:
    """Check and atomically write ``directory/point.json`` (the folder is created).

    ``values`` are the keywords of :func:`point_document`; nothing is written
    unless they pass its checks.

    Returns:
        The path of the file written.

    Raises:
        PointFileError: a value that :func:`read_point_file` would reject.
    """
    directory = Path(directory)
    path = directory / POINT_FILE
    document = point_document(path, **values)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, document)
    return path


def read_point_file(directory: str | Path) -> PointFile:
    """Read and validate ``directory/point.json``.

    Raises:
        PointFileError: missing, unreadable or invalid; names the file and the key.
    """
    path = Path(directory) / POINT_FILE
    try:
        document = read_json_object(path)
    except ValueError as exc:
        raise PointFileError(path, None, str(exc).removeprefix(f"{path}: ")) from None
    return parse_point(document, path)


def point_hash(directory: str | Path) -> str:
    """SHA-256 of the ``point.json`` bytes: ties checkpoints and results to their inputs."""
    return hashlib.sha256((Path(directory) / POINT_FILE).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- validation


def _point_format(value: int) -> str | None:
    return None if value == POINT_FORMAT else f"unsupported format {value}; expected {POINT_FORMAT}"


def _scalars(values: dict) -> str | None:
    """Params and fixed settings: names to finite numbers, strings or booleans."""
    for name, value in values.items():
        if not isinstance(value, (bool, int, float, str)):
            return f"{name}: expected a number, string or boolean, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}: expected a finite number, got {value!r}"
    return None


@dataclass(frozen=True)
class _Schema:
    """The top level of ``point.json``, declared like the experiment's tables."""

    format: int = option(kind=int, check=_point_format)
    point_id: int = option(kind=int, minimum=0)
    experiment: str = option(kind=str)
    family: str = option(kind=str)
    params: dict = option(kind=dict, check=_scalars)
    fixed: dict = option(kind=dict, check=_scalars)
    num_classes: int | None = option(kind=(int, type(None)), minimum=2)
    data: dict = option(kind=dict)
    train: dict = option(kind=dict)
    seed: int = option(kind=int, minimum=0)
    metric: str = option(kind=str, choices=METRICS)


def parse_point(document: Mapping[str, Any], path: str | Path) -> PointFile:
    """Check a decoded ``point.json`` document and build a :class:`PointFile`."""
    try:
        top = section_from_dict(_Schema, document, str(path), "point")
        data = section_from_dict(DataConfig, top.data, str(path), "data")
        train = section_from_dict(TrainConfig, top.train, str(path), "train")
    except ConfigError as exc:
        key = exc.key if exc.table == "point" else f"[{exc.table}] {exc.key or ''}".rstrip()
        if exc.table == "point" and exc.key in ("params", "fixed") and ":" in exc.detail:
            name, _, detail = exc.detail.partition(": ")  # a problem inside the mapping
            raise PointFileError(path, f"{exc.key}.{name}", detail) from None
        raise PointFileError(path, key, exc.detail) from None
    return PointFile(
        point_id=top.point_id,
        experiment=top.experiment,
        family=top.family,
        params=dict(top.params),
        fixed=dict(top.fixed),
        num_classes=top.num_classes,
        data=data,
        train=train,
        seed=top.seed,
        metric=top.metric,
    )
