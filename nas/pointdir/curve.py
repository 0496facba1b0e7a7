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
metrics) are kept too: the controller stores them with the curve. Lines
that Python's ``json.dumps`` writes are read as :func:`nas.trial.report`
would have written them: a figure that is NaN or infinite is null, one that
is no number (``"lr": "cosine"``) is left out of the entry, not the entry.
``epoch`` and ``images`` are whole numbers >= 0: a line with ``"epoch":
5.5`` is skipped rather than read as epoch 5 (two evaluations per epoch
would merge); what a reader leaves out is named in :attr:`CurveTail.left_out`.

Entries are keyed by epoch: a segment that repeats an epoch (it was stopped
after the evaluation but before its checkpoint) adds a line for it, and
readers take the last line of an epoch, so a resumed training appends and
never duplicates. Each entry is appended as one line and fsynced
(:func:`nas.pointdir.jsonio.append_line`): the file keeps every entry
however long it grows, and an entry costs one line, not a rewrite of the
file. A crash, or a read during the write, can leave or show a half
written last line; readers skip a line they cannot read as JSON (a torn
line, or one nested too deeply for the decoder). Readers are
bounded, because ``status`` reads the curve of every running point on a
login node: beyond :data:`MAX_CURVE_BYTES` they read the end of the file
only, and :func:`read_curve_tail` says how much they left unread.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.curvefields import CURVE_COUNTS, CURVE_FIELDS
from nas.numbers import finite_number, json_int
from nas.pointdir.jsonio import append_line, atomic_write_bytes, open_regular, parse_json
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


def count_value(value: Any) -> int | None:
    """``value`` as an int when it is a whole number >= 0 (``5`` or ``5.0``), else None.

    The rule for ``epoch`` and ``images``, for writers and readers alike:
    readers key entries by whole epochs, so truncating 5.5 to 5 would merge
    two evaluations under one epoch.
    """
    if not finite_number(value) or value < 0 or value != int(value):
        return None
    return int(value)


#: What :func:`parse_entry` left out of one line: (field, why, the value).
LeftOut = tuple[str, str, Any]
_SKIPPED = "not a whole number >= 0, line skipped"
_NO_NUMBER = "not a number, field left out"


def parse_entry(document: Any, left_out: list[LeftOut] | None = None) -> Entry | None:
    """A curve entry with the fields of :data:`CURVE_FIELDS`, or None when it is not one.

    ``epoch`` is required and ``images`` is 0 when missing, null or no
    number; a number there that is no whole number >= 0
    (:func:`count_value`) makes the line no entry. A figure is null when
    missing or not finite (``json.dumps`` writes ``NaN``), and left out when
    it is no number at all. What is left out of a line that has an ``epoch``
    is appended to ``left_out`` when given.
    """
    if not isinstance(document, dict) or "epoch" not in document:
        return None
    notes: list[LeftOut] = [] if left_out is None else left_out
    entry: Entry = {}
    for name in CURVE_COUNTS:
        value = document[name] if name == "epoch" else _images(document.get(name), notes)
        entry[name] = count_value(value)
        if entry[name] is None:
            notes.append((name, _SKIPPED, value))
            return None
    for name in CURVE_FIELDS:
        if name not in CURVE_COUNTS:
            entry[name] = _figure(name, document.get(name), notes)
    for name, value in document.items():  # a command's own figures
        if name not in entry and isinstance(name, str) and finite_number(value):
            entry[name] = float(value)
    return entry


def _images(value: Any, notes: list[LeftOut]) -> Any:
    """``images`` to count: 0 for a missing or null one, and for one that is no number
    (noted); a number as it is, for :func:`count_value` to judge."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if value is not None:
        notes.append(("images", f"{_NO_NUMBER} (read as 0)", value))
    return 0


def _figure(name: str, value: Any, notes: list[LeftOut]) -> float | None:
    """A built-in figure as a float; None (null) when missing, NaN, infinite or no number,
    the last noted in ``notes``: a string where ``lr`` belongs costs that field only."""
    if finite_number(value):
        return float(value)
    if value is not None and not isinstance(value, float):  # NaN/infinity: null, as written
        notes.append((name, _NO_NUMBER, value))
    return None


@dataclass(frozen=True)
class CurveTail:
    """What a bounded read of a curve file found.

    Unpacks as ``(entries, unread_bytes)``, as it did before ``left_out``.
    """

    #: The entries by epoch, of the part of the file that was read.
    entries: list[Entry]
    #: Bytes at the start of the file left unread (0: the whole file was read; a line
    #: cut there is left out too): where a curve is kept or counted, say so.
    unread_bytes: int
    #: What readable lines held that the entries leave out, one note per field and why,
    #: ``lr: not a number, field left out (3 lines, e.g. 'cosine')``: where the curve is
    #: kept, say so, since curve.jsonl may not outlive the run folder.
    left_out: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.entries, self.unread_bytes))


def read_curve_tail(directory: str | Path, *, max_bytes: int | None = MAX_CURVE_BYTES) -> CurveTail:
    """The entries of ``directory/curve.jsonl`` by epoch (the last line of an epoch wins).

    At most the last ``max_bytes`` of the file are read (None: all of it);
    lines that are not curve entries, a torn last line or one nested too
    deeply among them, are skipped (a person's edit or a command's odd line
    must not stop the controller); what :func:`parse_entry` leaves out of a
    line with an epoch is counted in :attr:`CurveTail.left_out`.
    """
    path = Path(directory) / CURVE_FILE
    try:  # the job wrote it: a FIFO or a symlink must not block or redirect the reader
        with os.fdopen(open_regular(path), "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = 0 if max_bytes is None else max(size - max_bytes, 0)
            handle.seek(start)
            data = handle.read(size - start)
    except (OSError, ValueError):
        return CurveTail([], 0)
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start:
        lines = lines[1:]  # the first line was cut
    by_epoch: dict[int, Entry] = {}
    left_out: list[LeftOut] = []
    for line in lines:
        try:
            entry = parse_entry(parse_json(line, parse_int=json_int), left_out)
        except ValueError:
            continue
        if entry is not None:
            by_epoch[entry["epoch"]] = entry
    entries = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    return CurveTail(entries, start, _counted(left_out))


def _counted(left_out: list[LeftOut]) -> tuple[str, ...]:
    """One note per field and why, with its number of lines and the first value: a few
    notes however many lines (a fractional epoch on every second line)."""
    counts = Counter((name, why) for name, why, _ in left_out)
    first = {(name, why): value for name, why, value in reversed(left_out)}
    return tuple(
        f"{name}: {why} ({count} line{'s' if count > 1 else ''}, e.g. {first[name, why]!r})"
        for (name, why), count in counts.items()
    )


def read_curve(directory: str | Path, *, max_bytes: int | None = MAX_CURVE_BYTES) -> list[Entry]:
    """The entries of :func:`read_curve_tail`: of the file's last ``max_bytes`` only."""
    return read_curve_tail(directory, max_bytes=max_bytes).entries


def epochs_reached(curve: list[Entry]) -> int:
    """The position a learning curve shows: its last epoch (0 without one).

    Not the number of entries: a curve evaluated every few epochs has fewer,
    and a curve file beyond the readers' bound is read as its tail only, so
    a count would fall behind and a long training would seem to make no
    progress from segment to segment.
    """
    return int(curve[-1]["epoch"]) if curve else 0


def last_entry(directory: str | Path) -> Entry | None:
    """The latest entry, read from the end of the file only."""
    entries = read_curve(directory, max_bytes=TAIL_BYTES)
    return entries[-1] if entries else None


def write_curve(directory: str | Path, entries: list[Entry]) -> None:
    """Replace the curve file with ``entries`` (atomically)."""
    text = "".join(json.dumps(entry, allow_nan=False) + "\n" for entry in entries)
    atomic_write_bytes(Path(directory) / CURVE_FILE, text.encode("utf-8"))


def write_entry(directory: str | Path, entry: Entry) -> None:
    """Append ``entry`` as one line; a repeated epoch replaces the earlier one for readers.

    Nothing is read: the cost of an entry does not grow with the curve.
    """
    line = json.dumps(entry, allow_nan=False) + "\n"
    append_line(Path(directory) / CURVE_FILE, line.encode("utf-8"))


def append_entry(directory: str | Path, entry: Entry) -> list[Entry]:
    """:func:`write_entry`, then the curve as a bounded reader sees it (the built-in trainer's
    curves are small; :func:`nas.trial.report` writes without reading back)."""
    write_entry(directory, entry)
    return read_curve(directory)


def keep_until(directory: str | Path, epoch: int) -> list[Entry]:
    """Drop entries after ``epoch`` (left by a training that restarts earlier); returns the rest.

    The whole file is read, however large, because it is rewritten: a bounded
    read would rewrite the file as its tail. Only the training's own rank 0
    calls this, once per segment.
    """
    entries = read_curve(directory, max_bytes=None)
    kept = [e for e in entries if e["epoch"] <= epoch]
    if len(kept) != len(entries):
        write_curve(directory, kept)
    return kept
