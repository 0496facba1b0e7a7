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

from nas.config import ConfigError, DataConfig, TrainConfig, section_from_dict
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import POINT_FILE

POINT_FORMAT = 1
METRICS = ("top1", "top5")

Scalar = bool | int | float | str


class PointFileError(ValueError):
    """A ``point.json`` that cannot be used; the message names the file and the key."""

    def __init__(self, path: str | Path, key: str | None, message: str) -> None:
        super().__init__(f"{path}: {key + ': ' if key else ''}{message}")
        self.path, self.key = str(path), key


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


def write_point_file(
    directory: str | Path,
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
) -> Path:
    """Validate and atomically write ``directory/point.json`` (the folder is created).

    Returns:
        The path of the file written.

    Raises:
        PointFileError: a value that :func:`read_point_file` would reject.
    """
    directory = Path(directory)
    path = directory / POINT_FILE
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
    parse_point(document, path)  # the same checks as the reader, before anything is written
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

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "point_id": int,
    "experiment": str,
    "family": str,
    "params": dict,
    "fixed": dict,
    "num_classes": (int, type(None)),
    "data": dict,
    "train": dict,
    "seed": int,
    "metric": str,
}


def parse_point(document: Mapping[str, Any], path: str | Path) -> PointFile:
    """Check a decoded ``point.json`` document and build a :class:`PointFile`."""
    unknown = sorted(set(document) - set(_REQUIRED))
    if unknown:
        raise PointFileError(
            path, unknown[0], f"unknown key; valid keys are {', '.join(_REQUIRED)}"
        )
    for key, kind in _REQUIRED.items():
        if key not in document:
            raise PointFileError(path, key, "missing required key")
        value = document[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise PointFileError(path, key, f"expected {_kind_name(kind)}, got {value!r}")
    if document["format"] != POINT_FORMAT:
        raise PointFileError(
            path, "format", f"unsupported format {document['format']}; expected {POINT_FORMAT}"
        )
    if document["point_id"] < 0:
        raise PointFileError(
            path, "point_id", f"expected a non-negative id, got {document['point_id']}"
        )
    if document["seed"] < 0:
        raise PointFileError(path, "seed", f"expected a non-negative seed, got {document['seed']}")
    if document["num_classes"] is not None and document["num_classes"] < 2:
        raise PointFileError(
            path, "num_classes", f"expected at least 2, got {document['num_classes']}"
        )
    if document["metric"] not in METRICS:
        raise PointFileError(
            path, "metric", f"expected one of {', '.join(METRICS)}, got {document['metric']!r}"
        )
    for key in ("params", "fixed"):
        _check_scalars(document[key], path, key)
    try:
        data = section_from_dict(DataConfig, document["data"], str(path), "data")
        train = section_from_dict(TrainConfig, document["train"], str(path), "train")
    except ConfigError as exc:
        error = PointFileError(path, None, str(exc).removeprefix(f"{path}: "))
        error.key = f"{exc.table}.{exc.key}" if exc.key else exc.table
        raise error from None
    return PointFile(
        point_id=document["point_id"],
        experiment=document["experiment"],
        family=document["family"],
        params=dict(document["params"]),
        fixed=dict(document["fixed"]),
        num_classes=document["num_classes"],
        data=data,
        train=train,
        seed=document["seed"],
        metric=document["metric"],
    )


def _check_scalars(values: Mapping[str, Any], path: str | Path, key: str) -> None:
    for name, value in values.items():
        if not isinstance(value, (bool, int, float, str)):
            raise PointFileError(
                path, f"{key}.{name}", f"expected a number, string or boolean, got {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise PointFileError(path, f"{key}.{name}", f"expected a finite number, got {value!r}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", dict: "an object", type(None): "null"}
    return " or ".join(names[k] for k in kinds)
