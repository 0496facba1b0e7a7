"""``init`` and ``--validate-only`` refuse what ``run`` refuses, naming file, table and key.

Each bad experiment below is a small edit of a valid local search. Every one
is refused by ``splinenas init --validate-only`` in one line, by ``init``
without writing a state, and by ``run`` on a state made from it anyway (the
refusals come from one function, :func:`nas.control.prepare.run_problems`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from experiment_support import run, toml_value
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.config import ConfigError, parse_experiment
from nas.record.store import StateStore

FIXED = {"block": "basic", "stem": "conv7", "maxpool": False, "c1": 16, "g3": 32, "g4": 32,
         "d2": 1, "d3": 1, "d4": 1}  # fmt: skip

Tables = dict[str, dict[str, object]]


def base_tables() -> Tables:
    """A valid search of the digits on the local backend (the demo, smaller)."""
    return {
        "experiment": {"name": "val", "metric": "top1", "max_points": 9},
        "model": {"family": "resnet", "fixed": dict(FIXED)},
        "data": {"kind": "digits", "resolution": 16, "workers": 0},
        "train": {"epochs": 1},
        "cluster": {
            "backend": "local",
            "ranks_per_node": 1,
            "cores_per_node": 1,
            "walltime_minutes": 10,
            "signal_seconds": 30,
        },  # fmt: skip
    }


SPACE = {"g1": {"type": "int", "low": 4, "high": 32}, "g2": {"type": "int", "low": 8, "high": 64},
         "d1": {"type": "int", "low": 1, "high": 3}}  # fmt: skip


def inline(value: object) -> str:
    """``value`` as TOML, tables inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {inline(v)}" for k, v in value.items()) + " }"
    return toml_value(value)


def experiment_text(tables: Tables, space: dict[str, dict[str, object]]) -> str:
    lines = []
    for table, keys in tables.items():
        lines += [f"[{table}]", *(f"{key} = {inline(value)}" for key, value in keys.items())]
    for name, keys in space.items():
        lines += ["[[space]]", f"name = {toml_value(name)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


Edit = Callable[[Tables, dict, Path], None]


def cluster(**keys: object) -> Edit:
    return lambda tables, space, folder: tables["cluster"].update(keys)


def directive_case(backend: str, entry: str) -> tuple[Edit, str]:
    """A case of one ``extra_directives`` entry the backend's directive parser misreads."""
    return cluster(backend=backend, account="proj", extra_directives=[entry]), (
        "[cluster] extra_directives"
    )


def lsf_gpu_sets(tables: Tables, space: dict, folder: Path) -> None:
    tables["cluster"].update(backend="lsf", account="proj", resource_sets="gpu", gpus_per_node=0)


def imagefolder_under_memory_limit(tables: Tables, space: dict, folder: Path) -> None:
    (folder / "images").mkdir()
    tables["data"] = {"kind": "imagefolder", "root": str(folder / "images")}
    tables["cluster"]["max_gpu_memory_gib"] = 16.0


def one_choice(tables: Tables, space: dict, folder: Path) -> None:
    del tables["model"]["fixed"]["block"]
    space["block"] = {"type": "categorical", "choices": ["basic"]}


def env_folder(tables: Tables, space: dict, folder: Path) -> None:
    (folder / "envs").mkdir()
    tables["cluster"]["env_file"] = "envs"


#: case -> (edit of the valid search, the table and key the one error line names)
CASES: dict[str, tuple[Edit, str]] = {
    "metric top3": (lambda t, s, f: t["experiment"].update(metric="top3"), "[experiment] metric"),
    "dimension not a coordinate": (
        lambda t, s, f: s.update(width={"type": "int", "low": 1, "high": 4}),
        "[space.width] name",
    ),
    "fixed key not a coordinate": (
        lambda t, s, f: t["model"]["fixed"].update(depth=3),
        "[model] fixed",
    ),
    "coordinate neither searched nor fixed": (
        lambda t, s, f: t["model"]["fixed"].pop("d4"),
        "[model] fixed",
    ),
    "fixed value of the wrong kind": (
        lambda t, s, f: t["model"]["fixed"].update(block="huge"),
        "[model] fixed",
    ),
    "float dimension for an int coordinate": (
        lambda t, s, f: s.update(d1={"type": "float", "low": 1.0, "high": 4.0}),
        "[space.d1] type",
    ),
    "signal_seconds >= walltime": (
        cluster(walltime_minutes=1, signal_seconds=60),
        "[cluster] signal_seconds",
    ),
    "signal_seconds beyond slurm's 16 bits": (
        cluster(backend="slurm", account="proj", walltime_minutes=2000, signal_seconds=70000),
        "[cluster] signal_seconds",
    ),
    "two nodes on local": (cluster(nodes=2), "[cluster] nodes"),
    "fewer cores than ranks": (cluster(ranks_per_node=4), "[cluster] cores_per_node"),
    "empty python": (cluster(python=""), "[cluster] python"),
    "python that a launcher reads as its option": (cluster(python="-v"), "[cluster] python"),
    "blank python": (cluster(python=" "), "[cluster] python"),
    "relative python path": (cluster(python="venv/bin/python"), "[cluster] python"),
    "missing python": (cluster(python="/nonexistent/bin/python3"), "[cluster] python"),
    "missing env_file": (cluster(env_file="envs/nowhere.sh"), "[cluster] env_file"),
    "missing data root": (
        lambda t, s, f: t.update(data={"kind": "imagefolder", "root": "nowhere"}),
        "[data] root",
    ),
    "gpu resource sets without gpus": (lsf_gpu_sets, "[cluster] resource_sets"),
    "gpu_bind with fewer ranks than gpus": (
        cluster(
            backend="slurm",
            account="proj",
            gpus_per_node=4,
            ranks_per_node=2,
            cores_per_node=8,
            gpu_bind="closest",
        ),  # fmt: skip
        "[cluster] gpu_bind",
    ),
    "flux gpus not shared evenly": (
        cluster(backend="flux", gpus_per_node=3, ranks_per_node=2, cores_per_node=2),
        "[cluster] gpus_per_node",
    ),
    "num_classes unknown under a memory limit": (
        imagefolder_under_memory_limit,
        "[model] num_classes",
    ),
    "directive with a stray word": directive_case("slurm", "--exclusive now"),
    "directive value with a blank": directive_case("slurm", "--comment=a b"),
    "directive that is no option": directive_case("lsf", "smt4"),
    "directive with a comment sign sbatch and flux cut at": directive_case(
        "slurm", "--comment=run#2"
    ),
    "directive with a single quote sbatch reads as a quote": directive_case(
        "slurm", "--comment=it's"
    ),
    "directive with a pipe flux reads as a word break": directive_case("flux", "--requires=a|b"),
    "min_distance 1": (
        lambda t, s, f: t["experiment"].update(min_distance=1.0),
        "[experiment] min_distance",
    ),
    "categorical dimension with one choice": (one_choice, "[space.block] choices"),
    "space-filling design smaller than d+1": (
        lambda t, s, f: t["experiment"].update(design="space-filling", design_points=2),
        "[experiment] design_points",
    ),
    "env_file a folder": (env_folder, "[cluster] env_file"),
    "memory limit no design point fits": (
        cluster(max_gpu_memory_gib=0.0001),
        "[cluster] max_gpu_memory_gib",
    ),
    "memory limit 0": (cluster(max_gpu_memory_gib=0), "[cluster] max_gpu_memory_gib"),
    "depth 10^15": (
        lambda t, s, f: s.update(d1={"type": "int", "low": 1, "high": 10**15}),
        "[space.d1] high",
    ),
    "phi box scales a width past MAX_WIDTH": (
        lambda t, s, f: s.update(phi={"type": "float", "low": 1.0, "high": 5000.0}),
        "[space.phi] high",
    ),
    "fixed phi scales a width past MAX_WIDTH": (
        lambda t, s, f: t["model"]["fixed"].update(phi=3000.0),
        "[model] fixed",
    ),
    "resolution 10^9": (lambda t, s, f: t["data"].update(resolution=10**9), "[data] resolution"),
    "walltime 10^9 minutes": (cluster(walltime_minutes=10**9), "[cluster] walltime_minutes"),
    "10,000-character constraint": (
        cluster(backend="slurm", account="proj", constraint="a" * 10_000),
        "[cluster] constraint",
    ),
    "10,000-character alloc_flags": (
        cluster(backend="lsf", account="proj", alloc_flags="a" * 10_000),
        "[cluster] alloc_flags",
    ),
}

#: What the one line of a case says besides its table and key: the bound or figure it names.
DETAILS = {
    "min_distance 1": "expected less than 1.0, got 1.0",
    "categorical dimension with one choice": "needs at least 2 choices, got ['basic']",
    "space-filling design smaller than d+1": "needs at least d+1 = 4 points, got 2",
    "env_file a folder": "is a folder, not a file",
    "memory limit no design point fits": "no point of the initial design fits in 0.0001 GiB",
    "memory limit 0": "the largest estimate is ",
    "depth 10^15": f"takes at most 256, got {10**15}",
    "phi box scales a width past MAX_WIDTH": "'c1' = 16 times phi = 5000 gives 80000 channels",
    "fixed phi scales a width past MAX_WIDTH": "gives 96000 channels, more than MAX_WIDTH",
    "resolution 10^9": "expected at most 4096, got 1000000000",
    "walltime 10^9 minutes": "expected at most 525600, got 1000000000",
    "10,000-character constraint": "at most 1000 characters, got 10000",
    "10,000-character alloc_flags": "at most 1000 characters, got 10000",
}


def write_case(folder: Path, edit: Edit) -> Path:
    tables, space = base_tables(), {k: dict(v) for k, v in SPACE.items()}
    edit(tables, space, folder)
    path = folder / "bad.toml"
    path.write_text(experiment_text(tables, space))
    return path


def test_the_unedited_search_is_valid_and_runs_its_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, lambda t, s, f: None)
    code, out, err = run(capsys, "init", str(path), "--validate-only")
    assert (code, out) == (0, ""), err
    assert err.startswith(f"{path} is valid: experiment val, dims g1, g2, d1")


@pytest.mark.parametrize("case", CASES)
def test_validate_only_refuses_in_one_line_naming_file_table_and_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    edit, where = CASES[case]
    path = write_case(tmp_path, edit)
    code, out, err = run(capsys, "init", str(path), "--validate-only")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"splinenas init: error: {path}: {where}"), lines[0]
    assert DETAILS.get(case, "") in lines[0]
    assert "Traceback" not in err

    code, out, err = run(capsys, "init", str(path))
    assert (code, out, len(err.splitlines())) == (1, "", 1), err
    assert not (tmp_path / "state").exists(), "init refused, yet wrote a state"


@pytest.mark.parametrize("case", CASES)
def test_run_refuses_the_same_experiment_naming_the_same_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state made from the bad file by other means: ``run`` refuses it before any job."""
    monkeypatch.chdir(tmp_path)
    edit, where = CASES[case]
    text = write_case(tmp_path, edit).read_text()
    state = tmp_path / "bad.h5"
    try:
        experiment = parse_experiment(text, "bad.toml")
    except ConfigError as exc:  # refused when read: run reads the stored text the same way
        assert str(exc).startswith(f"bad.toml: {where}"), exc
        return
    with StateStore.create(state, experiment) as store:
        store.commit()
    code, out, err = run(capsys, "run", "--state", str(state), "--once")
    assert (code, out) == (1, "")
    assert err.splitlines() == [err.splitlines()[0]], err
    assert err.startswith(f"splinenas run: error: {state}:experiment_toml: {where}"), err
    assert not (tmp_path / "bad").exists(), "run prepared a point folder"


def test_offline_skips_the_paths_of_this_machine_only(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written here for a cluster: its env file, data and interpreter live there."""
    monkeypatch.chdir(tmp_path)

    def for_the_cluster(tables: Tables, space: dict, folder: Path) -> None:
        tables["data"] = {"kind": "imagefolder", "root": "/gpfs/data", "index": "/gpfs/i.h5"}
        tables["model"]["num_classes"] = 10
        tables["cluster"].update(backend="slurm", account="proj", env_file="/gpfs/env.sh",
                                 python="/gpfs/venv/bin/python")  # fmt: skip

    path = write_case(tmp_path, for_the_cluster)
    code, _, err = run(capsys, "init", str(path), "--validate-only")
    keys = [line.split(": ")[3] for line in err.splitlines()]
    assert (code, keys) == (1, ["[cluster] env_file", "[data] root", "[data] index",
                                "[cluster] python"])  # fmt: skip
    code, _, err = run(capsys, "init", str(path), "--validate-only", "--offline")
    assert code == 0, err
    code, out, err = run(capsys, "init", str(path), "--offline")
    assert (code, out.strip()) == (0, "state/val.h5"), err

    # --offline skips paths, nothing else
    path = write_case(tmp_path, cluster(env_file="/gpfs/env.sh", nodes=2))
    code, _, err = run(capsys, "init", str(path), "--validate-only", "--offline")
    assert code == 1 and err.split(": ")[3] == "[cluster] nodes", err


def test_python_on_path_is_accepted_for_the_local_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, cluster(python=sys.executable))
    assert run(capsys, "init", str(path), "--validate-only")[0] == 0
    path = write_case(tmp_path, cluster(python="no-such-python-here"))
    code, _, err = run(capsys, "init", str(path), "--validate-only")
    assert code == 1 and "[cluster] python: 'no-such-python-here' is not found on PATH" in err


#: Directive entries the rule passes; sbatch accepts each.
ONE_OPTION = ["--exclusive", "-p debug", "--mail-type=END", '--comment="a b; $(c)"']
#: Entries the rule refuses; sbatch rejects each ("Invalid directive found in batch script").
STRAY_WORD = ["--exclusive now", "--comment=a b", "debug", "-p debug extra"]


def test_the_directive_rule_passes_one_option_and_refuses_stray_words() -> None:
    from nas.config import directive_problem

    assert [directive_problem(d) for d in ONE_OPTION] == [None] * len(ONE_OPTION)
    assert all(directive_problem(d) for d in STRAY_WORD)
    assert "write --mail-type=<value>" in str(directive_problem("--mail-type END"))


@pytest.mark.slurm
def test_sbatch_agrees_with_the_directive_rule(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from nas.cluster.proc import CommandError, run_command

    def accepted(directive: str) -> bool:
        script = tmp_path / "job.sh"
        script.write_text(f"#!/bin/bash\n#SBATCH {directive}\ntrue\n")
        try:
            run_command(["sbatch", "--test-only", str(script)], timeout=60, cwd=tmp_path)
        except CommandError:
            return False
        return True

    assert [d for d in ONE_OPTION if not accepted(d)] == []
    assert [d for d in STRAY_WORD if accepted(d)] == []


@pytest.mark.parametrize("choice", ["16", "adam ", "true", "a,b"])
def test_init_refuses_a_choice_params_could_never_name_and_old_states_read_on(
    choice: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--params`` reads "16" as a number, strips "adam ", splits "a,b": refused at init; a
    state made before the rule still reads (its commands parse the stored file again)."""
    monkeypatch.chdir(tmp_path)
    tables = {"experiment": {"name": "opt", "metric": "score"}}
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0},
             "opt": {"type": "categorical", "choices": ["sgd", choice]}}  # fmt: skip
    path = tmp_path / "opt.toml"
    path.write_text(experiment_text(tables, space))
    for extra in (["--validate-only"], []):
        code, _, err = run(capsys, "init", str(path), *extra)
        assert code == 1 and f"{path}: [space.opt] choices: choice 1 ({choice!r})" in err, err
    state = tmp_path / "old.h5"
    with StateStore.create(state, parse_experiment(path.read_text(), str(path))) as store:
        store.commit()
    assert run(capsys, "status", "--state", str(state))[0] == 0
