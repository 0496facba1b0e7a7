"""A login node's controller-only install (no torch): every command but training works.

Each command runs in a fresh interpreter whose ``torch`` and ``torchvision``
cannot be imported (stand-in packages on PYTHONPATH raise the error an
absent package raises), as after ``pip install splinenas`` without extras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from controller_support import experiment_text, write_fake_trainer

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "raise ModuleNotFoundError(\"No module named '{0}'\", name='{0}')\n"


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which ``import torch`` fails as if torch were not installed."""
    shim = tmp_path_factory.mktemp("no-torch")
    for name in ("torch", "torchvision"):
        (shim / name).mkdir()
        (shim / name / "__init__.py").write_text(ABSENT.format(name))
    return {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{ROOT}"}


def splinenas(env: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas", *argv], cwd=cwd, env=env, capture_output=True, text=True
    )


def run_steps(env: dict[str, str], cwd: Path, steps: list[tuple[str, ...]], state: Path) -> dict:
    """Run each command without torch (each must succeed and never mention it); ``status --json``."""
    for argv in steps:
        done = splinenas(env, cwd, *argv)
        assert done.returncode == 0, f"{argv[0]}: {done.stderr}"
        assert "torch" not in done.stderr, done.stderr
    return json.loads(splinenas(env, cwd, "status", "--state", str(state), "--json").stdout)


def test_the_shim_really_hides_torch(no_torch: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import torch"], env=no_torch, capture_output=True, text=True
    )
    assert done.returncode == 1 and "No module named 'torch'" in done.stderr


def test_a_whole_campaign_is_run_and_read_without_torch(
    no_torch: dict[str, str], tmp_path: Path
) -> None:
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    text = experiment_text(cluster={"python": str(fake)}, experiment={"max_points": 9})
    (tmp_path / "ctl.toml").write_text(text)
    state = tmp_path / "state" / "ctl.h5"
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("g1,g2,top1\n5,5,70.5\n15,15,88.25\n")
    steps = [
        ("init", str(tmp_path / "ctl.toml"), "--state", str(state)),
        ("import", "--state", str(state), str(earlier)),
        ("run", "--state", str(state), "--dry-run", "--out", str(tmp_path / "scripts")),
        ("run", "--state", str(state), "--poll", "0.1"),
        ("status", "--state", str(state)),
        ("status", "--state", str(state), "--json"),
        ("show", "--state", str(state), "0"),
        ("export", "--state", str(state), "--csv"),
        ("predict", "--state", str(state), "--params", "g1=8,g2=8"),
        ("report", "--state", str(state), "--out", str(tmp_path / "report")),
        ("plot", "--state", str(state), "--out", str(tmp_path / "plots")),
    ]
    status = run_steps(no_torch, tmp_path, steps, state)
    assert len(status["points"]) >= 7 and status["controller"]["running"] is False
    assert (tmp_path / "report" / "index.html").stat().st_size > 10_000
    assert list((tmp_path / "plots").glob("*.png"))


def test_costs_constraints_and_a_tradeoff_are_run_and_read_without_torch(
    no_torch: dict[str, str], tmp_path: Path
) -> None:
    """Known costs come from the closed-form cost model: controller and readers never need torch."""
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    text = experiment_text(
        cluster={"python": str(fake)},
        experiment={"max_points": 10, "tradeoff": "gmacs"},
    )
    text += "\n[experiment.constraints]\ngmacs = 0.00035\n"  # the g1 = 16 edge is dearer
    (tmp_path / "ctl.toml").write_text(text)
    state = tmp_path / "state" / "ctl.h5"
    steps = [
        ("init", str(tmp_path / "ctl.toml"), "--state", str(state)),
        ("run", "--state", str(state), "--poll", "0.1"),
        ("status", "--state", str(state)),
        ("show", "--state", str(state), "0"),
        ("front", "--state", str(state)),
        ("best", "--state", str(state), "--where", "params_m<=0.02"),
        ("report", "--state", str(state), "--out", str(tmp_path / "report")),
        ("plot", "--state", str(state), "--out", str(tmp_path / "plots")),
        ("cost", str(tmp_path / "ctl.toml"), "--params", "g1=8,g2=8"),
    ]
    status = run_steps(no_torch, tmp_path, steps, state)
    assert any(p["status"] == "done" for p in status["points"])
    front = json.loads(
        splinenas(no_torch, tmp_path, "front", "--state", str(state), "--json").stdout
    )
    costs = {}
    for point in front["measured"]:
        params = ",".join(f"{k}={v}" for k, v in point["params"].items())
        done = splinenas(no_torch, tmp_path, "cost", str(tmp_path / "ctl.toml"), "--params",
                         params, "--json")  # fmt: skip
        costs[point["id"]] = json.loads(done.stdout)["macs"] / 1e9
    assert front["measured"] and all(p["cost"] == costs[p["id"]] for p in front["measured"])
