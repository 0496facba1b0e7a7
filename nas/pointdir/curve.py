"""``curve.jsonl``: the learning curve of a point, one JSON object per evaluation.

Rank 0 of the trainer adds an entry after every ``[train] eval_every``
epochs; the controller ingests the file with the result, and ``status`` /
``show`` read it while the job runs. Each line holds the fields of
:data:`CURVE_FIELDS`::

    {"epoch": 3, "images": 1920, "loss": 1.84, "top1": 41.2, "top5": 88.0,
     "lr": 0.0731, "seconds": 52.1}

``epoch`` counts completed epochs, ``images`` the training images seen so
far (all ranks), ``loss`` the mean training loss of the epoch (null when it
was not finite), ``top1`` / ``top5`` the accuracy in percent on the fixed
validation subset, ``lr`` the learning rate at the evaluation and
``seconds`` the training wall time so far (all segments).

A command of ``[train] command`` reports through :func:`nas.trial.report`
or writes the lines itself: only ``epoch`` is required, ``images`` defaults
to 0, a missing figure is null, and further numbers (the command's own
metrics) are kept too: the controller stores them with the curve.

Entries are keyed by epoch: a segment that repeats an epoch (it was stopped
after the evaluation but before its checkpoint) replaces that entry, so a
resumed training appends and never duplicates. The whole file is rewritten
atomically on every change (it is small), so a reader never sees half a
line; readers are bounded all the same, because ``status`` reads the curve
of every running point on a login node.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nas.curvefields import CURVE_COUNTS, CURVE_FIELDS
from nas.numbers import finite_number, json_int
from nas.pointdir.jsonio import atomic_write_bytes, open_regular
from nas.pointdir.layout import CURVE_FILE

#: The most a reader takes from the end of a curve file (thousands of entries).
MAX_CURVE_BYTES = 1 << 20
#: Enough of the end of a curve file for its last entry.
TAIL_BYTES = 4096

Entry = dict[str, Any]


def make_entry(
    *, epoch: int, images: int, loss: float, top1: float, top5: float, lr: float, seconds: float
) -> Entry:
    """One curve entry with its fields in order; a non-finite loss is stored as null."""
    return {
        "epoch": int(epoch),
        "images": int(images),
        "loss": float(loss) if math.isfinite(loss) else None,
        "top1": float(top1),
        "top5": float(top5),
        "lr": float(lr),
        "seconds": float(seconds),
    }


def parse_entry(document: Any) -> Entry | None:
    """A curve entry with the fields of :data:`CURVE_FIELDS`, or None when it is not one.

    ``epoch`` is required; ``images`` defaults to 0 and the other figures to null.
    """
    if not isinstance(document, dict) or "epoch" not in document:
        return None
    entry: Entry = {}
    for name in CURVE_FIELDS:
        value = document.get(name, 0 if name == "images" else None)
        if name not in CURVE_COUNTS and value is None:
            entry[name] = None
            continue
        if not finite_number(value):
            return None
        entry[name] = int(value) if name in CURVE_COUNTS else float(value)
    if entry["epoch"] < 0:
        return None
    for name, value in document.items():  # a command's own figures
        if name not in entry and isinstance(name, str) and finite_number(value):
            entry[name] = float(value)
    return entry


def read_curve(directory: str | Path, *, max_bytes: int = MAX_CURVE_BYTES) -> list[Entry]:
    """The entries of ``directory/curve.jsonl`` by epoch; [] when there is none.

    At most the last ``max_bytes`` of the file are read; lines that are not
    curve entries are skipped (a person's edit must not stop the controller).
    """
    path = Path(directory) / CURVE_FILE
    try:  # the job wrote it: a FIFO or a symlink must not block or redirect the reader
        with os.fdopen(open_regular(path), "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - max_bytes, 0))
            data = handle.read(max_bytes)
    except (OSError, ValueError):
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes:
        lines = lines[1:]  # the first line was cut
    by_epoch: dict[int, Entry] = {}
    for line in lines:
        try:
            entry = parse_entry(json.loads(line, parse_int=json_int))
        except ValueError:
            continue
        if entry is not None:
            by_epoch[entry["epoch"]] = entry
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def last_entry(directory: str | Path) -> Entry | None:
    """The latest entry, read from the end of the file only."""
    entries = read_curve(directory, max_bytes=TAIL_BYTES)
    return entries[-1] if entries else None


def write_curve(directory: str | Path, entries: list[Entry]) -> None:
    """Replace the curve file with ``entries`` (atomically)."""
    text = "".join(json.dumps(entry, allow_nan=False) + "\n" for entry in entries)
    atomic_write_bytes(Path(directory) / CURVE_FILE, text.encode("utf-8"))


def append_entry(directory: str | Path, entry: Entry) -> list[Entry]:
    """Add ``entry``, replacing one of the same epoch; returns the whole curve."""
    entries = [e for e in read_curve(directory) if e["epoch"] != entry["epoch"]]
    entries = sorted([*entries, entry], key=lambda e: e["epoch"])
    write_curve(directory, entries)
    return entries


def keep_until(directory: str | Path, epoch: int) -> list[Entry]:
    """Drop entries after ``epoch`` (left by a training that restarts earlier); returns the rest."""
    entries = read_curve(directory)
    kept = [e for e in entries if e["epoch"] <= epoch]
    if len(kept) != len(entries):
        write_curve(directory, kept)
    return kept
