"""``point.json``: everything one candidate's training needs, in its own folder.

The controller writes it with :func:`write_point_file`; the trainer reads it
with :func:`read_point_file` (a user's command with ``nas.trial.point()`` or
any JSON reader). It is self-contained on purpose: a person reruns a point by
hand with its job script, or ``python -m nas.train --point-dir DIR``, without
the experiment file or the state file.

Format (version 1)::

    {
      "format": 1,
      "point_id": 7,                       # integer id in the state file
      "experiment": "imagenet22k",         # experiment name
      "params": {"width": 64, ...},        # the searched values of this point
      "fixed": {"groups": 32, ...},        # [model] fixed, merged under params
      "seed": 0,                           # [train] seed (+1 after a divergence retry)
      "metric": "top1",                    # the metric the search optimises
      "command": ["python", ...],          # [train] command as this point runs it
      "family": "resnext",                 # built-in trainer: model family
      "num_classes": null,                 #   null: the number of classes in the data
      "data": {...},                       #   the [data] table (nas.config.DataConfig)
      "train": {...}                       #   the [train] table (nas.config.TrainConfig)
    }

``command`` is there for a ``[train] command``; ``family``, ``data`` and
``train`` for the built-in trainer (:meth:`PointFile.builtin` requires them).

Paths in ``data`` (``root``, ``index``) are used as written, so the
controller writes absolute ones.

A checkpoint and a result carry the hash of the document, not of the file
(:class:`InputHash`): the same document saved again with other whitespace or
key order still owns them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import ConfigError, DataConfig, TrainConfig, option, section_from_dict
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import POINT_FILE, make_point_folder

POINT_FORMAT = 1
#: The metrics the built-in trainer measures.
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
    family: str | None
    params: dict[str, Scalar]
    fixed: dict[str, Scalar]
    num_classes: int | None
    data: DataConfig | None
    train: TrainConfig | None
    seed: int
    metric: str
    command: tuple[str, ...] | None = None

    def model_params(self) -> dict[str, Scalar]:
        """The builder's parameters: fixed settings overridden by the searched coordinates."""
        return {**self.fixed, **self.params}

    def builtin(self, path: str | Path) -> PointFile:
        """This point, checked to carry what the built-in trainer needs.

        Raises:
            PointFileError: ``family``, ``data`` or ``train`` is missing, or
                the metric is none the built-in trainer measures.
        """
        for key in ("family", "data", "train"):
            if getattr(self, key) is None:
                raise PointFileError(path, key, "missing; the built-in trainer needs it")
        if self.metric not in METRICS:
            choices = ", ".join(repr(m) for m in METRICS)
            raise PointFileError(
                path, "metric", f"the built-in trainer measures {choices}, not {self.metric!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": POINT_FORMAT,
            "point_id": self.point_id,
            "experiment": self.experiment,
            "params": dict(self.params),
            "fixed": dict(self.fixed),
            "seed": self.seed,
            "metric": self.metric,
        }
        if self.command is not None:
            document["command"] = list(self.command)
        if self.family is not None:
            document["family"] = self.family
            document["num_classes"] = self.num_classes
        for key in ("data", "train"):
            if getattr(self, key) is not None:
                document[key] = _table(getattr(self, key))
        return document


def _table(section: DataConfig | TrainConfig) -> dict[str, Any]:
    """A config table as a dict; unset optional keys are left out, as in TOML."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


def point_document(
    path: str | Path,
    *,
    point_id: int,
    experiment: str,
    family: str | None,
    params: Mapping[str, Scalar],
    data: DataConfig | None,
    train: TrainConfig | None,
    fixed: Mapping[str, Scalar] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    metric: str = "top1",
    command: tuple[str, ...] | None = None,
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
        command=None if command is None else tuple(command),
    )
    document = point.to_dict()
    parse_point(document, path)
    return document


def write_point_file(directory: str | Path, **values: Any) -> Path:
    """Check and atomically write ``directory/point.json`` (the folder is created).

    ``values`` are the keywords of :func:`point_document`; nothing is written
    unless they pass its checks, nor into anything but a real folder
    (:func:`~nas.pointdir.layout.make_point_folder`).

    Returns:
        The path of the file written.

    Raises:
        PointFileError: a value that :func:`read_point_file` would reject.
        PointFolderError: a symlink or a file where the folder belongs.
    """
    directory = Path(directory)
    path = directory / POINT_FILE
    document = point_document(path, **values)
    make_point_folder(directory)
    atomic_write_json(path, document)
    return path


def read_point_file(directory: str | Path) -> PointFile:
    """Read and validate ``directory/point.json``.

    Raises:
        PointFileError: missing, unreadable or invalid; names the file and the key.
    """
    path = Path(directory) / POINT_FILE
    return parse_point(_read_document(path), path)


def _read_document(path: Path) -> dict[str, Any]:
    """The decoded ``point.json``; what cannot be read is a :class:`PointFileError`."""
    try:
        return read_json_object(path)
    except ValueError as exc:
        raise PointFileError(path, None, str(exc).removeprefix(f"{path}: ")) from None


@dataclass(frozen=True)
class InputHash:
    """What ties a checkpoint and a result to the ``point.json`` they were made from.

    ``value`` hashes the document, not the file (:func:`document_hash`): the
    same document saved again with other whitespace or key order keeps it, so
    its checkpoint still resumes instead of failing every attempt. ``file`` is
    the SHA-256 of the file's bytes, which earlier versions wrote into
    checkpoints and results; both are accepted, so a training resumed across
    the upgrade keeps its checkpoint.
    """

    value: str
    file: str

    def matches(self, written: object) -> bool:
        """Whether a checkpoint's or a result's ``input_hash`` belongs to this ``point.json``."""
        return written in (self.value, self.file)


def document_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 of a decoded ``point.json`` as canonical JSON (sorted keys, fixed separators)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def point_hash(directory: str | Path) -> str:
    """The input hash of ``directory/point.json`` (:attr:`InputHash.value`), as written now.

    Raises:
        PointFileError: missing, unreadable or not a JSON object.
    """
    return document_hash(_read_document(Path(directory) / POINT_FILE))


def read_point_inputs(directory: str | Path) -> tuple[PointFile, InputHash]:
    """Read and validate ``directory/point.json`` together with its :class:`InputHash`.

    The trainer reads the point and the hash its checkpoint and result must
    carry in this one call, from the same document; the file's bytes are
    read once more for :attr:`InputHash.file`.

    Raises:
        PointFileError: missing, unreadable or invalid; names the file and the key.
    """
    path = Path(directory) / POINT_FILE
    document = _read_document(path)
    point = parse_point(document, path)
    return point, InputHash(document_hash(document), hashlib.sha256(path.read_bytes()).hexdigest())


# --------------------------------------------------------------------------- validation


def _argv(value: list) -> str | None:
    """A command: a non-empty list of strings."""
    if not value or not all(isinstance(item, str) for item in value):
        return f"expected a non-empty list of strings, got {value!r}"
    return None


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
    params: dict = option(kind=dict, check=_scalars)
    fixed: dict = option(kind=dict, check=_scalars)
    seed: int = option(kind=int, minimum=0)
    metric: str = option(kind=str)
    command: list | None = option(None, kind=(list, type(None)), check=_argv, optional=True)
    family: str | None = option(None, kind=(str, type(None)), optional=True)
    num_classes: int | None = option(None, kind=(int, type(None)), minimum=2, optional=True)
    data: dict | None = option(None, kind=(dict, type(None)), optional=True)
    train: dict | None = option(None, kind=(dict, type(None)), optional=True)


def parse_point(document: Mapping[str, Any], path: str | Path) -> PointFile:
    """Check a decoded ``point.json`` document and build a :class:`PointFile`."""
    try:
        top = section_from_dict(_Schema, document, str(path), "point")
        data = (
            None if top.data is None else section_from_dict(DataConfig, top.data, str(path), "data")
        )
        train = (
            None
            if top.train is None
            else section_from_dict(TrainConfig, top.train, str(path), "train")
        )
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
        command=None if top.command is None else tuple(top.command),
    )
