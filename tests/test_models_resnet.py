"""ResNetSpec against torchvision, the improved stem, and spec validation."""

from __future__ import annotations

import pytest
import torch
import torchvision

from nas.models import ModelConfigError
from nas.models.resnet import RESNET50, RESNEXT50_32X4D, ResNetSpec, build_resnet


@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        (ResNetSpec(), torchvision.models.resnet18),
        (RESNET50, torchvision.models.resnet50),
        (RESNEXT50_32X4D, torchvision.models.resnext50_32x4d),
    ],
    ids=["resnet18", "resnet50", "resnext50_32x4d"],
)
def test_default_specs_are_torchvision_models(spec: ResNetSpec, reference) -> None:
    torch.manual_seed(0)
    theirs = reference(num_classes=10).eval()
    ours = build_resnet(spec, num_classes=10).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("stem", ["conv7", "basic"])
@pytest.mark.parametrize("maxpool", [True, False])
def test_forward_backward_small_widths(stem: str, maxpool: bool) -> None:
    spec = ResNetSpec(stem=stem, maxpool=maxpool, stem_width=8, widths=(8, 12, 16, 20))
    model = build_resnet(spec, num_classes=7)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_basic_stem_is_a_strided_residual_block() -> None:
    model = build_resnet(ResNetSpec(stem="basic", stem_width=16, maxpool=False), 5)
    assert model.stem.conv1.stride == (2, 2) and model.stem.conv2.stride == (1, 1)
    assert model.stem.conv1.kernel_size == (3, 3)
    assert not hasattr(model, "conv1")
    features = model.maxpool(model.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape == (1, 16, 16, 16)


def test_phi_scales_stem_and_stage_widths() -> None:
    spec = ResNetSpec(block="bottleneck", depths=(1, 1, 1, 1), phi=0.5)
    assert spec.scaled_widths == (32, 64, 128, 256)
    model = build_resnet(spec, 3)
    assert model.conv1.out_channels == 32
    assert model.fc.in_features == 256 * 4


def test_zero_init_residual_zeroes_last_bn_of_blocks_only() -> None:
    model = build_resnet(ResNetSpec(block="bottleneck", depths=(1, 1, 1, 1)), 3)
    assert torch.count_nonzero(model.layer1[0].bn3.weight) == 0
    assert torch.all(model.layer1[0].bn1.weight == 1)
    assert torch.all(model.bn1.weight == 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block": "wide"}, r"unknown block 'wide'; expected one of \['basic', 'bottleneck'\]"),
        ({"stem": "conv5"}, r"unknown stem 'conv5'"),
        ({"depths": (2, 2, 2)}, r"expected as many depths as widths"),
        ({"depths": (2, 0, 2, 2)}, r"positive integers for depths"),
        ({"phi": 0.0}, r"expected phi > 0"),
        ({"groups": 32}, r"basic blocks support only groups=1"),
        (
            {"block": "bottleneck", "widths": (8, 8, 8, 8), "width_per_group": 4},
            r"stage 1: width 8 with width_per_group 4 leaves no channel per group",
        ),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        ResNetSpec(**kwargs)


def test_num_classes_must_be_positive() -> None:
    with pytest.raises(ModelConfigError, match="num_classes >= 1"):
        build_resnet(ResNetSpec(), 0)
