"""The closed-form cost walk equals a traced forward pass of the built network, over random specs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nas.models.footprint import estimate, walk_spec
from nas.models.specs import spec_for

torch = pytest.importorskip("torch")
from nas.models.cost import count_parameters, meta_model, trace  # noqa: E402

SEEDS = range(12)


def _resnet(rng: np.random.Generator) -> tuple[str, dict]:
    block = str(rng.choice(["basic", "bottleneck"]))
    params = {f"g{i}": int(rng.integers(2, 40)) for i in range(1, 5)}
    params |= {f"d{i}": int(rng.integers(1, 4)) for i in range(1, 5)}
    params |= {"c1": int(rng.integers(2, 40)), "stem": str(rng.choice(["conv7", "basic"]))}
    params |= {"maxpool": bool(rng.integers(2)), "phi": float(rng.choice([1.0, 0.75, 1.3]))}
    if block == "bottleneck" and rng.integers(2):
        params |= {"groups": int(rng.integers(1, 5)), "width_per_group": 64}
        return "resnext", params
    return "resnet", params | {"block": block}


def _biglittle(rng: np.random.Generator) -> tuple[str, dict]:
    params = {f"w{i}": int(rng.integers(16, 48)) for i in range(1, 5)}
    params |= {f"d{i}": int(rng.integers(2, 6)) for i in range(1, 5)}
    params |= {"alpha": int(rng.choice([1, 2, 4])), "beta": int(rng.choice([1, 2, 4]))}
    params |= {"cardinality": int(rng.choice([1, 2, 8])), "basewidth": int(rng.choice([32, 64]))}
    return "blresnext", params


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("draw", [_resnet, _biglittle])
def test_the_walk_counts_what_the_traced_network_holds(seed: int, draw) -> None:
    rng = np.random.default_rng(seed)
    family, params = draw(rng)
    resolution, batch, classes = int(rng.integers(9, 70)), int(rng.integers(1, 4)), 7
    spec = spec_for(family, params)
    model = meta_model(spec, classes)
    traced = trace(model, resolution, batch=batch)
    walk = walk_spec(spec, classes, resolution, batch)
    assert walk.parameters == count_parameters(model)
    assert walk.macs * batch == traced.macs
    assert sum(walk.saved.values()) == traced.saved_bytes
    assert max(walk.saved.values()) == traced.largest_saved_bytes


def test_the_published_sizes_come_out_of_the_walk() -> None:
    r18 = {"block": "basic", "c1": 64, "g1": 64, "g2": 128, "g3": 256, "g4": 512}
    r18 |= {f"d{i}": 2 for i in range(1, 5)}
    cost = estimate("resnet", r18, 1000, resolution=224, batch_per_gpu=1)
    assert cost.parameters == 11_689_512  # torchvision's resnet18
    assert round(cost.macs / 1e9, 2) == 1.81  # its documented GFLOPS (MACs)


def test_the_cost_model_imports_no_torch() -> None:
    code = (
        "import sys, json; from nas.models.footprint import estimate; "
        "p = dict(block='basic', c1=8, g1=8, g2=8, g3=8, g4=8, d1=1, d2=1, d3=1, d4=1); "
        "c = estimate('resnet', p, 10, resolution=32, batch_per_gpu=2); "
        "print(json.dumps(['torch' in sys.modules, c.parameters]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)[0] is False and json.loads(done.stdout)[1] > 0
