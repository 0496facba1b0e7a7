"""`splinenas show`: a failed point's log tail once, in whole lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, write_fake_trainer
from experiment_support import run

from nas.control.ingest import log_tail
from nas.control.loop import run_controller


def test_a_tail_starts_at_a_line_start_however_long_the_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {n:05d} " + "x" * 140 + "\n" for n in range(5000)))
    tail = log_tail(log, 40)
    lines = tail.splitlines()
    assert lines and all(line.startswith("line ") and len(line) == 151 for line in lines)
    assert lines[-1].startswith("line 04999")


def test_a_short_log_is_shown_whole(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("first\nsecond\n")
    assert log_tail(log, 40) == "first\nsecond"


def test_show_prints_a_failed_points_log_tail_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fake = write_fake_trainer(tmp_path / "fake", {"modes": {"0": ["exit1", "exit1"]}})
    state = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    run_controller(state, poll=0.05, max_cycles=60, progress=lambda s: None, cwd=tmp_path)
    code, out, err = run(capsys, "show", "--state", str(state), "0")
    assert code == 0, err
    attempts = out.count("log ctl-p0-")  # one log section per attempt
    assert attempts == 2
    assert out.count("stand-in trainer: failing on purpose") == attempts  # not again in history
    assert "(log below)" in out
