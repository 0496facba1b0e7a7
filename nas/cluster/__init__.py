"""Scheduler backends behind one interface: local processes, Slurm and LSF."""

from __future__ import annotations

import os

from nas.cluster.base import JobRecord, JobState, Scheduler, SchedulerError
from nas.cluster.local import LocalScheduler
from nas.cluster.lsf import LsfScheduler
from nas.cluster.proc import DEFAULT_TIMEOUT
from nas.cluster.slurm import SlurmScheduler
from nas.config import ClusterConfig

__all__ = [
    "JobRecord",
    "JobState",
    "LocalScheduler",
    "LsfScheduler",
    "Scheduler",
    "SchedulerError",
    "SlurmScheduler",
    "get_scheduler",
]


def get_scheduler(
    cluster: ClusterConfig, *, local_root: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT
) -> Scheduler:
    """The backend named by ``cluster.backend``.

    Args:
        cluster: the ``[cluster]`` table.
        local_root: folder where the local backend keeps its job records
            (e.g. ``<run>/jobs``); unused by Slurm and LSF.
        timeout: seconds any scheduler command may take.
    """
    if cluster.backend == "slurm":
        return SlurmScheduler(timeout=timeout)
    if cluster.backend == "lsf":
        return LsfScheduler(timeout=timeout)
    if cluster.backend == "local":
        return LocalScheduler(local_root, timeout=timeout)
    raise ValueError(f"unknown backend {cluster.backend!r}; valid backends are local, lsf, slurm")
