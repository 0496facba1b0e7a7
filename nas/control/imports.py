"""Measurements from elsewhere (an earlier campaign, another team) into a state.

A search can start from any measurements, not only its own design: the rows of
a CSV file (one column per dimension plus ``value`` or a column named after the
metric; ``splinenas export --csv`` writes one), of a JSON document (a list of
``{"params": {...}, "value": v}`` or an object with such a ``points`` list, as
``status --json`` writes; the metric's name may stand for ``value``, and a
document naming its ``metric`` must name this search's) or the measured points
of another campaign's state file become measured points with origin ``"import"``,
the source file, the row (or the source's point id and experiment) and an
optional note in their ``extra``. Every row is checked like ``splinenas add``
checks its point; all problems are collected, each naming its row, and nothing
is changed unless every row is valid.

Once the measurements determine a spline (d+1 affinely independent points in
a category, see :meth:`~nas.search.optimizer.SplineOptimizer.fit`), the
initial design has served its purpose there: :func:`withdraw_design` cancels
its points not yet submitted, each with a ``withdrawn`` event, so that the
first training of a warm start is a spline proposal (``splinenas rerun``
brings one back).

The source's kind is read from its bytes, not its name: a spreadsheet (a zip
archive: .xlsx, .ods) or a file that is not UTF-8 is refused in one line that
says what to do, rather than decoded into nonsense. Only a ``.json`` file that
does not start with a list or an object (``null``, ``42``) is judged by its name,
so that it is refused as JSON rather than as a CSV header.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import ConfigError, Experiment
from nas.control import policy
from nas.control.costs import DEVICE_HOURS, costs_carried_by
from nas.errors import UserError
from nas.numbers import json_int
from nas.pointdir.jsonio import parse_json
from nas.record.integrity import is_hdf5
from nas.record.state import Point, PointStatus, State, StateError
from nas.record.store import load_state
from nas.search.space import Params, SearchSpace, SpaceError

#: Columns of ``splinenas export --csv`` that are not read back (besides the dimensions).
EXPORT_COLUMNS = frozenset(
    {"id", "status", "value", "predicted", "batch", "origin", "job_id", "job_name", "attempts"}
    | {"segment", "gpu_hours", "reason", "created", "updated"}
)


class RowsError(UserError, ValueError):
    """Rows that cannot be imported; one line per problem, each naming its row."""


@dataclass(frozen=True)
class Row:
    """One measurement read from a file; ``number`` counts from 1 in every kind of source.

    A person counts from 1, and the messages and ``extra.import`` name rows by it:
    a CSV file's row N is its line N + 1 (row 1 is the line below the header,
    blank lines counted, as a spreadsheet and :func:`_decode` count them), a JSON
    document's the N-th of its points, a state file's its point N - 1 (the
    point's row in that state's ``export --csv``). ``origin`` is what, besides the
    file and row, says where it came from (the source campaign and its point id,
    for a state file). ``costs`` are the ``extra`` entries that hold a state file's
    measured costs (:data:`COST_KEYS`; empty for a CSV or JSON row): without them a
    measured bound or trade-off of the importing campaign would have nothing to read.
    """

    number: int
    params: dict[str, Any]
    value: float | None
    origin: Mapping[str, Any] = field(default_factory=dict)
    costs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """What an import did: points added or given their value, rows merged or skipped, snaps.

    ``warnings`` are doubts about the values themselves (they were imported as given);
    ``costs`` the measured costs that came along with the values (:func:`point_costs`).
    """

    added: list[Point]
    updated: list[Point]
    unchanged: list[Point]
    skipped: list[str]
    notes: list[str]
    warnings: list[str] = field(default_factory=list)
    costs: list[str] = field(default_factory=list)


def read_rows(path: Path, space: SearchSpace, metric: str) -> list[Row]:
    """The rows of a CSV or JSON file or of a state file (by its content; see the module).

    Raises:
        RowsError: a spreadsheet, a file that is not UTF-8, or one without a measurement.
    """
    data = path.read_bytes()
    if is_hdf5(data):
        return state_rows(path, metric)
    if data.startswith(ZIP_MAGIC):
        raise RowsError(
            f"{path} is a spreadsheet ({path.suffix or 'zip archive'}), not a CSV file: "
            "save it as CSV (UTF-8) and import that"
        )
    text = _decode(data, path)
    if text.lstrip().startswith(("[", "{")) or path.suffix.lower() == ".json":
        rows = _json_rows(text, path, metric)
    else:
        rows = _csv_rows(text, path, space, metric)
    if not any(row.value is not None for row in rows):
        raise RowsError(
            f"{path}: no measurement found ({len(rows)} rows): each needs 'value' or {metric!r}"
        )
    return rows


#: The first bytes of a zip archive: .xlsx, .ods and .numbers files are zipped XML.
ZIP_MAGIC = b"PK\x03\x04"


def _decode(data: bytes, path: Path) -> str:
    """``data`` as UTF-8 (a byte-order mark, as Excel writes, dropped); else one line naming the row.

    Line 1 is no row (a CSV file's header; rows count from 1, see :class:`Row`), so
    it is named alone rather than as a row 0.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        where = f"line {line}" if line == 1 else f"line {line} (row {line - 1})"
        raise RowsError(
            f"{path} {where}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8 (Excel: 'CSV UTF-8') and import it again"
        ) from None


def _value_key(keys: Collection[str], metric: str, where: str) -> str:
    """The key (CSV column, JSON key) that holds the measurement: ``value`` or the metric's name.

    Both at once is refused rather than one of them ignored: they may disagree, and
    only the person knows which one is meant.
    """
    if metric != "value" and "value" in keys and metric in keys:
        raise RowsError(f"{where}: both 'value' and {metric!r}: give the measurement once")
    return metric if metric in keys else "value"


def _csv_rows(text: str, path: Path, space: SearchSpace, metric: str) -> list[Row]:
    """The data rows of a CSV file; a row with more or fewer fields than the header, or a
    header naming a column twice, is refused.

    Extra fields would be dropped, missing ones read as empty and all but the
    last of a repeated column ignored, each silently.
    """
    reader = csv.reader(text.splitlines())
    header = next(reader, [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise RowsError(f"{path}: the header names {', '.join(map(repr, repeated))} twice")
    column = _value_key(header, metric, f"{path} header")
    missing = [name for name in (*space.names, column) if name not in header]
    known = {*space.names, *EXPORT_COLUMNS, column}
    unknown = [name for name in header if name not in known]
    if missing or unknown:
        raise RowsError(
            f"{path}: the header needs one column per dimension and 'value' (or {metric!r}): "
            f"missing {missing}, unknown {unknown}"
        )
    rows, problems = [], []
    for number, fields in _numbered(reader):
        if len(fields) != len(header):
            problems.append(
                f"{path} row {number}: {len(fields)} fields, the header has {len(header)}"
            )
            continue
        record = dict(zip(header, fields, strict=True))
        if record.get("status", "done") not in ("done", ""):
            continue  # an exported point that was never measured
        value = record[column] or None
        rows.append(Row(number, {name: _number(record[name]) for name in space.names}, value))
    if problems:
        raise RowsError("\n".join(problems))
    _check_column_filled(rows, path, column)
    return rows


def _check_column_filled(rows: list[Row], path: Path, column: str) -> None:
    """Refuse rows whose measurement column is empty in every one of them.

    The column is there: "no measurement found, each needs 'value'" would send
    the person looking for a column rather than for the values left out of it.
    """
    if rows and all(row.value is None for row in rows):
        raise RowsError(
            f"{path}: the column {column!r} is there, but every cell of it is empty: "
            "no measurement to import"
        )


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """The records of a CSV reader past its header, each with its row number (see :class:`Row`);
    blank lines are skipped but counted.

    The row is the line the record starts on, less one: counting records instead
    would put row N elsewhere than a person finds it in an editor or a spreadsheet
    after a blank line or a quoted field that spans lines.
    """
    while True:
        number = reader.line_num
        fields = next(reader, None)
        if fields is None:
            return
        if fields:
            yield number, fields


def state_rows(path: Path, metric: str) -> list[Row]:
    """The measured points of another campaign's state file, each with where it came from.

    Raises:
        RowsError: the file is not a readable state, or its metric is not ``metric``.
    """
    try:
        other = load_state(path)
        experiment = policy.experiment_of(other, path)
    except (StateError, ConfigError) as exc:
        raise RowsError(f"{path}: {exc}") from None
    _check_metric(path, experiment.experiment.metric, metric)
    provenance = {"experiment": experiment.experiment.name}
    return [
        Row(p.id + 1, dict(p.params), p.value, {**provenance, "point": p.id}, point_costs(p))
        for p in other.points
        if p.status is PointStatus.DONE and p.value is not None
    ]


#: The ``extra`` entries of a point that hold its measured costs (read by
#: :func:`nas.control.costs.measured_cost`): the result's metrics and its pace.
COST_KEYS = ("metrics", "pace")


def point_costs(point: Point) -> dict[str, Any]:
    """The measured costs of another campaign's point, as ``extra`` entries to carry over.

    The source's GPU-hours go into ``pace`` as its ``device_hours`` when the pace
    lacks them (the fallback :func:`~nas.control.costs.measured_cost` reads), not
    into the new point's ``gpu_hours``: those count against the importing
    campaign's ``max_gpu_hours``, and it never spent them.
    """
    carried = {k: dict(v) for k in COST_KEYS if isinstance(v := point.extra.get(k), Mapping)}
    pace = carried.get("pace", {})
    if pace.get(DEVICE_HOURS) is None and point.gpu_hours:
        carried["pace"] = {**pace, DEVICE_HOURS: point.gpu_hours}
    return carried


def _check_metric(path: Path, measured: object, metric: str) -> None:
    """Refuse a source that names the metric it measured when that is not this search's.

    A top-5 accuracy is no top-1 accuracy: the values would be in range and wrong.
    """
    if measured != metric:
        raise RowsError(
            f"{path} measured {measured!r}, this search {metric!r}: "
            "its values cannot be imported here"
        )


def _number(text: str | None) -> Any:
    """A CSV cell as int, float or the text itself (categorical choices)."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text


def _json_rows(text: str, path: Path, metric: str) -> list[Row]:
    """The points of a JSON document; one that names its ``metric`` must name ``metric``."""
    not_points = f"{path}: not a JSON document of points"
    try:
        document = parse_json(text, parse_int=json_int)
    except ValueError as exc:  # JSONDecodeError, an integer too large (json_int), too deep
        raise RowsError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(document, Mapping) and document.get("metric") is not None:
        _check_metric(path, document["metric"], metric)
    entries = document.get("points") if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        raise RowsError(f"{not_points}: expected a list of points or an object with 'points'")
    rows, unmeasured, nulls = [], Counter[str](), 0
    for number, entry in enumerate(entries, start=1):
        where = f"{path} row {number}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("params"), Mapping):
            raise RowsError(f"{where}: expected {{'params': {{...}}, 'value': v}}")
        status = entry.get("status", "done")
        if status != "done":
            unmeasured[str(status)] += 1
            continue
        key = _value_key(entry, metric, where)
        nulls += key in entry and entry[key] is None
        rows.append(Row(number, dict(entry["params"]), entry.get(key)))
    _check_measured(rows, unmeasured, nulls, path)
    return rows


def _check_measured(rows: list[Row], unmeasured: Counter[str], nulls: int, path: Path) -> None:
    """Refuse a document whose points are there but unmeasured, saying so.

    ``status --json`` of a campaign that measured nothing yet lists its pending
    points (and a done point may carry ``null``): "each needs 'value'" would
    send the person looking for a key that the document has. Points that lack
    the key get that message (:func:`read_rows`).
    """
    if any(row.value is not None for row in rows) or nulls < len(rows) or not (rows or unmeasured):
        return
    why = []
    if unmeasured:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(unmeasured.items()))
        why.append(f"{sum(unmeasured.values())} not done ({counts})")
    if rows:
        why.append(f"{len(rows)} done without a value (null)")
    raise RowsError(f"{path}: no measurement to import: of its points {' and '.join(why)}")


def import_rows(
    state: State,
    experiment: Experiment,
    rows: list[Row],
    *,
    source: str,
    note: str = "",
    snap: bool = False,
    replace: bool = False,
) -> Report:
    """Check every row, then add or merge them all; on any problem change nothing.

    Raises:
        RowsError: every problem found, one line each, naming the row.
    """
    space = state.space
    problems, notes, skipped = [], [], []
    checked: dict[tuple, tuple[Row, Params, float]] = {}
    for row in rows:
        where = f"{source} {row_name(row)}"
        if row.value is None:
            skipped.append(f"{where}: no value; skipped")
            continue
        try:
            snapped, snaps, outside = space.snap_report(row.params)
            value = policy.check_value(experiment, _float(row.value), where)
        except (SpaceError, policy.StudyError, ValueError) as exc:
            problems.append(str(exc) if str(exc).startswith(where) else f"{where}: {exc}")
            continue
        if outside and not snap:
            given = "; ".join(given_part(note) for note in outside)
            problems.append(f"{where}: {given} outside the box; {would_snap(outside)}")
            continue
        notes += [f"{where}: {text}" for text in snaps]
        key = space.key(snapped)
        if key in checked and checked[key][2] != value:
            first = row_name(checked[key][0])
            problems.append(
                f"{where}: the same architecture as {first} with another value "
                f"({value} vs {checked[key][2]})"
            )
            continue
        existing = state.find(snapped)
        if existing is not None and existing.value not in (None, value) and not replace:
            problems.append(
                f"{where}: point {existing.id} is already measured ({existing.value}); "
                f"{value} needs --replace"
            )
            continue
        if key in checked:  # the same architecture and value again: one point
            notes.append(f"{where}: repeats {row_name(checked[key][0])}; counted once")
            continue
        checked[key] = (row, snapped, value)
    if problems:
        raise RowsError("\n".join(problems))
    report = _apply(state, list(checked.values()), source, note, skipped, notes)
    given = [p for p in report.added + report.updated if p.extra.get("import", {}).get("costs")]
    report.costs.extend(sorted(costs_carried_by(given, experiment.experiment.metric)))
    report.warnings.extend(
        fraction_warning(experiment, [v for _, _, v in checked.values()], source)
    )
    return report


def row_name(row: Row) -> str:
    """``row 3``; ``row 3 (point 2)`` for a state file's row, whose point id counts from 0."""
    point = row.origin.get("point")
    return f"row {row.number}" if point is None else f"row {row.number} (point {point})"


def given_part(note: str) -> str:
    """``"g1=200"`` of a snapping note ``"g1=200 stored as 32, the upper bound"``."""
    return note.split(" stored as ", 1)[0]


def would_snap(outside: list[str]) -> str:
    """What ``--snap`` would store of values outside the box, for the refusal that names them.

    ``outside`` are notes of :meth:`~nas.search.space.SearchSpace.snap_report`,
    which say what was stored ("g1=2 stored as 4, the lower bound"); a refusal
    stores nothing, so it says what --snap would store instead.
    """
    stored = [note.split(" stored as ", 1)[1] for note in outside]
    if len(outside) == 1:
        return f"with --snap it would be stored as {stored[0]}"
    each = "; ".join(f"{given_part(n)} as {s}" for n, s in zip(outside, stored, strict=True))
    return f"with --snap they would be stored: {each}"


def fraction_warning(experiment: Experiment, values: list[float], source: str) -> list[str]:
    """A warning when every value of a percentage metric looks like a fraction (0.951 for 95.1 %).

    The values are imported as given: only the person knows what they meant.
    """
    metric = experiment.experiment.metric
    if policy.value_range(experiment) != (0.0, 100.0) or not values or max(values) > 1.0:
        return []
    return [
        f"{source}: every {metric} value lies in [0, 1] but {metric} is a percentage "
        "in [0, 100]; if these are fractions, multiply them x 100 and import with --replace"
    ]


def _float(value: Any) -> float:
    """``value`` (a CSV cell, a JSON value) as a finite float; else a ValueError saying why.

    JSON may give ``true``, an object or a list where a number belongs: each is refused
    by the same message rather than a TypeError from ``float``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"value {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value {value!r} is not finite")
    return number


def _apply(
    state: State,
    checked: list[tuple[Row, Params, float]],
    source: str,
    note: str,
    skipped: list[str],
    notes: list[str],
) -> Report:
    added, updated, unchanged = [], [], []
    batch = state.next_batch()
    for row, params, value in checked:
        point = state.find(params)
        provenance = {"source": source, "row": row.number, **row.origin}
        provenance |= {"note": note} if note else {}
        provenance |= {"costs": sorted(row.costs)} if row.costs else {}
        if point is None:
            point = state.add_point(params, "import", batch)
            state.update_point(point.id, extra={**point.extra, **row.costs, "import": provenance})
            added.append(state.record(point.id, value))
        elif point.value == value:
            unchanged.append(point)
        else:
            try:
                point = state.record(point.id, value, replace=True, given=True)
            except StateError as exc:  # a point whose job may still run
                raise RowsError(f"{source} {row_name(row)}: {exc}") from None
            extra = {**point.extra, **row.costs, "import": provenance}
            state.update_point(point.id, extra=extra)
            updated.append(state.point(point.id))
    return Report(added, updated, unchanged, skipped, notes)


#: Event kind of an initial-design point withdrawn because measurements determine the spline.
WITHDRAWN = "withdrawn"


def withdraw_design(state: State) -> list[Point]:
    """Cancel the pending initial-design points that the stored fit makes unnecessary.

    The design exists to determine a spline; a point of it still pending (never
    submitted) in a category whose spline the last stored fit already
    determines would train something the search does not need. Call after
    the fit over the imported points is stored (``policy.Study.store_fit``);
    without one nothing is withdrawn.
    """
    fit = policy.current_fit(state)
    if fit is None:
        return []
    space = state.space
    fitted = {space.category_of(state.point(i).params) for i in fit.support_ids}
    withdrawn = []
    for point in state.with_status(PointStatus.PENDING):
        if (
            point.origin != "initial"
            or point.attempts
            or space.category_of(point.params) not in fitted
        ):
            continue
        why = f"withdrawn: the {len(fit.support_ids)} measured points determine the spline"
        withdrawn.append(state.set_status(point.id, PointStatus.CANCELLED, reason=why))
        state.log(WITHDRAWN, f"initial-design point not needed: {why}", point.id)
    return withdrawn
