"""What a point folder says about the job that ran in it.

The result file is the ground truth for a measurement (DESIGN §3). This module
reads the files the trainer leaves (``result.json``, ``progress.json``,
``error.json``, the log) and turns them into one :class:`JobOutcome`; it never
touches the state. A result file that fails validation is renamed to
``result.rejected-<n>.json`` next to a ``result.rejected-<n>.reason.txt``:
nothing is deleted, and the next job of the point can write a fresh one. So
is the interim result of a segment that exited 3 (incomplete): it is no
measurement, since the next segment goes on training.
Before a point is submitted again, the progress and error files of the
previous job are renamed with that job's name, so that they cannot be taken
for the new job's outcome.

Every function that reads, renames or deletes in a point folder first
refuses one that is no real folder (a symlink planted in its place:
:func:`~nas.pointdir.layout.require_point_folder`), with a
:class:`~nas.pointdir.layout.PointFolderError`: nothing in the link's
target is touched.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.numbers import finite_number
from nas.pointdir.curve import TAIL_BYTES, epochs_reached, read_curve
from nas.pointdir.jsonio import atomic_write_bytes, open_regular, read_json_object
from nas.pointdir.layout import (
    CHECKPOINT_FILE,
    CONTRACT_FAILURE,
    CURVE_FILE,
    ENVIRONMENT_FAILURE,
    ERROR_FILE,
    EXIT_INCOMPLETE,
    PROGRESS_FILE,
    RESULT_FILE,
    USAGE_FAILURE,
    require_point_folder,
)
from nas.pointdir.outcome import PROGRESS_EPOCHS, PROGRESS_STEP
from nas.pointdir.result import (
    DIVERGED,
    TOP1,
    Measured,
    Result,
    ResultDiverged,
    ResultError,
    bandwidth_text,
    gpu_device,
    validate_result,
)

#: Lines of a job's log quoted in a failure reason.
LOG_TAIL_LINES = 15
_LOG_TAIL_CHARS = 2000
#: The keys that make an ``error.json`` the contract's (:func:`nas.pointdir.outcome.write_error`,
#: the launch wrapper's reports): a trainer's own file of that name with none of them is not
#: read, and the job's log explains the failure instead.
ERROR_KEYS = ("kind", "exception", "message")
#: Keys of a file named in a reason, at most (a job writes the file: it may hold thousands).
_KEYS_NAMED = 8


class Verdict(enum.Enum):
    """How a job that ended left its point."""

    DONE = "done"  #: a valid result file
    INCOMPLETE = "incomplete"  #: stopped early with a checkpoint: submit the next segment
    INFEASIBLE = "infeasible"  #: out of GPU memory: retrying cannot help
    ENVIRONMENT = "environment"  #: the job's environment file failed: a person must fix it
    CONTRACT = "contract"  #: the command broke the trainer contract: retrying cannot help
    USAGE = "usage"  #: the trainer cannot use its point.json: retrying cannot help
    CANCELLED = "cancelled"  #: cancelled through the scheduler, not by the controller
    DIVERGED = "diverged"  #: stopped by the trainer's divergence guard
    FAILED = "failed"  #: anything else


@dataclass(frozen=True)
class JobOutcome:
    """The verdict on one ended job and what backs it."""

    verdict: Verdict
    detail: str = ""
    result: Result | None = None
    position: tuple[int, int] | None = None  # (epochs completed, step) of an incomplete run
    divergence: Divergence | None = None  # what the guard reported, for a DIVERGED verdict


@dataclass(frozen=True)
class Divergence:
    """A run the divergence guard stopped: where, and the segment time it did not spend."""

    epoch: int
    saved_device_hours: float
    saved_gpu_hours: float  # the same, counted only on GPUs (as a result's gpu_hours)

    @classmethod
    def from_error(cls, error: Mapping[str, Any]) -> Divergence:
        hours = _number(error.get("saved_device_hours"))
        gpu = hours if gpu_device(error.get("device")) else 0.0
        return cls(
            epoch=int(_number(error.get("epoch"))), saved_device_hours=hours, saved_gpu_hours=gpu
        )


def _number(value: Any) -> float:
    """A finite, non-negative number from a file, else 0 (the file must not stop the controller)."""
    return float(value) if finite_number(value) and value >= 0 else 0.0


@dataclass(frozen=True)
class ResultCheck:
    """A result file that was looked at: valid (``result``) or set aside (``rejected``)."""

    result: Result | None = None
    rejected: Path | None = None
    reason: str = ""
    contract: bool = False  # rejected for breaking the trainer contract: no retry
    diverged: bool = False  # rejected for a searched metric that is not finite: as exit 5


#: The reason file's lines after the reason: the job whose result it was, and whether it
#: broke the contract or diverged (read back by :func:`uncommitted_rejection`).
_JOB_LINE, _CONTRACT_LINE = "job: ", "breaks the trainer contract (not retried)"
_DIVERGED_LINE = "the training diverged ([train] on_divergence)"


def check_result(
    folder: Path,
    point_id: int,
    params: Mapping[str, Any],
    measured: Measured = TOP1,
    job: str = "",
) -> ResultCheck | None:
    """Validate ``folder/result.json``; None when there is none, a bad one is set aside
    (its reason file naming ``job``, the job that wrote it, when known).

    Raises:
        PointFolderError: ``folder`` is no real folder.
    """
    path = require_point_folder(folder) / RESULT_FILE
    if not os.path.lexists(path):
        return None
    try:
        return ResultCheck(result=validate_result(path, point_id, params, measured))
    except ResultError as exc:
        diverged = isinstance(exc, ResultDiverged)
        rejected = set_aside(path, exc.reason, job, exc.contract, diverged=diverged)
        return ResultCheck(
            rejected=rejected, reason=exc.reason, contract=exc.contract, diverged=diverged
        )


def uncommitted_rejection(folder: Path, job: str) -> ResultCheck | None:
    """The rejection of ``job``'s result file, found by its reason file; None when there is none.

    A result file is set aside (renamed) when it is judged, before the state that
    records the rejection is committed. A controller killed in between finds no
    result file when it judges the job again and took it for a job that wrote
    none: a contract breach was retried (a training paid twice for a result known
    to be rejected) and the reason read "no result file". The reason file names
    the job, so the judgement is made again from it.
    """
    if not job:
        return None
    result = Path(RESULT_FILE)
    for reason_file in folder.glob(f"{result.stem}.rejected-*.reason.txt"):
        lines = _read_small_text(reason_file).splitlines()
        if f"{_JOB_LINE}{job}" in lines[1:]:
            name = reason_file.name.removesuffix(".reason.txt") + result.suffix
            contract, diverged = (line in lines[1:] for line in (_CONTRACT_LINE, _DIVERGED_LINE))
            return ResultCheck(
                rejected=folder / name, reason=lines[0], contract=contract, diverged=diverged
            )
    return None


def _read_small_text(path: Path) -> str:
    """A reason file's text ("" when it cannot be read as the small regular file it is)."""
    try:
        fd = open_regular(path)
    except ValueError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        return handle.read(64 * 1024).decode("utf-8", errors="replace")


def set_aside(
    path: Path, reason: str, job: str = "", contract: bool = False, *, diverged: bool = False
) -> Path:
    """Rename a bad result file to the next free ``result.rejected-<n>.json`` with its reason
    (and, for :func:`uncommitted_rejection`, the ``job`` that wrote it, a ``contract`` breach
    and a training that ``diverged``).

    The point folder is the job's to write: a name it planted (a symlink to a file
    of the user's, a folder) is skipped, never written through. The reason file is
    created as a new file (a hard link of a temporary one), so a link planted
    between the check and the write makes it take the next number instead.
    """
    require_point_folder(path.parent)
    lines = [reason] + ([f"{_JOB_LINE}{job}"] if job else [])
    lines += ([_CONTRACT_LINE] if contract else []) + ([_DIVERGED_LINE] if diverged else [])
    text = ("\n".join(lines) + "\n").encode("utf-8")
    while True:
        target = _free_name(path, "rejected-")
        if atomic_write_bytes(target.with_suffix(".reason.txt"), text, exclusive=True):
            break
    os.replace(path, target)
    return target


def set_aside_interim(folder: Path, position: tuple[int, int]) -> ResultCheck | None:
    """Set aside the result file of a job that stopped incomplete; None when there is none.

    A job that did not exit 0 and left ``progress.json`` (which only a segment
    that exits 3 writes: the trainer, ``nas.trial.exit_incomplete`` or the
    launch wrapper) stopped before the end of its training: a result it
    wrote is a "result so far". Recording it would measure an undertrained
    network and end the training; it is kept (renamed, never deleted) for
    people, and the next segment continues. A result followed by a crash
    (exit 7 after writing it) leaves no progress file and is still recorded.
    """
    path = folder / RESULT_FILE
    if not os.path.lexists(path):
        return None
    epochs, step = position
    reason = (
        f"written by a segment that exited {EXIT_INCOMPLETE} (incomplete) at epoch {epochs}, "
        f"step {step}: an interim result, kept here and not recorded; the next segment continues"
    )
    return ResultCheck(rejected=set_aside(path, reason), reason=reason)


def judge(
    folder: Path,
    point_id: int,
    params: Mapping[str, Any],
    measured: Measured = TOP1,
    *,
    cancelled: bool,
    log: Path,
    out_of_memory: bool = False,
    exited_zero: bool = False,
    job: str = "",
) -> tuple[JobOutcome, ResultCheck | None]:
    """The outcome of the job that ended in ``folder``.

    A result file whose searched metric is NaN or infinite is a divergence
    (:class:`~nas.pointdir.result.ResultDiverged`), judged as the trainer's exit 5
    is: the same seed would diverge again, one whole training per retry.

    Args:
        folder: the point folder.
        point_id, params, measured: what a valid result must carry.
        cancelled: the scheduler says the job was cancelled (by a person).
        out_of_memory: the scheduler killed the job for exceeding its memory
            limit; like the trainer's own out-of-memory, retrying cannot help.
        exited_zero: the scheduler says the job exited 0 (completed). Else a
            result beside a progress file is a segment's interim result
            (:func:`set_aside_interim`), not the measurement.
        log: the job's log, quoted when nothing else explains a failure.
        job: the job's name: a result file it wrote that was set aside by a
            controller killed before committing the rejection is judged again
            (:func:`uncommitted_rejection`).

    Returns:
        The outcome, and the result check (None when there was no result file).

    Raises:
        PointFolderError: ``folder`` is no real folder.
    """
    progress = _read_optional(require_point_folder(folder) / PROGRESS_FILE)
    position = None if progress is None else _position(progress, folder)
    check = None if exited_zero or position is None else set_aside_interim(folder, position)
    if check is None:
        check = check_result(folder, point_id, params, measured, job)
    if check is None:
        check = uncommitted_rejection(folder, job)
    if check is not None and check.result is not None:
        return JobOutcome(Verdict.DONE, result=check.result), check
    if check is not None and check.diverged:  # the same seed diverges again: exit 5's way
        return JobOutcome(Verdict.DIVERGED, f"its result file was rejected: {check.reason}"), check
    if check is not None and check.contract:
        return JobOutcome(Verdict.CONTRACT, f"its result file was rejected: {check.reason}"), check
    if cancelled:
        return JobOutcome(Verdict.CANCELLED, "the job was cancelled through the scheduler"), check
    if out_of_memory:
        detail = "the scheduler stopped the job for exceeding its memory limit ([cluster] mem)"
        return JobOutcome(Verdict.INFEASIBLE, detail), check
    if progress is not None and position is not None:
        reason = str(progress.get("reason", "stopped early"))
        if _number(progress.get("bus_bandwidth_gbps")) > 0:
            reason += f"; {bandwidth_text(progress)}"
        reason += _position_note(progress, position)
        return JobOutcome(Verdict.INCOMPLETE, reason, position=position), check
    error, unread = _contract_error(folder)
    if error is not None and error.get("kind") == CONTRACT_FAILURE:
        detail = f"rank {error.get('rank', '?')}: {error.get('message', 'the contract is broken')}"
        return JobOutcome(Verdict.CONTRACT, detail), check
    if error is not None and error.get("kind") == USAGE_FAILURE:
        detail = (
            f"rank {error.get('rank', '?')}: {error.get('message', 'point.json cannot be used')}"
        )
        return JobOutcome(Verdict.USAGE, detail), check
    if error is not None and error.get("kind") == ENVIRONMENT_FAILURE:
        detail = f"{error.get('message', 'the environment failed')} "
        detail += f"(exit status {error.get('exit_code', '?')}); fix it, then `splinenas rerun`"
        return JobOutcome(Verdict.ENVIRONMENT, detail), check
    if error is not None:
        detail = f"rank {error.get('rank', '?')}: {error.get('exception', 'error')}: "
        detail += str(error.get("message", ""))
        if error.get("oom") is True:
            return JobOutcome(Verdict.INFEASIBLE, f"out of GPU memory ({detail})"), check
        if error.get("kind") == DIVERGED:
            divergence = Divergence.from_error(error)
            reason = f"diverged: {error.get('message', '')}"
            return JobOutcome(Verdict.DIVERGED, reason, divergence=divergence), check
        return JobOutcome(Verdict.FAILED, detail), check
    if check is not None:
        detail = f"its result file was rejected: {check.reason}{unread}"
        return JobOutcome(Verdict.FAILED, detail), check
    return JobOutcome(Verdict.FAILED, f"no result file{unread}; log tail:\n{log_tail(log)}"), check


def _read_optional(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing or unreadable (a FIFO, too large)."""
    if not os.path.lexists(path):
        return None
    try:
        return read_json_object(path)
    except ValueError:
        return None


def _position(progress: Mapping[str, Any], folder: Path) -> tuple[int, int] | None:
    """(epochs completed, step) of a progress file; None when they are not whole numbers.

    A file without ``epochs_completed`` (a trainer's own, with keys of its own)
    is at the position its learning curve shows, as when the trainer writes no
    progress file at all (the launch wrapper then writes the curve's): read as
    epoch 0, it undid the curve's progress and failed the point for making none.
    """
    epochs = (
        progress[PROGRESS_EPOCHS]
        if PROGRESS_EPOCHS in progress
        else epochs_reached(read_curve(folder, max_bytes=TAIL_BYTES))
    )
    position = (epochs, progress.get(PROGRESS_STEP, 0))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in position):
        return position
    return None


def _position_note(progress: Mapping[str, Any], position: tuple[int, int]) -> str:
    """What an incomplete segment's reason adds when its progress file lacks
    ``epochs_completed`` ("" when it has it): the file is read, but not as its writer meant."""
    if PROGRESS_EPOCHS in progress:
        return ""
    return (
        f"; {PROGRESS_FILE} has no {PROGRESS_EPOCHS} (it has: {_keys_text(progress)}), so the "
        f"last epoch of {CURVE_FILE}, {position[0]}, is taken as the position: write "
        f"{PROGRESS_EPOCHS} (whole epochs done) and {PROGRESS_STEP} (steps done in the next "
        f"epoch) in it, or leave {PROGRESS_FILE} to nas.trial.exit_incomplete (or to the launch "
        f"wrapper, which writes the curve's position when a command exits 3 without one)"
    )


def _contract_error(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """The job's ``error.json`` when it is the contract's, and "" (else None and why not).

    A trainer that writes its own ``error.json`` (``{"error": "CUDA error ..."}``)
    without any of :data:`ERROR_KEYS` would be quoted as ``rank ?: error:``,
    hiding the log tail that shows the real error; the log explains the failure
    instead, and the reason says the name is the controller's.
    """
    error = _read_optional(folder / ERROR_FILE)
    if error is None or any(key in error for key in ERROR_KEYS):
        return error, ""
    return None, (
        f"; its {ERROR_FILE} was not read: it has none of the keys the controller reads there "
        f"({', '.join(ERROR_KEYS)}; it has: {_keys_text(error)}); {ERROR_FILE} is a name the "
        f"controller reads in the point folder, so give the trainer's own file another name"
    )


def _keys_text(document: Mapping[str, Any]) -> str:
    """The keys of a file a job wrote, for a reason: the first few, or "none"."""
    keys = sorted(map(str, document))
    more = f", ... ({len(keys)} in all)" if len(keys) > _KEYS_NAMED else ""
    return (", ".join(keys[:_KEYS_NAMED]) or "none") + more


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log (at most a few kB), or a note that there is none."""
    try:
        fd = open_regular(log)
    except ValueError as exc:
        return f"(no log: {exc})"
    with os.fdopen(fd, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        start = max(handle.tell() - 8 * _LOG_TAIL_CHARS, 0)
        handle.seek(start)
        text = handle.read(8 * _LOG_TAIL_CHARS).decode("utf-8", errors="replace")
    kept = text.splitlines()[1 if start else 0 :]  # the first line read may be a line's end
    tail = "\n".join(kept[-lines:])
    if len(tail) > _LOG_TAIL_CHARS:  # whole lines only: a tail never starts mid-line
        cut = tail[-_LOG_TAIL_CHARS:]
        tail = cut.partition("\n")[2] or cut
    return tail or f"(empty log {log})"


#: ``Point.extra`` key: ``[mtime in ns, size]`` of the result file a measurement was read from.
RESULT_STAMP = "result_stamp"
#: ``Point.extra`` key: every metric the recorded result kept (the searched one and the
#: others that were finite numbers), for measured costs, trade-offs and ``show``.
RESULT_METRICS = "metrics"
#: ``Point.extra`` key: the stamp of a later result file already said to be left unrecorded.
LATE_RESULT_STAMP = "late_result_stamp"
#: Event kind of a result file written for a point that was measured already.
LATE_RESULT = "late-result"


def result_stamp(folder: Path) -> list[int] | None:
    """``[mtime in ns, size]`` of the folder's result file; None when there is none.

    Compared, not trusted: a stamp that differs from the one recorded at the
    measurement is a file written since (a point's script run again by hand).
    """
    try:
        info = (folder / RESULT_FILE).lstat()
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size]


def late_result_text(
    folder: Path, point_id: int, params: Mapping[str, Any], kept: float, measured: Measured
) -> str:
    """What to say of a result file written after the point was measured (``kept``).

    The point keeps its measurement: a candidate is measured once, and a
    second number of it would be a replicate the fit does not take. Its value
    is shown when the file is valid; nothing in the folder is moved.
    """
    try:
        result = validate_result(folder / RESULT_FILE, point_id, params, measured)
        what = f"{measured.metric} {result.metrics[measured.metric]:.6g}"
    except ResultError as exc:
        what = f"not a valid result: {exc.reason}"
    return (
        f"{RESULT_FILE} was written again after the point was measured ({what}; its script "
        f"run by hand?): not recorded, the point keeps its measurement {kept:.6g}"
    )


def drop_checkpoint(folder: Path) -> int:
    """Delete the checkpoint of a measured point (up to ~1 GB each); return the bytes freed."""
    path = require_point_folder(folder) / CHECKPOINT_FILE
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def archive_outcome_files(folder: Path, job_name: str) -> None:
    """Rename the progress and error files of job ``job_name`` before the next job starts."""
    require_point_folder(folder)
    for name in (PROGRESS_FILE, ERROR_FILE):
        path = folder / name
        if os.path.lexists(path):
            os.replace(path, _free_name(path, f"{job_name}-"))


def archive_attempt(folder: Path, tag: str) -> None:
    """Set aside the checkpoint and curve of an attempt that will not be continued.

    A retry with a new seed has a new ``point.json``, which the old checkpoint
    does not belong to; both files are kept as ``<stem>.<tag>-<n><suffix>``.
    """
    require_point_folder(folder)
    for name in (CHECKPOINT_FILE, CURVE_FILE):
        path = folder / name
        if path.exists():
            os.replace(path, _free_name(path, f"{tag}-"))


def _free_name(path: Path, tag: str) -> Path:
    """``<stem>.<tag><n><suffix>`` with the first ``n`` whose name and reason file are both
    free (nothing is overwritten; a dangling symlink counts as taken)."""
    n = 1
    while True:
        target = path.with_name(f"{path.stem}.{tag}{n}{path.suffix}")
        if not any(os.path.lexists(p) for p in (target, target.with_suffix(".reason.txt"))):
            return target
        n += 1
