"""Learning curves and the divergence guard in ``status``, ``show`` and ``export --json``.

A running point's curve is read from its folder (bounded, see
:mod:`nas.pointdir.curve`); a finished point's from the state file, where the
controller stored it with the result. Every document lists a curve under the
key ``"curve"`` as entries with the fields ``epoch, images, loss, top1,
top5, lr, seconds``, then the command's own figures (its metric), which the
state keeps too (:func:`nas.record.state.own_figure_names`).

A command of ``[train] command`` reports what it has (``epoch``, ``loss``,
its metric), not the built-in trainer's fields: a figure it did not report
is null (``images`` 0), and readers show it as '-' or leave it out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from nas.commands.common import JSONText, number_text, point_doc, write_table
from nas.curvefields import CURVE_FIELDS
from nas.names import shown
from nas.numbers import amount_text
from nas.pointdir import layout
from nas.pointdir.curve import last_entry, read_curve
from nas.record.state import ACTIVE, CurveRow, Point, State

#: Rows of a curve that ``show`` prints; longer curves are thinned, the last row kept.
SHOWN_ROWS = 15
#: Column headings of the curve fields whose name is not their heading.
_HEADINGS = {"top1": "top-1", "top5": "top-5", "seconds": "hours"}


def point_curve(state: State, point: Point, run: Path) -> list[dict[str, Any]]:
    """The newest curve of a point: its folder's while a job may run, else the state's."""
    folder = _folder_curve(state, point, run)
    return list(state.curves.read(point.id)) if folder is None else folder


def _folder_curve(state: State, point: Point, run: Path) -> list[dict[str, Any]] | None:
    """The point folder's curve where it is the newest (a job may still write it), else None."""
    if point.status.is_active() or point.id not in state.curves:
        folder_curve = read_curve(layout.point_dir(run, point.id))
        if folder_curve or point.id not in state.curves:
            return folder_curve
    return None


def write_curve_table(curve: list[dict[str, Any]], out: TextIO) -> None:
    """A compact table of a curve: at most :data:`SHOWN_ROWS` rows, evenly spread.

    A field no entry reports is left out (a command of its own reports its loss
    and metric, not the built-in trainer's top-1 and top-5), a command's own
    figures follow the built-in ones (their names as a message shows them: the
    command chose them), and a value one entry lacks is '-'.
    """
    step = max(1, -(-len(curve) // SHOWN_ROWS))
    rows_shown = curve[::step]
    if rows_shown[-1] is not curve[-1]:
        rows_shown.append(curve[-1])
    names = [n for n in CURVE_FIELDS[1:] if any(_reported(e, n) for e in curve)]
    names += [n for n in dict.fromkeys(k for e in curve for k in e) if n not in CURVE_FIELDS]
    rows = [["epoch", *(_HEADINGS.get(name, shown(name)) for name in names)]]
    rows += [[str(e["epoch"]), *(_cell(e, name) for name in names)] for e in rows_shown]
    write_table(rows, out)


def _reported(entry: dict[str, Any], name: str) -> bool:
    """Whether a curve entry carries the figure ``name``.

    ``images`` 0 counts as not reported: it is what a command that does not
    count images gets (the state stores the count as an integer, which cannot
    be null); a curve that counts them shows its 0 where its column is shown.
    """
    value = entry.get(name)
    return value is not None and not (name == "images" and value == 0)


def _cell(entry: dict[str, Any], name: str) -> str:
    """One figure of a curve table; '-' where the entry has none.

    The built-in trainer writes every field (:func:`nas.pointdir.curve.make_entry`):
    a null loss beside its top-1 is one that was not finite, and says so. A
    command of its own writes null for a figure it did not report.
    """
    value = entry.get(name)
    if name == "images":
        return str(value)
    if name == "loss" and value is None and entry.get("top1") is not None:
        return "non-finite"
    if name == "seconds":
        return _shown(None if value is None else value / 3600, ".2f")
    spec = {"top1": ".2f", "top5": ".2f", "lr": ".4g"}.get(name, ".6g")
    return _shown(value, spec)


def _shown(value: float | None, spec: str) -> str:
    """A curve figure, '-' where the trainer reported none (a user's command may not)."""
    return "-" if value is None else format(value, spec)


def running_progress(state: State, run: Path) -> list[dict[str, Any]]:
    """For every point with a job: its last curve entry's epoch and subset top-1 (or nulls),
    and under ``figures`` every figure that entry reports (a command's own metric too)."""
    progress = []
    for point in state.with_status(*ACTIVE):
        entry = last_entry(layout.point_dir(run, point.id)) or {}
        figures = {k: v for k, v in entry.items() if k != "epoch" and _reported(entry, k)}
        progress.append(
            {
                "id": point.id,
                "epoch": entry.get("epoch"),
                "top1": entry.get("top1"),
                "figures": figures,
            }
        )
    return progress


#: What the guard's hours saved are (``status --json``: ``diverged.saved_meaning``).
SAVED_MEANING = (
    "segment time the stopped runs did not use, times their ranks: for the built-in trainer "
    "its steps left at its step time, for a command that exited 5 itself the walltime left "
    "(an upper bound); GPU-hours count only runs that named a GPU (such a command names none)"
)


def guard_summary(state: State) -> dict[str, Any]:
    """Points the divergence guard stopped, and the device time it saved them."""
    points = [p for p in state.points if p.extra.get("diverged")]
    saved = [p.extra.get("guard_saved", {}) for p in points]
    return {
        "points": [
            {"id": p.id, "status": p.status.value, "divergences": int(p.extra["diverged"]), **s}
            for p, s in zip(points, saved, strict=True)
        ],
        "saved_gpu_hours": sum(s.get("gpu_hours", 0.0) for s in saved),
        "saved_device_hours": sum(s.get("device_hours", 0.0) for s in saved),
        "saved_meaning": SAVED_MEANING,
    }


def write_guard_lines(doc: dict[str, Any], out: TextIO) -> None:
    """``status`` lines: each running point's progress, the diverged points and hours saved."""
    for item in doc["running"]:
        where = _progress_text(item, doc["metric"])
        out.write(f"running: point {item['id']}: {where}\n")
    guard = doc["diverged"]
    if guard["points"]:
        listed = ", ".join(f"{p['id']} ({p['status']})" for p in guard["points"])
        saved = _saved_text(guard["saved_gpu_hours"], guard["saved_device_hours"])
        out.write(f"diverged: points {listed}; {saved}\n")


def _saved_text(gpu_hours: float, device_hours: float) -> str:
    """What the guard saved, as far as the figures say it (see :data:`SAVED_MEANING`).

    A command that exits 5 itself names no device and reports no saving: its
    figure is the walltime it left, counted as no GPU-hours. "saved 0.00
    GPU-hours (0.30 device-hours)" would read as nothing saved and as a
    saving at once, so where no GPU-hours are counted the line says the
    device-hours were left unused, and a saving too small for two decimals
    reads "under 0.01" rather than 0.00.
    """
    if gpu_hours > 0:
        gpu, device = _hours_text(gpu_hours), _hours_text(device_hours)
        return f"the guard saved {gpu} GPU-hours ({device} device-hours)"
    if device_hours > 0:
        return (
            f"their runs left {_hours_text(device_hours)} device-hours of walltime unused "
            "(no GPU-hours counted: they named no GPU)"
        )
    return "no time saved is known (no run had segment time left to count)"


def _hours_text(hours: float) -> str:
    """Hours to two decimals; ``under 0.01`` for a positive amount that would read 0.00."""
    text = amount_text(hours, 2)
    return "under 0.01" if hours > 0 and text == "0.00" else text


def _progress_text(item: dict[str, Any], metric: str) -> str:
    """A running point's progress: its epoch, the experiment's metric where its curve has
    it (else the subset top-1 where it has that) and the loss; only what was reported."""
    if item["epoch"] is None:
        return "no evaluation yet"
    figures = item["figures"]
    names = [metric] if metric in figures else [n for n in ("top1",) if n in figures]
    names += [n for n in ("loss",) if n in figures and n not in names]
    return ", ".join([f"epoch {item['epoch']}", *(_figure_text(n, figures[n]) for n in names)])


def _figure_text(name: str, value: float) -> str:
    """``subset top-1 41.20 %`` for the built-in trainer's accuracies, else ``name value``."""
    if name in ("top1", "top5"):
        return f"subset top-{name[-1]} {value:.2f} %"
    return f"{name} {number_text(value)}"


def export_doc(state: State, run: Path, state_path: Path) -> dict[str, Any]:
    """``export --json``: every point with its bookkeeping and its curve.

    ``points`` is a generator: each point's entry (its curve decoded) is
    made while it is written, so 10,000 curves are never all in memory.
    """
    return {
        "state": str(state_path),
        "generation": state.generation,
        "points": (_export_entry(state, point, run) for point in state.points),
    }


def _export_entry(state: State, point: Point, run: Path) -> dict[str, Any] | JSONText:
    """One point of ``export --json``; a curve read from the state is encoded from its rows."""
    entry = {
        **point_doc(point),
        "attempts": point.attempts,
        "segment": point.segment,
        "gpu_hours": point.gpu_hours,
        "reason": point.reason,
        "extra": point.extra,
    }
    folder = _folder_curve(state, point, run)
    rows = state.curves.stored_rows(point.id) if folder is None else None
    if rows is None:
        entry["curve"] = list(state.curves.read(point.id)) if folder is None else folder
        return entry
    head = json.dumps(entry, allow_nan=False)
    return JSONText(f'{head[:-1]}, "curve": {curve_json(rows)}}}')


#: A curve entry of numbers as json spells it (``repr`` of an int or a float), keys in order.
_ENTRY = "{" + ", ".join(f"{json.dumps(name)}: %r" for name in CURVE_FIELDS) + "}"


def curve_json(rows: list[CurveRow]) -> str:
    """Stored curve rows as the JSON text ``json.dumps`` makes of their entries.

    A template per entry instead of a dictionary per entry and the encoder's
    walk over it: at 10,000 points, 300,000 entries. A row with a missing
    value (None) or a non-finite number goes through ``json.dumps``, which
    writes null or refuses it as for any entry; a curve without one (no
    field name holds ``None``, ``inf`` or ``nan``) is joined in one call.
    """
    text = ", ".join([_ENTRY % row for row in rows])
    if "None" not in text and "inf" not in text and "nan" not in text:
        return f"[{text}]"
    parts = []
    for row in rows:
        text = None if None in row else _ENTRY % row
        if text is None or "inf" in text or "nan" in text:
            text = json.dumps(dict(zip(CURVE_FIELDS, row, strict=True)), allow_nan=False)
        parts.append(text)
    return f"[{', '.join(parts)}]"
