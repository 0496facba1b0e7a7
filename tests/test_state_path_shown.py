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
