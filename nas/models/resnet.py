"""Spec-driven ResNet and ResNeXt (He et al. 2016; Xie et al. 2017).

torchvision's :class:`~torchvision.models.ResNet` hard-codes a 64-wide 7x7
stem and the stage widths 64/128/256/512, which are exactly the quantities an
architecture search varies. :class:`ResNetSpec` makes them fields; the blocks
themselves are torchvision's, so module names, parameter shapes and the
downsample logic are the same and the default spec is parameter-for-parameter
``torchvision.models.resnet18`` (see :data:`RESNET50` and
:data:`RESNEXT50_32X4D` for the other two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from nas.models import ModelConfigError

#: Residual block kinds, by the name a spec uses.
BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}
#: ``conv7``: torchvision's 7x7 stride-2 convolution; ``basic``: a residual
#: BasicBlock of two 3x3 convolutions whose first one has stride 2.
STEMS = ("conv7", "basic")


def scale_width(width: int, phi: float) -> int:
    """Apply a global width multiplier, rounding to the nearest channel count (at least 1)."""
    return max(1, round(width * phi))


@dataclass(frozen=True)
class ResNetSpec:
    """One member of the ResNet/ResNeXt family.

    Attributes:
        block: ``"basic"`` or ``"bottleneck"``.
        depths: blocks per stage; the first stage keeps the resolution, each
            later one halves it.
        widths: per-stage width; for bottlenecks the ``planes`` of torchvision
            (the stage outputs ``width * 4`` channels).
        stem: one of :data:`STEMS`.
        stem_width: output channels of the stem.
        maxpool: 3x3 stride-2 max pooling after the stem.
        groups: cardinality of the bottleneck's 3x3 convolution (ResNeXt).
        width_per_group: ResNeXt's ``d``; the bottleneck's inner width is
            ``int(width * width_per_group / 64) * groups``.
        phi: global multiplier applied to ``stem_width`` and ``widths``.
        zero_init_residual: zero the last BatchNorm scale of every block so
            that each residual branch starts as the identity, which helps
            large-batch training (Goyal et al. 2017, arXiv:1706.02677).
    """

    block: str = "basic"
    depths: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: str = "conv7"
    stem_width: int = 64
    maxpool: bool = True
    groups: int = 1
    width_per_group: int = 64
    phi: float = 1.0
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ModelConfigError(
                f"unknown block {self.block!r}; expected one of {sorted(BLOCKS)}"
            )
        if self.stem not in STEMS:
            raise ModelConfigError(f"unknown stem {self.stem!r}; expected one of {list(STEMS)}")
        if not self.depths or len(self.depths) != len(self.widths):
            raise ModelConfigError(
                f"expected as many depths as widths (at least one stage), got depths "
                f"{self.depths} and widths {self.widths}"
            )
        _require_positive(
            depths=self.depths,
            widths=self.widths,
            stem_width=(self.stem_width,),
            groups=(self.groups,),
            width_per_group=(self.width_per_group,),
        )
        if not self.phi > 0:
            raise ModelConfigError(f"expected phi > 0, got {self.phi}")
        if self.block == "basic" and (self.groups, self.width_per_group) != (1, 64):
            raise ModelConfigError(
                "basic blocks support only groups=1 and width_per_group=64, got "
                f"groups={self.groups} and width_per_group={self.width_per_group}"
            )
        for stage, width in enumerate(self.scaled_widths, start=1):
            if self.block == "bottleneck" and int(width * self.width_per_group / 64) < 1:
                raise ModelConfigError(
                    f"stage {stage}: width {width} with width_per_group {self.width_per_group} "
                    "leaves no channel per group in the bottleneck"
                )

    @property
    def scaled_widths(self) -> tuple[int, ...]:
        """Stage widths after the multiplier ``phi``."""
        return tuple(scale_width(w, self.phi) for w in self.widths)

    @property
    def scaled_stem_width(self) -> int:
        """Stem width after the multiplier ``phi``."""
        return scale_width(self.stem_width, self.phi)

    def describe(self) -> str:
        """One line for people: block, stem, depths and widths."""
        kind = "ResNet" if self.groups == 1 else f"ResNeXt {self.groups}x{self.width_per_group}d"
        pool = "+maxpool" if self.maxpool else ""
        return (
            f"{kind} ({self.block} blocks), stem {self.stem}{pool} {self.scaled_stem_width}, "
            f"depths {'-'.join(map(str, self.depths))}, "
            f"widths {'-'.join(map(str, self.scaled_widths))}"
        )


def _require_positive(**fields: tuple[int, ...]) -> None:
    for name, values in fields.items():
        for value in values:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelConfigError(f"expected positive integers for {name}, got {values}")


#: torchvision's ``resnet50``.
RESNET50 = ResNetSpec(block="bottleneck", depths=(3, 4, 6, 3))
#: torchvision's ``resnext50_32x4d``.
RESNEXT50_32X4D = ResNetSpec(block="bottleneck", depths=(3, 4, 6, 3), groups=32, width_per_group=4)


def initialise(
    model: nn.Module, residual_norm: Callable[[nn.Module], nn.BatchNorm2d | None]
) -> None:
    """Kaiming (fan-out) convolutions and unit BNs; the BN that ``residual_norm`` names is zeroed.

    A zeroed last BN makes its residual block start as the identity, which
    eases the first steps of training (Goyal et al. 2017, arXiv:1706.02677). A model
    on the meta device (a shape-only copy for cost tracing) is left alone.
    """
    if next(model.parameters()).is_meta:
        return
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        norm = residual_norm(module)
        if norm is not None:
            nn.init.zeros_(norm.weight)


class SpecResNet(nn.Module):
    """A ResNet assembled from a :class:`ResNetSpec`; module names follow torchvision."""

    def __init__(self, spec: ResNetSpec, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelConfigError(f"expected num_classes >= 1, got {num_classes}")
        self.spec = spec
        block = BLOCKS[spec.block]
        stem_width = spec.scaled_stem_width
        if spec.stem == "conv7":
            self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(stem_width)
            self.relu = nn.ReLU(inplace=True)
        else:
            shortcut = nn.Sequential(conv1x1(3, stem_width, 2), nn.BatchNorm2d(stem_width))
            self.stem = BasicBlock(3, stem_width, stride=2, downsample=shortcut)
        self.maxpool = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if spec.maxpool else nn.Identity()
        )
        inplanes = stem_width
        for index, (width, depth) in enumerate(zip(spec.scaled_widths, spec.depths, strict=True)):
            stride = 1 if index == 0 else 2
            self.add_module(f"layer{index + 1}", self._stage(block, inplanes, width, depth, stride))
            inplanes = width * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        initialise(self, self._residual_norm)

    def _stage(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        inplanes: int,
        width: int,
        depth: int,
        stride: int,
    ) -> nn.Sequential:
        """One stage; the first block adapts resolution and channels, as in torchvision."""
        spec = self.spec
        outplanes = width * block.expansion
        downsample = None
        if stride != 1 or inplanes != outplanes:
            downsample = nn.Sequential(
                conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes)
            )
        extra = {"groups": spec.groups, "base_width": spec.width_per_group}
        layers = [block(inplanes, width, stride, downsample, **extra)]
        layers += [block(outplanes, width, **extra) for _ in range(1, depth)]
        return nn.Sequential(*layers)

    def _residual_norm(self, module: nn.Module) -> nn.BatchNorm2d | None:
        """The last BN of a residual block (not the stem block), if the spec zeroes it."""
        if not self.spec.zero_init_residual:
            return None
        if isinstance(module, Bottleneck):
            return module.bn3
        if isinstance(module, BasicBlock) and module is not getattr(self, "stem", None):
            return module.bn2
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.stem == "conv7":
            x = self.relu(self.bn1(self.conv1(x)))
        else:
            x = self.stem(x)
        x = self.maxpool(x)
        for index in range(len(self.spec.depths)):
            x = getattr(self, f"layer{index + 1}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def build_resnet(spec: ResNetSpec, num_classes: int) -> SpecResNet:
    """Build the network described by ``spec`` with a ``num_classes``-way classifier."""
    return SpecResNet(spec, num_classes)
