"""`run --dry-run` on an `init --offline` state: the job scripts can be reviewed before the data exist."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from controller_support import experiment_text
from experiment_support import run

CLUSTER = {
    "backend": "slurm",
    "account": "proj",
    "env_file": "/gpfs/site/env.sh",
    "python": "/gpfs/venv/bin/python",
    "ranks_per_node": 1,
    "cores_per_node": 1,
}
DATA = {"kind": "imagefolder", "root": "/gpfs/data/imagenet", "resolution": 16, "workers": 0}


@pytest.fixture
def offline_state(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.chdir(tmp_path)
    text = experiment_text(cluster=CLUSTER, data=DATA, model={"num_classes": 10})
    (tmp_path / "cl.toml").write_text(text)
    code, out, err = run(capsys, "init", "cl.toml", "--offline", "--state", "state/cl.h5")
    assert code == 0, err
    return tmp_path / out.strip()


def test_the_dry_run_writes_the_scripts_and_names_the_unchecked_paths(
    offline_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "scripts"
    code, _, err = run(capsys, "run", "--state", str(offline_state), "--dry-run", "--out", str(out))
    assert code == 0, err
    scripts = sorted(out.glob("*.sh"))
    assert scripts, "the first batch's scripts are written"
    text = scripts[0].read_text()
    assert "#SBATCH --account=proj" in text and "/gpfs/site/env.sh" in text
    assert "/gpfs/venv/bin/python" in text
    assert subprocess.run(["bash", "-n", str(scripts[0])]).returncode == 0
    unchecked = [line for line in err.splitlines() if line.startswith("unchecked: ")]
    assert len(unchecked) == 3  # env_file, data root, python
    assert all("`run` here would refuse it" in line for line in unchecked)
    assert any("[data] root" in line for line in unchecked)


def test_the_json_plan_lists_the_unchecked_paths(
    offline_state: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "run", "--state", str(offline_state), "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["submit"] and len(plan["unchecked"]) == 3
    assert any("[cluster] env_file" in problem for problem in plan["unchecked"])


def test_the_real_run_still_refuses_the_missing_paths(
    offline_state: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "run", "--state", str(offline_state), "--once")
    assert code == 1 and "[cluster] env_file" in err
