"""``nas.trial`` for an own trainer: a step inside a long epoch, a diverged result, curve time.

* An epoch longer than one segment reaches the controller as progress
  (``exit_incomplete(epoch, step=...)``), not as "no progress" retried in full.
* A searched metric that is NaN is a divergence (error.json, exit 5: a new
  seed), not a traceback and an exit 1 retried with the same seed.
* ``report``'s ``seconds`` counts every segment, so a resumed curve's time
  axis does not go back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nas
from nas import trial
from nas.control.ingest import Verdict, judge
from nas.pointdir.curve import read_curve
from nas.pointdir.layout import (
    CURVE_FILE,
    ERROR_FILE,
    EXIT_DIVERGED,
    EXIT_INCOMPLETE,
    PROGRESS_FILE,
    RESULT_FILE,
)

REPO = Path(nas.__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A point folder whose point searches ``score``, as rank 0 of a job sees it."""
    document = {"format": 1, "point_id": 3, "experiment": "e", "params": {"lr": 0.1},
                "fixed": {"epochs": 3}, "seed": 2, "metric": "score"}  # fmt: skip
    (tmp_path / "point.json").write_text(json.dumps(document))
    monkeypatch.setenv("SPLINENAS_POINT_DIR", str(tmp_path))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("SPLINENAS_DEADLINE", raising=False)
    return tmp_path


def progress_of(folder: Path) -> dict:
    return json.loads((folder / PROGRESS_FILE).read_text())


# --------------------------------------------------------------------------- finding 1


def test_exit_incomplete_reports_the_step_reached_inside_the_epoch(folder: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        trial.exit_incomplete(0, step=1500)
    assert stopped.value.code == EXIT_INCOMPLETE
    progress = progress_of(folder)
    assert (progress["epochs_completed"], progress["step_in_epoch"]) == (0, 1500)
    outcome, _ = judge(folder, 3, {"lr": 0.1}, cancelled=False, log=folder / "job.log")
    assert outcome.verdict is Verdict.INCOMPLETE and outcome.position == (0, 1500)


def test_exit_incomplete_keeps_its_old_signature(folder: Path) -> None:
    with pytest.raises(SystemExit):
        trial.exit_incomplete(2, "segment-epochs")
    progress = progress_of(folder)
    assert (progress["epochs_completed"], progress["step_in_epoch"]) == (2, 0)
    assert progress["reason"] == "segment-epochs"


@pytest.mark.parametrize(
    ("epoch", "step", "name"),
    [(1, -1, "step"), (1, 2.5, "step"), (1, "7", "step"), (1, True, "step"), (1.5, 0, "epoch")],
)
def test_exit_incomplete_refuses_a_position_that_is_no_whole_number(
    folder: Path, epoch: object, step: object, name: str
) -> None:
    with pytest.raises(trial.TrialError, match=f"exit_incomplete: {name} must be a whole number"):
        trial.exit_incomplete(epoch, step=step)  # type: ignore[arg-type]
    assert not (folder / PROGRESS_FILE).exists()


# --------------------------------------------------------------------------- finding 4


def test_a_nan_searched_metric_exits_5_with_a_divergence_report(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("SPLINENAS_DEADLINE", str(time.time() + 3600))
    trial.report(1, loss=0.5)
    trial.report(2, loss=float("nan"))
    with pytest.raises(SystemExit) as stopped:
        trial.write_result({"score": float("nan"), "loss": 0.5})
    assert stopped.value.code == EXIT_DIVERGED
    assert not (folder / RESULT_FILE).exists()
    error = json.loads((folder / ERROR_FILE).read_text())
    assert (error["kind"], error["epoch"], len(error["curve"])) == ("diverged", 2, 2)
    assert "score" in error["message"] and "nan" in error["message"]
    assert 3500 < error["saved_seconds"] <= 3600 and error["saved_device_hours"] > 3.8
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged" in err and f"exiting {EXIT_DIVERGED}" in err
    outcome, _ = judge(folder, 3, {"lr": 0.1}, cancelled=False, log=folder / "job.log")
    assert outcome.verdict is Verdict.DIVERGED


def test_other_ranks_exit_5_too_and_write_nothing(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as stopped:
        trial.write_result({"score": float("-inf")})
    assert stopped.value.code == EXIT_DIVERGED
    assert not (folder / ERROR_FILE).exists() and not (folder / RESULT_FILE).exists()


@pytest.mark.parametrize("searched", ["0.9", True, None])
def test_a_searched_metric_that_is_no_number_is_still_a_trial_error(
    folder: Path, searched: object
) -> None:
    with pytest.raises(trial.TrialError, match="metrics must be finite numbers"):
        trial.write_result({"score": searched})
    assert not (folder / ERROR_FILE).exists() and not (folder / RESULT_FILE).exists()


def test_through_the_launch_wrapper_a_nan_result_is_exit_5_without_a_traceback(
    folder: Path,
) -> None:
    script = "from nas import trial\ntrial.write_result({'score': float('nan')})\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RANK", None)
    done = subprocess.run(
        [sys.executable, "-m", "nas.trial.launch", "--point-dir", str(folder), "--",
         sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == EXIT_DIVERGED, done.stderr
    assert "Traceback" not in done.stderr and "diverged" in done.stderr
    assert json.loads((folder / ERROR_FILE).read_text())["kind"] == "diverged"


# --------------------------------------------------------------------------- finding 11


def segment(monkeypatch: pytest.MonkeyPatch, started_ago: float) -> None:
    """A new segment's process: started ``started_ago`` seconds ago, nothing read yet."""
    monkeypatch.setattr(trial, "_started", time.time() - started_ago)
    monkeypatch.setattr(trial, "_earlier_seconds", {})


def seconds_by_epoch(folder: Path) -> dict[int, float]:
    return {entry["epoch"]: entry["seconds"] for entry in read_curve(folder)}


def test_report_seconds_count_every_segment(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segment(monkeypatch, started_ago=100.0)
    trial.report(1, loss=1.0)
    trial.report(2, loss=0.9)
    segment(monkeypatch, started_ago=10.0)  # the second segment, a new process
    trial.report(3, loss=0.8)
    trial.report(4, loss=0.7)  # read once: not the first entry of this segment added again
    seconds = seconds_by_epoch(folder)
    assert 100.0 <= seconds[1] <= seconds[2] < 105.0
    assert seconds[2] + 10.0 <= seconds[3] <= seconds[4] < seconds[2] + 15.0


def test_a_curve_whose_last_seconds_is_null_counts_from_this_segment(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / CURVE_FILE).write_text('{"epoch": 1, "seconds": null}\n')
    segment(monkeypatch, started_ago=10.0)
    trial.report(2, loss=0.5)
    assert 10.0 <= seconds_by_epoch(folder)[2] < 15.0
