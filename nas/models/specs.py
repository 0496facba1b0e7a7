"""The built-in families' specs, from a flat parameter dict, without torch.

A spec is the frozen description of one network (stage widths, depths,
blocks, branch ratios) that both the network builders (:mod:`nas.models.resnet`,
:mod:`nas.models.biglittle`) and the analytic cost model
(:mod:`nas.models.footprint`) read, so a login node can validate a candidate
and count its costs with the very rules the trainer builds it by.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.models import ModelConfigError
from nas.models.coordinates import MAX_WIDTH, coerce_params, width_names

#: Output channels per stage width of each residual block kind (torchvision's ``expansion``).
BLOCK_EXPANSION: dict[str, int] = {"basic": 1, "bottleneck": 4}
#: ``conv7``: torchvision's 7x7 stride-2 convolution; ``basic``: a residual
#: BasicBlock of two 3x3 convolutions whose first one has stride 2.
STEMS = ("conv7", "basic")
#: Output channels of a Big-Little bottleneck are ``EXPANSION`` times the stage width.
EXPANSION = 4
#: Strides of the fusion blocks of the three big-little stages.
FUSION_STRIDES = (2, 2, 1)


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
        if self.block not in BLOCK_EXPANSION:
            raise ModelConfigError(
                f"unknown block {self.block!r}; expected one of {sorted(BLOCK_EXPANSION)}"
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


def group_width(planes: int, basewidth: int) -> int:
    """Channels per group of a bottleneck with ``planes`` output channels.

    The release's rule ``floor(planes * basewidth / 64) // 4``: for a stage
    width w (``planes = 4 w``) this is ResNeXt's ``w * basewidth / 64``.
    """
    return math.floor(planes * basewidth / 64) // EXPANSION


@dataclass(frozen=True)
class BigLittleSpec:
    """One member of the Big-Little ResNeXt family.

    Attributes:
        depths: blocks per stage; stages 1-3 are big-little modules (depth
            at least 2: the big branch has ``depth - 1`` blocks), stage 4 is
            plain.
        widths: stage base widths; stage ``i`` outputs ``4 * widths[i]``
            channels and the stem outputs ``widths[0]``.
        alpha: the little branch is ``alpha`` times narrower.
        beta: the little branch has ``max(1, depth // beta - 1)`` blocks.
        cardinality: groups of each 3x3 convolution (the little branch uses
            ``cardinality // alpha`` groups of the same width).
        basewidth: channels per group for a stage width of 64.
        phi: global multiplier applied to ``widths``.
    """

    depths: tuple[int, int, int, int] = (3, 4, 6, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    alpha: int = 2
    beta: int = 4
    cardinality: int = 32
    basewidth: int = 4
    phi: float = 1.0

    def __post_init__(self) -> None:
        for name in ("depths", "widths"):
            values = getattr(self, name)
            if len(values) != 4 or any(_bad_int(v) for v in values):
                raise ModelConfigError(f"expected four positive integers for {name}, got {values}")
        for name in ("alpha", "beta", "cardinality", "basewidth"):
            if _bad_int(getattr(self, name)):
                raise ModelConfigError(
                    f"expected a positive integer for {name}, got {getattr(self, name)!r}"
                )
        if not self.phi > 0:
            raise ModelConfigError(f"expected phi > 0, got {self.phi}")
        for stage, depth in enumerate(self.depths[:3], start=1):
            if depth < 2:
                raise ModelConfigError(
                    f"stage {stage}: a big-little module needs depth >= 2, got {depth}"
                )
        self._check_group_widths()

    def _check_group_widths(self) -> None:
        for stage, width in enumerate(self.scaled_widths, start=1):
            planes = width * EXPANSION
            branches = [("big", planes, self.basewidth)]
            if stage <= 3:
                branches.append(("little", planes // self.alpha, self.little_groups[1]))
            for branch, branch_planes, basewidth in branches:
                if group_width(branch_planes, basewidth) < 1:
                    raise ModelConfigError(
                        f"stage {stage} {branch} branch: {branch_planes} channels with basewidth "
                        f"{basewidth} leave no channel per group; widen the stage or raise basewidth"
                    )
        if self.scaled_widths[0] // self.alpha < 1:
            raise ModelConfigError(
                f"stem width {self.scaled_widths[0]} is narrower than alpha={self.alpha}"
            )

    @property
    def scaled_widths(self) -> tuple[int, ...]:
        """Stage base widths after the multiplier ``phi``."""
        return tuple(scale_width(w, self.phi) for w in self.widths)

    @property
    def little_groups(self) -> tuple[int, int]:
        """(cardinality, basewidth) of the little branch: same group width, 1/alpha the groups."""
        if self.cardinality < self.alpha:
            return self.cardinality, self.basewidth
        return self.cardinality // self.alpha, self.basewidth * self.alpha

    def little_depth(self, depth: int) -> int:
        """Blocks of the little branch of a big-little module of ``depth``."""
        return max(1, depth // self.beta - 1)

    def describe(self) -> str:
        """One line for people: cardinality, branch ratios, depths and widths."""
        return (
            f"bL-ResNeXt {self.cardinality}x{self.basewidth}d alpha={self.alpha} "
            f"beta={self.beta}, depths {'-'.join(map(str, self.depths))}, "
            f"widths {'-'.join(map(str, self.scaled_widths))} (x{EXPANSION})"
        )


def _bad_int(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or value < 1


#: torchvision's ``resnet50``.
RESNET50 = ResNetSpec(block="bottleneck", depths=(3, 4, 6, 3))
#: torchvision's ``resnext50_32x4d``.
RESNEXT50_32X4D = ResNetSpec(block="bottleneck", depths=(3, 4, 6, 3), groups=32, width_per_group=4)


ModelSpec = ResNetSpec | BigLittleSpec


def _resnet_spec(p: Mapping[str, Any]) -> ResNetSpec:
    return ResNetSpec(
        block=p.get("block", "bottleneck"),
        depths=tuple(p[f"d{i}"] for i in range(1, 5)),
        widths=tuple(p[f"g{i}"] for i in range(1, 5)),
        stem=p["stem"],
        stem_width=p["c1"],
        maxpool=p["maxpool"],
        groups=p.get("groups", 1),
        width_per_group=p.get("width_per_group", 64),
        phi=p["phi"],
    )


def _biglittle_spec(p: Mapping[str, Any]) -> BigLittleSpec:
    return BigLittleSpec(
        depths=tuple(p[f"d{i}"] for i in range(1, 5)),
        widths=tuple(p[f"w{i}"] for i in range(1, 5)),
        alpha=p["alpha"],
        beta=p["beta"],
        cardinality=p["cardinality"],
        basewidth=p["basewidth"],
        phi=p["phi"],
    )


#: Each family's spec builder; its coordinates are :data:`~nas.models.coordinates.COORDINATES`.
SPEC_BUILDERS: dict[str, Callable[[Mapping[str, Any]], ModelSpec]] = {
    "resnet": _resnet_spec,
    "resnext": _resnet_spec,
    "blresnext": _biglittle_spec,
}


def spec_for(family: str, params: Mapping[str, object]) -> ModelSpec:
    """Validate ``params`` against ``family`` and return its frozen spec.

    Raises:
        ModelConfigError: unknown family, unknown or missing coordinate, a value
            of the wrong kind, or a combination the family cannot build.
    """
    values = coerce_params(family, params)
    check_scaled_widths(family, values)
    try:
        return SPEC_BUILDERS[family](values)
    except ModelConfigError as exc:
        raise ModelConfigError(f"family {family!r}: {exc}") from None


def check_scaled_widths(family: str, values: Mapping[str, Any]) -> None:
    """Hold every width after the multiplier ``phi`` to :data:`MAX_WIDTH`.

    The coordinate's own bound holds the value given, but a network gets the
    scaled one: ``phi = 5000`` made a 32-channel stage 160,000 channels, which
    ``splinenas cost`` priced and the trainer tried to allocate. Both build
    their spec here, so both refuse it alike.

    Raises:
        ModelConfigError: the first width past the bound, naming the coordinate,
            ``phi`` and the width it would give.
    """
    phi = values.get("phi", 1.0)
    for name in width_names(family):
        scaled = values[name] * phi
        if not math.isfinite(scaled) or scale_width(values[name], phi) > MAX_WIDTH:
            raise ModelConfigError(
                f"family {family!r}: coordinate {name!r} = {values[name]} times phi = {phi:g} "
                f"gives {scaled:.0f} channels, more than MAX_WIDTH = {MAX_WIDTH}"
            )
