"""``init``'s checks of ``[train] command``: ``{seed}``, an interpreter's missing script, a
lossy ``{name:spec}``, and the one-line messages of a few mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands.main import main
from nas.config import parse_experiment
from nas.control.prepare import JobSettings
from nas.record.state import Point, PointStatus

SPACE = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}


def init(
    folder: Path,
    capsys: pytest.CaptureFixture,
    command: list[str],
    *,
    space: dict | None = None,
    extra: str = "",
    cluster: dict | None = None,
) -> tuple[int, str]:
    """``splinenas init`` of a command search in ``folder`` (the working folder): code, stderr."""
    (folder / "a3.toml").write_text(text_of(command, space=space, extra=extra, cluster=cluster))
    capsys.readouterr()
    code = main(["init", "a3.toml"])
    return code, capsys.readouterr().err


def text_of(
    command: list[str],
    *,
    space: dict | None = None,
    extra: str = "",
    cluster: dict | None = None,
    seed: int | None = None,
) -> str:
    """A command search over ``space`` (default :data:`SPACE`), ``[train] seed`` ``seed``."""
    text = command_experiment("a3", command, space or SPACE, metric="score", cluster=cluster)
    if seed is not None:
        text = text.replace("[train]\n", f"[train]\nseed = {seed}\n")
    return text + extra


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working folder, with a trainer script ``train.py`` in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("")
    return tmp_path


def test_seed_is_the_points_training_seed(here: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding 5: ``{seed}`` was refused, so exit 5's retry with a new seed re-ran the same
    command for a trainer that takes its seed on the command line."""
    command = ["python3", "train.py", "--seed={seed}", "--lr={lr}"]
    code, err = init(here, capsys, command)
    assert code == 0, err
    settings = JobSettings.resolved(parse_experiment(text_of(command, seed=7)), here)
    point = Point(id=0, params={"lr": 0.01, "width": 3}, status=PointStatus.PENDING, batch=0,
                  origin="design", created=0.0, updated=0.0)  # fmt: skip
    assert settings.command(point)[2:] == ["--seed=7", "--lr=0.01"]
    point.extra["reseeds"] = 1  # the retry after a divergence
    assert settings.command(point)[2] == "--seed=8"
    assert settings.point_values(point)["seed"] == 8  # what point.json says


@pytest.mark.parametrize(
    ("space", "fixed", "message"),
    [
        ({**SPACE, "seed": {"type": "int", "low": 0, "high": 9}}, "",
         r"a3\.toml: \[space\.seed\] name: \{seed\} in \[train\] command is the point's training "
         r"seed .*: rename this parameter"),
        (SPACE, "[model]\nfixed = { seed = 3 }\n",
         r"a3\.toml: \[model\] fixed: 'seed': \{seed\} in \[train\] command is the point's "
         r"training seed .*, or set \[train\] seed"),
    ],
)  # fmt: skip
def test_a_parameter_named_seed_is_refused_only_where_the_command_names_seed(
    here: Path, capsys: pytest.CaptureFixture, space: dict, fixed: str, message: str
) -> None:
    code, err = init(here, capsys, ["python3", "train.py", "{seed}", "{lr}"], space=space,
                     extra=fixed)  # fmt: skip
    assert code == 1 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    code, err = init(here, capsys, ["python3", "train.py", "{lr}"], space=space, extra=fixed)
    assert code == 0, err


@pytest.mark.parametrize(
    "command",
    [
        ["python3", "trian.py", "--lr={lr}"],
        ["python3.11", "-u", "trian.py", "{lr}"],
        ["/usr/bin/env-less/python", "--", "trian.py", "{lr}"],
        ["bash", "-e", "scripts/run", "{lr}"],
        ["sh", "trian.sh", "{lr}"],
    ],
)
def test_init_refuses_a_script_an_interpreter_cannot_find(
    here: Path, capsys: pytest.CaptureFixture, command: list[str]
) -> None:
    """Finding 13: a typo in the script passed init and failed every attempt of every point."""
    if command[0].startswith("/"):  # a program path must exist: the script is then checked
        (here / "python").write_text("#!/bin/sh\n")
        (here / "python").chmod(0o755)
        command = [str(here / "python"), *command[1:]]
    code, err = init(here, capsys, command)
    script = next(a for a in command[1:] if not a.startswith("-"))
    index = command.index(script)
    expected = (f"a3.toml: [train] command: argument {index} {script!r}: the script "
                f"{command[0]!r} runs does not exist (relative to {here})")  # fmt: skip
    assert code == 1 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["python3", "train.py", "{lr}"],
        ["python3", "-c", "import sys; print(1/2)", "{lr}"],
        ["python3", "-m", "no.such.module", "{lr}"],
        ["bash", "-lc", "cd /nowhere && ./x.sh {lr}"],
        ["python3", "-W", "ignore", "train.py", "{lr}"],
        ["python3", "runs/{width}/train.py", "{lr}"],
        ["true", "missing.py", "{lr}"],
    ],
)
def test_init_leaves_commands_without_a_missing_script_alone(
    here: Path, capsys: pytest.CaptureFixture, command: list[str]
) -> None:
    code, err = init(here, capsys, command)
    assert code == 0, err


def test_the_script_is_left_to_the_job_where_its_environment_decides(
    here: Path, capsys: pytest.CaptureFixture
) -> None:
    """As the program's PATH lookup: an env file may change folder or mount a file system."""
    (here / "site.env").write_text("true\n")
    code, err = init(here, capsys, ["python3", "trian.py", "{lr}"],
                     cluster={"env_file": "site.env"})  # fmt: skip
    assert code == 0, err


def test_an_absolute_program_is_not_said_relative_to_the_folder(
    here: Path, capsys: pytest.CaptureFixture
) -> None:
    """Finding 16: "program '/etc/passwd' is not an executable file (relative to <cwd>)"."""
    (here / "data.txt").write_text("")
    code, err = init(here, capsys, [str(here / "data.txt"), "{lr}"])
    assert code == 1
    assert err.strip().endswith(f"program {str(here / 'data.txt')!r} is not an executable file")


@pytest.mark.parametrize(
    ("argument", "example"),
    [
        ("--lr={lr:.2f}", "writes 0.0001 as '0.00'"),
        ("--lr={lr:.0%}", "writes both 0.0001 and "),
    ],
)
def test_init_warns_of_a_format_that_writes_another_value(
    here: Path, capsys: pytest.CaptureFixture, argument: str, example: str
) -> None:
    """Finding 14: ``{lr:.2f}`` on a learning rate in [1e-4, 0.1] trained 0.00 silently."""
    code, err = init(here, capsys, ["python3", "train.py", argument])
    assert code == 0, err
    field = argument.partition("=")[2]
    (line,) = [line for line in err.splitlines() if "warning" in line]
    assert f"a3.toml: [train] command: argument 2 {argument!r}: {field} " in line, line
    assert example in line, line
    assert "another value than the point records" in line


@pytest.mark.parametrize("argument", ["{lr:.3e}", "{lr:.6g}", "{width:03d}", "{lr}"])
def test_init_says_nothing_of_a_format_that_keeps_the_value(
    here: Path, capsys: pytest.CaptureFixture, argument: str
) -> None:
    code, err = init(here, capsys, ["python3", "train.py", argument])
    assert code == 0 and "warning" not in err, err


def test_a_non_finite_fixed_value_names_the_model_table(
    here: Path, capsys: pytest.CaptureFixture
) -> None:
    """Finding 16: it said ``[experiment] fixed.x``."""
    code, err = init(here, capsys, ["python3", "train.py", "{lr}"],
                     extra="[model]\nfixed = { x = nan }\n")  # fmt: skip
    assert code == 1
    assert "a3.toml: [model] fixed.x: expected a finite number, got nan" in err, err


def test_a_format_no_value_suits_is_said_once(here: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding 16: ``{lr:.2q}`` was said twice, once for each bound."""
    code, err = init(here, capsys, ["python3", "train.py", "{lr:.2q}"])
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "argument 2 '{lr:.2q}': format '.2q' does not suit 0.0001" in err
