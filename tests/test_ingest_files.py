"""Files a job leaves are read bounded and type-checked: nothing it writes can hang or flood us.

A FIFO, a symlink (to /dev/zero or to another point's result), a directory
or a 2 GB sparse file as ``result.json`` is set aside with a reason like a
corrupt result; the same shapes as ``progress.json``, ``error.json`` or the
log never block the controller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nas.control.ingest import Verdict, check_result, judge, log_tail
from nas.pointdir import jsonio
from nas.pointdir.layout import ERROR_FILE, PROGRESS_FILE, RESULT_FILE
from nas.pointdir.result import Result, write_result

PARAMS = {"g1": 8}


def good_result(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    result = Result(
        point_id=0, params=PARAMS, metrics={"top1": 70.0, "top5": 90.0}, val_images=10,
        bad_images=0, epochs=1, world_size=1, device="cpu", device_hours=0.0,
        wall_seconds=1.0, started="2024-01-01T00:00:00+00:00",
        finished="2024-01-01T00:00:01+00:00", package_version="t", input_hash="ab" * 32,
    )  # fmt: skip
    return write_result(folder, result)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def directory(path: Path) -> None:
    path.mkdir()


def other_points_result(path: Path) -> None:
    path.symlink_to(good_result(path.parent.parent / "1"))


def sparse_2gb(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(2 * 1024**3)


HOSTILE = {
    "fifo": (fifo, "is a FIFO, not a regular file"),
    "dev-zero": (dev_zero, "is a symbolic link"),
    "directory": (directory, "is a directory, not a regular file"),
    "other-point": (other_points_result, "is a symbolic link"),
    "sparse-2gb": (sparse_2gb, "is 2147483648 bytes, over the limit of 1000000"),
}


@pytest.mark.parametrize("make", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_result_file_is_set_aside_with_its_reason(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "points" / "0"
    folder.mkdir(parents=True)
    build, reason = HOSTILE[make]
    build(folder / RESULT_FILE)
    check = check_result(folder, 0, PARAMS)
    assert check is not None and check.result is None
    assert reason in check.reason
    assert check.rejected is not None and check.rejected.name == "result.rejected-1.json"
    assert not os.path.lexists(folder / RESULT_FILE), "the next job can write a fresh one"
    assert reason in check.rejected.with_suffix(".reason.txt").read_text()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"metrics": {"top1": 90.0, "top1": 10.0}}', "top1"),
        ('{"metrics": {"top1": 90.0}, "metrics": {"top1": 10.0}}', "metrics"),
    ],
    ids=["metric", "metrics"],
)
def test_a_result_with_a_key_given_twice_is_set_aside_not_guessed(
    tmp_path: Path, text: str, key: str
) -> None:
    """Which of two values was measured is unknown: taking the last would guess."""
    (tmp_path / RESULT_FILE).write_text(text)
    check = check_result(tmp_path, 0, PARAMS)
    assert check is not None and check.result is None
    assert f"key {key!r} given twice" in check.reason
    assert check.rejected is not None
    assert f"key {key!r} given twice" in check.rejected.with_suffix(".reason.txt").read_text()


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "directory", "sparse-2gb"])
def test_hostile_progress_error_and_log_files_never_block_the_verdict(
    tmp_path: Path, make: str
) -> None:
    build, _ = HOSTILE[make]
    for name in (PROGRESS_FILE, ERROR_FILE, "job.log"):
        build(tmp_path / name)
    outcome, check = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert (outcome.verdict, check) == (Verdict.FAILED, None)
    assert outcome.detail.startswith("no result file; log tail:\n")
    assert len(outcome.detail) < 2100, "the log's tail is bounded"
    if make != "sparse-2gb":
        assert "(no log: " in log_tail(tmp_path / "job.log")


def test_a_progress_file_with_wrong_types_is_not_taken_for_progress(tmp_path: Path) -> None:
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"epochs_completed": "3", "reason": "x"}))
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "none.log")
    assert outcome.verdict is Verdict.FAILED


def test_the_size_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = good_result(tmp_path)
    assert check_result(tmp_path, 0, PARAMS).result is not None  # type: ignore[union-attr]
    good_result(tmp_path)
    monkeypatch.setenv("SPLINENAS_MAX_JSON_BYTES", "100")
    with pytest.raises(ValueError, match="over the limit of 100"):
        jsonio.read_json_object(path)
