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
"""

from __future__ import annotations

import os
from pathlib import Path

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


def jobs_dir(run: Path) -> Path:
    """Where the local backend keeps its job records."""
    return run / JOBS


def inbox_dir(run: Path) -> Path:
    """Where operator commands leave requests for a running controller."""
    return run / INBOX


def log_path(run: Path, point_id: int, job_name: str) -> Path:
    """The log of one submission (one attempt and segment) of a point."""
    return point_dir(run, point_id) / LOGS / f"{job_name}.log"
