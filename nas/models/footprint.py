"""Parameters, multiply-accumulates and training memory of a built-in candidate, without torch.

The cost of a candidate follows from its spec alone: every layer's shape is
known, so its weights, its multiply-accumulates and the tensors autograd keeps
for the backward pass can be counted in closed form. This module walks each
family's layers in the order their ``forward`` runs them and counts, so that
a controller on a login node (no torch installed) can apply memory limits,
cost constraints and trade-offs, and every reader shows the same numbers.
``tests/test_footprint.py`` holds the walk equal to a traced forward pass on
PyTorch's meta device (:mod:`nas.models.cost`) over random specs.

Memory model (per device, one training step at batch ``b``), in bytes:

``state``
    fp32 weights, gradients, SGD momentum and DistributedDataParallel's
    gradient buckets (a flat copy of the gradients): ``4 * 4 * P`` for ``P``
    parameters; with AMP add the fp16 weight copies autocast keeps for the
    forward pass (``2 * P``).
``activations``
    every tensor autograd saves for the backward pass during one forward at
    batch ``b``, counted once per storage (a ReLU applied in place shares the
    storage of its input) and excluding the parameters; halved under AMP.
    A convolution and a linear layer save their input, a BatchNorm its input
    (its per-channel statistics are negligible), a ReLU its output, a max
    pooling its input and its int64 indices, an average pooling its input;
    additions and nearest-neighbour upsampling save nothing.
``transient``
    the backward pass frees saved tensors as it goes but briefly holds the
    gradient of an activation next to its input's gradient: twice the largest
    saved tensor.
``workspace``
    a fixed margin for the CUDA context, cuDNN/cuBLAS workspaces and caching
    allocator fragmentation (:data:`WORKSPACE_BYTES`) plus
    :data:`FRAGMENTATION` of the activations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import count

from nas.models.specs import (
    BLOCK_EXPANSION,
    EXPANSION,
    FUSION_STRIDES,
    BigLittleSpec,
    ModelSpec,
    ResNetSpec,
    group_width,
    spec_for,
)

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
#: Bytes of one activation value (fp32) and of one max-pooling index (int64).
FLOAT_BYTES, INDEX_BYTES = 4, 8


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
class Tensor:
    """An activation: its storage (``key``), channels and spatial size, per image."""

    key: int
    channels: int
    height: int
    width: int

    @property
    def per_image(self) -> int:
        return self.channels * self.height * self.width


@dataclass
class Walk:
    """Counts of one forward pass at ``batch`` images: MACs, parameters, saved storages."""

    batch: int
    macs: int = 0
    parameters: int = 0
    saved: dict[int, int] = field(default_factory=dict)
    _keys: count = field(default_factory=count)

    def tensor(self, channels: int, height: int, width: int) -> Tensor:
        """A new storage of the given shape."""
        return Tensor(next(self._keys), channels, height, width)

    def save(self, x: Tensor, item_bytes: int = FLOAT_BYTES) -> None:
        """Autograd keeps ``x`` for the backward pass (each storage counted once)."""
        self.saved[x.key] = item_bytes * self.batch * x.per_image

    def conv(
        self, x: Tensor, out: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1
    ) -> Tensor:
        """A bias-free convolution; it saves its input."""
        self.save(x)
        y = self.tensor(out, *_pooled(x, kernel, stride, padding))
        fan_in = x.channels // groups * kernel * kernel
        self.parameters += out * fan_in
        self.macs += y.per_image * fan_in
        return y

    def norm(self, x: Tensor) -> Tensor:
        """BatchNorm: weight and bias per channel; it saves its input."""
        self.save(x)
        self.parameters += 2 * x.channels
        return self.tensor(x.channels, x.height, x.width)

    def relu_(self, x: Tensor) -> Tensor:
        """An in-place ReLU: it saves its output, which is its input's storage."""
        self.save(x)
        return x

    def relu(self, x: Tensor) -> Tensor:
        """An out-of-place ReLU: it saves its new output."""
        y = self.tensor(x.channels, x.height, x.width)
        self.save(y)
        return y

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        """A residual sum: nothing saved."""
        if (a.channels, a.height, a.width) != (b.channels, b.height, b.width):
            raise AssertionError(f"adding tensors of different shapes: {a} and {b}")
        return self.tensor(a.channels, a.height, a.width)

    def max_pool(self, x: Tensor) -> Tensor:
        """3x3 stride-2 max pooling: it saves its input and its int64 indices."""
        self.save(x)
        y = self.tensor(x.channels, *_pooled(x, 3, 2, 1))
        self.save(y, INDEX_BYTES)  # the indices: a storage of the output's shape
        return self.tensor(y.channels, y.height, y.width)

    def avg_pool(self, x: Tensor) -> Tensor:
        """3x3 stride-2 average pooling (the ResNet-D shortcut): it saves its input."""
        self.save(x)
        return self.tensor(x.channels, *_pooled(x, 3, 2, 1))

    def resize(self, x: Tensor, like: Tensor) -> Tensor:
        """Nearest-neighbour upsampling to ``like``'s size: nothing saved."""
        return self.tensor(x.channels, like.height, like.width)

    def classifier(self, x: Tensor, classes: int) -> None:
        """Global average pooling, then a linear layer that saves the pooled input."""
        pooled = self.tensor(x.channels, 1, 1)
        self.save(pooled)
        self.parameters += x.channels * classes + classes
        self.macs += x.channels * classes


def _pooled(x: Tensor, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Output height and width of a window of ``kernel`` sliding by ``stride``."""
    return tuple((n + 2 * padding - kernel) // stride + 1 for n in (x.height, x.width))


def _basic(walk: Walk, x: Tensor, width: int, stride: int, shortcut: bool) -> Tensor:
    """torchvision's BasicBlock: two 3x3 convolutions and a residual sum."""
    out = walk.relu_(walk.norm(walk.conv(x, width, 3, stride, 1)))
    out = walk.norm(walk.conv(out, width, 3, 1, 1))
    identity = walk.norm(walk.conv(x, width, 1, stride)) if shortcut else x
    return walk.relu_(walk.add(out, identity))


def _bottleneck(
    walk: Walk, x: Tensor, width: int, stride: int, shortcut: bool, spec: ResNetSpec
) -> Tensor:
    """torchvision's Bottleneck: 1x1, grouped 3x3 (carrying the stride), 1x1 to ``4 width``."""
    inner = int(width * spec.width_per_group / 64) * spec.groups
    out = walk.relu_(walk.norm(walk.conv(x, inner, 1)))
    out = walk.relu_(walk.norm(walk.conv(out, inner, 3, stride, 1, spec.groups)))
    outplanes = width * BLOCK_EXPANSION["bottleneck"]
    out = walk.norm(walk.conv(out, outplanes, 1))
    identity = walk.norm(walk.conv(x, outplanes, 1, stride)) if shortcut else x
    return walk.relu_(walk.add(out, identity))


def _walk_resnet(walk: Walk, spec: ResNetSpec, x: Tensor, classes: int) -> None:
    stem = spec.scaled_stem_width
    if spec.stem == "conv7":
        x = walk.relu_(walk.norm(walk.conv(x, stem, 7, 2, 3)))
    else:
        x = _basic(walk, x, stem, 2, shortcut=True)
    if spec.maxpool:
        x = walk.max_pool(x)
    expansion = BLOCK_EXPANSION[spec.block]
    for index, (width, depth) in enumerate(zip(spec.scaled_widths, spec.depths, strict=True)):
        for block in range(depth):
            stride = 2 if index > 0 and block == 0 else 1
            shortcut = block == 0 and (stride != 1 or x.channels != width * expansion)
            if spec.block == "basic":
                x = _basic(walk, x, width, stride, shortcut)
            else:
                x = _bottleneck(walk, x, width, stride, shortcut, spec)
    walk.classifier(x, classes)


def _bl_bottleneck(
    walk: Walk,
    x: Tensor,
    planes: int,
    groups: tuple[int, int],
    stride: int = 1,
    last_relu: bool = True,
) -> Tensor:
    """The release's bottleneck (``planes`` outputs) with its ResNet-D shortcut."""
    cardinality, basewidth = groups
    inner = group_width(planes, basewidth) * cardinality
    out = walk.relu_(walk.norm(walk.conv(x, inner, 1)))
    out = walk.relu_(walk.norm(walk.conv(out, inner, 3, stride, 1, cardinality)))
    out = walk.norm(walk.conv(out, planes, 1))
    identity = walk.avg_pool(x) if stride != 1 else x
    if x.channels != planes:
        identity = walk.norm(walk.conv(identity, planes, 1))
    out = walk.add(out, identity)
    return walk.relu(out) if last_relu else out


def _bl_stage(
    walk: Walk,
    x: Tensor,
    planes: int,
    blocks: int,
    groups: tuple[int, int],
    stride: int = 1,
    last_relu: bool = True,
) -> Tensor:
    for block in range(blocks):
        last = block == blocks - 1
        x = _bl_bottleneck(
            walk, x, planes, groups, stride if block == 0 else 1, last_relu or not last
        )
    return x


def _walk_biglittle(walk: Walk, spec: BigLittleSpec, x: Tensor, classes: int) -> None:
    widths = spec.scaled_widths
    stem, little_width = widths[0], widths[0] // spec.alpha
    x = walk.relu_(walk.norm(walk.conv(x, stem, 7, 2, 3)))
    big = walk.norm(walk.conv(x, stem, 3, 2, 1))
    little = walk.relu_(walk.norm(walk.conv(x, little_width, 3, 1, 1)))
    little = walk.relu_(walk.norm(walk.conv(little, little_width, 3, 2, 1)))
    little = walk.norm(walk.conv(little, stem, 1))
    x = walk.relu_(walk.add(big, little))
    x = walk.relu_(walk.norm(walk.conv(x, stem, 1)))
    groups = (spec.cardinality, spec.basewidth)
    for index, stride in enumerate(FUSION_STRIDES):
        planes, depth = widths[index] * EXPANSION, spec.depths[index]
        little = _bl_stage(
            walk, x, planes // spec.alpha, spec.little_depth(depth), spec.little_groups
        )
        little = walk.norm(walk.conv(little, planes, 1))
        big = _bl_stage(walk, x, planes, depth - 1, groups, stride=2, last_relu=False)
        merged = walk.relu(walk.add(walk.resize(big, little), little))
        x = _bl_stage(walk, merged, planes, 1, groups, stride=stride)
    x = _bl_stage(walk, x, widths[3] * EXPANSION, spec.depths[3], groups, stride=2)
    walk.classifier(x, classes)


def walk_spec(spec: ModelSpec, num_classes: int, resolution: int, batch: int) -> Walk:
    """Count one training-mode forward pass of ``batch`` RGB images of ``resolution`` squared."""
    if resolution < 1:
        raise ValueError(f"expected resolution >= 1, got {resolution}")
    walk = Walk(batch)
    image = walk.tensor(3, resolution, resolution)
    if isinstance(spec, BigLittleSpec):
        _walk_biglittle(walk, spec, image, num_classes)
    else:
        _walk_resnet(walk, spec, image, num_classes)
    return walk


def estimate(
    family: str,
    params: Mapping[str, object],
    num_classes: int,
    *,
    resolution: int,
    batch_per_gpu: int,
    amp: bool = False,
) -> Cost:
    """Parameters, MACs and peak training memory per device of one candidate.

    Raises:
        ModelConfigError: the family or parameters do not describe a network.
        ValueError: non-positive resolution, batch or number of classes.
    """
    if batch_per_gpu < 1:
        raise ValueError(f"expected batch_per_gpu >= 1, got {batch_per_gpu}")
    if num_classes < 1:
        raise ValueError(f"expected num_classes >= 1, got {num_classes}")
    spec = spec_for(family, params)
    walk = walk_spec(spec, num_classes, resolution, batch_per_gpu)
    scale = 0.5 if amp else 1.0
    state = walk.parameters * (
        STATE_BYTES_PER_PARAMETER + (AMP_WEIGHT_BYTES_PER_PARAMETER if amp else 0)
    )
    activations = round(sum(walk.saved.values()) * scale)
    return Cost(
        family=family,
        description=f"{spec.describe()}, {num_classes} classes",
        parameters=walk.parameters,
        macs=walk.macs,
        resolution=resolution,
        batch_per_gpu=batch_per_gpu,
        amp=amp,
        state_bytes=state,
        activation_bytes=activations,
        transient_bytes=round(2 * max(walk.saved.values(), default=0) * scale),
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
