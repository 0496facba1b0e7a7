"""An experiment file edited after ``init``: the search runs on the state's copy, and says so.

A new walltime, account or command typed into the file changed nothing and
nothing said so; ``run`` now warns, naming the way to run under the edited file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands.main import main
from nas.control import policy
from nas.record.store import StateStore

SCRIPT = (
    "import sys\nfrom nas import trial\n"
    "trial.write_result({'score': -abs(float(sys.argv[1]) - 0.01) - int(sys.argv[2])})\n"
)


def initialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(SCRIPT)
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment(
        "own", [sys.executable, "train.py", "{lr}", "{width}"], space, metric="score",
        max_points=1, batch_size=1,
    )  # fmt: skip
    source = tmp_path / "own.toml"
    source.write_bytes(text.replace("\n", "\r\n").encode())  # kept as typed: no drift
    assert main(["init", "own.toml"]) == 0
    return source, tmp_path / "state" / "own.h5"


def test_init_records_the_file_and_an_unchanged_one_is_no_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, state = initialised(tmp_path, monkeypatch)
    with StateStore.open(state) as store:
        assert store.state.meta[policy.SOURCE_KEY] == str(source)
        assert policy.source_drift(store.state, state) is None
    source.unlink()  # a file gone is no edit either
    with StateStore.open(state) as store:
        assert policy.source_drift(store.state, state) is None


def test_run_warns_that_an_edited_file_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source, state = initialised(tmp_path, monkeypatch)
    source.write_text(source.read_text().replace("max_points = 1", "max_points = 9"))
    with caplog.at_level(logging.WARNING):
        assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    warned = [r.getMessage() for r in caplog.records if "was edited after init" in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert f"`splinenas import --state NEW.h5 {state}`" in warned[0]
    with StateStore.open(state) as store:  # the stored copy ran: one training, not nine
        assert len(store.state.points) == 1
