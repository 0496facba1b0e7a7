"""Process group of one rank of the built-in trainer (torch only).

Ranks and the rendezvous are derived once, without torch, in
:mod:`nas.pointdir.rendezvous` (re-exported here): the launch wrapper of every
rank exports them in the env:// convention before the trainer starts, and
:func:`detect` reads them back. The device is :mod:`nas.train.device`'s
(from the local rank and the visibility variables, whichever launcher set
them).

The rendezvous waits at most ``SPLINENAS_RENDEZVOUS_TIMEOUT`` seconds (default
300) and then fails with a message naming the address, the port and the rank.
A backend that fails to start after it (NCCL, RCCL or oneCCL without their
network plugin, on a wrong interface) says so instead, with the device and the
network variables (:func:`nas.train.commcheck.network_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from nas.numbers import positive_number
from nas.pointdir.rendezvous import (
    PORT_BASE,
    PORT_SPAN,
    DistEnv,
    LaunchError,
    detect,
    expand_nodelist,
    flux_hostlist,
    lsf_compute_hosts,
    master_address,
    master_port,
    pbs_first_host,
    port_for_job,
)

if TYPE_CHECKING:
    import torch
    import torch.distributed as dist

__all__ = [
    "PORT_BASE",
    "PORT_SPAN",
    "DistEnv",
    "LaunchError",
    "all_reduce",
    "detect",
    "expand_nodelist",
    "flux_hostlist",
    "init_process_group",
    "lsf_compute_hosts",
    "master_address",
    "master_port",
    "pbs_first_host",
    "port_for_job",
    "seconds_from_env",
]

RENDEZVOUS_TIMEOUT_VAR = "SPLINENAS_RENDEZVOUS_TIMEOUT"
COLLECTIVE_TIMEOUT_VAR = "SPLINENAS_COLLECTIVE_TIMEOUT"
DEFAULT_RENDEZVOUS_SECONDS = 300.0
DEFAULT_COLLECTIVE_SECONDS = 1800.0


# --------------------------------------------------------------------------- process group


def seconds_from_env(environ: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds from ``environ[name]``, else ``default``."""
    text = environ.get(name)
    return positive_number(name, text, "seconds", LaunchError) if text else default


def init_process_group(dist_env: DistEnv, device: torch.device, environ: Mapping[str, str]) -> None:
    """Join the rendezvous, then start the backend of :func:`~nas.train.device.backend_for`.

    One rank skips both. The two steps fail for different reasons and say so:
    the TCP store waits for every rank (a node that never came up, a wrong
    address); the backend then creates its communicator at once (``device_id``),
    where NCCL, RCCL or oneCCL fail on a missing network plugin or a wrong
    interface, which is no timeout and was reported as one.

    Raises:
        LaunchError: the rendezvous did not complete within the timeout, or the
            backend did not start; names the address, the port and this rank.
    """
    if not dist_env.distributed:
        return
    from nas.train.device import backend_for

    backend = backend_for(device)  # before waiting: a torch without it fails at once
    wait = seconds_from_env(environ, RENDEZVOUS_TIMEOUT_VAR, DEFAULT_RENDEZVOUS_SECONDS)
    collective = seconds_from_env(environ, COLLECTIVE_TIMEOUT_VAR, DEFAULT_COLLECTIVE_SECONDS)
    store = join_store(dist_env, wait, environ)
    start_backend(store, backend, dist_env, device, timedelta(seconds=collective), environ)


def join_store(dist_env: DistEnv, wait: float, environ: Mapping[str, str]) -> dist.TCPStore:
    """The rendezvous: the TCP store that every rank joins within the timeout.

    Raises:
        LaunchError: naming the address, the port, the timeout and this rank.
    """
    import torch.distributed as dist

    # Under torchrun the agent may already serve the store on MASTER_PORT.
    agent_store = environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    address, port = dist_env.master_addr, dist_env.master_port
    try:
        return dist.TCPStore(
            address,
            port,
            dist_env.world_size,
            is_master=dist_env.is_main and not agent_store,
            timeout=timedelta(seconds=wait),
            wait_for_workers=True,
        )
    except (RuntimeError, OSError) as exc:
        raise LaunchError(
            f"rank {dist_env.rank} of {dist_env.world_size} could not complete the rendezvous "
            f"at {address}:{port} within {wait:g} s ({RENDEZVOUS_TIMEOUT_VAR}): {exc}"
        ) from exc


def start_backend(
    store: dist.TCPStore,
    backend: str,
    dist_env: DistEnv,
    device: torch.device,
    timeout: timedelta,
    environ: Mapping[str, str],
) -> None:
    """The process group over ``store``; its communicator is created here, not at the first step.

    Raises:
        LaunchError: naming the backend and its library, the device, the network
            variables (:func:`~nas.train.commcheck.network_settings`) and the
            backend's own error.
    """
    import torch.distributed as dist

    from nas.train.commcheck import library, network_settings

    try:
        dist.init_process_group(
            backend=backend,
            store=store,
            rank=dist_env.rank,
            world_size=dist_env.world_size,
            timeout=timeout,
            device_id=None if device.type == "cpu" else device,
        )
    except (RuntimeError, OSError) as exc:
        raise LaunchError(
            f"rank {dist_env.rank} of {dist_env.world_size} joined the rendezvous at "
            f"{dist_env.master_addr}:{dist_env.master_port}, but the {backend!r} process-group "
            f"backend ({library(device)}) could not start on {device}: {exc} (network: "
            f"{network_settings(environ)})"
        ) from exc


def all_reduce(values: list[float], device: torch.device, op: str = "sum") -> list[float]:
    """Sum (or max) a few numbers over all ranks; the values themselves with one rank.

    float64 keeps counts exact up to 2**53, far beyond any dataset.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor.tolist()
