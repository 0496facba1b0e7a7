"""The result contract at its edges: interim results, GPU-hours, bad optional figures.

- A segment that exits 3 ("incomplete") after writing a "result so far" is not
  measured: its file is set aside (kept) and the next segment trains on.
- GPU-hours read the device type (``cuda:0``, ``CUDA``); a result without a
  device counts what its job asked for (``[cluster] gpus_per_node``), and the
  ingest event says when device-hours escape ``max_gpu_hours``.
- A wrong optional figure is dropped and named, not a reason to train again;
  a file of the wrong shape is a broken contract, failed without retries.

The controller runs are real: ``init`` + ``run`` on the local backend, the
command a small Python script using :mod:`nas.trial`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands.main import main
from nas.control.ingest import Verdict, judge
from nas.pointdir.layout import (
    EXIT_COMPLETE,
    EXIT_INCOMPLETE,
    PROGRESS_FILE,
    RESULT_FILE,
    SUPERSEDED_PROGRESS_FILE,
)
from nas.pointdir.outcome import write_progress
from nas.pointdir.result import NO_DEVICE, Result, ResultError, gpu_device, validate_result
from nas.record.store import StateStore
from nas.trial.launch import settle

PARAMS = {"g1": 8}


def write_document(folder: Path, document: object) -> Path:
    path = folder / RESULT_FILE
    path.write_text(json.dumps(document))
    return path


def search(tmp_path: Path, script: str, *, cluster: dict | None = None, **settings: object) -> Path:
    """``init`` and ``run`` of ``python3 train.py {lr} {width}`` (``script``) to the end."""
    (tmp_path / "train.py").write_text(script)
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment(
        "own", [sys.executable, "train.py", "{lr}", "{width}"], space, metric="score",
        cluster={"max_attempts": 3, "max_concurrent_jobs": 5, **(cluster or {})},
        **{"max_points": 2, "batch_size": 2, **settings},
    )  # fmt: skip
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 0
    state = tmp_path / "state" / "own.h5"
    main(["run", "--state", str(state), "--poll", "0.1"])
    return state


def messages(state: Path, kind: str) -> list[str]:
    with StateStore.open(state) as store:
        return [e.message for e in store.state.events if e.kind == kind]


def jobs(state: Path) -> int:
    return len(list((state.parent / "own" / "jobs").iterdir()))


# --------------------------------------------------------------------------- finding 1


def test_a_result_beside_the_progress_of_a_job_that_did_not_exit_0_is_interim(
    tmp_path: Path,
) -> None:
    write_document(tmp_path, {"metrics": {"top1": 40.0}})
    write_progress(tmp_path, point_id=0, epoch=2, step=0, reason="deadline")
    outcome, check = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert (outcome.verdict, outcome.position) == (Verdict.INCOMPLETE, (2, 0))
    assert check is not None and check.result is None and not check.contract
    assert check.rejected is not None and check.rejected.exists()  # kept, not deleted
    assert "exited 3 (incomplete) at epoch 2" in check.reason
    assert "exited 3" in check.rejected.with_suffix(".reason.txt").read_text()
    assert not (tmp_path / RESULT_FILE).exists(), "the next segment writes a fresh one"


def test_a_job_that_exited_0_is_measured_by_its_result_even_beside_a_progress_file(
    tmp_path: Path,
) -> None:
    write_document(tmp_path, {"metrics": {"top1": 40.0}})
    write_progress(tmp_path, point_id=0, epoch=2, step=0, reason="deadline")
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "l", exited_zero=True)
    assert outcome.verdict is Verdict.DONE and outcome.result is not None


def test_a_result_followed_by_a_crash_without_progress_is_still_measured(tmp_path: Path) -> None:
    write_document(tmp_path, {"metrics": {"top1": 40.0}})
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert outcome.verdict is Verdict.DONE
    assert not (tmp_path / PROGRESS_FILE).exists()


def test_a_progress_file_left_beside_the_final_result_does_not_make_it_interim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command that saves its position every epoch and exits 0: a controller the
    scheduler tells no exit status (Slurm without accounting) still measures it."""
    write_document(tmp_path, {"metrics": {"top1": 40.0}})
    write_progress(tmp_path, point_id=0, epoch=3, step=0, reason="saved every epoch")
    assert settle(tmp_path, EXIT_COMPLETE, 0, None, 1) == EXIT_COMPLETE
    assert not (tmp_path / PROGRESS_FILE).exists()
    kept = json.loads((tmp_path / SUPERSEDED_PROGRESS_FILE).read_text())
    assert kept["reason"] == "saved every epoch"
    assert SUPERSEDED_PROGRESS_FILE in capsys.readouterr().err
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert outcome.verdict is Verdict.DONE and outcome.result is not None


def test_only_rank_0_and_only_a_completed_command_renames_the_progress_file(
    tmp_path: Path,
) -> None:
    write_progress(tmp_path, point_id=0, epoch=3, step=0, reason="deadline")
    write_document(tmp_path, {"metrics": {"top1": 40.0}})
    assert settle(tmp_path, EXIT_COMPLETE, 1, None, 2) == EXIT_COMPLETE
    assert settle(tmp_path, EXIT_INCOMPLETE, 0, None, 1) == EXIT_INCOMPLETE
    assert (tmp_path / PROGRESS_FILE).exists()
    assert not (tmp_path / SUPERSEDED_PROGRESS_FILE).exists()


#: Two segments with nas.trial: the first writes a "result so far" and exits 3.
SEGMENTS = """
import json
from nas import trial
checkpoint = trial.checkpoint_path()
done = json.loads(checkpoint.read_text())["epoch"] if checkpoint.exists() else 0
trial.report(done + 1, loss=1.0 / (done + 1))
if done == 0:
    checkpoint.write_text(json.dumps({"epoch": 1}))
    trial.write_result({"score": -5.0})
    trial.exit_incomplete(1)
trial.write_result({"score": -1.0}, epochs=2)
"""


def test_an_interim_result_of_a_segment_that_exits_3_does_not_end_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, SEGMENTS)
    with StateStore.open(state) as store:
        points = store.state.points
        assert [(p.status.value, p.value, p.segment) for p in points] == [("done", -1.0, 1)] * 2
        assert all([e["epoch"] for e in store.state.curves[p.id]] == [1, 2] for p in points)
    ingests = messages(state, "ingest")
    assert len(ingests) == 2 and not any("ended" in m for m in ingests), ingests
    rejects = messages(state, "reject")
    assert len(rejects) == 2 and all("exited 3 (incomplete)" in m for m in rejects), rejects
    kept = tmp_path / "state" / "own" / "points" / "0" / "result.rejected-1.json"
    assert json.loads(kept.read_text())["metrics"] == {"score": -5.0}


# --------------------------------------------------------------------------- finding 2


@pytest.mark.parametrize(
    ("device", "gpu"),
    [("cuda", True), ("cuda:0", True), ("CUDA", True), ("xpu:1", True), (" Cuda:3 ", True),
     ("GPU", True), ("cpu", False), ("mps", False), ("cudax", False), (0, False), (None, False)],
)  # fmt: skip
def test_the_device_type_decides_whatever_its_index_or_case(device: object, gpu: bool) -> None:
    assert gpu_device(device) is gpu


def test_a_result_without_a_device_counts_what_its_job_asked_for() -> None:
    result = Result(metrics={"top1": 1.0}, device_hours=0.5)
    assert result.counted_gpu_hours(job_gpus=True) == (0.5, "")
    assert result.counted_gpu_hours(job_gpus=False) == (0.0, NO_DEVICE)
    assert result.gpu_hours == 0.0  # what the file alone proves
    on_gpu = Result(metrics={"top1": 1.0}, device="cuda:0", device_hours=0.5)
    assert (
        on_gpu.counted_gpu_hours(job_gpus=False)
        == (0.5, "")
        == on_gpu.counted_gpu_hours(job_gpus=True)
    )  # counted once, not per GPU of the node
    on_cpu = Result(metrics={"top1": 1.0}, device="cpu", device_hours=0.5)
    assert on_cpu.counted_gpu_hours(job_gpus=True)[0] == 0.0
    assert "'cpu'" in on_cpu.counted_gpu_hours(job_gpus=True)[1]


def device_script(device: str | None) -> str:
    extra = "" if device is None else f", device={device!r}"
    return f"from nas import trial\ntrial.write_result({{'score': 1.0}}, device_hours=0.5{extra})\n"


@pytest.mark.parametrize(
    ("device", "gpus_per_node", "spent", "note"),
    [("cuda:0", 0, 0.5, False), (None, 1, 0.5, False), (None, 0, 0.0, True)],
    ids=["cuda:0", "no device, gpus asked", "no device, none asked"],
)
def test_gpu_hours_reach_the_budget_or_the_ingest_event_says_why_not(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    device: str | None,
    gpus_per_node: int,
    spent: float,
    note: bool,
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, device_script(device), cluster={"gpus_per_node": gpus_per_node},
                   max_gpu_hours=100.0)  # fmt: skip
    with StateStore.open(state) as store:
        assert [p.gpu_hours for p in store.state.points] == [spent, spent]
    said = [("not counted as GPU-hours" in m and NO_DEVICE in m) for m in messages(state, "ingest")]
    assert said == [note, note]


# --------------------------------------------------------------------------- finding 3

GOOD = {"metrics": {"top1": 71.5}, "point_id": 4, "params": PARAMS, "rank": 0}


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("epochs", 0, "expected at least 1, got 0"),
        ("data_wait_share", 1.5, "expected at most 1.0, got 1.5"),
        ("device_hours", -0.001, "expected at least 0.0, got -0.001"),
        ("world_size", 0, "expected at least 1, got 0"),
        ("wall_seconds", "12", "expected a number, got str '12'"),
        ("device", 0, "expected a string, got int 0"),
        ("epochs", True, "expected an integer, got bool True"),
    ],
)
def test_a_wrong_optional_figure_is_dropped_and_named_not_refused(
    tmp_path: Path, key: str, value: object, why: str
) -> None:
    path = write_document(tmp_path, {**GOOD, key: value, "images_per_second": 10.0})
    result = validate_result(path, 4, PARAMS)
    assert result.metrics == {"top1": 71.5} and getattr(result, key) is None
    assert result.images_per_second == 10.0  # the good figures stay
    assert result.dropped == (f"{key} ({why})",)


def test_a_not_finite_figure_is_still_named_by_its_value_alone(tmp_path: Path) -> None:
    path = tmp_path / RESULT_FILE
    path.write_text(json.dumps({**GOOD, "device_hours": float("nan"), "epochs": None}))
    assert validate_result(path, 4, PARAMS).dropped == ("device_hours (nan)",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"metrics": {"top1": 1}}]', "expected a JSON object, got list"),
        ('{"metric": {"top1": 1}}', "metrics: missing required key"),
        ('{"metrics": [1]}', "metrics: expected a table"),
        ('{"metrics": {"top1": 1}, "format": 2}', "format: unsupported format 2"),
        ('{"metrics": {"top1": 1, "top1": 2}}', "key 'top1' given twice"),
        ('{"metrics": {"top1": 1}, "point_id": "4"}', "point_id: expected an integer"),
        ('{"metrics": {"top5": 1}}', "metrics has no 'top1'"),
    ],
    ids=["list", "no metrics", "metrics a list", "format", "key twice", "point_id type", "metric"],
)
def test_a_result_of_the_wrong_shape_breaks_the_contract(
    tmp_path: Path, text: str, reason: str
) -> None:
    (tmp_path / RESULT_FILE).write_text(text)
    with pytest.raises(ResultError, match=reason) as caught:
        validate_result(tmp_path / RESULT_FILE, 4, PARAMS)
    assert caught.value.contract


@pytest.mark.parametrize(
    "text",
    ['{"metrics": {"top1": 1', '{"metrics": {"top1": NaN}}'],
    ids=["torn", "nan"],
)
def test_a_result_another_attempt_may_mend_is_retried(tmp_path: Path, text: str) -> None:
    (tmp_path / RESULT_FILE).write_text(text)
    with pytest.raises(ResultError) as caught:
        validate_result(tmp_path / RESULT_FILE, 4, PARAMS)
    assert not caught.value.contract


def writing(document: str) -> str:
    """A training script that writes ``document`` (a Python literal) as its result.json."""
    return (
        "import json, os\nfolder = os.environ['SPLINENAS_POINT_DIR']\n"
        f"doc = {document}\n"
        "open(os.path.join(folder, 'result.json'), 'w').write(json.dumps(doc))\n"
    )


def test_a_bad_optional_figure_costs_no_training_and_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(
        tmp_path, writing("{'metrics': {'score': 1.0}, 'epochs': 0, 'data_wait_share': 1.5}")
    )
    with StateStore.open(state) as store:
        assert [p.status.value for p in store.state.points] == ["done", "done"]
    assert jobs(state) == 2  # nothing retried
    dropped = "dropped from result.json: epochs (expected at least 1, got 0), data_wait_share ("
    assert all(dropped in m for m in messages(state, "ingest")), messages(state, "ingest")


def test_a_result_of_the_wrong_shape_fails_its_point_once_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, writing("{'metrics': {'score': 1.0}, 'format': 2}"))
    with StateStore.open(state) as store:
        points = store.state.points
    assert [p.status.value for p in points] == ["failed", "failed"]
    assert all("format: unsupported format 2" in p.reason for p in points), points
    assert not any("attempt" in p.reason for p in points)
    assert jobs(state) == 2  # one job per point: none retried


# ------------------------------------------------------------ a curve longer than the state keeps

LONG_CURVE = """\
from nas import trial
figures = {f"figure_{i:02d}": 0.123456789 * i for i in range(30)}
for epoch in range(1, 1501):
    trial.report(epoch, loss=1.0 / epoch, **figures)
trial.write_result({"score": 1.0}, epochs=1500)
"""


def test_a_curve_longer_than_the_state_keeps_is_said_to_be_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file keeps every epoch; the state its last MiB, and the event says which."""
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, LONG_CURVE, max_points=1, batch_size=1)
    with StateStore.open(state) as store:
        kept = [e["epoch"] for e in store.state.curves[0]]
    assert kept[-1] == 1500 and kept[0] > 1
    said = messages(state, "curve")
    assert len(said) == 1 and f"epochs {kept[0]}-1500 kept" in said[0], said
    folder = tmp_path / "state" / "own" / "points" / "0"
    assert len((folder / "curve.jsonl").read_text().splitlines()) == 1500


LONG_DIVERGED = LONG_CURVE.replace(
    'trial.write_result({"score": 1.0}, epochs=1500)', "raise SystemExit(5)"
)


def test_a_run_that_diverges_after_a_long_curve_is_read_as_diverged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its ``error.json`` carries the curve's last entries, not all: it stays readable."""
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, LONG_DIVERGED, max_points=1, batch_size=1)
    folder = tmp_path / "state" / "own" / "points" / "0"
    reports = sorted(folder.glob("error*.json"))
    assert reports and all(p.stat().st_size < 1_000_000 for p in reports)
    report = json.loads(reports[0].read_text())
    assert report["kind"] == "diverged" and report["curve"][-1]["epoch"] == 1500
    assert 0 < report["curve_entries_left_out"] <= 1500 - len(report["curve"])
    with StateStore.open(state) as store:
        point = store.state.point(0)
    assert point.extra.get("diverged"), (point.status, point.reason)
    assert not list(folder.glob("error.rejected-*")), "the report was not set aside"
