"""What a job leaves besides a result: ``progress.json`` and ``error.json``.

Standard library only, so the launch wrapper of every rank and the helper for
users' Python code (:mod:`nas.trial`) write them without importing numpy or
the experiment schema. Each file is written atomically; the first rank that
fails writes ``error.json`` and later ones keep its report.

``error.json`` has ``rank``, ``exception``, ``message``, ``traceback`` (the
last lines, for people), ``oom`` and ``time``; an optional ``kind`` says what
the controller may do: ``"diverged"`` (the divergence guard stopped the run),
``"environment"`` (the job's environment file failed) and ``"contract"`` (the
command broke the trainer contract: not found, exited 0 without a result):
none of these is retried as it is.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas.pointdir.curve import epochs_reached, read_curve
from nas.pointdir.jsonio import atomic_write_json, max_json_bytes
from nas.pointdir.layout import CONTRACT_FAILURE, ERROR_FILE, PROGRESS_FILE

TRACEBACK_LINES = 40
#: The keys of ``progress.json`` that say where a segment stopped: whole epochs done, then
#: steps done in the next one (the controller reads them: :mod:`nas.control.ingest`).
PROGRESS_EPOCHS, PROGRESS_STEP = "epochs_completed", "step_in_epoch"


def now_iso(timestamp: float | None = None) -> str:
    """A UTC time (default: now) as an ISO-8601 string with offset."""
    moment = (
        datetime.now(timezone.utc)
        if timestamp is None
        else datetime.fromtimestamp(timestamp, timezone.utc)
    )
    return moment.isoformat(timespec="seconds")


def write_progress(
    directory: str | Path,
    *,
    point_id: int | None,
    epoch: int,
    step: int,
    reason: str,
    figures: Mapping[str, float] | None = None,
) -> Path:
    """``progress.json``: where an incomplete run stopped and why (rank 0 only).

    ``figures``: measurements of the segment, e.g. its start-up all-reduce
    (``bus_bandwidth_gbps``).
    """
    path = Path(directory) / PROGRESS_FILE
    document = {
        "point_id": point_id,
        PROGRESS_EPOCHS: epoch,
        PROGRESS_STEP: step,
        "reason": reason,
        "time": now_iso(),
        **(figures or {}),
    }
    atomic_write_json(path, document)
    return path


def write_error(
    directory: str | Path,
    *,
    rank: int,
    exc: BaseException,
    oom: bool,
    kind: str | None = None,
    exit_code: int | None = None,
) -> bool:
    """``error.json`` for the first rank that fails (later ranks keep the first report).

    ``kind`` (e.g. ``"environment"``) tells the controller not to retry.

    Returns:
        True if this call wrote the file.
    """
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines).splitlines()[-TRACEBACK_LINES:]
    document = {
        "rank": rank,
        "exception": type(exc).__name__,
        "message": str(exc),
        "traceback": tail,
        "oom": oom,
        "time": now_iso(),
    }
    if kind is not None:
        document["kind"] = kind
    if exit_code is not None:
        document["exit_code"] = exit_code
    return atomic_write_json(Path(directory) / ERROR_FILE, document, exclusive=True)


#: ``error.json`` ``kind`` of a run stopped by the divergence guard.
DIVERGED = "diverged"


def write_divergence(
    directory: str | Path,
    *,
    reason: str,
    epoch: int,
    curve: list[dict[str, Any]],
    saved_seconds: float,
    world_size: int,
    device: str,
) -> bool:
    """``error.json`` with ``kind = "diverged"``, the curve so far and what stopping saved.

    ``saved_seconds`` is the wall time of the segment the run did not use
    (to its deadline, or its remaining epochs when it has none);
    ``saved_device_hours`` is that times the ranks. Written by rank 0 only.
    """
    kept = _last_entries(curve, max_json_bytes() // 4)
    document = {
        "kind": DIVERGED,
        "rank": 0,
        "exception": "Diverged",
        "message": reason,
        "traceback": [],
        "oom": False,
        "epoch": epoch,
        "curve": kept,
        "curve_entries_left_out": len(curve) - len(kept),
        "saved_seconds": max(0.0, saved_seconds),
        "saved_device_hours": max(0.0, saved_seconds) * world_size / 3600.0,
        "device": device,
        "time": now_iso(),
    }
    return atomic_write_json(Path(directory) / ERROR_FILE, document, exclusive=True)


def write_command_divergence(
    directory: str | Path, *, reason: str, saved_seconds: float, world_size: int
) -> bool:
    """:func:`write_divergence` for a command that said no more than that it diverged (its
    exit 5, or a NaN metric it gave ``nas.trial``): the curve file so far, its last epoch."""
    curve = read_curve(directory)
    return write_divergence(directory, reason=reason, epoch=epochs_reached(curve), curve=curve,
                            saved_seconds=saved_seconds, world_size=world_size,
                            device="unknown")  # fmt: skip


def _last_entries(curve: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The last entries of ``curve`` whose indented JSON takes at most ``budget`` bytes.

    ``error.json`` is read only up to :func:`~nas.pointdir.jsonio.max_json_bytes`:
    a command's whole curve (up to a MiB of ``curve.jsonl``, and more again
    indented) made the report of a diverged run too large to read, so the
    divergence itself was set aside. The curve stays whole in ``curve.jsonl``.
    """
    kept: list[dict[str, Any]] = []
    for entry in reversed(curve):
        budget -= len(json.dumps(entry, indent=2, sort_keys=True)) + 8  # its indent, comma
        if budget < 0:
            break
        kept.append(entry)
    return kept[::-1]


class ContractBroken(RuntimeError):
    """A command that broke the trainer contract (its ``error.json`` names this)."""


def write_contract_failure(
    directory: str | Path, *, rank: int, message: str, exit_code: int | None = None
) -> bool:
    """``error.json`` with ``kind = "contract"``: the command broke the contract; no retry helps."""
    return write_error(directory, rank=rank, exc=ContractBroken(message), oom=False,
                       kind=CONTRACT_FAILURE, exit_code=exit_code)  # fmt: skip
