"""A ``--state`` path is shown by one rule in every message: as given, or quoted with escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_support import run

from nas.names import shown

CONTROL = ["a\nb.h5", "tab\there.h5", "bell\x07.h5", "del\x7f.h5"]


@pytest.mark.parametrize("name", CONTROL)
@pytest.mark.parametrize("command", ["run", "status"])
def test_a_missing_state_with_a_control_character_is_named_on_one_line(
    name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / name
    code, out, err = run(capsys, command, "--state", str(path))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"splinenas {command}: error: no state file at {str(path)!r} "
        "(create one with `splinenas init`)"
    ]


def test_the_previous_generation_is_named_by_the_same_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "a\nb.h5"
    prev = Path(f"{path}.prev")
    prev.write_bytes(b"")
    code, _, err = run(capsys, "status", "--state", str(path))
    assert code == 1
    (line,) = err.splitlines()
    assert f"previous generation {str(prev)!r} exists; copy it to {str(path)!r}" in line


def test_a_folder_with_a_control_character_is_named_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "run\nfolder"
    folder.mkdir()
    code, _, err = run(capsys, "status", "--state", str(folder))
    assert code == 1
    assert err.splitlines() == [
        f"splinenas status: error: {str(folder)!r} is a folder, not a state file"
    ]


@pytest.mark.parametrize("name", ["plain.h5", "with space.h5", "quote'.h5", "ünïcode.h5"])
def test_a_one_line_path_is_shown_as_given(name: str) -> None:
    assert shown(Path("/x") / name) == f"/x/{name}"


@pytest.mark.parametrize("name", CONTROL)
def test_a_path_that_is_not_one_line_is_shown_quoted(name: str) -> None:
    assert shown(name) == repr(name)
    assert "\n" not in shown(name) and name not in shown(name)


def _slurm_experiment(folder: Path) -> Path:
    """A Slurm search of an own command: every point folder goes into ``#SBATCH --chdir``."""
    from experiment_support import LOG_LR, command_experiment

    text = command_experiment("paths", ["./train.sh", "{lr}"], {"lr": LOG_LR}, metric="score",
                              cluster={"backend": "slurm", "account": "abc"})  # fmt: skip
    (folder / "paths.toml").write_text(text)
    (folder / "train.sh").write_text("#!/bin/sh\n")
    (folder / "train.sh").chmod(0o755)
    return folder / "paths.toml"


def test_init_checks_the_job_scripts_of_the_state_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point folders lie beside ``--state``, not under ``state/`` of the working folder:
    a state where a directive cannot name them is refused by ``init``, not by every ``run``,
    and a working folder no job script names refuses nothing."""
    here = tmp_path / "cw$d"
    here.mkdir()
    monkeypatch.chdir(here)
    toml = _slurm_experiment(here)
    code, _, err = run(capsys, "init", str(toml), "--state", str(tmp_path / "ok" / "s.h5"))
    assert code == 0, err
    code, _, err = run(capsys, "init", str(toml), "--state", str(tmp_path / "dol$x" / "s.h5"))
    assert code == 1 and not (tmp_path / "dol$x" / "s.h5").exists()
    assert f"--chdir: '{tmp_path}/dol$x/s/points/0' cannot go into a directive" in err, err
