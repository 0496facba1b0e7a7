"""Big-Little ResNeXt: the release's MAC anchors, branch structure, training step, validation."""

from __future__ import annotations

import pytest
import torch

from nas.models import ModelConfigError
from nas.models.biglittle import BigLittleSpec, BLBottleneck, build_biglittle
from nas.models.cost import count_macs

#: (spec, GMACs at 224 px from the authors' release README, ImageNet-1K).
ANCHORS = [
    (BigLittleSpec(), 3.03),
    (BigLittleSpec(depths=(4, 8, 18, 3)), 4.08),
    (BigLittleSpec(cardinality=1, basewidth=64), 2.85),  # bL-ResNet-50
]


@pytest.mark.parametrize(
    ("spec", "gmacs"), ANCHORS, ids=["blresnext50", "blresnext101", "blresnet50"]
)
def test_macs_reproduce_the_release(spec: BigLittleSpec, gmacs: float) -> None:
    assert round(count_macs(spec, 224, classifier=False) / 1e9, 2) == gmacs


def test_classifier_macs_are_its_weights() -> None:
    spec = BigLittleSpec()
    difference = count_macs(spec, 224, num_classes=21841) - count_macs(spec, 224, classifier=False)
    assert difference == 2048 * 21841


TINY = {"widths": (8, 8, 8, 8), "cardinality": 4, "basewidth": 16}


def _blocks(stage: torch.nn.Sequential) -> int:
    return sum(isinstance(m, BLBottleneck) for m in stage)


@pytest.mark.parametrize(("beta", "little"), [(1, 5), (2, 2), (3, 1), (4, 1), (8, 1)])
def test_beta_sets_little_branch_depth(beta: int, little: int) -> None:
    model = build_biglittle(BigLittleSpec(depths=(2, 2, 6, 1), beta=beta, **TINY), 3)
    assert _blocks(model.layer3.little) == little
    assert _blocks(model.layer3.big) == 5


def test_branch_widths_and_groups() -> None:
    model = build_biglittle(BigLittleSpec(), 10)
    big, little = model.layer1.big[0], model.layer1.little[0]
    assert big.conv3.out_channels == 256 and big.conv2.groups == 32
    assert big.conv2.in_channels == 32 * 4
    assert little.conv3.out_channels == 128 and little.conv2.groups == 16
    assert little.conv2.in_channels == 16 * 4  # same group width as the big branch
    assert model.layer1.little_e[0].out_channels == 256
    assert not model.layer1.big[-1].last_relu and model.layer1.little[-1].last_relu


def test_resnet_d_shortcuts() -> None:
    model = build_biglittle(BigLittleSpec(**TINY), 3)
    pooled = model.layer1.big[0].downsample
    assert isinstance(pooled[0], torch.nn.AvgPool2d) and pooled[1].stride == (1, 1)
    assert model.layer3.fusion[0].downsample is None  # stride 1, same width


def test_initialisation() -> None:
    model = build_biglittle(BigLittleSpec(depths=(2, 2, 2, 1), **TINY), 3)
    bottlenecks = [m for m in model.modules() if isinstance(m, BLBottleneck)]
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in bottlenecks)
    assert torch.all(model.bn1.weight == 1)
    assert model.conv1.weight.std() > 0


@pytest.mark.parametrize(
    ("depths", "alpha", "beta"),
    [((2, 2, 2, 2), 2, 4), ((10, 10, 18, 5), 2, 4), ((2, 3, 5, 1), 1, 2), ((3, 4, 6, 3), 4, 4)],
)
def test_forward_backward_corners(depths: tuple, alpha: int, beta: int) -> None:
    spec = BigLittleSpec(depths=depths, alpha=alpha, beta=beta, **TINY)
    model = build_biglittle(spec, 5)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depths": (3, 4, 6)}, r"four positive integers for depths"),
        ({"widths": (64, 0, 256, 512)}, r"four positive integers for widths"),
        ({"alpha": 0}, r"positive integer for alpha"),
        ({"beta": 1.5}, r"positive integer for beta"),
        ({"phi": -1.0}, r"phi > 0"),
        ({"depths": (3, 1, 6, 3)}, r"stage 2: a big-little module needs depth >= 2"),
        ({"widths": (16, 128, 256, 512), "alpha": 3}, r"stage 1 little branch: 21 channels"),
        ({"widths": (4, 128, 256, 512)}, r"stage 1 big branch: 16 channels"),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        BigLittleSpec(**kwargs)
