"""Parameters and multiply-accumulates of any module, and a traced forward pass, with torch.

The cost model of the built-in families is closed-form and torch-free
(:mod:`nas.models.footprint`, whose names are re-exported here). This module
counts what a real module holds: :func:`count_parameters` and
:func:`count_macs` for any ``nn.Module`` (the published counts of torchvision
and the Big-Little release are checked with them), and :func:`trace`, one
training-mode forward pass on PyTorch's ``meta`` device that records the
tensors autograd saves, which the tests hold the closed-form walk equal to.

On the meta device BatchNorm is traced through a stand-in that records its
input as saved and returns a same-shaped copy, because the meta kernel of
``batch_norm`` dominates the tracing time; the per-channel statistics it
really saves are negligible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from nas.models.registry import ModelSpec, build_from_spec


@dataclass(frozen=True)
class Trace:
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
    model = meta_model(model_or_spec, num_classes)
    # Two images: a training-mode BatchNorm needs more than one value per channel.
    macs = trace(model, resolution, batch=2).macs // 2
    if not classifier:
        macs -= sum(m.in_features * m.out_features for m in model.modules() if _is_linear(m))
    return macs


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def meta_model(model_or_spec: nn.Module | ModelSpec, num_classes: int) -> nn.Module:
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


def trace(model: nn.Module, resolution: int, *, batch: int) -> Trace:
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
    return Trace(macs, sum(sizes), max(sizes, default=0))


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata
