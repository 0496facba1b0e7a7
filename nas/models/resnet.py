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

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from nas.models import ModelConfigError
from nas.models.specs import RESNET50 as RESNET50  # re-exported
from nas.models.specs import RESNEXT50_32X4D as RESNEXT50_32X4D  # re-exported
from nas.models.specs import ResNetSpec as ResNetSpec  # re-exported

#: Residual block kinds, by the name a spec uses (:data:`~nas.models.specs.BLOCK_EXPANSION`).
BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


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
