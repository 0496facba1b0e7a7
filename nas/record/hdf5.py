"""The state file's schema: a :class:`nas.record.state.State` to HDF5 bytes and back.

This module encodes and decodes; :mod:`nas.record.verify` reads a file
without letting it hang the reader, and :mod:`nas.record.store` owns the file
on disk (generations, crash-safe commits, the lock).

Layout, readable with ``h5ls -r`` and ``h5dump`` (format :data:`FORMAT_VERSION`); the
first 512 bytes are an HDF5 user block holding the SHA-256 of the rest
(:mod:`nas.record.integrity`), verified before every read::

    /                 attrs format_version, generation, created, time_units, metric, goal,
                      package, package_version (times: UNIX seconds, see time_units)
    /experiment_toml  the experiment file, verbatim
    /space            the search space as JSON (SearchSpace.to_dict)
    /meta_json        a small JSON dict for the controller
    /points/          one column per field: id, status, value, predicted, batch,
                      origin, job_id, job_name, attempts, segment, gpu_hours, created,
                      updated, reason, params_json, extra_json (NaN = no value);
                      coords: N x d unit-box coordinates of the numeric dims
    /fits/<n>/        support_ids, coefficients; attrs time, loo_rmse, predicted_max, argmax_json,
                      best_id (-1, or absent in older files: no smoothed best), local_loo
                      (largest leave-one-out error near the best; absent in older files),
                      noise_json (with noise = "auto": the measured noise sd, its 95 %
                      interval and why it is 0 where not measurable; absent otherwise);
                      fitted (with noise: the smoothed value at each support point, in
                      support_ids order; absent otherwise and in older files);
                      warped_json (the numeric dims the spline saw on a log scale;
                      absent when none was and in older files)
    /events           table of (time, kind, point_id, message); point_id -1 = none
    /curves/<id>      learning curve of point <id>: table of (epoch, images, loss, top1,
                      top5, lr, seconds), loss NaN when it was not finite, then the
                      command's own figures (float columns named as it named them, NaN
                      where an entry lacks one; none in older files) (absent in
                      files written before curves existed: read as no curves)
    /curve_index      where each curve's table lies: (id, offset, rows), the offset of its
                      bytes from the superblock, -1 where it has none or holds own figures
                      (absent without curves and in older files: each curve is then found
                      through HDF5)
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from nas import __version__
from nas.curvefields import CURVE_COUNTS, CURVE_FIELDS
from nas.record import integrity
from nas.record.state import (
    Curves,
    Event,
    FitRecord,
    Point,
    PointStatus,
    State,
    StateError,
    StoredCurve,
    own_figure_names,
)
from nas.search.space import SearchSpace

FORMAT_VERSION = 1
#: The one time convention of the file, stated in its root attribute ``time_units``.
TIME_UNITS = "seconds since 1970-01-01T00:00:00Z (UNIX time)"
#: Units of the measured metric, by ``[experiment] metric``.
_METRIC_UNITS = {"top1": "percent", "top5": "percent"}
_STR = h5py.string_dtype("utf-8")
_EVENT_DTYPE = np.dtype([("time", "f8"), ("kind", _STR), ("point_id", "i8"), ("message", _STR)])


@functools.cache
def _curve_dtype(own: tuple[str, ...] = ()) -> np.dtype:
    """The stored table of a curve: the fields of :data:`CURVE_FIELDS`, then a command's own
    figures (floats, NaN where an entry lacks one), packed."""
    counts = [(name, "i8" if name in CURVE_COUNTS else "f8") for name in CURVE_FIELDS]
    return np.dtype(counts + [(name, "f8") for name in own])


_CURVE_DTYPE = _curve_dtype()
#: ``/curve_index``: a curve's point id, the offset of its bytes from the superblock, its rows.
_CURVE_INDEX_DTYPE = np.dtype([("id", "i8"), ("offset", "i8"), ("rows", "i8")])
_INT_COLUMNS = ("id", "batch", "attempts", "segment")
_FLOAT_COLUMNS = ("gpu_hours", "created", "updated")
_OPTIONAL_FLOAT_COLUMNS = ("value", "predicted")
_STR_COLUMNS = ("origin", "job_id", "job_name", "reason")
#: Point's fields in the order of its constructor (a positional call is the fastest).
_POINT_FIELDS = tuple(f.name for f in dataclasses.fields(Point))


class StateFormatError(StateError):
    """A file that is corrupt, not a state file, or of another format version."""


class StateVersionError(StateFormatError):
    """A sound file of another format version: never corrupt, never to be repaired away."""

    def __init__(self, path: str | os.PathLike, version: int, package_version: str) -> None:
        self.version = version
        self.package_version = package_version
        self.newer = version > FORMAT_VERSION
        if self.newer:
            text = (
                f"{path} was written by a newer splinenas {package_version} (state format "
                f"{version}; this splinenas {__version__} reads format {FORMAT_VERSION}): "
                f"upgrade splinenas"
            )
        else:
            text = (
                f"{path} has state format {version}, older than format {FORMAT_VERSION} of "
                f"splinenas {__version__}; no conversion exists: use splinenas "
                f"{package_version} for it"
            )
        super().__init__(text)


class UnsealedReadError(ValueError):
    """A file without a checksum that could not be decoded (in time) by a child process."""


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


def _write_points(group: h5py.Group, state: State) -> None:
    points = state.points
    for name in _INT_COLUMNS:
        group[name] = np.array([getattr(p, name) for p in points], dtype=np.int64)
    for name in _FLOAT_COLUMNS:
        group[name] = np.array([getattr(p, name) for p in points], dtype=float)
    for name in _OPTIONAL_FLOAT_COLUMNS:
        values = [getattr(p, name) for p in points]
        group[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    for name in _STR_COLUMNS:
        group.create_dataset(name, data=_strings([getattr(p, name) for p in points]), dtype=_STR)
    group.create_dataset("status", data=_strings([p.status.value for p in points]), dtype=_STR)
    group.create_dataset("params_json", data=_strings(state.params_json()), dtype=_STR)
    extra = _strings([json.dumps(p.extra) if p.extra else "{}" for p in points])
    group.create_dataset("extra_json", data=extra, dtype=_STR)
    group["coords"] = state.coords()
    group["coords"].attrs["dims"] = json.dumps([dim.name for dim in state.space.numeric])


def _write_fits(group: h5py.Group, fits: list[FitRecord]) -> None:
    for fit in fits:
        sub = group.create_group(str(fit.number))
        sub["support_ids"] = np.array(fit.support_ids, dtype=np.int64)
        sub["coefficients"] = fit.coefficients
        sub.attrs.update(
            time=fit.time,
            loo_rmse=fit.loo_rmse,
            predicted_max=fit.predicted_max,
            argmax_json=json.dumps(fit.argmax),
            best_id=fit.best_id,
            local_loo=fit.local_loo,
        )
        if fit.noise:
            sub.attrs["noise_json"] = json.dumps(fit.noise)
        if fit.fitted:
            sub["fitted"] = np.array(fit.fitted, dtype=float)
        if fit.warped:
            sub.attrs["warped_json"] = json.dumps(list(fit.warped))


def _write_events(file: h5py.File, events: list[Event]) -> None:
    table = np.empty(len(events), dtype=_EVENT_DTYPE)
    table["time"] = [e.time for e in events]
    table["kind"] = [e.kind for e in events]
    table["point_id"] = [-1 if e.point_id is None else e.point_id for e in events]
    table["message"] = [e.message for e in events]
    file.create_dataset("events", data=table)


def _objective(experiment_text: str) -> tuple[str, str]:
    """``[experiment] metric`` and ``goal`` of the stored experiment (with their defaults)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    table = tomllib.loads(experiment_text).get("experiment", {})
    return str(table.get("metric", "top1")), str(table.get("goal", "maximize"))


def _describe(file: h5py.File, metric: str, goal: str) -> None:
    """Attributes that let ``h5ls -v``/``h5dump -A`` readers know what the numbers mean."""
    units = _METRIC_UNITS.get(metric, "metric units")
    for name, what in (("value", "measured"), ("predicted", "the spline's prediction of")):
        file["points"][name].attrs.update(
            units=units, metric=metric, goal=goal, description=f"{what} {metric}; NaN = none"
        )
    file["points/gpu_hours"].attrs["units"] = "GPU-hours (device-hours the result reports)"
    for name in ("created", "updated"):
        file["points"][name].attrs["units"] = TIME_UNITS
    file["events"].attrs["time_units"] = TIME_UNITS
    for fit in file["fits"].values():
        fit.attrs.update(time_units=TIME_UNITS, units=units)


def _write_curves(file: h5py.File, curves: Curves) -> list[tuple[int, bytes]]:
    """One table per point with a curve (a missing loss, not finite, is stored as NaN), and
    the index of where their bytes lie (:func:`_curve_places`).

    Returns the tables' bytes by offset, for :func:`state_image` to place in
    the finished image: writing 10,000 small tables through HDF5 cost most of
    a commit (:func:`_curve_creation`), copying their bytes a few milliseconds.
    """
    group = file.create_group("curves")
    index = []
    pending = []
    spaces: dict[int, h5py.h5s.SpaceID] = {}
    for point_id in sorted(curves):
        dtype, raw = _curve_bytes(curves, point_id)
        rows = len(raw) // dtype.itemsize
        if rows not in spaces:
            spaces[rows] = h5py.h5s.create_simple((rows,))
        dataset = h5py.h5d.create(
            group.id,
            str(point_id).encode(),
            _file_type(dtype),
            spaces[rows],
            dcpl=_curve_creation(),
        )
        offset = dataset.get_offset()
        if offset is not None:
            pending.append((offset, raw))
        elif rows:  # storage not allocated at creation after all: written through HDF5
            dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.frombuffer(raw, dtype=dtype))
        placed = offset is not None and dtype == _CURVE_DTYPE  # the index's rows are of it
        index.append((point_id, offset if placed else -1, rows))
    if index:
        file.create_dataset("curve_index", data=np.array(index, dtype=_CURVE_INDEX_DTYPE))
    return pending


@functools.cache
def _curve_creation() -> h5py.h5p.PropDCID:
    """How curve tables are created: contiguous, their storage allocated at once, never filled.

    Their offsets are then known when created and no byte of theirs is written
    by HDF5: :func:`state_image` places each table's bytes there in the image.
    """
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _curve_bytes(curves: Curves, point_id: int) -> tuple[np.dtype, bytes]:
    """A curve's table as this codec stores it, with its dtype: a stored table copied as it
    is when it is in that layout (not decoded into entries and encoded again), else its
    entries encoded (a command's own figures as :func:`own_figure_names` keeps them)."""
    table = curves.stored_table(point_id)
    if table is None or not _our_layout(table.dtype):
        entries = curves.read(point_id)
        table = np.empty(len(entries), dtype=_curve_dtype(tuple(own_figure_names(entries)[0])))
        for name in table.dtype.names:
            table[name] = [_stored_value(e.get(name)) for e in entries]
    return table.dtype, table.tobytes()


def _our_layout(dtype: np.dtype) -> bool:
    """Whether a stored table is in the layout this codec writes (the common one first:
    a commit asks it of every stored curve)."""
    return dtype == _CURVE_DTYPE or dtype == _curve_dtype(_own_fields(dtype))


def _own_fields(dtype: np.dtype) -> tuple[str, ...]:
    """The names of a stored table's fields beyond :data:`CURVE_FIELDS`."""
    return tuple(name for name in dtype.names or () if name not in CURVE_FIELDS)


def _stored_value(value: Any) -> Any:
    """A curve figure as its table holds it: NaN for none (a loss that was not finite, an own
    figure the entry did not report)."""
    return np.nan if value is None else value


def _place(image: bytearray, pending: list[tuple[int, bytes]]) -> bytes:
    """``image`` with each of ``pending``'s bytes at its offset (HDF5 allocated, never wrote there)."""
    for offset, raw in pending:
        image[offset : offset + len(raw)] = raw
    return bytes(image)


def state_image(state: State) -> bytes:
    """``state`` as the bytes of a complete HDF5 file, built in memory and sealed.

    Building in memory keeps h5py away from the disk: a full disk then fails
    one plain ``write`` (see :func:`nas.record.store.write_state`), not HDF5's own flushes. The
    user block carries the SHA-256 of the rest (:mod:`nas.record.integrity`).
    """
    with h5py.File(
        f"splinenas-{id(state)}.h5",
        "w",
        driver="core",
        backing_store=False,
        track_order=True,
    ) as file:
        pending = _write_content(file, state)
        file.flush()
        image = _place(bytearray(file.id.get_file_image()), pending)
    return integrity.seal(image)


def _write_content(file: h5py.File, state: State) -> list[tuple[int, bytes]]:
    """Everything but the curves' bytes, which are returned by offset (:func:`_write_curves`)."""
    metric, goal = _objective(state.experiment_text)
    file.attrs.update(
        format_version=FORMAT_VERSION,
        generation=state.generation,
        created=float(state.created),
        time_units=TIME_UNITS,
        metric=metric,
        goal=goal,
        package="splinenas",
        package_version=__version__,
    )
    file.create_dataset("experiment_toml", data=state.experiment_text, dtype=_STR)
    file.create_dataset("space", data=json.dumps(state.space.to_dict()), dtype=_STR)
    file.create_dataset("meta_json", data=json.dumps(state.meta), dtype=_STR)
    _write_points(file.create_group("points"), state)
    _write_fits(file.create_group("fits", track_order=True), state.fits)
    _write_events(file, state.events)
    _describe(file, metric, goal)
    return _write_curves(file, state.curves)


def _text(dataset: h5py.Dataset) -> str:
    return dataset.asstr()[()]


def _column(group: h5py.Group, name: str, dtype: type | None = None) -> list[Any]:
    """One column of the points table as Python values: one read, one vectorised conversion."""
    data = group[name]
    if h5py.check_string_dtype(data.dtype):
        return data.asstr()[()].tolist()
    return np.asarray(data[()], dtype=dtype).tolist()


def _read_points(group: h5py.Group) -> tuple[list[Point], list[str]]:
    """The points, and their params as the stored JSON (a state keeps that text as it is)."""
    columns: dict[str, list[Any]] = {name: _column(group, name, np.int64) for name in _INT_COLUMNS}
    columns |= {name: _column(group, name, float) for name in _FLOAT_COLUMNS}
    columns |= {
        name: [None if math.isnan(v) else v for v in _column(group, name, float)]
        for name in _OPTIONAL_FLOAT_COLUMNS
    }
    columns |= {name: _column(group, name) for name in _STR_COLUMNS}
    columns["status"] = [PointStatus(text) for text in _column(group, "status")]
    columns["extra"] = _json_objects(_column(group, "extra_json"))
    params_json = _column(group, "params_json")
    columns["params"] = _json_objects(params_json)
    rows = zip(*(columns[name] for name in _POINT_FIELDS), strict=True)
    return [Point(*row) for row in rows], params_json


def _json_objects(texts: list[str]) -> list[dict[str, Any]]:
    """Each text decoded as a JSON object, in one parse of their array (10,000 ``loads`` cost more).

    Rows the writer did not write as one object each (``{}, {}``) would shift
    the rows after them: then every row is decoded alone, and the bad one raises.
    """
    try:
        values = json.loads(f"[{','.join(texts)}]")
    except json.JSONDecodeError:
        values = None
    if values is None or len(values) != len(texts) or not all(type(v) is dict for v in values):
        values = [json.loads(text) for text in texts]
        for text, value in zip(texts, values, strict=True):
            if not isinstance(value, dict):
                raise ValueError(f"expected a JSON object in a points column, got {text[:80]!r}")
    return values


def _read_fits(group: h5py.Group) -> list[FitRecord]:
    fits = []
    for name in sorted(group, key=int):
        sub = group[name]
        fits.append(
            FitRecord(
                number=int(name),
                time=float(sub.attrs["time"]),
                support_ids=tuple(int(i) for i in sub["support_ids"][()]),
                coefficients=np.asarray(sub["coefficients"][()], dtype=float),
                loo_rmse=float(sub.attrs["loo_rmse"]),
                argmax=json.loads(sub.attrs["argmax_json"]),
                predicted_max=float(sub.attrs["predicted_max"]),
                best_id=int(sub.attrs.get("best_id", -1)),
                local_loo=float(sub.attrs.get("local_loo", math.nan)),
                noise=json.loads(sub.attrs.get("noise_json", "{}")),
                fitted=_fitted(sub, name),
                warped=tuple(json.loads(sub.attrs.get("warped_json", "[]"))),
            )
        )
    return fits


def _fitted(sub: h5py.Group, name: str) -> tuple[float, ...]:
    """A fit's stored smoothed values (empty where absent), as many as its support points."""
    if "fitted" not in sub:
        return ()
    fitted = tuple(float(v) for v in np.asarray(sub["fitted"][()], dtype=float).ravel())
    if len(fitted) != len(sub["support_ids"]):
        raise ValueError(
            f"/fits/{name}: {len(fitted)} smoothed values for {len(sub['support_ids'])} support points"
        )
    return fitted


def _read_events(dataset: h5py.Dataset) -> list[Event]:
    table = dataset[()]
    columns = (table[name].tolist() for name in ("time", "kind", "point_id", "message"))
    return [
        Event(
            time=float(time),
            kind=kind.decode(),
            point_id=None if point_id < 0 else int(point_id),
            message=message.decode(),
        )
        for time, kind, point_id, message in zip(*columns, strict=True)
    ]


def _read_curves(file: h5py.File, source: BinaryIO | None = None) -> Curves:
    """The learning curves, each decoded when asked for (none in files from before curves).

    ``source`` is the verified file object the file was opened from: a curve
    stored contiguously in the layout this codec writes is then read straight
    from it (``export --json`` reads 10,000 curves; the general HDF5 read
    costs several times more per dataset than the curve's own bytes).
    """
    if "curves" not in file:
        return Curves()
    group = file["curves"]
    places = _curve_places(file) if source is not None else {}
    return Curves(
        (int(name) for name in group),
        lambda point_id: _curve_rows(group, point_id, source, places.get(point_id)),
        lambda point_id: _curve_table(group, point_id, source, places.get(point_id)),
    )


def _curve_places(file: h5py.File) -> dict[int, tuple[int, int]]:
    """Point id -> (offset in the file, bytes) of each curve that ``/curve_index`` places.

    Opening one HDF5 dataset costs about 100 µs with its close, more than
    reading its curve: ``export --json`` at 10,000 points spent a second
    finding the curves. The index, written with them, says where each lies;
    it is read only from a file whose checksum held (``source``), and a curve
    it does not place is found through HDF5.
    """
    if "curve_index" not in file:
        return {}
    index = file["curve_index"][()]
    if index.dtype != _CURVE_INDEX_DTYPE:
        return {}
    base = file.userblock_size
    return {
        point_id: (base + offset, rows * _CURVE_DTYPE.itemsize)
        for point_id, offset, rows in index.tolist()
        if offset >= 0
    }


def _curve_table(
    group: h5py.Group, point_id: int, source: BinaryIO | None, place: tuple[int, int] | None
) -> np.ndarray:
    """The stored table of one curve: from ``source`` at ``place`` (:func:`_curve_places`)
    or where its dataset says when its storage allows, else via HDF5."""
    if source is not None and place is not None:
        offset, size = place
        source.seek(offset)
        raw = source.read(size)
        if len(raw) == size:
            return np.frombuffer(raw, dtype=_CURVE_DTYPE)
    dataset = h5py.h5d.open(group.id, str(point_id).encode())
    offset = dataset.get_offset()
    if source is not None and offset is not None and dataset.get_type() == _curve_file_type():
        size = dataset.get_storage_size()  # contiguous: exactly the table's bytes
        source.seek(offset)
        raw = source.read(size)
        if len(raw) == size and size % _CURVE_DTYPE.itemsize == 0:
            return np.frombuffer(raw, dtype=_CURVE_DTYPE)
    table = np.empty(dataset.shape, dtype=dataset.dtype)
    dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, table)
    return table


@functools.cache
def _file_type(dtype: np.dtype) -> h5py.h5t.TypeID:
    """The HDF5 type of a curve table's dtype (made once per layout)."""
    return h5py.h5t.py_create(dtype)


def _curve_file_type() -> h5py.h5t.TypeID:
    """The HDF5 type this codec stores curves without own figures as (compared, not
    converted: H5Tequal is cheap)."""
    return _file_type(_CURVE_DTYPE)


def _curve_rows(
    group: h5py.Group,
    point_id: int,
    source: BinaryIO | None,
    place: tuple[int, int] | None = None,
) -> StoredCurve:
    """One stored curve: its field names (:data:`CURVE_FIELDS`, then the command's own
    figures) and its rows of values; a NaN (a loss not finite when measured, a figure an
    entry did not report) is None.

    The table becomes rows in one ``tolist`` (``export --json`` decodes
    300,000 entries at 10,000 points); only rows holding a NaN are rebuilt.
    """
    table = _curve_table(group, point_id, source, place)
    fields = CURVE_FIELDS + _own_fields(table.dtype)
    if table.dtype.names != fields:
        table = table[list(fields)]
    rows = table.tolist()
    if table.dtype == _CURVE_DTYPE and not np.isnan(table.view(np.float64)).any():
        return fields, rows  # no float field is NaN (an int one only could be if negative)
    floats = [table[name] for name in fields if table.dtype[name].kind == "f"]
    for index in np.flatnonzero(np.logical_or.reduce([np.isnan(c) for c in floats])):
        rows[index] = tuple(None if math.isnan(v) else v for v in rows[index])
    return fields, rows


def _check_version(file: h5py.File, path: Path) -> None:
    if "format_version" not in file.attrs:
        raise StateFormatError(f"{path} is an HDF5 file but not a splinenas state file")
    version = int(file.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise StateVersionError(path, version, str(file.attrs.get("package_version", "?")))


def _time(value: Any) -> float:
    """A stored time as UNIX seconds; files before ``time_units`` kept an ISO 8601 string."""
    if isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        return datetime.datetime.fromisoformat(text).timestamp()
    return float(value)


def _decode(file: h5py.File, source: BinaryIO | None = None) -> State:
    state = State(
        _text(file["experiment_toml"]),
        SearchSpace.from_dict(json.loads(_text(file["space"]))),
        created=_time(file.attrs["created"]),
    )
    state.generation = int(file.attrs["generation"])
    state.meta = json.loads(_text(file["meta_json"]))
    coords = np.asarray(file["points/coords"][()], dtype=float)
    points, params_json = _read_points(file["points"])
    if coords.shape != (len(points), state.space.d):
        raise ValueError(
            f"points/coords has shape {coords.shape}, expected {(len(points), state.space.d)}"
        )
    for point, text, row in zip(points, params_json, coords, strict=True):
        state.restore(point, row, text)
    state.fits = _read_fits(file["fits"])
    state.events = _read_events(file["events"])
    state.curves = _read_curves(file, source)
    return state


#: What a corrupt file can raise from h5py, numpy or the decoding of its content.
READ_ERRORS = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    RuntimeError,
)


def decode_image(data: bytes, path: str | os.PathLike) -> State:
    """The state held by the bytes ``data`` of a file (``path`` names it in errors)."""
    return decode_source(io.BytesIO(data), path)


def decode_source(source: BinaryIO, path: str | os.PathLike) -> State:
    """The state in the verified file object ``source``; kept open while curves remain unread.

    ``path`` names the file in errors.
    """
    file = h5py.File(source, "r", locking=False)
    try:
        _check_version(file, Path(path))
        state = _decode(file, source)
    except BaseException:
        file.close()
        source.close()
        raise
    if not state.curves:
        file.close()  # else it stays open for the curves read later
        source.close()
    return state


def reencode(data: bytes, path: str | os.PathLike) -> bytes:
    """The state in the unverified bytes ``data``, encoded again by this codec and sealed."""
    with h5py.File(io.BytesIO(data), "r", locking=False) as file:
        _check_version(file, Path(path))
        return state_image(_decode(file))  # curves decoded here, while the file is open


def corruption(exc: BaseException) -> str:
    """One phrase for what is wrong with a file that failed to decode."""
    if isinstance(exc, (integrity.IntegrityError, UnsealedReadError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
