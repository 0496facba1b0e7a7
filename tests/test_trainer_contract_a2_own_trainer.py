"""A trainer of one's own (``[train] command``) and the files it shares with the controller.

- A segment that stops without recorded progress is retried once, not
  ``max_attempts`` times (each a full walltime), and the reason gives the
  segment's seconds and the remedy.
- A ``progress.json`` the trainer writes itself, without ``epochs_completed``,
  is at the position its learning curve shows, and the reason says what the
  file lacks.
- An ``error.json`` of the trainer's own, without the keys the controller
  reads, does not hide the log tail.
- A result whose searched metric is NaN or infinite is a divergence
  (``[train] on_divergence``), not a retry with the same seed.
- ``show`` reads ``result.json`` as the controller does and lists the metrics kept.

The controller runs are real: ``init`` + ``run`` on the local backend, the
command a plain Python script that imports nothing of splinenas.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands.main import main
from nas.control.ingest import Verdict, judge
from nas.pointdir.layout import ERROR_FILE, PROGRESS_FILE, RESULT_FILE
from nas.pointdir.outcome import write_progress
from nas.record.state import Point, PointStatus
from nas.record.store import StateStore

S = PointStatus
PARAMS = {"g1": 8}

#: ``python3 train.py MODE {lr}``: what the n-th run in a point folder does is ``PLANS[MODE][n]``
#: (the last step repeats). Each run appends its step and seed to ``runs.txt``.
TRAINER = r"""
import json, os, sys

folder = os.environ["SPLINENAS_POINT_DIR"]
mode = sys.argv[1]
PLANS = {
    "stall": ["stall"],
    "progress_stall": ["epoch", "stall", "epoch", "stall", "result"],
    "own_progress": ["own_progress", "own_progress", "result"],
    "own_error": ["own_error"],
    "nan": ["nan", "result"],
    "nan_always": ["nan"],
    "extras": ["extras"],
}
runs = os.path.join(folder, "runs.txt")
n = len(open(runs).read().splitlines()) if os.path.exists(runs) else 0
plan = PLANS[mode]
step = plan[min(n, len(plan) - 1)]
seed = json.load(open(os.path.join(folder, "point.json")))["seed"]
with open(runs, "a") as handle:
    handle.write(f"{step} {seed}\n")


def write(name, document):
    path = os.path.join(folder, name)
    with open(path + ".tmp", "w") as handle:
        handle.write(document if isinstance(document, str) else json.dumps(document))
    os.replace(path + ".tmp", path)


def next_epoch():
    path = os.path.join(folder, "curve.jsonl")
    epoch = 1 + (len(open(path).read().splitlines()) if os.path.exists(path) else 0)
    with open(path, "a") as handle:
        handle.write(json.dumps({"epoch": epoch, "loss": 1.0 / epoch}) + "\n")
    return epoch


if step == "stall":  # stopped at the deadline before the first recorded progress
    sys.exit(3)
if step == "epoch":
    next_epoch()
    sys.exit(3)
if step == "own_progress":  # the trainer's own guess at the file's keys
    write("progress.json", {"epoch": next_epoch(), "step": 0, "checkpoint": "checkpoint.pt"})
    sys.exit(3)
if step == "own_error":
    write("error.json", {"error": "CUDA error: an illegal memory access", "step": 1234})
    print("RuntimeError: CUDA error: an illegal memory access was encountered", file=sys.stderr)
    sys.exit(1)
if step == "nan":
    write("result.json", '{"metrics": {"score": NaN}}')
elif step == "extras":
    write("result.json", '{"metrics": {"score": 2.5, "nan": NaN, "huge": 1e300, "neg": -1}}')
else:
    write("result.json", {"metrics": {"score": 1.0}})
"""


def search(tmp_path: Path, mode: str, *, train: str = "", **cluster: object) -> Path:
    """``init`` and ``run`` to the end of a 2-point search whose trainer runs ``mode``."""
    (tmp_path / "train.py").write_text(TRAINER)
    text = command_experiment(
        "own", [sys.executable, "train.py", mode, "{lr}"], {"lr": LOG_LR}, metric="score",
        cluster={"max_attempts": 3, "max_concurrent_jobs": 5, **cluster},
        max_points=2, batch_size=2,
    )  # fmt: skip
    (tmp_path / "own.toml").write_text(text.replace("[train]\n", f"[train]\n{train}"))
    assert main(["init", "own.toml"]) == 0
    state = tmp_path / "state" / "own.h5"
    main(["run", "--state", str(state), "--poll", "0.1"])
    return state


def points(state: Path) -> list[Point]:
    with StateStore.open(state) as store:
        return list(store.state.points)


def messages(state: Path, kind: str) -> list[str]:
    with StateStore.open(state) as store:
        return [e.message for e in store.state.events if e.kind == kind]


def runs(state: Path, point_id: int) -> list[str]:
    """The steps and seeds of the point's runs, as ``"<step> <seed>"``."""
    return (state.parent / "own" / "points" / str(point_id) / "runs.txt").read_text().splitlines()


# --------------------------------------------------------------------------- no progress


@pytest.mark.parametrize(("max_attempts", "attempts"), [(3, 2), (1, 1)])
def test_a_segment_without_progress_is_retried_once_and_says_why_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_attempts: int, attempts: int
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "stall", max_attempts=max_attempts, walltime_minutes=30)
    for point in points(state):
        assert (point.status, point.attempts) == (S.FAILED, attempts), point.reason
        assert len(runs(state, point.id)) == attempts
        plural = "attempt" if attempts == 1 else "attempts"
        assert re.match(rf"gave up after {attempts} {plural}[:,]", point.reason), point.reason
        assert "made no progress past (0, 0)" in point.reason
        assert "walltime_minutes 30 x 60 minus signal_seconds 300 = 1500 s" in point.reason
        assert "raise walltime_minutes" in point.reason
        assert "progress.json step_in_epoch" in point.reason and "step=" in point.reason


def test_a_segment_that_progresses_between_two_stalls_keeps_its_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stalls in one point, with progress in between: each a one-off, each retried."""
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "progress_stall")
    for point in points(state):
        assert (point.status, point.attempts, point.value) == (S.DONE, 3, 1.0), point.reason
        assert [r.split()[0] for r in runs(state, point.id)] == [
            "epoch", "stall", "epoch", "stall", "result",
        ]  # fmt: skip
    assert sum("made no progress" in m for m in messages(state, "status")) == 4


# --------------------------------------------------------------------------- progress.json


def test_an_own_progress_file_without_epochs_completed_is_at_the_curves_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "own_progress")
    for point in points(state):
        assert (point.status, point.attempts, point.segment) == (S.DONE, 1, 2), point.reason
    notes = [m for m in messages(state, "status") if "has no epochs_completed" in m]
    assert len(notes) == 4, messages(state, "status")  # two segments of each point
    assert all("(it has: checkpoint, epoch, step)" in m for m in notes), notes
    assert any("curve.jsonl, 2, is taken as the position" in m for m in notes), notes
    assert all("step_in_epoch" in m for m in notes), notes


def test_a_progress_file_without_epochs_completed_and_no_curve_is_at_epoch_0(
    tmp_path: Path,
) -> None:
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"epoch": 4}))
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert (outcome.verdict, outcome.position) == (Verdict.INCOMPLETE, (0, 0))
    assert "progress.json has no epochs_completed (it has: epoch)" in outcome.detail


def test_a_progress_file_with_epochs_completed_says_nothing_of_it(tmp_path: Path) -> None:
    write_progress(tmp_path, point_id=0, epoch=2, step=7, reason="deadline")
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert (outcome.position, outcome.detail) == ((2, 7), "deadline")


# --------------------------------------------------------------------------- error.json


def test_an_own_error_file_does_not_hide_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "own_error", max_attempts=1)
    for point in points(state):
        assert point.status is S.FAILED and "rank ?" not in point.reason
        assert "illegal memory access was encountered" in point.reason  # the log's line
        assert "its error.json was not read" in point.reason
        assert "(kind, exception, message; it has: error, step)" in point.reason


def test_an_error_file_with_the_controllers_keys_is_still_read(tmp_path: Path) -> None:
    (tmp_path / ERROR_FILE).write_text(json.dumps({"exception": "ValueError", "message": "bad"}))
    (tmp_path / "job.log").write_text("a line of the log\n")
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert (outcome.verdict, outcome.detail) == (Verdict.FAILED, "rank ?: ValueError: bad")


# --------------------------------------------------------------------------- NaN result


def test_a_nan_result_is_retried_once_with_a_new_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "nan")
    for point in points(state):
        assert (point.status, point.attempts, point.value) == (S.DONE, 2, 1.0), point.reason
        assert runs(state, point.id) == ["nan 0", "result 1"]
    diverged = messages(state, "diverge")
    assert len(diverged) == 2, diverged  # the wording of the rejection is result.py's
    assert all("result file was rejected: metrics.score" in m for m in diverged), diverged


def test_a_result_that_is_nan_again_after_the_new_seed_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "nan_always")
    for point in points(state):
        assert (point.status, point.attempts) == (S.FAILED, 2), point.reason
        assert "diverged again with a new seed" in point.reason
        assert runs(state, point.id) == ["nan 0", "nan 1"]


def test_a_nan_result_fails_at_once_under_on_divergence_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "nan", train='on_divergence = "fail"\n')
    for point in points(state):
        assert (point.status, point.attempts) == (S.FAILED, 1), point.reason
        assert "on_divergence = fail" in point.reason and "metrics.score" in point.reason


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_searched_metric_that_is_not_finite_is_a_divergence(tmp_path: Path, value: str) -> None:
    """Also when judged again by a controller killed before it committed the rejection."""
    (tmp_path / RESULT_FILE).write_text(f'{{"metrics": {{"top1": {value}}}}}')
    log = tmp_path / "job.log"
    outcome, check = judge(tmp_path, 0, PARAMS, cancelled=False, log=log, job="own-p0-r0a1s0")
    assert outcome.verdict is Verdict.DIVERGED and "metrics.top1" in outcome.detail
    assert check is not None and check.rejected is not None and check.rejected.exists()
    again, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=log, job="own-p0-r0a1s0")
    assert (again.verdict, again.detail) == (Verdict.DIVERGED, outcome.detail)


def test_a_nan_secondary_metric_or_an_interim_nan_result_is_no_divergence(
    tmp_path: Path,
) -> None:
    (tmp_path / RESULT_FILE).write_text('{"metrics": {"top1": 50, "loss": NaN}}')
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert outcome.verdict is Verdict.DONE
    (tmp_path / RESULT_FILE).write_text('{"metrics": {"top1": NaN}}')
    write_progress(tmp_path, point_id=0, epoch=2, step=0, reason="deadline")
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert outcome.verdict is Verdict.INCOMPLETE  # a segment's result so far: set aside


# --------------------------------------------------------------------------- show


def test_show_reads_the_result_as_the_controller_does_and_lists_the_kept_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, "extras")
    capsys.readouterr()
    assert main(["show", "0", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "unreadable" not in out and '"nan": NaN' in out
    assert "metrics recorded: score 2.5, huge 1e+300, neg -1\n" in out
    assert main(["show", "0", "--state", str(state), "--json"]) == 0

    def strict(constant: str) -> None:
        raise AssertionError(f"--json wrote {constant}")

    doc = json.loads(capsys.readouterr().out, parse_constant=strict)
    assert doc["metrics"] == {"score": 2.5, "huge": 1e300, "neg": -1.0}
    assert doc["result"]["metrics"] == {"score": 2.5, "nan": None, "huge": 1e300, "neg": -1}
