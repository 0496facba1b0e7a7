"""What a job leaves in its point folder cannot crash, hang or redirect the controller.

Integers too large for a float, a FIFO where the learning curve belongs, and a
symlink planted where the controller writes a rejection's reason: each is met
with a reason, an empty curve or another name, never a traceback or a write
through the link.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_ingest_files import PARAMS, good_result

from nas.control.ingest import Verdict, check_result, judge
from nas.pointdir.curve import read_curve
from nas.pointdir.layout import CURVE_FILE, PROGRESS_FILE, RESULT_FILE

HUGE = "1" + "0" * 400  # an int Python reads exactly and no float holds


@pytest.mark.parametrize("where", ["metric", "other metric", "device_hours"])
def test_an_integer_no_float_holds_is_refused_in_the_metric_and_dropped_elsewhere(
    tmp_path: Path, where: str
) -> None:
    """`math.isfinite(10**400)` raises OverflowError: such a number never reaches a float.
    In the searched metric the file is set aside; in a side figure that figure is dropped."""
    document = json.loads(good_result(tmp_path).read_text())
    text = json.dumps(document)
    if where == "metric":
        text = text.replace('"top1": 70.0', f'"top1": {HUGE}')
    elif where == "other metric":
        text = text.replace('"top5": 90.0', f'"top5": {HUGE}')
    else:
        text = text.replace('"device_hours": 0.0', f'"device_hours": {HUGE}')
    assert HUGE in text
    (tmp_path / RESULT_FILE).write_text(text)
    check = check_result(tmp_path, 0, PARAMS)
    assert check is not None
    if where == "metric":
        assert check.result is None and "too large for a number" in check.reason
        assert check.rejected is not None and not (tmp_path / RESULT_FILE).exists()
    else:
        assert check.result is not None and check.result.metrics["top1"] == 70.0
        assert any("too large for a number" in d for d in check.result.dropped)


def test_progress_and_curve_lines_with_such_an_integer_are_skipped(tmp_path: Path) -> None:
    progress = f'{{"epochs_completed": 1, "step_in_epoch": 0, "bus_bandwidth_gbps": {HUGE}}}'
    (tmp_path / PROGRESS_FILE).write_text(progress)
    outcome, _ = judge(tmp_path, 0, PARAMS, cancelled=False, log=tmp_path / "job.log")
    assert outcome.verdict is Verdict.FAILED  # a progress file that is not JSON numbers
    good = {"epoch": 0, "images": 10, "top1": 50.0, "loss": 1.0}
    lines = [json.dumps(good), json.dumps({**good, "epoch": 1}).replace("50.0", HUGE)]
    (tmp_path / CURVE_FILE).write_text("\n".join(lines) + "\n")
    assert [entry["epoch"] for entry in read_curve(tmp_path)] == [0]


def test_a_fifo_as_the_curve_is_read_as_no_curve_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / CURVE_FILE)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(read_curve(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "read_curve blocked on the FIFO"
    assert got == [[]]


@pytest.mark.parametrize("planted", ["symlink", "folder"])
def test_a_name_planted_where_the_reason_goes_is_skipped_not_written_through(
    tmp_path: Path, planted: str
) -> None:
    folder = tmp_path / "points" / "0"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    reason_one = folder / "result.rejected-1.reason.txt"
    if planted == "symlink":
        reason_one.symlink_to(victim)
    else:
        reason_one.mkdir()
    (folder / RESULT_FILE).write_text("{ not json")
    check = check_result(folder, 0, PARAMS)
    assert check is not None and check.rejected is not None
    assert check.rejected.name == "result.rejected-2.json"
    assert "not valid JSON" in check.rejected.with_suffix(".reason.txt").read_text()
    assert victim.read_text() == "the user's file\n"
