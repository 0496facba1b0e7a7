"""Registry coordinates, meta-device cost estimates, measured memory and the cost command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.commands.main import main
from nas.models import ModelConfigError
from nas.models.cost import count_macs, count_parameters, meta_model, trace
from nas.models.footprint import Cost, estimate, fits
from nas.models.registry import build_model, coordinate_names, spec_for
from nas.models.resnet import ResNetSpec

JOBS = Path(__file__).resolve().parents[1] / "jobs"
R18 = {"block": "basic", "c1": 64, "g1": 64, "g2": 128, "g3": 256, "g4": 512}
R18 |= {"d1": 2, "d2": 2, "d3": 2, "d4": 2}
BL = {"w1": 64, "w2": 128, "w3": 256, "w4": 512, "d1": 3, "d2": 4, "d3": 6, "d4": 3}
BL |= {"alpha": 2, "beta": 4, "cardinality": 32, "basewidth": 4}
BL_CORNER = BL | {"w1": 128, "w2": 256, "w3": 512, "w4": 768, "d1": 10, "d2": 10, "d3": 18}
BL_CORNER |= {"d4": 5}


def test_registry_maps_coordinates_onto_specs() -> None:
    spec = spec_for("resnet", {**R18, "maxpool": "false", "g1": 64.0})
    assert spec == ResNetSpec(maxpool=False)
    plain = {k: v for k, v in R18.items() if k != "block"}
    resnext = spec_for("resnext", {**plain, "groups": 32, "width_per_group": 4})
    assert resnext.block == "bottleneck" and resnext.groups == 32
    assert "alpha" in coordinate_names("blresnext") and "phi" in coordinate_names("resnet")


@pytest.mark.parametrize(
    ("family", "params", "message"),
    [
        ("vgg", {}, r"unknown model family 'vgg'; expected one of \['blresnext', 'resnet'"),
        ("resnet", {**R18, "g5": 3}, r"unknown coordinate\(s\) \['g5'\]; valid names are \["),
        (
            "resnet",
            {k: v for k, v in R18.items() if k != "d3"},
            r"missing coordinate\(s\) \['d3'\]",
        ),
        ("resnet", {**R18, "c1": 64.5}, r"coordinate 'c1' must be an int, got 64.5"),
        ("resnet", {**R18, "stem": "conv5"}, r"'stem' must be one of \['conv7', 'basic'\]"),
        ("blresnext", {**BL, "d2": 1}, r"family 'blresnext': stage 2: a big-little module"),
    ],
)
def test_registry_errors_name_the_offender(family: str, params: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        build_model(family, params, 10)


def test_block_is_not_a_resnext_coordinate() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown coordinate\(s\) \['block'\]"):
        spec_for("resnext", {**R18, "groups": 32, "width_per_group": 4})


def test_meta_counts_equal_real_module_counts() -> None:
    model = build_model("resnet", {**R18, "g4": 40, "g3": 30, "g2": 20, "g1": 10}, 10)
    spec = spec_for("resnet", {**R18, "g4": 40, "g3": 30, "g2": 20, "g1": 10})
    assert count_macs(model, 32) == count_macs(spec, 32, num_classes=10)
    cost = estimate("resnet", {**R18, "g4": 40, "g3": 30, "g2": 20, "g1": 10}, 10,
                    resolution=32, batch_per_gpu=2)  # fmt: skip
    assert cost.parameters == count_parameters(model)


def test_resnet18_macs_match_the_published_count() -> None:
    assert round(count_macs(ResNetSpec(), 224) / 1e9, 2) == 1.81  # torchvision's documented GFLOPS


def test_macs_agree_with_torch_flop_counter() -> None:
    model = build_model("blresnext", BL | {"w4": 96, "d3": 3}, 10)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(2, 3, 64, 64))
    assert 2 * count_macs(model, 64) == counter.get_total_flops() // 2


def test_memory_scales_with_batch_and_amp_halves_activations() -> None:
    small = estimate("blresnext", BL, 1000, resolution=64, batch_per_gpu=4)
    large = estimate("blresnext", BL, 1000, resolution=64, batch_per_gpu=8)
    amp = estimate("blresnext", BL, 1000, resolution=64, batch_per_gpu=8, amp=True)
    assert large.state_bytes == small.state_bytes == 16 * small.parameters
    assert large.activation_bytes == pytest.approx(2 * small.activation_bytes, rel=1e-3)
    assert amp.activation_bytes == pytest.approx(large.activation_bytes / 2, rel=1e-6)
    assert large.macs == small.macs


def test_largest_corner_is_judged_against_the_limit() -> None:
    cost = estimate("blresnext", BL_CORNER, 21841, resolution=224, batch_per_gpu=32)
    assert cost.parameters > 2e8 and cost.macs > 1.7e10
    assert fits(cost, None) and fits(cost, cost.memory_bytes / 2**30)
    assert not fits(cost, cost.memory_bytes / 2**30 - 0.001)
    assert fits(cost, cost.memory_bytes / 2**30 / 0.9 + 0.001, 0.9)
    assert not fits(cost, cost.memory_bytes / 2**30, 0.9)


def test_meta_trace_saves_what_a_real_forward_saves() -> None:
    params = {**R18, "g1": 16, "g2": 32, "g3": 64, "g4": 128, "c1": 16}
    torch.manual_seed(0)
    model = build_model("resnet", params, 10)
    real = trace(model, 32, batch=4)
    meta = trace(meta_model(spec_for("resnet", params), 10), 32, batch=4)
    assert meta.macs == real.macs
    assert meta.largest_saved_bytes == real.largest_saved_bytes
    # Real BatchNorm also saves a few per-channel statistics, independent of batch and size.
    channels = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert 0 < real.saved_bytes - meta.saved_bytes <= 4 * 4 * channels


def _experiment(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(JOBS / name, target)
    return target


def test_cost_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _experiment(tmp_path, "blresnext-8d-imagenet1k.toml")
    params = ",".join(f"{k}={BL[k]}" for k in ("w1", "w2", "w3", "w4", "d1", "d2", "d3", "d4"))
    assert main(["cost", str(path), "--params", params, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["family"] == "blresnext" and doc["num_classes"] == 1000
    assert round(doc["macs"] / 1e9, 2) == 3.03 and doc["fits"] is True
    assert doc["max_gpu_memory_gib"] == 16 and doc["params"]["cardinality"] == 32
    assert doc["usable_bytes"] == int(16 * 0.9 * 2**30)
    assert (
        doc["memory_bytes"] == Cost(**{k: doc[k] for k in Cost.__dataclass_fields__}).memory_bytes
    )


def test_cost_command_text_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _experiment(tmp_path, "resnet18-imagenet22k.toml")
    corner = "c1=150,g1=300,g2=600,g3=1200,g4=2400"
    assert main(["cost", str(path), "--params", corner]) == 0
    out = capsys.readouterr().out  # the paper's best point: 15.17 GiB, on a 16 GiB V100
    assert "memory/GPU  15.17 GiB at batch 32" in out
    assert "fits 15.20 GiB per GPU (0.95 of 16 GiB)" in out
    assert main(["cost", str(path), "--params", "c1=64,g9=1"]) == 2
    assert "unknown coordinate(s) ['g9']" in capsys.readouterr().err
    assert main(["cost", str(path), "--params", "c1"]) == 2
    assert "--params: expected k=v" in capsys.readouterr().err


def test_digits_need_no_num_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["cost", str(JOBS / "demo-digits.toml"), "--params", "g1=8,g2=16,d1=1", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["num_classes"] == 10
