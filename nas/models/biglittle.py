"""Big-Little Net ResNeXt (Chen et al., "Big-Little Net: An Efficient
Multi-Scale Feature Representation for Visual and Speech Recognition", ICLR
2019), following the layout of the authors' release (github.com/IBM/BigLittleNet,
``models/blresnext.py``), with stage widths, depths and the branch ratios as
spec fields.

Each of the first three stages runs a deep *big* branch at half resolution and
a shallow, narrow *little* branch (width 1/alpha, depth about 1/beta) at full
resolution, merges them and fuses the result with one more bottleneck. Module
names match the authors' release, so their checkpoints load into the default
specs. One deliberate difference: the last block of a big branch never has
its final ReLU, also when the branch has a single block (the release keeps the
ReLU in that case, which only arises for stage depth 2).

With ``cardinality=1, basewidth=64`` the blocks are plain ResNet bottlenecks
(bL-ResNet); when the cardinality is below alpha the little branch keeps one
group and the basewidth, which reproduces the release's bL-ResNet exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nas.models import ModelConfigError
from nas.models.resnet import initialise
from nas.models.specs import EXPANSION, FUSION_STRIDES, group_width
from nas.models.specs import BigLittleSpec as BigLittleSpec  # re-exported


class BLBottleneck(nn.Module):
    """ResNeXt bottleneck whose ``planes`` is its *output* width (as in the release)."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        basewidth: int,
        cardinality: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        last_relu: bool = True,
    ) -> None:
        super().__init__()
        inner = group_width(planes, basewidth) * cardinality
        self.conv1 = nn.Conv2d(inplanes, inner, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(
            inner, inner, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.last_relu = last_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out) if self.last_relu else out


def _shortcut(inplanes: int, planes: int, stride: int) -> nn.Module | None:
    """ResNet-D shortcut: average-pool when strided, then a 1x1 conv when widths differ."""
    layers: list[nn.Module] = []
    if stride != 1:
        layers.append(nn.AvgPool2d(3, stride=2, padding=1))
    if inplanes != planes:
        layers += [nn.Conv2d(inplanes, planes, kernel_size=1, bias=False), nn.BatchNorm2d(planes)]
    return nn.Sequential(*layers) if layers else None


def make_stage(
    inplanes: int,
    planes: int,
    blocks: int,
    groups: tuple[int, int],
    stride: int = 1,
    last_relu: bool = True,
) -> nn.Sequential:
    """``blocks`` bottlenecks; the first one adapts stride and width.

    ``groups`` is (cardinality, basewidth); ``last_relu=False`` drops the
    final ReLU of the last block (the big branch, whose output is merged first).
    """
    cardinality, basewidth = groups
    layers = [
        BLBottleneck(
            inplanes, planes, basewidth, cardinality, stride, _shortcut(inplanes, planes, stride)
        )
    ]
    layers += [BLBottleneck(planes, planes, basewidth, cardinality) for _ in range(1, blocks)]
    layers[-1].last_relu = last_relu
    return nn.Sequential(*layers)


def _last_norm(module: nn.Module) -> nn.BatchNorm2d | None:
    return module.bn3 if isinstance(module, BLBottleneck) else None


class BigLittleModule(nn.Module):
    """Big branch at half resolution + little branch at full resolution, merged and fused."""

    def __init__(
        self, spec: BigLittleSpec, inplanes: int, planes: int, depth: int, stride: int
    ) -> None:
        super().__init__()
        groups = (spec.cardinality, spec.basewidth)
        little_planes = planes // spec.alpha
        self.big = make_stage(inplanes, planes, depth - 1, groups, stride=2, last_relu=False)
        self.little = make_stage(
            inplanes, little_planes, spec.little_depth(depth), spec.little_groups
        )
        self.little_e = nn.Sequential(
            nn.Conv2d(little_planes, planes, kernel_size=1, bias=False), nn.BatchNorm2d(planes)
        )
        self.fusion = make_stage(planes, planes, 1, groups, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        little = self.little_e(self.little(x))
        big = F.interpolate(self.big(x), size=little.shape[-2:], mode="nearest")
        return self.fusion(F.relu(big + little))


class BigLittleResNeXt(nn.Module):
    """The whole network: big-little stem, three big-little stages, one plain stage, classifier."""

    def __init__(self, spec: BigLittleSpec, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelConfigError(f"expected num_classes >= 1, got {num_classes}")
        self.spec = spec
        widths = spec.scaled_widths
        stem, little = widths[0], widths[0] // spec.alpha
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.b_conv0 = nn.Conv2d(stem, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn_b0 = nn.BatchNorm2d(stem)
        self.l_conv0 = nn.Conv2d(stem, little, kernel_size=3, padding=1, bias=False)
        self.bn_l0 = nn.BatchNorm2d(little)
        self.l_conv1 = nn.Conv2d(little, little, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn_l1 = nn.BatchNorm2d(little)
        self.l_conv2 = nn.Conv2d(little, stem, kernel_size=1, bias=False)
        self.bn_l2 = nn.BatchNorm2d(stem)
        self.bl_init = nn.Conv2d(stem, stem, kernel_size=1, bias=False)
        self.bn_bl_init = nn.BatchNorm2d(stem)
        inplanes = stem
        for index, stride in enumerate(FUSION_STRIDES):
            planes = widths[index] * EXPANSION
            module = BigLittleModule(spec, inplanes, planes, spec.depths[index], stride)
            self.add_module(f"layer{index + 1}", module)
            inplanes = planes
        planes = widths[3] * EXPANSION
        groups = (spec.cardinality, spec.basewidth)
        self.layer4 = make_stage(inplanes, planes, spec.depths[3], groups, stride=2)
        self.gappool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        initialise(self, _last_norm)  # every bottleneck starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        big = self.bn_b0(self.b_conv0(x))
        little = self.relu(self.bn_l0(self.l_conv0(x)))
        little = self.relu(self.bn_l1(self.l_conv1(little)))
        little = self.bn_l2(self.l_conv2(little))
        x = self.relu(big + little)
        x = self.relu(self.bn_bl_init(self.bl_init(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.gappool(x), 1))


def build_biglittle(spec: BigLittleSpec, num_classes: int) -> BigLittleResNeXt:
    """Build the network described by ``spec`` with a ``num_classes``-way classifier."""
    return BigLittleResNeXt(spec, num_classes)
