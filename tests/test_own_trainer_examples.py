"""The examples of ``examples/`` and the built-in trainer, end to end through every launcher.

Each example searches one dimension (the learning rate) with two ranks per
job: the local backend (torchrun), the LSF/jsrun, PBS/PALS and Flux doubles
of tests/fakes, and the real Slurm cluster. The built-in trainer runs through
the very same launch wrapper. These train real (tiny) networks: ``slow``.

The launch wrapper does not depend on the command it launches, so the pairs
cover rather than multiply (:data:`PAIRS`): every launcher runs the shell
example and one two-rank DDP example, and each DDP example runs under at
least two launchers (the segmented one under LSF/jsrun and Slurm, where
clusters requeue it).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from controller_support import experiment_text
from experiment_support import command_experiment
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.commands.main import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"
PY = sys.executable
#: example -> (command, [model] fixed, metric); the learning rate is searched.
EXAMPLES = {
    "ddp_plain": ([PY, f"{REPO}/examples/ddp_plain/train.py", "--lr={lr}", "--hidden=16",
                   "--epochs={epochs}"], {"epochs": 2}, "accuracy"),
    "ddp_trial": ([PY, f"{REPO}/examples/ddp_trial/train.py", "--segment-epochs=1"],
                  {"epochs": 2, "hidden": 16}, "accuracy"),
    "shell": ([f"{REPO}/examples/shell/score.sh", "{lr}", "6"], {}, "score"),
}  # fmt: skip
BACKENDS = ("local", "lsf", "pbs", "flux")
#: (example, backend) pairs run through the doubles and the local backend.
PAIRS = [("shell", backend) for backend in BACKENDS] + [
    ("ddp_plain", "local"),
    ("ddp_plain", "pbs"),
    ("ddp_plain", "flux"),
    ("ddp_trial", "lsf"),
]
#: Examples run on the real Slurm cluster.
ON_SLURM = ("ddp_trial", "shell")
#: What a backend needs beyond the common settings.
SITE = {"pbs": {"filesystems": "home"}}


def example_experiment(example: str, backend: str) -> str:
    command, fixed, metric = EXAMPLES[example]
    cluster = {"backend": backend, "nodes": 1, "ranks_per_node": 2, "cores_per_node": 2,
               "python": PY, "walltime_minutes": 10, "signal_seconds": 60,
               "max_concurrent_jobs": 2, **SITE.get(backend, {})}  # fmt: skip
    lr = {"type": "float", "low": 0.01, "high": 0.3, "log": True}
    return command_experiment(f"{example}-{backend}", command, {"lr": lr}, cluster=cluster,
                              fixed=fixed, metric=metric, max_points=2,
                              design="space-filling", design_points=2)  # fmt: skip


def search(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, name: str) -> dict:
    (tmp_path / "search.toml").write_text(text)
    assert main(["init", "search.toml"]) == 0, capsys.readouterr().err
    state = tmp_path / "state" / f"{name}.h5"
    main(["run", "--state", str(state), "--poll", "0.5"])
    capsys.readouterr()
    assert main(["status", "--state", str(state), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def check_example(example: str, document: dict, run: Path) -> None:
    points = document["points"]
    assert [p["status"] for p in points] == ["done", "done"], points
    for point in points:
        folder = run / "points" / str(point["id"])
        if example == "shell":
            expected = -((math.log10(point["params"]["lr"]) + 2) ** 2)
            assert point["value"] == pytest.approx(expected, abs=1e-9)
            continue
        assert 10.0 < point["value"] <= 100.0  # accuracy in percent, better than chance
        result = json.loads((folder / "result.json").read_text())
        assert result["world_size"] == 2
        if example == "ddp_trial":  # two segments of one epoch each, one curve point each
            assert sorted(p.name for p in (folder / "logs").iterdir())[-1].endswith("s1.log")
            curve = [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines()]
            assert [entry["epoch"] for entry in curve] == [1, 2]
            assert all("accuracy" in entry for entry in curve)


@pytest.fixture
def fakes_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("LSF", "PBS", "FLUX"):
        monkeypatch.setenv(f"FAKE_{name}_DIR", str(tmp_path / f"fake-{name.lower()}"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("example", "backend"), PAIRS)
def test_an_example_runs_through_a_launcher(
    tmp_path: Path, capsys: pytest.CaptureFixture, fakes_on_path: None, example: str, backend: str
) -> None:
    document = search(
        tmp_path, capsys, example_experiment(example, backend), f"{example}-{backend}"
    )
    check_example(example, document, tmp_path / "state" / f"{example}-{backend}")


@pytest.mark.slurm
@pytest.mark.parametrize("example", ON_SLURM)
def test_an_example_runs_on_slurm(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    example: str,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    document = search(tmp_path, capsys, example_experiment(example, "slurm"), f"{example}-slurm")
    check_example(example, document, tmp_path / "state" / f"{example}-slurm")


def test_the_pairs_run_every_example_and_every_launcher() -> None:
    assert {example for example, _ in PAIRS} == set(EXAMPLES)
    for backend in BACKENDS:
        assert {e for e, b in PAIRS if b == backend} & {"ddp_plain", "ddp_trial"}, backend
    for example in ("ddp_plain", "ddp_trial"):
        runs = [b for e, b in PAIRS if e == example] + (["slurm"] if example in ON_SLURM else [])
        assert len(runs) >= 2, example


def test_the_builtin_trainer_is_one_command_of_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    text = experiment_text(
        experiment={"name": "builtin", "max_points": 3, "design": "space-filling",
                    "design_points": 3, "batch_size": 1},
        cluster={"python": PY, "ranks_per_node": 2, "cores_per_node": 2},
        train={"epochs": 1, "batch_per_gpu": 16, "log_every": 1, "max_steps_per_epoch": 2},
        data={"kind": "digits", "resolution": 8, "workers": 0, "pin_memory": False},
    )  # fmt: skip
    document = search(tmp_path, capsys, text, "builtin")
    assert [p["status"] for p in document["points"]] == ["done"] * 3, document["points"]
    folder = tmp_path / "state" / "builtin" / "points" / "0"
    script = (folder / "job.sh").read_text()
    assert (
        f'-m nas.trial.launch --point-dir {folder} --workdir {tmp_path} --deadline "$deadline"'
        in script
    )
    assert f"-- {PY} -m nas.train" in script
    result = json.loads((folder / "result.json").read_text())
    assert result["rank"] == 0 and result["world_size"] == 2
    assert "command" not in json.loads((folder / "point.json").read_text())
