"""Scheduler backends behind one interface: local processes, Slurm, LSF, PBS and Flux.

Importing a backend module registers it (:func:`nas.cluster.base.backend_class`);
adding a scheduler is one module here plus its template in ``templates/``.
"""

from __future__ import annotations

import os

from nas.cluster.base import (
    JobRecord,
    JobState,
    Scheduler,
    SchedulerError,
    backend_class,
    backend_names,
)
from nas.cluster.proc import DEFAULT_TIMEOUT

# isort: off
# Importing a backend registers it; this order is the order errors list them in.
from nas.cluster.local import LocalScheduler
from nas.cluster.slurm import SlurmScheduler
from nas.cluster.lsf import LsfScheduler
from nas.cluster.pbs import PbsScheduler
from nas.cluster.flux import FluxScheduler

# isort: on
from nas.config import ClusterConfig

#: The registered backends.
BACKENDS = backend_names()

__all__ = [
    "BACKENDS",
    "FluxScheduler",
    "JobRecord",
    "JobState",
    "LocalScheduler",
    "LsfScheduler",
    "PbsScheduler",
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
    backend = backend_class(cluster.backend)
    if backend is None:
        valid = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown backend {cluster.backend!r}; valid backends are {valid}")
    return backend.create(cluster=cluster, local_root=local_root, timeout=timeout)
