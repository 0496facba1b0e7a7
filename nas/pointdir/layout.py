"""Where a run keeps its files, derived from the state path alone.

A state file ``state/<name>.h5`` has its run folder ``state/<name>/`` next to
it, so every command that is given ``--state`` finds the point folders, the
local backend's job records and the operator inbox without further options::

    state/<name>.h5            the state (only the controller writes it)
    state/<name>/points/<id>/  point.json, job.sh, logs/, checkpoint.pt,
                               result.json, progress.json, error.json,
                               curve.jsonl (the learning curve), heartbeat
    state/<name>/jobs/         job records of the local backend
    state/<name>/inbox/        requests of operator commands for the controller

The controller creates each point folder itself, as a real folder, and uses
one only while it still is one (:func:`require_point_folder`): a job, or
anyone who may write ``points/``, can put a symlink in its place, and the
controller would take another folder's ``result.json`` for the point's
measurement, delete its ``checkpoint.pt`` and write its files there. Only
the point folder is checked: the run folder and ``points/`` are the user's
to place, and a symlink to scratch space is a common way to do it. The check
is made before each use, not held: a folder swapped in the instant between
the two is not caught, which takes a job racing the controller on purpose.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from nas.errors import UserError
from nas.names import shown
from nas.pointdir.jsonio import file_kind

POINTS = "points"
JOBS = "jobs"
INBOX = "inbox"
JOB_SCRIPT = "job.sh"
LOGS = "logs"

# Files of a point folder and exit codes of ``python -m nas.train``.

#: Training finished; ``result.json`` is written.
EXIT_COMPLETE = 0
#: An exception; ``error.json`` names the rank and the exception.
EXIT_ERROR = 1
#: The command line or ``point.json`` cannot be used.
EXIT_USAGE = 2
#: Stopped early (deadline, segment length, SIGUSR2 or SIGTERM) after writing
#: ``checkpoint.pt`` and ``progress.json``: resubmit to continue.
EXIT_INCOMPLETE = 3
#: Out of GPU memory: the candidate does not fit; retrying will not help.
EXIT_OUT_OF_MEMORY = 4
#: The divergence guard stopped the run (non-finite loss, or accuracy at chance):
#: ``error.json`` has ``kind = "diverged"`` and the curve so far.
EXIT_DIVERGED = 5

POINT_FILE = "point.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
#: ``kind`` of the error file a job script writes when its environment file fails.
ENVIRONMENT_FAILURE = "environment"
#: ``kind`` of the error file of a command that broke the trainer contract.
CONTRACT_FAILURE = "contract"
#: ``kind`` of the error file of a trainer that cannot use its ``point.json`` (exit 2):
#: its schema, or model coordinates that build no network; the same every attempt.
USAGE_FAILURE = "usage"
# What the job script tells every rank about its device (nas/train/device.py reads it).

#: The accelerator the ranks must drive: "auto", "gpu", "cuda" or "xpu".
ACCELERATOR_VAR = "SPLINENAS_ACCELERATOR"
#: "local-rank" or "reversed": how a node's ranks map onto its visible devices.
DEVICE_ORDER_VAR = "SPLINENAS_DEVICE_ORDER"
#: Ranks on each node, from ``[cluster]``.
RANKS_PER_NODE_VAR = "SPLINENAS_RANKS_PER_NODE"
PROGRESS_FILE = "progress.json"
#: A progress file a command left beside its final result (exit 0), renamed so that
#: no reader takes that result for a segment's interim one (``nas.trial.launch``).
SUPERSEDED_PROGRESS_FILE = "progress.superseded.json"
CHECKPOINT_FILE = "checkpoint.pt"
CURVE_FILE = "curve.jsonl"
#: Touched by a training run while it lives (:mod:`nas.pointdir.heartbeat`).
HEARTBEAT_FILE = "heartbeat"
COMPILE_CACHE = "compile-cache"  # torch.compile's caches, kept across segments


def default_state(experiment: str) -> Path:
    """Where ``init`` puts the state of experiment ``experiment`` when ``--state`` is not given."""
    return Path("state") / f"{experiment}.h5"


def run_dir(state_path: str | os.PathLike) -> Path:
    """The run folder of a state file: its real path without the suffix.

    Symlinks are resolved, so every name of one state file leads to one run
    folder. A state path without a suffix gets ``<path>.run`` so the folder
    never coincides with the file.
    """
    path = Path(os.path.realpath(state_path))
    name = path.stem if path.suffix else f"{path.name}.run"
    return path.with_name(name)


def point_dir(run: Path, point_id: int) -> Path:
    """The folder of one point: everything its training reads and writes."""
    return run / POINTS / str(point_id)


class PointFolderError(UserError, ValueError):
    """Something other than a real folder where a point folder belongs; the message says what."""


def point_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` must not be used as a point folder, or None: a real folder, or nothing yet.

    ``lstat``, not ``stat``: a symlink to a folder is refused as what it is. The
    message names the link's target and how to go on.
    """
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        return None
    what = file_kind(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        what += f" to {shown(os.readlink(folder))}"
    return (
        f"{shown(folder)} is {what}: a point folder must be a real folder; "
        f"remove it, then `splinenas rerun {folder.name}`"
    )


def require_point_folder(folder: Path) -> Path:
    """``folder``, unless :func:`point_folder_problem` refuses it.

    Raises:
        PointFolderError: a symlink or something else that is not a folder is there.
    """
    problem = point_folder_problem(folder)
    if problem is not None:
        raise PointFolderError(problem)
    return folder


def make_point_folder(folder: Path) -> Path:
    """Create ``folder`` (and the folders above it) unless a real folder is there already.

    ``mkdir(exist_ok=True)`` alone accepts a symlink to a folder.

    Raises:
        PointFolderError: see :func:`require_point_folder`.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    return require_point_folder(folder)


def foreign_owner(folder: Path) -> str | None:
    """Who else owns ``folder``, when this process's user does not, for people to see; else None.

    Not refused: a campaign handed from one user to another keeps the folders
    of the first. But whoever owns a point folder can change what is read from
    it, so a measurement read there says so.
    """
    try:
        owner = os.lstat(folder).st_uid
    except OSError:
        return None
    if owner == os.geteuid():
        return None
    return (
        f"{shown(folder)} belongs to uid {owner}, not to uid {os.geteuid()} that reads it: "
        "its owner can change what is read there"
    )


def jobs_dir(run: Path) -> Path:
    """Where the local backend keeps its job records."""
    return run / JOBS


def inbox_dir(run: Path) -> Path:
    """Where operator commands leave requests for a running controller."""
    return run / INBOX


def log_path(run: Path, point_id: int, job_name: str) -> Path:
    """The log of one submission (one attempt and segment) of a point."""
    return point_dir(run, point_id) / LOGS / f"{job_name}.log"
