"""Learning curves and the divergence guard in ``status``, ``show`` and ``export --json``.

A running point's curve is read from its folder (bounded, see
:mod:`nas.pointdir.curve`); a finished point's from the state file, where the
controller stored it with the result. Every document lists a curve under the
key ``"curve"`` as entries with the fields ``epoch, images, loss, top1,
top5, lr, seconds``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from nas.commands.common import JSONText, number_text, point_doc, write_table
from nas.curvefields import CURVE_FIELDS
from nas.pointdir import layout
from nas.pointdir.curve import last_entry, read_curve
from nas.record.state import ACTIVE, CurveRow, Point, State

#: Rows of a curve that ``show`` prints; longer curves are thinned, the last row kept.
SHOWN_ROWS = 15


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
    """A compact table of a curve: at most :data:`SHOWN_ROWS` rows, evenly spread."""
    step = max(1, -(-len(curve) // SHOWN_ROWS))
    shown = curve[::step]
    if shown[-1] is not curve[-1]:
        shown.append(curve[-1])
    rows = [["epoch", "images", "loss", "top-1", "top-5", "lr", "hours"]]
    rows += [
        [
            str(e["epoch"]),
            str(e["images"]),
            number_text(e["loss"]) if e["loss"] is not None else "non-finite",
            _shown(e["top1"], ".2f"),
            _shown(e["top5"], ".2f"),
            _shown(e["lr"], ".4g"),
            _shown(None if e["seconds"] is None else e["seconds"] / 3600, ".2f"),
        ]
        for e in shown
    ]
    write_table(rows, out)


def _shown(value: float | None, spec: str) -> str:
    """A curve figure, '-' where the trainer reported none (a user's command may not)."""
    return "-" if value is None else format(value, spec)


def running_progress(state: State, run: Path) -> list[dict[str, Any]]:
    """For every point with a job: its last curve entry's epoch and subset top-1 (or nulls)."""
    progress = []
    for point in state.with_status(*ACTIVE):
        entry = last_entry(layout.point_dir(run, point.id))
        progress.append(
            {
                "id": point.id,
                "epoch": None if entry is None else entry["epoch"],
                "top1": None if entry is None else entry["top1"],
            }
        )
    return progress


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
    }


def write_guard_lines(doc: dict[str, Any], out: TextIO) -> None:
    """``status`` lines: each running point's progress, the diverged points and hours saved."""
    for item in doc["running"]:
        where = (
            "no evaluation yet"
            if item["epoch"] is None
            else f"epoch {item['epoch']}, subset top-1 {item['top1']:.2f} %"
        )
        out.write(f"running: point {item['id']}: {where}\n")
    guard = doc["diverged"]
    if guard["points"]:
        listed = ", ".join(f"{p['id']} ({p['status']})" for p in guard["points"])
        out.write(
            f"diverged: points {listed}; the guard saved {guard['saved_gpu_hours']:.2f} "
            f"GPU-hours ({guard['saved_device_hours']:.2f} device-hours)\n"
        )


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
