"""What a point folder says about the job that ran in it.

The result file is the ground truth for a measurement (DESIGN §3). This module
reads the files the trainer leaves (``result.json``, ``progress.json``,
``error.json``, the log) and turns them into one :class:`Outcome`; it never
touches the state. A result file that fails validation is renamed to
``result.rejected-<n>.json`` next to a ``result.rejected-<n>.reason.txt``:
nothing is deleted, and the next job of the point can write a fresh one.
Before a point is submitted again, the progress and error files of the
previous job are renamed with that job's name, so that they cannot be taken
for the new job's outcome.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.pointdir.jsonio import open_regular, read_json_object
from nas.pointdir.layout import ERROR_FILE, PROGRESS_FILE, RESULT_FILE
from nas.pointdir.result import Result, ResultError, validate_result

#: Lines of a job's log quoted in a failure reason.
LOG_TAIL_LINES = 15
_LOG_TAIL_CHARS = 2000


class Verdict(enum.Enum):
    """How a job that ended left its point."""

    DONE = "done"  #: a valid result file
    INCOMPLETE = "incomplete"  #: stopped early with a checkpoint: submit the next segment
    INFEASIBLE = "infeasible"  #: out of GPU memory: retrying cannot help
    CANCELLED = "cancelled"  #: cancelled through the scheduler, not by the controller
    FAILED = "failed"  #: anything else


@dataclass(frozen=True)
class Outcome:
    """The verdict on one ended job and what backs it."""

    verdict: Verdict
    detail: str = ""
    result: Result | None = None
    position: tuple[int, int] | None = None  # (epochs completed, step) of an incomplete run


@dataclass(frozen=True)
class ResultCheck:
    """A result file that was looked at: valid (``result``) or set aside (``rejected``)."""

    result: Result | None = None
    rejected: Path | None = None
    reason: str = ""


def check_result(folder: Path, point_id: int, params: Mapping[str, Any]) -> ResultCheck | None:
    """Validate ``folder/result.json``; None when there is none, a bad one is set aside."""
    path = folder / RESULT_FILE
    if not os.path.lexists(path):
        return None
    try:
        return ResultCheck(result=validate_result(path, point_id, params))
    except ResultError as exc:
        return ResultCheck(rejected=set_aside(path, exc.reason), reason=exc.reason)


def set_aside(path: Path, reason: str) -> Path:
    """Rename a bad result file to the next free ``result.rejected-<n>.json`` with its reason."""
    target = _free_name(path, "rejected-")
    target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
    os.replace(path, target)
    return target


def judge(
    folder: Path, point_id: int, params: Mapping[str, Any], *, cancelled: bool, log: Path
) -> tuple[Outcome, ResultCheck | None]:
    """The outcome of the job that ended in ``folder``.

    Args:
        folder: the point folder.
        point_id, params: what a valid result must carry.
        cancelled: the scheduler says the job was cancelled (by a person).
        log: the job's log, quoted when nothing else explains a failure.

    Returns:
        The outcome, and the result check (None when there was no result file).
    """
    check = check_result(folder, point_id, params)
    if check is not None and check.result is not None:
        return Outcome(Verdict.DONE, result=check.result), check
    if cancelled:
        return Outcome(Verdict.CANCELLED, "the job was cancelled through the scheduler"), check
    progress = _read_optional(folder / PROGRESS_FILE)
    position = None if progress is None else _position(progress)
    if progress is not None and position is not None:
        reason = str(progress.get("reason", "stopped early"))
        return Outcome(Verdict.INCOMPLETE, reason, position=position), check
    error = _read_optional(folder / ERROR_FILE)
    if error is not None:
        detail = f"rank {error.get('rank', '?')}: {error.get('exception', 'error')}: "
        detail += str(error.get("message", ""))
        if error.get("oom") is True:
            return Outcome(Verdict.INFEASIBLE, f"out of GPU memory ({detail})"), check
        return Outcome(Verdict.FAILED, detail), check
    if check is not None:
        return Outcome(Verdict.FAILED, f"its result file was rejected: {check.reason}"), check
    return Outcome(Verdict.FAILED, f"no result file; log tail:\n{log_tail(log)}"), check


def _read_optional(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing or unreadable (a FIFO, too large)."""
    if not os.path.lexists(path):
        return None
    try:
        return read_json_object(path)
    except ValueError:
        return None


def _position(progress: Mapping[str, Any]) -> tuple[int, int] | None:
    """(epochs completed, step) of a progress file; None when they are not whole numbers."""
    position = (progress.get("epochs_completed", 0), progress.get("step_in_epoch", 0))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in position):
        return position
    return None


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log (at most a few kB), or a note that there is none."""
    try:
        fd = open_regular(log)
    except ValueError as exc:
        return f"(no log: {exc})"
    with os.fdopen(fd, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(handle.tell() - 8 * _LOG_TAIL_CHARS, 0))
        text = handle.read(8 * _LOG_TAIL_CHARS).decode("utf-8", errors="replace")
    tail = "\n".join(text.splitlines()[-lines:])
    return tail[-_LOG_TAIL_CHARS:] or f"(empty log {log})"


def archive_outcome_files(folder: Path, job_name: str) -> None:
    """Rename the progress and error files of job ``job_name`` before the next job starts."""
    for name in (PROGRESS_FILE, ERROR_FILE):
        path = folder / name
        if os.path.lexists(path):
            os.replace(path, _free_name(path, f"{job_name}-"))


def _free_name(path: Path, tag: str) -> Path:
    """``<stem>.<tag><n><suffix>`` with the first ``n`` not taken yet (nothing is overwritten)."""
    n = 1
    while (target := path.with_name(f"{path.stem}.{tag}{n}{path.suffix}")).exists():
        n += 1
    return target
