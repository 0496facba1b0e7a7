"""Measurements from elsewhere (an earlier campaign, another team) into a state.

A search can start from any measurements, not only its own design: the rows of
a CSV file (one column per dimension plus ``value``; ``splinenas export --csv``
writes one) or of a JSON document (a list of ``{"params": {...}, "value": v}``
or an object with such a ``points`` list, as ``status --json`` writes) become
measured points with origin ``"import"``, the source file, the row and an
optional note in their ``extra``. Every row is checked like ``splinenas add``
checks its point; all problems are collected, each naming its row, and nothing
is changed unless every row is valid.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import Experiment
from nas.control import policy
from nas.errors import UserError
from nas.record.state import Point, State, StateError
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
    """One measurement read from a file: ``number`` counts data rows from 1."""

    number: int
    params: dict[str, Any]
    value: float | None


@dataclass(frozen=True)
class Report:
    """What an import did: points added or given their value, rows merged or skipped, snaps."""

    added: list[Point]
    updated: list[Point]
    unchanged: list[Point]
    skipped: list[str]
    notes: list[str]


def read_rows(path: Path, space: SearchSpace) -> list[Row]:
    """The rows of a CSV or JSON file (by its content, not its name)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(("[", "{")):
        return _json_rows(text, path)
    return _csv_rows(text, path, space)


def _csv_rows(text: str, path: Path, space: SearchSpace) -> list[Row]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [name for name in (*space.names, "value") if name not in header]
    unknown = [name for name in header if name not in space.names and name not in EXPORT_COLUMNS]
    if missing or unknown:
        raise RowsError(
            f"{path}: the header needs one column per dimension and 'value': missing {missing}, "
            f"unknown {unknown}"
        )
    rows = []
    for number, record in enumerate(reader, start=1):
        if record.get("status", "done") not in ("done", ""):
            continue  # an exported point that was never measured
        value = None if record["value"] in ("", None) else record["value"]
        rows.append(Row(number, {name: _number(record[name]) for name in space.names}, value))
    return rows


def _number(text: str | None) -> Any:
    """A CSV cell as int, float or the text itself (categorical choices)."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text


def _json_rows(text: str, path: Path) -> list[Row]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowsError(f"{path}: not valid JSON: {exc}") from None
    entries = document.get("points") if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        raise RowsError(f"{path}: expected a list of points or an object with 'points'")
    rows = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("params"), Mapping):
            raise RowsError(f"{path} point {number}: expected {{'params': {{...}}, 'value': v}}")
        if entry.get("status", "done") != "done":
            continue
        rows.append(Row(number, dict(entry["params"]), entry.get("value")))
    return rows


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
        where = f"{source} row {row.number}"
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
            problems.append(f"{where}: {'; '.join(outside)}: outside the box (give --snap)")
            continue
        notes += [f"{where}: {text}" for text in snaps]
        key = space.key(snapped)
        if key in checked and checked[key][2] != value:
            first = checked[key][0].number
            problems.append(
                f"{where}: the same architecture as row {first} with another value "
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
        checked.setdefault(key, (row, snapped, value))
    if problems:
        raise RowsError("\n".join(problems))
    return _apply(state, list(checked.values()), source, note, skipped, notes)


def _float(value: Any) -> float:
    if isinstance(value, bool):
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
        if point is None:
            point = state.add_point(params, "import", batch)
            provenance = {"source": source, "row": row.number, **({"note": note} if note else {})}
            state.update_point(point.id, extra={**point.extra, "import": provenance})
            added.append(state.record(point.id, value))
        elif point.value == value:
            unchanged.append(point)
        else:
            try:
                updated.append(state.record(point.id, value, replace=True))
            except StateError as exc:  # e.g. a point whose job still runs
                raise RowsError(f"{source} row {row.number}: {exc}") from None
    return Report(added, updated, unchanged, skipped, notes)
