"""Which device a rank drives, and the error when it has none it may drive.

Device selection is a function of the rank's local rank, the ranks on its
node, the environment (the launcher's visibility variables) and the requested
accelerator, so it holds whichever launcher started the ranks:

* request: ``SPLINENAS_ACCELERATOR``, which the job script sets from ``[cluster]``
  (``gpus_per_node > 0``: ``accelerator``, default ``"gpu"``; else ``"auto"``).
  ``"auto"`` (or unset) trains on a GPU when torch sees one, else on the CPU;
  ``"gpu"`` needs a CUDA/ROCm device (``torch.cuda``) or an Intel GPU tile
  (``torch.xpu``); ``"cuda"`` and ``"xpu"`` need that kind. A rank that sees
  none of what it asked for raises :class:`DeviceError` (``error.json`` kind
  ``"environment"``: retrying on the same nodes cannot help) instead of
  training on its CPU until the walltime.
* index: one visible device is the rank's own (the launcher bound it: jsrun
  ``-g 1``, ``srun --gpus-per-task=1``, Flux ``gpu-affinity=per-task``, a
  ``ZE_AFFINITY_MASK`` of one tile); with several, every rank of the node must
  have one of its own, and the rank takes its local rank's, or with
  ``SPLINENAS_DEVICE_ORDER=reversed`` the mirror image ``n - 1 - local rank``:
  ALCF's rule for Polaris, whose GPU 3 sits nearest cores 0-7
  (https://docs.alcf.anl.gov/polaris/running-jobs/, ``set_affinity_gpu_polaris.sh``).
* ROCm visibility: ROCr applies ``ROCR_VISIBLE_DEVICES`` first and HIP then
  reads ``HIP_VISIBLE_DEVICES``/``CUDA_VISIBLE_DEVICES`` as indices into what
  is left. Flux's per-task GPU affinity writes the node's (physical) GPU ids
  into ``CUDA_VISIBLE_DEVICES``, so beside a ``ROCR_VISIBLE_DEVICES`` it leaves
  ranks 1-3 without a GPU (OLCF's and Flux's warning,
  https://github.com/flux-framework/flux-core/issues/4534).
  :func:`rocm_visibility` rewrites the pair into one ``ROCR_VISIBLE_DEVICES``
  before HIP starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.pointdir.layout import (
    ACCELERATOR_VAR,
    DEVICE_ORDER_VAR,
    ENVIRONMENT_FAILURE,
    RANKS_PER_NODE_VAR,
)

if TYPE_CHECKING:
    import torch

#: What a job may ask for; "auto" keeps CPU training for ``gpus_per_node = 0``.
ACCELERATORS = ("auto", "gpu", "cuda", "xpu")
#: How the ranks of a node map onto its visible devices.
DEVICE_ORDERS = ("local-rank", "reversed")
#: The variables that decide what a rank sees, in the order they are reported.
VISIBILITY_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
)
#: The oldest torch the built-in trainer runs on (setup.cfg's ``train`` extra says the
#: same), and what it needs of that release: ``torch.amp.GradScaler(device)``.
MIN_TORCH = (2, 3)
MIN_TORCH_REASON = "torch.amp.GradScaler"
#: The torch device type that each request may use, in order of preference.
_KINDS = {"auto": ("cuda", "xpu"), "gpu": ("cuda", "xpu"), "cuda": ("cuda",), "xpu": ("xpu",)}


class DeviceError(RuntimeError):
    """This rank cannot drive the device its job asked for, or its torch cannot train:
    a person must fix the layout or the environment.

    ``kind`` is the ``error.json`` kind: the controller does not retry it.
    """

    kind = ENVIRONMENT_FAILURE


def torch_release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a torch version string ("2.2.1+cu121", "2.3.0a0+git..."); None if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return None if match is None else (int(match[1]), int(match[2]))


def require_torch() -> None:
    """Refuse a torch older than :data:`MIN_TORCH` by name, before the trainer uses it.

    Without this, a site torch 2.2 fails every job in the middle of building
    the optimizer with an AttributeError that the controller retries as if it
    could pass. A version string that cannot be read (a site's own build) is
    let through: the check must not stop a torch that works.

    Raises:
        DeviceError: kind ``"environment"``: the same on every attempt.
    """
    import torch

    found = torch_release(torch.__version__)
    if found is not None and found < MIN_TORCH:
        needed = ".".join(map(str, MIN_TORCH))
        raise DeviceError(
            f"torch {torch.__version__} found; the built-in trainer needs torch {needed} "
            f"or later ({MIN_TORCH_REASON})"
        )


@dataclass(frozen=True)
class Placement:
    """Where a rank sits on its node: what device selection needs of the launcher."""

    local_rank: int
    local_world_size: int | None  # None when the launcher does not say

    def describe(self) -> str:
        ranks = "?" if self.local_world_size is None else str(self.local_world_size)
        return f"local rank {self.local_rank} of {ranks} on this node"


def visibility(environ: Mapping[str, str]) -> str:
    """The visibility variables as this rank sees them, for error messages and logs."""
    return ", ".join(
        f"{name}={'unset' if environ.get(name) is None else repr(environ[name])}"
        for name in VISIBILITY_VARIABLES
    )


def requested(environ: Mapping[str, str]) -> tuple[str, str]:
    """(accelerator, device order) from the environment the job script set.

    Raises:
        DeviceError: a value outside :data:`ACCELERATORS` or :data:`DEVICE_ORDERS`.
    """
    accelerator = environ.get(ACCELERATOR_VAR) or "auto"
    order = environ.get(DEVICE_ORDER_VAR) or "local-rank"
    for name, value, valid in ((ACCELERATOR_VAR, accelerator, ACCELERATORS),
                               (DEVICE_ORDER_VAR, order, DEVICE_ORDERS)):  # fmt: skip
        if value not in valid:
            raise DeviceError(f"{name}={value!r}: expected one of {', '.join(valid)}")
    return accelerator, order


def local_world_size(environ: Mapping[str, str]) -> int | None:
    """Ranks on this node: torchrun's ``LOCAL_WORLD_SIZE``, else the job script's count."""
    for name in ("LOCAL_WORLD_SIZE", RANKS_PER_NODE_VAR):
        text = environ.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
    return None


def device_index(placement: Placement, visible: int, order: str, what: str) -> int:
    """The index of this rank's device among ``visible`` ones (see the module docstring).

    Args:
        what: the layout in words, for the error (visibility variables, request).

    Raises:
        DeviceError: no device, or fewer devices than ranks on the node.
    """
    if visible == 1:
        return 0
    short = placement.local_rank >= visible or (
        placement.local_world_size is not None and placement.local_world_size > visible
    )
    if visible == 0 or short:
        raise DeviceError(
            f"{placement.describe()} sees {visible} device(s) ({what}); the launcher must "
            "give each rank one device (srun --gpus-per-task=1, jsrun -g 1, flux run -g 1, "
            "one tile in ZE_AFFINITY_MASK) or every rank all devices of its node; check "
            "[cluster] gpus_per_node, ranks_per_node, resource_sets, gpu_bind and the "
            "environment file"
        )
    if order == "reversed":
        return visible - 1 - placement.local_rank
    return placement.local_rank


def _ids(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def rocm_visibility(environ: Mapping[str, str]) -> dict[str, str | None]:
    """Changes that make ROCm's two visibility layers agree (None: unset the variable).

    With ``ROCR_VISIBLE_DEVICES`` and a HIP-level list (``HIP_VISIBLE_DEVICES``,
    else ``CUDA_VISIBLE_DEVICES``) both set: when every HIP-level id is one of
    the ROCr ids, the HIP list names node GPUs (Flux per-task affinity) and
    becomes the one ROCr list; otherwise, when its ids index the ROCr list,
    HIP composes them correctly and nothing changes.

    Raises:
        DeviceError: the two lists cannot be read together.
    """
    rocr = environ.get("ROCR_VISIBLE_DEVICES")
    hip_name = (
        "HIP_VISIBLE_DEVICES" if environ.get("HIP_VISIBLE_DEVICES") else "CUDA_VISIBLE_DEVICES"
    )
    hip = environ.get(hip_name)
    if not rocr or not hip:
        return {}
    rocr_ids, hip_ids = _ids(rocr), _ids(hip)
    if set(hip_ids) <= set(rocr_ids):
        changes: dict[str, str | None] = {"ROCR_VISIBLE_DEVICES": ",".join(hip_ids)}
        changes.update({name: None for name in ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
                        if name in environ})  # fmt: skip
        return changes
    if all(item.isdigit() and int(item) < len(rocr_ids) for item in hip_ids):
        return {}
    raise DeviceError(
        f"{hip_name}={hip!r} names devices that ROCR_VISIBLE_DEVICES={rocr!r} hides: ROCm "
        f"reads {hip_name} as indices into the ROCr list, so this rank would see no GPU; "
        "set only one of them (with Flux's gpu-affinity=per-task, leave "
        "ROCR_VISIBLE_DEVICES unset in the environment file)"
    )


def apply(changes: Mapping[str, str | None], environ: MutableMapping[str, str]) -> None:
    """Set or unset variables in ``environ`` (and in this process, which torch reads)."""
    for name, value in changes.items():
        for target in (environ, os.environ):
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value


def visible_devices(kind: str) -> int:
    """Devices of ``kind`` ("cuda" or "xpu") that torch sees in this process (0 without support)."""
    import torch

    module = getattr(torch, kind, None)
    if module is None or not module.is_available():
        return 0
    return int(module.device_count())


def choose(
    placement: Placement, environ: Mapping[str, str], counts: Mapping[str, int]
) -> tuple[str, int | None]:
    """(device type, index) for this rank from what torch sees (``counts`` by type).

    Raises:
        DeviceError: the job asked for an accelerator this rank does not see.
    """
    accelerator, order = requested(environ)
    kinds = _KINDS[accelerator]
    kind = next((k for k in kinds if counts.get(k, 0) > 0), None)
    if kind is None and accelerator == "auto":
        return "cpu", None
    what = f"{visibility(environ)}; {ACCELERATOR_VAR}={accelerator!r}"
    if kind is None:
        seen = ", ".join(f"{k}: {counts.get(k, 0)}" for k in kinds)
        raise DeviceError(
            f"the job asked for {accelerator!r} devices but {placement.describe()} sees none "
            f"({seen}; {what}); it would train on the CPU until the walltime. Check that "
            "the environment file loads a GPU build of torch and that the launcher makes "
            "the node's devices visible to every rank"
        )
    return kind, device_index(placement, counts[kind], order, what)


def select_device(placement: Placement, environ: MutableMapping[str, str]) -> torch.device:
    """This rank's device by :func:`choose`, made current; the CPU where that is allowed.

    Fixes ROCm's visibility pair first (:func:`rocm_visibility`), before HIP starts.
    """
    import torch

    if torch.version.hip is not None:
        try:
            apply(rocm_visibility(environ), environ)
        except DeviceError as exc:
            raise DeviceError(f"{placement.describe()}: {exc} ({visibility(environ)})") from None
    counts = {kind: visible_devices(kind) for kind in ("cuda", "xpu")}
    kind, index = choose(placement, environ, counts)
    if index is None:
        return torch.device(kind)
    getattr(torch, kind).set_device(index)
    return torch.device(kind, index)


#: The process-group backend of each device type: NCCL (RCCL on ROCm builds,
#: which keep the name), Intel's oneCCL as ``xccl`` (torch 2.8 and later), gloo.
BACKENDS = {"cuda": "nccl", "xpu": "xccl", "cpu": "gloo"}


def backend_for(device: torch.device) -> str:
    """The ``torch.distributed`` backend for ``device``.

    Raises:
        DeviceError: an XPU rank under a torch without ``xccl`` (say what is missing
            rather than fall back to gloo, which would move every gradient through the CPU).
    """
    import torch.distributed as dist

    backend = BACKENDS[device.type]
    if backend == "xccl" and not getattr(dist, "is_xccl_available", lambda: False)():
        import torch

        raise DeviceError(
            f"this rank drives {device} but torch {torch.__version__} has no 'xccl' "
            "process-group backend (torch.distributed.is_xccl_available() is false or "
            "missing); install a torch built with XPU and oneCCL support (2.8 or later, "
            "e.g. the site's frameworks module on Aurora)"
        )
    return backend
