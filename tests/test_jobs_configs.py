"""The experiment files in jobs/ and the environment files in envs/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nas.cluster.render import render_job_script
from nas.commands.main import main
from nas.config import load_experiment
from nas.models.registry import spec_for

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "jobs").glob("*.toml"))
ENVS = sorted((ROOT / "envs").glob("*.sh"))


def test_the_paper_experiments_and_the_demo_are_there():
    names = {path.stem for path in CONFIGS}
    assert {
        "demo-digits",
        "resnet18-imagenet22k",
        "resnet18-imagenet22k-slurm",
        "blresnext50-3d-imagenet22k",
        "blresnext-8d-imagenet1k",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_every_initial_point_builds_a_spec(path):
    experiment = load_experiment(path)
    experiment.require_run_sections()
    assert experiment.experiment.name == path.stem
    design = experiment.space.initial_design()
    assert len(design) == 2 * experiment.space.d + 3
    for params in design:
        spec_for(experiment.model.family, {**experiment.model.fixed, **params})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_init_validate_only_finds_only_the_placeholders_to_edit(path, capsys, monkeypatch):
    """Valid files whose data paths are placeholders for the site: validate-only says so."""
    monkeypatch.chdir(ROOT)  # where their env_file paths are taken from
    placeholders = path.stem != "demo-digits"  # the demo's digits ship with scikit-learn
    assert main(["init", "--validate-only", "--json", str(path)]) == int(placeholders)
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is not placeholders
    assert len(document["problems"]) == (2 if placeholders else 0)
    for problem, key in zip(
        document["problems"], ("root", "index")[: len(document["problems"])], strict=True
    ):
        assert problem.startswith(f"{path}: [data] {key}: ") and "does not exist" in problem


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_rendered_job_script_passes_bash_n(path, tmp_path):
    experiment = load_experiment(path)
    script = render_job_script(
        experiment.cluster.backend,
        cluster=experiment.cluster,
        point_dir=str(tmp_path / "points" / "0 a'b"),
        job_name=f"{experiment.experiment.name}-0",
        stdout_path="segment-0.log",
    )
    target = tmp_path / "job.sh"
    target.write_text(script)
    subprocess.run(["bash", "-n", str(target)], check=True, capture_output=True, timeout=30)


def test_paper_values_of_the_summit_experiments():
    for stem in ("resnet18-imagenet22k", "blresnext50-3d-imagenet22k"):
        experiment = load_experiment(ROOT / "jobs" / f"{stem}.toml")
        cluster, train = experiment.cluster, experiment.train
        assert (cluster.backend, cluster.nodes, cluster.gpus_per_node) == ("lsf", 34, 6)
        assert cluster.nodes * cluster.gpus_per_node * train.batch_per_gpu == 6528
        assert (train.epochs, train.lr, train.momentum, train.weight_decay) == (60, 0.1, 0.9, 1e-4)
        assert experiment.model.num_classes == 21841
        assert cluster.max_gpu_memory_gib == 16
    eight = load_experiment(ROOT / "jobs" / "blresnext-8d-imagenet1k.toml")
    assert (eight.train.epochs, eight.model.num_classes, eight.space.d) == (90, 1000, 8)


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_file_passes_bash_n(path):
    subprocess.run(["bash", "-n", str(path)], check=True, capture_output=True, timeout=30)


# Doubles of Lmod's `module` and conda's `conda` that log their calls.
DOUBLES = """
module() { echo "module $*" >> "$CALLS"; [[ $2 != missing ]]; }
conda() { echo "conda $*" >> "$CALLS"; }
"""


def source_twice(path: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Source ``path`` twice under the job scripts' strict options, then print the result."""
    script = f"""set -euo pipefail
{DOUBLES}
source {path}
source {path}
echo "options=$-"
echo "OMP_NUM_THREADS=${{OMP_NUM_THREADS-unset}}"
echo "PYTHONUNBUFFERED=$PYTHONUNBUFFERED"
"""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CALLS": str(tmp_path / "calls"),
        **env,
    }
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=environment, timeout=30
    )


@pytest.mark.parametrize("name", ["summit.sh", "slurm.sh"])
def test_cluster_env_is_safe_to_source_twice_under_strict_options(name, tmp_path):
    done = source_twice(
        ROOT / "envs" / name,
        tmp_path,
        SPLINENAS_CONDA_ENV="nas env",
        SPLINENAS_MODULES="cuda/12.4",
        SLURM_CPUS_PER_TASK="8",
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert "e" in lines["options"] and "u" in lines["options"]  # caller's options restored
    assert lines["OMP_NUM_THREADS"] == "1" and lines["PYTHONUNBUFFERED"] == "1"
    calls = (tmp_path / "calls").read_text().splitlines()
    module = "module load open-ce" if name == "summit.sh" else "module load cuda/12.4"
    assert calls == [module, "conda activate nas env"] * 2


@pytest.mark.parametrize("name", ["polaris.sh", "flux.sh"])
def test_pbs_and_flux_envs_load_the_site_modules_once_per_sourcing_and_stop_on_failure(
    name, tmp_path
):
    done = source_twice(
        ROOT / "envs" / name,
        tmp_path,
        SPLINENAS_MODULES="site/1 torch/2",
        SPLINENAS_MODULE_PATHS="",
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert "e" in lines["options"] and "u" in lines["options"]  # caller's options restored
    assert lines["OMP_NUM_THREADS"] == "1" and lines["PYTHONUNBUFFERED"] == "1"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["module load site/1", "module load torch/2"] * 2
    failed = source_twice(ROOT / "envs" / name, tmp_path, SPLINENAS_MODULES="missing")
    assert failed.returncode != 0 and "'module load missing' failed" in failed.stderr


def test_slurm_env_hands_cpus_per_task_to_srun(tmp_path):
    script = f"set -euo pipefail\nsource {ROOT / 'envs' / 'slurm.sh'}\necho $SRUN_CPUS_PER_TASK"
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "SLURM_CPUS_PER_TASK": "7"},
        timeout=30,
    )
    assert done.stdout.strip() == "7", done.stderr


def test_failing_module_load_stops_the_job(tmp_path):
    done = source_twice(ROOT / "envs" / "summit.sh", tmp_path, SPLINENAS_OPENCE_MODULE="missing")
    assert done.returncode != 0
    assert "'module load missing' failed" in done.stderr
    assert "options=" not in done.stdout


def test_local_env_activates_the_repository_venv_once(tmp_path):
    copy = tmp_path / "repo"
    (copy / "envs").mkdir(parents=True)
    (copy / "envs" / "local.sh").write_text((ROOT / "envs" / "local.sh").read_text())
    activate = copy / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(
        'echo activated >> "$CALLS"\nexport VIRTUAL_ENV="$(dirname "$(dirname "${BASH_SOURCE[0]}")")"\n'
    )
    done = source_twice(copy / "envs" / "local.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    # Activated on each sourcing (activate itself is idempotent), never a foreign venv.
    assert (tmp_path / "calls").read_text().splitlines() == ["activated", "activated"]
    foreign = source_twice(copy / "envs" / "local.sh", tmp_path / "x", VIRTUAL_ENV="/elsewhere")
    assert foreign.returncode == 0 and not (tmp_path / "x" / "calls").exists()


V100_CONFIGS = [path for path in CONFIGS if 'V100-SXM2 "16 GB"' in path.read_text()]


@pytest.mark.parametrize("path", V100_CONFIGS, ids=lambda p: p.stem)
def test_v100_configs_admit_the_points_the_paper_measured(path):
    """The points named in the config's comments, and for small boxes every corner, fit."""
    import itertools

    from nas.config import parse_params
    from nas.control.prepare import feasibility

    experiment = load_experiment(path)
    assert experiment.cluster.max_gpu_memory_gib == 16
    fits = feasibility(experiment)
    marked = [
        parse_params(line.split(":", 1)[1])
        for line in path.read_text().splitlines()
        if line.startswith("# paper point:")
    ]
    assert marked, "name the paper's points in a '# paper point: k=v,...' comment"
    corners = []
    if experiment.space.d <= 5:
        dims = experiment.space.dims
        for corner in itertools.product(*[(d.low, d.high) for d in dims]):
            corners.append(
                {
                    d.name: int(v) if d.type == "int" else v
                    for d, v in zip(dims, corner, strict=True)
                }
            )
    for params in marked + corners:
        assert fits(params), f"{path.name}: {params} is estimated not to fit"
