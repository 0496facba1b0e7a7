"""Ranks and rendezvous for torchrun, ``srun``, ``jsrun``, PALS ``mpiexec``, ``flux run`` or one process.

The one place the rendezvous is derived. Standard library only: the launch
wrapper of every rank (:mod:`nas.trial.launch`) calls it before any user
command starts, and the built-in trainer reads what it exported. Every rank
works out the same master address and port from its environment alone, so no
launcher-specific wrapper script is needed:

* rank / world size / local rank / local world size, innermost launcher first
  (one started inside another's task inherits its variables: Flux under Slurm):
  torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``),
  Flux (``FLUX_TASK_RANK``, ``FLUX_JOB_SIZE``, ``FLUX_TASK_LOCAL_ID``; ranks per
  node from ``FLUX_JOB_NNODES``), HPE PALS ``mpiexec`` (``PALS_RANKID``,
  ``PMI_SIZE``, ``PALS_LOCAL_RANKID``, ``PMI_LOCAL_SIZE``), jsrun
  (``JSM_NAMESPACE_RANK``, ``JSM_NAMESPACE_SIZE``, ``JSM_NAMESPACE_LOCAL_RANK``,
  ``JSM_NAMESPACE_LOCAL_SIZE``), Open MPI (``OMPI_COMM_WORLD_*``), Slurm
  (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` or ``SLURM_NTASKS``,
  ``SLURM_LOCALID``, the node's entry of ``SLURM_STEP_TASKS_PER_NODE``), any
  other PMI launcher (``PMI_RANK``, ``PMI_SIZE``, ``PMI_LOCAL_RANK``,
  ``PMI_LOCAL_SIZE``); otherwise one process. Plain PMI comes last because Flux
  and PALS set ``PMI_RANK`` and ``PMI_SIZE`` too, Flux without a local rank.
  Where the launcher names no local size, the job script's
  ``SPLINENAS_RANKS_PER_NODE``, the launcher's node count, or else one node says it.
* master address: ``MASTER_ADDR`` (the PBS job script exports the first line
  of ``PBS_NODEFILE`` from the first node; Frontier's and Aurora's site files
  their Slingshot address); else, in a Flux task, the first host of ``flux
  getattr hostlist`` (Flux sets no host list variable; its docs name this
  command), the node where ``flux run`` puts task 0 when the step spans the
  whole allocation, as the job scripts' steps do; else the first host of the
  Slurm node list (expanded here, without ``scontrol``); else the first compute
  host of LSF's ``LSB_MCPU_HOSTS``, ``LSB_DJOB_HOSTFILE`` or ``LSB_HOSTS`` (on
  CSM machines such as Summit the launch node comes first and is skipped); else
  the first line of PBS's ``PBS_NODEFILE`` (written on the other nodes only
  where the server's ``gen_nodefile_on_sister_mom`` is on).
* master port: ``MASTER_PORT``; else derived from the job id, innermost first
  (``FLUX_JOB_ID``, ``SLURM_JOB_ID``, ``LSB_JOBID``, ``PBS_JOBID``,
  ``TORCHELASTIC_RUN_ID``) into 15000-31999:
  unprivileged and below Linux's ephemeral range (32768-60999, where the
  kernel picks the local ports of outgoing connections, so a port there may be
  taken on the master node by chance). This is the one port rule: the job
  scripts export no ``MASTER_PORT``.

:func:`torch_environment` turns the result into the ``torch.distributed``
env:// variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) that every rank's
command finds set, so a plain ``init_process_group("nccl")`` works under
every launcher.
"""

from __future__ import annotations

import re
import socket
import subprocess
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from nas.pointdir.layout import RANKS_PER_NODE_VAR

PORT_BASE = 15000
PORT_SPAN = 17000  # ports 15000-31999: unprivileged, below the ephemeral range 32768-60999

#: (launcher, rank variable, world-size variables in order of preference, local-rank
#: variable, local-size variable or None), innermost launcher first: a launcher started
#: inside another one's task inherits that task's variables (OLCF runs Flux under Slurm,
#: ``srun ... flux start``, and every Flux task carries the broker's ``SLURM_PROCID``, its
#: node's index: olcf-user-docs ``systems/frontier_user_guide.rst``; Flux copies the
#: submitter's environment, flux-core ``doc/man1/common/job-environment.rst``). So
#: torchrun, Flux, PALS, jsrun and Open MPI come before Slurm, and plain PMI last: Flux
#: and PALS set ``PMI_RANK``/``PMI_SIZE`` too, and so may srun's PMI plugins, without
#: the local rank.
_RANK_VARIABLES: tuple[tuple[str, str, tuple[str, ...], str, str | None], ...] = (
    ("torchrun", "RANK", ("WORLD_SIZE",), "LOCAL_RANK", "LOCAL_WORLD_SIZE"),
    ("flux", "FLUX_TASK_RANK", ("FLUX_JOB_SIZE",), "FLUX_TASK_LOCAL_ID", None),
    ("pals", "PALS_RANKID", ("PMI_SIZE",), "PALS_LOCAL_RANKID", "PMI_LOCAL_SIZE"),
    ("jsrun", "JSM_NAMESPACE_RANK", ("JSM_NAMESPACE_SIZE",), "JSM_NAMESPACE_LOCAL_RANK",
     "JSM_NAMESPACE_LOCAL_SIZE"),
    ("mpi", "OMPI_COMM_WORLD_RANK", ("OMPI_COMM_WORLD_SIZE",), "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"),
    ("slurm", "SLURM_PROCID", ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"), "SLURM_LOCALID", None),
    ("pmi", "PMI_RANK", ("PMI_SIZE",), "PMI_LOCAL_RANK", "PMI_LOCAL_SIZE"),
)  # fmt: skip
#: Node counts of the launchers that name no local size (ranks per node = world / nodes),
#: each launcher's own: an enclosing Slurm's count says nothing of a Flux step.
_NODE_COUNT_VARIABLES: dict[str, tuple[str, ...]] = {
    "slurm": ("SLURM_STEP_NUM_NODES", "SLURM_NNODES"),
    "flux": ("FLUX_JOB_NNODES",),
}
#: Innermost first: Flux jobs inside one Slurm allocation must not share a port.
_JOB_ID_VARIABLES = ("FLUX_JOB_ID", "SLURM_JOB_ID", "LSB_JOBID", "PBS_JOBID", "TORCHELASTIC_RUN_ID")
#: Seconds ``flux getattr hostlist`` may take.
_FLUX_TIMEOUT = 60.0


class LaunchError(RuntimeError):
    """The environment does not describe a usable set of ranks, or the rendezvous failed."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits among the ranks of one training job."""

    launcher: str
    rank: int
    world_size: int
    local_rank: int
    master_addr: str | None = None
    master_port: int | None = None
    local_size: int | None = None  # ranks on this node; None: all of them

    @property
    def local_world_size(self) -> int:
        """Ranks on this node (``LOCAL_WORLD_SIZE``)."""
        return self.world_size if self.local_size is None else self.local_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def detect(environ: Mapping[str, str]) -> DistEnv:
    """Read rank, world size, local rank and the rendezvous address from ``environ``.

    Raises:
        LaunchError: inconsistent numbers, or several ranks but no master address or port.
    """
    launcher, rank, world_size, local_rank, local_size = _ranks(environ)
    if world_size == 1:
        return DistEnv(launcher, rank, world_size, local_rank, local_size=1)
    return DistEnv(
        launcher,
        rank,
        world_size,
        local_rank,
        master_addr=master_address(environ),
        master_port=master_port(environ),
        local_size=local_size,
    )


def _ranks(environ: Mapping[str, str]) -> tuple[str, int, int, int, int]:
    for launcher, rank_var, size_vars, local_var, local_size_var in _RANK_VARIABLES:
        size_var = next((name for name in size_vars if name in environ), None)
        if rank_var not in environ or size_var is None:
            continue
        rank = _integer(environ, rank_var, minimum=0)
        world_size = _integer(environ, size_var, minimum=1)
        local_rank = _integer(environ, local_var, minimum=0) if local_var in environ else 0
        if rank >= world_size:
            raise LaunchError(f"{rank_var}={rank} is not below {size_var}={world_size}")
        if local_size_var is not None and local_size_var in environ:
            local_size = _integer(environ, local_size_var, minimum=1)
        else:
            local_size = _ranks_per_node(environ, world_size, launcher)
        if local_rank >= local_size:
            raise LaunchError(f"{local_var}={local_rank} is not below {local_size} ranks per node")
        return launcher, rank, world_size, local_rank, local_size
    return "single", 0, 1, 0, 1


def _ranks_per_node(environ: Mapping[str, str], world_size: int, launcher: str) -> int:
    """Ranks on this node where the launcher names no local size.

    Under Slurm, ``SLURM_STEP_TASKS_PER_NODE`` (``"2(x3),1"``) at ``SLURM_NODEID``;
    else the job script's ``SPLINENAS_RANKS_PER_NODE`` (from ``[cluster]``);
    else the world spread evenly over the launcher's node count; else one node.
    Only the launcher's own variables count (a Flux task inside Slurm carries the
    layout of the ``srun`` that started its broker).
    """
    per_node = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if launcher == "slurm" and per_node and environ.get("SLURM_NODEID", "").isdigit():
        counts = [
            int(count)
            for item in per_node.split(",")
            if (found := re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", item.strip()))
            for count in [found.group(1)] * int(found.group(2) or 1)
        ]
        node = int(environ["SLURM_NODEID"])
        if node < len(counts) and counts[node] > 0:
            return counts[node]
    planned = environ.get(RANKS_PER_NODE_VAR, "").strip()
    if planned.isdigit() and 0 < int(planned) <= world_size:
        return int(planned)
    names = _NODE_COUNT_VARIABLES.get(launcher, ())
    nodes = next((environ[name] for name in names if environ.get(name)), "")
    if nodes.isdigit() and int(nodes) > 0:
        return max(1, world_size // int(nodes))
    return world_size


def _integer(environ: Mapping[str, str], name: str, minimum: int) -> int:
    text = environ[name].strip()
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise LaunchError(f"{name}={environ[name]!r}: expected an integer >= {minimum}")
    return int(text)


def master_address(environ: Mapping[str, str]) -> str:
    """The host of rank 0 (see the module docstring for the order of sources)."""
    if environ.get("MASTER_ADDR"):
        return environ["MASTER_ADDR"]
    if "FLUX_TASK_RANK" in environ and environ.get("FLUX_URI"):  # innermost: see _RANK_VARIABLES
        return expand_nodelist(flux_hostlist(environ))[0]
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
    nodelist = nodelist or environ.get("SLURM_NODELIST")
    if nodelist:
        return expand_nodelist(nodelist)[0]
    hosts = lsf_compute_hosts(environ)
    if hosts:
        return hosts[0]
    if environ.get("PBS_NODEFILE"):
        return pbs_first_host(environ["PBS_NODEFILE"])
    raise LaunchError(
        "several ranks but no master address: set MASTER_ADDR, or run under "
        "Slurm (SLURM_JOB_NODELIST), LSF (LSB_MCPU_HOSTS), PBS (PBS_NODEFILE) or Flux"
    )


def master_port(environ: Mapping[str, str]) -> int:
    """``MASTER_PORT``, else a port every rank derives from the job id without talking."""
    if environ.get("MASTER_PORT"):
        port = _integer(environ, "MASTER_PORT", minimum=1)
        if port > 65535:
            raise LaunchError(f"MASTER_PORT={port} is not a TCP port")
        return port
    for name in _JOB_ID_VARIABLES:
        if environ.get(name):
            return port_for_job(environ[name])
    raise LaunchError(
        "several ranks but no master port: set MASTER_PORT or run under a scheduler "
        f"that sets one of {', '.join(_JOB_ID_VARIABLES)}"
    )


def port_for_job(job_id: str) -> int:
    """A port in [15000, 32000) that is a fixed function of the job id (CRC-32)."""
    return PORT_BASE + zlib.crc32(job_id.encode("utf-8")) % PORT_SPAN


# --------------------------------------------------------------------------- host lists


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm host list such as ``"gpu[01-03,07],login1,r[1-2]n[1-2]"``.

    Zero padding of a range is kept (``01-03`` gives ``01 02 03``); several
    bracket groups in one name expand as a product, in Slurm's order.

    Raises:
        LaunchError: unbalanced brackets or a malformed range.
    """
    hosts: list[str] = []
    for name in _split_outside_brackets(nodelist.strip()):
        hosts.extend(_expand_name(name, nodelist))
    if not hosts:
        raise LaunchError(f"empty Slurm node list {nodelist!r}")
    return hosts


def _split_outside_brackets(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        if depth not in (0, 1):
            raise LaunchError(f"unbalanced brackets in Slurm node list {text!r}")
    if depth:
        raise LaunchError(f"unbalanced brackets in Slurm node list {text!r}")
    parts.append(text[start:])
    return [part for part in parts if part]


def _expand_name(name: str, nodelist: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", name)
    if not match:
        return [name]
    head, tail = name[: match.start()], name[match.end() :]
    return [
        head + value + rest
        for value in _expand_ranges(match.group(1), nodelist)
        for rest in _expand_name(tail, nodelist)
    ]


def _expand_ranges(spec: str, nodelist: str) -> list[str]:
    values: list[str] = []
    for item in spec.split(","):
        found = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
        if not found:
            raise LaunchError(f"malformed range {item!r} in Slurm node list {nodelist!r}")
        low, high = found.group(1), found.group(2) or found.group(1)
        if int(high) < int(low):
            raise LaunchError(f"descending range {item!r} in Slurm node list {nodelist!r}")
        width = len(low)
        values.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    return values


def lsf_compute_hosts(environ: Mapping[str, str]) -> list[str]:
    """The distinct compute hosts of an LSF job, in order, without the launch node.

    ``LSB_MCPU_HOSTS`` is ``"host slots host slots ..."``; ``LSB_HOSTS`` lists a
    host once per slot. On CSM systems driven by jsrun (e.g. Summit) the launch
    (batch) node comes first with fewer slots than the compute nodes, and it
    runs no rank; it is dropped. A single host is always kept.
    """
    slots: dict[str, int] = {}
    fields = environ.get("LSB_MCPU_HOSTS", "").split()
    if fields:
        if len(fields) % 2:
            raise LaunchError(
                f"LSB_MCPU_HOSTS={environ['LSB_MCPU_HOSTS']!r}: expected host/count pairs"
            )
        for host, count in zip(fields[::2], fields[1::2], strict=True):
            if not count.isdigit():
                raise LaunchError(
                    f"LSB_MCPU_HOSTS: slot count {count!r} of {host} is not an integer"
                )
            slots[host] = slots.get(host, 0) + int(count)
    else:
        for host in _lsf_slot_hosts(environ):
            slots[host] = slots.get(host, 0) + 1
    hosts = list(slots)
    if len(hosts) > 1 and slots[hosts[0]] < slots[hosts[1]]:
        hosts = hosts[1:]
    return hosts


def pbs_first_host(nodefile: str) -> str:
    """The first line of ``PBS_NODEFILE``: the job's first (mother superior) node, rank 0's."""
    try:
        with open(nodefile, encoding="utf-8") as handle:
            first = next((line.strip() for line in handle if line.strip()), "")
    except OSError as exc:
        raise LaunchError(f"PBS_NODEFILE={nodefile!r}: cannot read: {exc}") from None
    if not first:
        raise LaunchError(f"PBS_NODEFILE={nodefile!r} lists no host")
    return first


def flux_hostlist(environ: Mapping[str, str]) -> str:
    """``flux getattr hostlist`` of the instance at ``FLUX_URI`` (RFC 29 host list)."""
    argv = ["flux", "getattr", "hostlist"]
    try:
        done = subprocess.run(argv, env=dict(environ), capture_output=True, text=True,
                              timeout=_FLUX_TIMEOUT, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"`flux getattr hostlist` failed: {exc}") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise LaunchError(
            f"`flux getattr hostlist` exited with status {done.returncode}: {done.stderr.strip()}"
        )
    return done.stdout.strip()


def _lsf_slot_hosts(environ: Mapping[str, str]) -> list[str]:
    """One host per slot: the lines of ``LSB_DJOB_HOSTFILE``, else the words of ``LSB_HOSTS``."""
    hostfile = environ.get("LSB_DJOB_HOSTFILE")
    if hostfile:
        try:
            with open(hostfile, encoding="utf-8") as handle:
                return [line.strip() for line in handle if line.strip()]
        except OSError as exc:
            raise LaunchError(f"LSB_DJOB_HOSTFILE={hostfile!r}: cannot read: {exc}") from None
    return environ.get("LSB_HOSTS", "").split()


def torch_environment(dist_env: DistEnv) -> dict[str, str]:
    """The ``torch.distributed`` env:// variables of this rank, as strings.

    ``MASTER_ADDR`` / ``MASTER_PORT`` only where there is a rendezvous
    (several ranks); one rank gets ``127.0.0.1`` and a port free at that moment,
    so a command that always calls ``init_process_group`` still works alone.
    """
    env = {
        "RANK": str(dist_env.rank),
        "LOCAL_RANK": str(dist_env.local_rank),
        "WORLD_SIZE": str(dist_env.world_size),
        "LOCAL_WORLD_SIZE": str(dist_env.local_world_size),
    }
    env["MASTER_ADDR"] = dist_env.master_addr or "127.0.0.1"
    env["MASTER_PORT"] = str(dist_env.master_port or _free_port())
    return env


def _free_port() -> int:
    """A TCP port free on this host now (one rank's own rendezvous, nobody else joins)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
