"""Parameters, multiply-accumulates and training memory of a candidate, without allocating.

Everything here runs on PyTorch's ``meta`` device: the network is built and a
forward pass traced with shapes only, so even the largest corners of a search
box cost a fraction of a second and no memory. The search calls
:func:`estimate` and :func:`fits` as its feasibility predicate.

Memory model (per GPU, one training step at batch ``b``), in bytes:

``state``
    fp32 weights, gradients, SGD momentum and DistributedDataParallel's
    gradient buckets (a flat copy of the gradients): ``4 * 4 * P`` for ``P``
    parameters; with AMP add the fp16 weight copies autocast keeps for the
    forward pass (``2 * P``).
``activations``
    every tensor autograd saves for the backward pass during one forward at
    batch ``b``, counted once per storage (a ReLU applied in place shares the
    storage of its input) and excluding the parameters; halved under AMP.
``transient``
    the backward pass frees saved tensors as it goes but briefly holds the
    gradient of an activation next to its input's gradient: twice the largest
    saved tensor.
``workspace``
    a fixed margin for the CUDA context, cuDNN/cuBLAS workspaces and caching
    allocator fragmentation (:data:`WORKSPACE_BYTES`) plus
    :data:`FRAGMENTATION` of the activations.

On the meta device BatchNorm is traced through a stand-in that records its
input as saved and returns a same-shaped copy, because the meta kernel of
``batch_norm`` dominates the tracing time; the per-channel statistics it
really saves are negligible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from nas.models.registry import ModelSpec, build_from_spec, spec_for

#: Fixed allowance for the CUDA context, library workspaces and allocator slack.
WORKSPACE_BYTES = 1 << 30
#: Allocator fragmentation, as a fraction of the activations.
FRAGMENTATION = 0.10
#: Bytes of fp32 weights, gradients, momentum and DDP gradient buckets per parameter.
STATE_BYTES_PER_PARAMETER = 16
#: Bytes per parameter of the fp16 weight copies cast by autocast.
AMP_WEIGHT_BYTES_PER_PARAMETER = 2
#: Bytes in a GiB: ``max_gpu_memory_gib`` counts these, as card makers' "16 GB" do.
BYTES_PER_GIB = 2**30


@dataclass(frozen=True)
class Cost:
    """Size and training cost of one candidate (see the module docstring for the memory model)."""

    family: str
    description: str
    parameters: int
    macs: int
    resolution: int
    batch_per_gpu: int
    amp: bool
    state_bytes: int
    activation_bytes: int
    transient_bytes: int
    workspace_bytes: int

    @property
    def memory_bytes(self) -> int:
        """Estimated peak device memory of one training step."""
        return (
            self.state_bytes + self.activation_bytes + self.transient_bytes + self.workspace_bytes
        )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready fields, ``memory_bytes`` included."""
        return {**asdict(self), "memory_bytes": self.memory_bytes}


@dataclass(frozen=True)
class _Trace:
    macs: int
    saved_bytes: int
    largest_saved_bytes: int


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (works on meta modules)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(
    model_or_spec: nn.Module | ModelSpec,
    resolution: int,
    *,
    num_classes: int = 1000,
    classifier: bool = True,
) -> int:
    """Multiply-accumulates of one forward pass of one ``resolution``-square RGB image.

    Convolutions and linear layers are counted (one MAC per weight and output
    position; biases, normalisation, activations and pooling are not, as in
    the published counts and ``torch.utils.flop_counter``). ``classifier=False`` leaves out the final
    linear layers, which is how the Big-Little Net release counts (its bL-ResNet-50
    is 2.85 G without and 2.856 G with the classifier). ``num_classes`` applies
    to a spec only.
    """
    model = _meta_model(model_or_spec, num_classes)
    # Two images: a training-mode BatchNorm needs more than one value per channel.
    macs = _trace(model, resolution, batch=2).macs // 2
    if not classifier:
        macs -= sum(m.in_features * m.out_features for m in model.modules() if _is_linear(m))
    return macs


def estimate(
    family: str,
    params: Mapping[str, object],
    num_classes: int,
    *,
    resolution: int,
    batch_per_gpu: int,
    amp: bool = False,
) -> Cost:
    """Parameters, MACs and peak training memory per GPU of one candidate.

    Raises:
        ModelConfigError: the family or parameters do not describe a network.
        ValueError: non-positive resolution or batch.
    """
    if batch_per_gpu < 1:
        raise ValueError(f"expected batch_per_gpu >= 1, got {batch_per_gpu}")
    spec = spec_for(family, params)
    model = _meta_model(spec, num_classes)
    trace = _trace(model, resolution, batch=batch_per_gpu)
    parameters = count_parameters(model)
    activation_scale = 0.5 if amp else 1.0
    state = parameters * (
        STATE_BYTES_PER_PARAMETER + (AMP_WEIGHT_BYTES_PER_PARAMETER if amp else 0)
    )
    activations = round(trace.saved_bytes * activation_scale)
    return Cost(
        family=family,
        description=f"{spec.describe()}, {num_classes} classes",
        parameters=parameters,
        macs=trace.macs // batch_per_gpu,
        resolution=resolution,
        batch_per_gpu=batch_per_gpu,
        amp=amp,
        state_bytes=state,
        activation_bytes=activations,
        transient_bytes=round(2 * trace.largest_saved_bytes * activation_scale),
        workspace_bytes=WORKSPACE_BYTES + round(FRAGMENTATION * activations),
    )


def usable_bytes(max_gpu_memory_gib: float, margin: float = 1.0) -> int:
    """Bytes a candidate may use of a GPU of ``max_gpu_memory_gib`` GiB: its ``margin`` share."""
    return int(max_gpu_memory_gib * margin * BYTES_PER_GIB)


def fits(cost: Cost, max_gpu_memory_gib: float | None, margin: float = 1.0) -> bool:
    """Whether ``cost`` fits ``margin`` of a GPU of ``max_gpu_memory_gib`` GiB (``None``: no limit)."""
    return max_gpu_memory_gib is None or cost.memory_bytes <= usable_bytes(
        max_gpu_memory_gib, margin
    )


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def _meta_model(model_or_spec: nn.Module | ModelSpec, num_classes: int) -> nn.Module:
    """A model whose parameters live on the meta device (a given module is used as is)."""
    if isinstance(model_or_spec, nn.Module):
        return model_or_spec
    with torch.device("meta"):
        return build_from_spec(model_or_spec, num_classes)


@contextmanager
def _fast_batchnorm(model: nn.Module, record: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """On the meta device, trace BatchNorm as a copy whose input is recorded as saved.

    Training-mode BatchNorm saves its input (plus per-channel statistics) and
    returns a new tensor of the same shape, but its meta kernel is a slow
    Python decomposition; a clone costs microseconds.
    """
    patched = []
    if next(model.parameters()).device.type == "meta":
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.forward = partial(_batchnorm_standin, record)
                patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _batchnorm_standin(record: Callable[[torch.Tensor], None], x: torch.Tensor) -> torch.Tensor:
    record(x)
    return x.clone()


def _trace(model: nn.Module, resolution: int, *, batch: int) -> _Trace:
    """One training-mode forward pass, counting MACs and the tensors saved for backward.

    MACs come from forward hooks on the convolutions and linear layers rather
    than ``FlopCounterMode``, whose dispatch overhead would double the time.
    """
    if resolution < 1:
        raise ValueError(f"expected resolution >= 1, got {resolution}")
    parameter = next(model.parameters())
    x = torch.empty(batch, 3, resolution, resolution, device=parameter.device)
    parameter_storages = {_storage_key(p) for p in model.parameters()}
    saved: dict[int, torch.Tensor] = {}  # holding each tensor keeps its storage key unique

    def record(tensor: torch.Tensor) -> None:
        key = _storage_key(tensor)
        if key not in parameter_storages:
            saved[key] = tensor

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        record(tensor)
        return tensor

    macs = 0

    def count(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        nonlocal macs  # a weight of shape (out, fan_in...) costs fan_in per output element
        macs += output.numel() * (module.weight.numel() // module.weight.shape[0])

    counted = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.train()
    try:
        with (
            _fast_batchnorm(model, record),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        ):
            model(x)
    finally:
        model.train(was_training)
        for hook in counted:
            hook.remove()
    sizes = [t.untyped_storage().nbytes() for t in saved.values()]
    return _Trace(macs, sum(sizes), max(sizes, default=0))


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata
