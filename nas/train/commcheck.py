"""One timed all-reduce before the first step: the bandwidth the gradients will get.

A DDP job whose collective library fell back to TCP sockets (RCCL without its
libfabric plugin on Frontier, NCCL without aws-ofi-nccl on Polaris or
Perlmutter) trains, only several times slower, and nothing else says so. Every
segment therefore starts with one all-reduce of one gradient bucket (DDP's
bucket size) on all ranks, after one untimed all-reduce that sets the
communicator up, and reports the bus bandwidth as nccl-tests defines it,
``2 (n - 1) / n * bytes / seconds``, where seconds is the slowest rank's. The
figure goes to the log (rank 0), ``progress.json``, ``result.json`` and
``splinenas status``; below ``SPLINENAS_EXPECTED_BUS_GBPS`` (set by the site
files in ``envs/``; see the README for the figures) the log line and the
figure in ``status`` carry a warning.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.numbers import positive_number
from nas.train.device import DeviceError

if TYPE_CHECKING:
    import torch

EXPECTED_VAR = "SPLINENAS_EXPECTED_BUS_GBPS"
#: The variables that pick the network a collective library talks over, always
#: quoted (set or not): the ones the job script's prologue logs
#: (``nas/cluster/templates/prologue.sh``).
NETWORK_VARIABLES = ("NCCL_NET", "NCCL_NET_PLUGIN", "NCCL_SOCKET_IFNAME", "FI_PROVIDER")
#: Families quoted only where set: oneCCL's settings (Aurora's site file sets
#: several) and gloo's interface choice.
NETWORK_PREFIXES = ("CCL_", "GLOO_SOCKET_IFNAME")


@dataclass(frozen=True)
class CommCheck:
    """The measured all-reduce of one start of a job."""

    library: str  # "NCCL 2.21.5", "RCCL 2.20.5", "oneCCL (xccl)" or "gloo"
    ranks: int
    nbytes: int
    seconds: float  # the slowest rank's
    expected_gbps: float | None

    @property
    def bus_gbps(self) -> float:
        """nccl-tests' bus bandwidth of an all-reduce, in GB/s (10**9 bytes)."""
        return bus_bandwidth(self.nbytes, self.seconds, self.ranks)

    @property
    def low(self) -> bool:
        return self.expected_gbps is not None and self.bus_gbps < self.expected_gbps

    def line(self) -> str:
        """The log line: library, ranks, the all-reduce and its bus bandwidth, and a warning."""
        text = (
            f"splinenas: communication: {self.library} over {self.ranks} ranks: all-reduce of "
            f"{self.nbytes / 2**20:.0f} MiB in {1e3 * self.seconds:.2f} ms, "
            f"bus bandwidth {self.bus_gbps:.2f} GB/s"
        )
        if self.low:
            text += (
                f"; WARNING: below the {self.expected_gbps:g} GB/s this site reaches "
                f"({EXPECTED_VAR}): is the network plugin loaded (NCCL_NET, LD_LIBRARY_PATH)? "
                "A fallback to TCP sockets makes every step wait on the network"
            )
        return text

    def fields(self) -> dict[str, float]:
        """What ``progress.json`` and ``result.json`` keep."""
        fields = {"bus_bandwidth_gbps": round(self.bus_gbps, 4)}
        if self.expected_gbps is not None:
            fields["expected_bus_bandwidth_gbps"] = self.expected_gbps
        return fields


def bus_bandwidth(nbytes: int, seconds: float, ranks: int) -> float:
    """``2 (n - 1) / n * bytes / seconds`` in GB/s: what each link carries in a ring all-reduce."""
    return 2.0 * (ranks - 1) / ranks * nbytes / seconds / 1e9


def expected_bandwidth(environ: Mapping[str, str]) -> float | None:
    """``SPLINENAS_EXPECTED_BUS_GBPS``, or None when unset.

    Raises:
        DeviceError: a value that is not a positive number (an environment file to fix).
    """
    text = environ.get(EXPECTED_VAR, "").strip()
    return positive_number(EXPECTED_VAR, text, "GB/s", DeviceError) if text else None


def network_settings(environ: Mapping[str, str]) -> str:
    """The network variables as this rank sees them, for the message of a library that failed."""
    names = list(NETWORK_VARIABLES)
    names += sorted(n for n in environ if n.startswith(NETWORK_PREFIXES) and n not in names)
    return ", ".join(
        f"{name}={'unset' if environ.get(name) is None else repr(environ[name])}" for name in names
    )


def library(device: torch.device) -> str:
    """The collective library behind the device's backend, with its version where torch says."""
    import torch

    if device.type == "cuda":
        name = "RCCL" if torch.version.hip is not None else "NCCL"
        version = torch.cuda.nccl.version()
        return f"{name} {'.'.join(map(str, version)) if isinstance(version, tuple) else version}"
    if device.type == "xpu":
        return "oneCCL (xccl)"
    return "gloo"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (gloo's CPU collectives return when done)."""
    import torch

    if device.type in ("cuda", "xpu"):
        getattr(torch, device.type).synchronize(device)


def measure(device: torch.device, nbytes: int, environ: Mapping[str, str]) -> CommCheck | None:
    """Time one all-reduce of ``nbytes`` on all ranks; None without a process group.

    Every rank must call it (it is a collective), before the first step.
    """
    import torch
    import torch.distributed as dist

    expected = expected_bandwidth(environ)
    if not (dist.is_available() and dist.is_initialized()):
        return None
    tensor = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)
    dist.all_reduce(tensor)  # sets the communicator up: not timed
    synchronize(device)
    dist.barrier()
    start = time.perf_counter()
    dist.all_reduce(tensor)
    synchronize(device)
    elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=device)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return CommCheck(library(device), dist.get_world_size(), tensor.numel() * 4,
                     float(elapsed.item()), expected)  # fmt: skip
