"""``init``'s ``--state``: a path job scripts cannot name is refused, and a failed init leaves no state."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_support import run

from nas.control import policy

EXPERIMENT = """\
[experiment]
name = "p"
[[space]]
name = "a"
type = "int"
low = 0
high = 9
[[space]]
name = "b"
type = "float"
low = 0.0
high = 1.0
"""


@pytest.mark.parametrize("name", ["a\nb.h5", "tab\there.h5", "bell\x07.h5", "del\x7f.h5"])
@pytest.mark.parametrize("validate_only", [True, False])
def test_a_control_character_in_the_state_path_is_a_usage_error(
    name: str,
    validate_only: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("e.toml").write_text(EXPERIMENT)
    argv = ["init", "e.toml", "--state", name] + ["--validate-only"] * validate_only
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"splinenas init: error: --state {name!r}: contains the control character "
        f"{next(c for c in name if not c.isprintable())!r}; job scripts cannot name such a path"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.toml"]


def test_an_init_that_fails_after_creating_the_state_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("e.toml").write_text(EXPERIMENT)

    def refuse(self: policy.Study) -> list:
        raise policy.StudyError("no initial design today")

    monkeypatch.setattr(policy.Study, "initial_batch", refuse)
    code, out, err = run(capsys, "init", "e.toml", "--state", "s/p.h5")
    assert (code, out) == (1, "")
    assert err.splitlines() == ["splinenas init: error: no initial design today"]
    assert list((tmp_path / "s").iterdir()) == []


def test_an_existing_state_is_never_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("e.toml").write_text(EXPERIMENT)
    assert run(capsys, "init", "e.toml", "--state", "p.h5")[0] == 0
    before = Path("p.h5").read_bytes()
    code, _, err = run(capsys, "init", "e.toml", "--state", "p.h5")
    assert code == 1 and "already exists" in err
    assert Path("p.h5").read_bytes() == before
