"""``nas.trial`` at the end of a training: numbers of any real type, and a curve file that only grows.

A script hands numpy scalars and NaN side figures to ``write_result`` and
``report``: the measurement must be written, with what is left out named,
never lost to a traceback from the JSON writer. ``report`` appends to
``curve.jsonl`` and keeps every entry, however long the curve grows.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from nas import trial
from nas.pointdir import curve as curves
from nas.pointdir.layout import CURVE_FILE, EXIT_INCOMPLETE, PROGRESS_FILE, RESULT_FILE
from nas.pointdir.result import Measured, validate_result
from nas.trial.launch import settle

#: 30 own figures per entry: about 900 bytes a line, so 1,500 lines pass the readers' bound.
FIGURES = {f"figure_number_{i:02d}": 0.123456789 * i for i in range(30)}
LONG_CURVE = 1500


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A point folder whose point searches ``score``, as rank 0 of a job sees it."""
    document = {"format": 1, "point_id": 3, "experiment": "e", "params": {"lr": 0.1},
                "fixed": {}, "seed": 2, "metric": "score"}  # fmt: skip
    (tmp_path / "point.json").write_text(json.dumps(document))
    monkeypatch.setenv("SPLINENAS_POINT_DIR", str(tmp_path))
    monkeypatch.setenv("RANK", "0")
    return tmp_path


def result_of(folder: Path) -> dict:
    return json.loads((folder / RESULT_FILE).read_text())


def curve_lines(folder: Path) -> list[dict]:
    """Every line of the curve file that is JSON, read whole (not through the bounded reader)."""
    lines = (folder / CURVE_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


def write_long_curve(folder: Path) -> None:
    """A curve file beyond :data:`nas.pointdir.curve.MAX_CURVE_BYTES`, epochs 1 to 1,500."""
    lines = (json.dumps({"epoch": e, "loss": 1.0 / e, **FIGURES}) for e in range(1, LONG_CURVE + 1))
    (folder / CURVE_FILE).write_text("".join(line + "\n" for line in lines))
    assert (folder / CURVE_FILE).stat().st_size > curves.MAX_CURVE_BYTES


# --------------------------------------------------------------------------- write_result


def test_numpy_scalars_are_written_as_plain_numbers(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trial.write_result(
        {"score": np.float32(0.93), "loss": np.float64(0.1), "steps": np.int64(3)},
        device_hours=np.float32(2.0), epochs=np.int64(4), device="cuda",
    )  # fmt: skip
    document = result_of(folder)
    assert document["metrics"] == pytest.approx({"score": 0.93, "loss": 0.1, "steps": 3.0})
    assert (document["device_hours"], document["epochs"]) == (2.0, 4)
    assert type(document["epochs"]) is int
    assert capsys.readouterr().err == ""  # nothing left out, nothing said
    result = validate_result(folder / RESULT_FILE, 3, {"lr": 0.1}, Measured("score", None))
    assert result.epochs == 4 and result.dropped == ()


def test_a_narrow_float_is_written_as_its_writer_printed_it(folder: Path) -> None:
    """Widened bit for bit, float32 0.93 read 0.9300000071525574 in every table."""
    trial.write_result({"score": np.float32(0.93), "loss": np.float16(0.1)}, epochs=1)
    assert result_of(folder)["metrics"] == {"score": 0.93, "loss": 0.1}  # exactly
    trial.report(epoch=1, images=10, top1=np.float32(71.3))
    assert curve_lines(folder)[-1]["top1"] == 71.3


@pytest.mark.parametrize("unmeasured", [float("nan"), float("inf"), np.float32("nan")])
def test_a_nonfinite_extra_is_left_out_and_named(
    folder: Path, capsys: pytest.CaptureFixture[str], unmeasured: float
) -> None:
    path = trial.write_result({"score": 0.9}, device_hours=unmeasured, epochs=4)
    assert path == folder / RESULT_FILE
    assert result_of(folder) == {"metrics": {"score": 0.9}, "epochs": 4, "rank": 0}
    err = capsys.readouterr().err
    assert "leaves out figures that are not finite" in err and "device_hours" in err


def test_a_numpy_secondary_metric_is_kept_and_a_nan_one_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trial.write_result({"score": 0.9, "loss": np.float32(0.5), "val": np.float32("nan")})
    assert result_of(folder)["metrics"] == {"score": 0.9, "loss": 0.5}
    err = capsys.readouterr().err
    assert "leaves out metrics that are not finite" in err and "'val'" in err
    assert "'loss'" not in err


@pytest.mark.parametrize("searched", [True, "0.9"])
def test_a_searched_metric_that_is_no_number_is_still_refused(
    folder: Path, searched: object
) -> None:
    with pytest.raises(trial.TrialError, match="metrics must be finite numbers"):
        trial.write_result({"score": searched, "loss": 0.5})
    assert not (folder / RESULT_FILE).exists()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"params": {"lr": np.float32(0.1)}}, "params"),
        ({"model": object()}, "model"),
        ({"tags": {"a", "b"}}, "tags"),
        ({"history": [1.0, float("nan")]}, "history"),
    ],
)
def test_an_extra_json_cannot_hold_is_named_before_anything_is_written(
    folder: Path, extra: dict, key: str
) -> None:
    with pytest.raises(trial.TrialError, match=f"write_result: {key} cannot be written"):
        trial.write_result({"score": 0.9}, **extra)
    assert not (folder / RESULT_FILE).exists()


# --------------------------------------------------------------------------- report


def test_report_takes_numpy_scalars(folder: Path) -> None:
    trial.report(np.int64(1), images=np.int64(32), loss=np.float32(0.5), lr=np.float64(0.1))
    trial.report(2.0, loss=np.float32("nan"))  # a whole float epoch is that epoch
    first, second = curve_lines(folder)
    assert (first["epoch"], first["images"], first["loss"]) == (1, 32, 0.5)
    assert (second["epoch"], second["loss"]) == (2, None)
    assert type(second["epoch"]) is int


@pytest.mark.parametrize(
    ("call", "name"),
    [
        ({"epoch": 1.5}, "epoch"),
        ({"epoch": np.float32(1.2)}, "epoch"),
        ({"epoch": float("nan")}, "epoch"),
        ({"epoch": True}, "epoch"),
        ({"epoch": -1}, "epoch"),
        ({"epoch": 1, "images": -5}, "images"),
        ({"epoch": 1, "images": 12.5}, "images"),
    ],
)
def test_report_refuses_an_epoch_or_count_that_is_no_whole_number(
    folder: Path, call: dict, name: str
) -> None:
    with pytest.raises(trial.TrialError, match=f"report: {name} must be a whole number >= 0"):
        trial.report(**call)
    assert not (folder / CURVE_FILE).exists()


def test_report_names_a_figure_that_is_no_number(folder: Path) -> None:
    with pytest.raises(trial.TrialError, match="report: loss='high': every figure a number"):
        trial.report(1, loss="high")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- curve.jsonl grows


def test_report_beyond_the_readers_bound_keeps_the_first_epochs(folder: Path) -> None:
    write_long_curve(folder)
    trial.report(LONG_CURVE + 1, loss=0.1, **FIGURES)
    epochs = [line["epoch"] for line in curve_lines(folder)]
    assert epochs == list(range(1, LONG_CURVE + 2))


def test_report_appends_without_rewriting(folder: Path) -> None:
    trial.report(1, loss=1.0)
    before, inode = (folder / CURVE_FILE).read_bytes(), (folder / CURVE_FILE).stat().st_ino
    trial.report(2, loss=0.5)
    trial.report(2, loss=0.25)  # a resumed segment repeats epoch 2: readers take the last
    assert (folder / CURVE_FILE).read_bytes().startswith(before)
    assert (folder / CURVE_FILE).stat().st_ino == inode
    assert [(e["epoch"], e["loss"]) for e in curves.read_curve(folder)] == [(1, 1.0), (2, 0.25)]


def test_a_torn_last_line_costs_only_itself(folder: Path) -> None:
    """A crash mid-write leaves a line without its end: the next entry starts a line of its own."""
    (folder / CURVE_FILE).write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "lo')
    trial.report(2, loss=0.5)
    assert [(e["epoch"], e["loss"]) for e in curves.read_curve(folder)] == [(1, 1.0), (2, 0.5)]
    assert (folder / CURVE_FILE).read_text().endswith("\n")


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_report_neither_writes_through_a_link_nor_blocks_on_a_fifo(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, planted: str
) -> None:
    victim = tmp_path_factory.mktemp("elsewhere") / "victim.txt"
    victim.write_text("the user's file\n")
    if planted == "symlink":
        (folder / CURVE_FILE).symlink_to(victim)
    else:
        os.mkfifo(folder / CURVE_FILE)
    writer = threading.Thread(target=lambda: trial.report(1, loss=0.5), daemon=True)
    writer.start()
    writer.join(timeout=10)
    assert not writer.is_alive(), "report blocked"
    assert victim.read_text() == "the user's file\n"
    assert [e["epoch"] for e in curves.read_curve(folder)] == [1]


def test_keep_until_rewrites_the_whole_file_not_its_tail(folder: Path) -> None:
    write_long_curve(folder)
    kept = curves.keep_until(folder, LONG_CURVE - 10)
    assert [line["epoch"] for line in curve_lines(folder)] == list(range(1, LONG_CURVE - 9))
    assert kept[0]["epoch"] == 1 and kept[-1]["epoch"] == LONG_CURVE - 10


def test_a_bounded_read_says_how_much_it_left_unread(folder: Path) -> None:
    write_long_curve(folder)
    tail = curves.read_curve_tail(folder)
    assert tail.unread_bytes > 0 and tail.entries[0]["epoch"] > 1
    assert tail.entries[-1]["epoch"] == LONG_CURVE
    whole = curves.read_curve_tail(folder, max_bytes=None)
    assert whole.unread_bytes == 0 and len(whole.entries) == LONG_CURVE


@pytest.mark.parametrize("long", [False, True])
def test_exit_3_without_progress_counts_the_last_curve_epoch(folder: Path, long: bool) -> None:
    """Not the number of entries: every 2nd epoch evaluated, or only the file's tail read."""
    if long:
        write_long_curve(folder)
    else:
        for epoch in (2, 4, 6):
            trial.report(epoch, loss=1.0)
    assert settle(folder, EXIT_INCOMPLETE, 0, None, 1) == EXIT_INCOMPLETE
    progress = json.loads((folder / PROGRESS_FILE).read_text())
    assert progress["epochs_completed"] == (LONG_CURVE if long else 6)
