"""An empty path on the command line is a usage error naming the option, on every command.

``Path("")`` is the current folder: ``export --tensorboard ''`` wrote its event
files into it and ``export --csv --out ''`` said "--out .: is a folder", quoting
something the user never typed.
"""

from __future__ import annotations

import pytest

from nas.commands.main import main

CASES = {
    "init": ["init", ""],
    "init --state": ["init", "x.toml", "--state", ""],
    "import": ["import", "--state", "s.h5", ""],
    "export --out": ["export", "--state", "s.h5", "--csv", "--out", ""],
    "export --tensorboard": ["export", "--state", "s.h5", "--tensorboard", ""],
    "run --out": ["run", "--state", "s.h5", "--dry-run", "--out", ""],
    "demo --out": ["demo", "--out", ""],
    "plot --out": ["plot", "--state", "s.h5", "--out", ""],
    "report --out": ["report", "--state", "s.h5", "--out", ""],
    "status --state": ["status", "--state", ""],
}


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_an_empty_path_is_refused_before_anything_runs(
    argv: list[str], tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "expected a path, got an empty string" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing is written"
