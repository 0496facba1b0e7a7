"""point.json, result.json, error.json and progress.json: the trainer's contracts."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nas.config import DataConfig, TrainConfig
from nas.pointdir.point import PointFileError, point_hash, read_point_file, write_point_file
from nas.pointdir.result import (
    Result,
    ResultError,
    validate_result,
    write_error,
    write_progress,
    write_result,
)
from nas.train.__main__ import is_out_of_memory

PARAMS = {"c1": 8, "g1": 16.0}


def _write(directory, **overrides):
    values = dict(
        point_id=4,
        experiment="demo",
        family="resnet",
        params=PARAMS,
        fixed={"block": "basic"},
        data=DataConfig(kind="digits", resolution=16),
        train=TrainConfig(epochs=2),
        seed=3,
    )
    values.update(overrides)
    return write_point_file(directory, **values)


def test_point_file_round_trip(tmp_path):
    path = _write(tmp_path / "p")
    point = read_point_file(tmp_path / "p")
    assert path.name == "point.json"
    assert (point.point_id, point.family, point.seed, point.metric) == (4, "resnet", 3, "top1")
    assert point.data == DataConfig(kind="digits", resolution=16)
    assert point.train == TrainConfig(epochs=2)
    assert point.model_params() == {"block": "basic", **PARAMS}
    assert len(point_hash(tmp_path / "p")) == 64


def test_writer_refuses_what_the_reader_would_reject(tmp_path):
    with pytest.raises(PointFileError, match=r"params\.width: expected a finite number"):
        _write(tmp_path, params={"width": float("nan")})
    assert not (tmp_path / "point.json").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("experiment"), "experiment: missing required key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d.update(point_id="7"), "point_id: expected an integer"),
        (lambda d: d.update(format=9), "format: unsupported format 9"),
        (lambda d: d.update(num_classes=1), "num_classes: expected at least 2"),
        (lambda d: d["params"].update(w=[1]), r"params\.w: expected a number"),
        (lambda d: d["train"].update(epochs=0), r"\[train\] epochs: expected at least 1"),
        (lambda d: d["data"].update(colour=True), r"\[data\] colour: unknown key"),
    ],
)
def test_reader_names_file_and_key(tmp_path, edit, message):
    path = _write(tmp_path)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(PointFileError, match=message) as info:
        read_point_file(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("family"), "family: missing; the built-in trainer needs it"),
        (lambda d: d.pop("data"), "data: missing; the built-in trainer needs it"),
        (lambda d: d.update(metric="loss"), "metric: the built-in trainer measures 'top1', 'top5'"),
    ],
)
def test_the_builtin_trainer_refuses_a_point_of_a_command(tmp_path, edit, message):
    path = _write(tmp_path)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    point = read_point_file(tmp_path)  # a valid point of a [train] command
    with pytest.raises(PointFileError, match=message):
        point.builtin(path)


def test_reader_rejects_non_json(tmp_path):
    (tmp_path / "point.json").write_text("{nope")
    with pytest.raises(PointFileError, match="not valid JSON"):
        read_point_file(tmp_path)


def _result(**overrides) -> Result:
    values = dict(
        point_id=4,
        params=PARAMS,
        metrics={"top1": 71.5, "top5": 90.0},
        val_images=403,
        bad_images=0,
        epochs=2,
        world_size=2,
        device="cuda",
        device_hours=1.5,
        wall_seconds=2700.0,
        started="2024-01-01T00:00:00+00:00",
        finished="2024-01-01T00:45:00+00:00",
        package_version="0.1.0",
        input_hash="ab" * 32,
    )
    values.update(overrides)
    return Result(**values)


def test_result_round_trip_and_gpu_hours(tmp_path):
    path = write_result(tmp_path, _result())
    result = validate_result(path, 4, PARAMS)
    assert result == _result()
    assert result.gpu_hours == 1.5
    assert _result(device="cpu").gpu_hours == 0.0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d.update(point_id=5), "point_id 5 but expected 4"),
        (lambda d: d.update(params={"c1": 9}), "params .* differ"),
        (lambda d: d["metrics"].update(top1=100.5), r"metrics\.top1: 100\.5 is outside its valid"),
        (lambda d: d["metrics"].pop("top1"), r"metrics has no 'top1' \(\[experiment\] metric\)"),
        (lambda d: d["metrics"].update(top1="71"), r"metrics\.top1: expected a number, got '71'"),
        (lambda d: d.update(rank=1), "written by rank 1; only rank 0 writes result.json"),
    ],
)
def test_validate_result_gives_the_reason(tmp_path, edit, reason):
    path = write_result(tmp_path, _result())
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(ResultError, match=reason):
        validate_result(path, 4, PARAMS)


def test_validate_result_rejects_nan_and_truncated_files(tmp_path):
    path = tmp_path / "result.json"
    text = json.dumps(_result().to_dict())
    path.write_text(text.replace("71.5", "NaN"))
    with pytest.raises(ResultError, match=r"metrics\.top1: expected a finite number, got nan"):
        validate_result(path, 4, PARAMS)
    path.write_text(
        text.replace('"rank": 0', '"rank": NaN').replace('"format": 1', '"format": NaN')
    )
    with pytest.raises(ResultError, match="format: expected an integer, got float nan"):
        validate_result(path, 4, PARAMS)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ResultError, match="not valid JSON"):
        validate_result(path, 4, PARAMS)


def test_a_side_figure_that_is_not_finite_costs_no_measurement(tmp_path):
    """Python's json.dump writes NaN: a NaN validation loss or device-hours figure is
    dropped and named, the searched metric kept."""
    path = write_result(tmp_path, _result(metrics={"top1": 71.5, "top5": 90.0}))
    document = json.loads(path.read_text())
    document["metrics"].update(val_loss=math.nan, note="n/a")
    document.update(device_hours=math.inf, images_per_second=-math.inf)
    path.write_text(json.dumps(document))
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()
    result = validate_result(path, 4, PARAMS)
    assert result.metrics == {"top1": 71.5, "top5": 90.0}
    assert (result.device_hours, result.images_per_second, result.wall_seconds) == (
        None, None, 2700.0
    )  # fmt: skip
    assert sorted(result.dropped) == [
        "device_hours (inf)", "images_per_second (-inf)", "metrics.note ('n/a')",
        "metrics.val_loss (nan)",
    ]  # fmt: skip
    assert "dropped" not in result.to_dict()
    document["device_hours"] = -1.0  # a wrong figure: dropped and named too
    path.write_text(json.dumps(document))
    assert (
        "device_hours (expected at least 0.0, got -1.0)" in validate_result(path, 4, PARAMS).dropped
    )


def test_first_error_report_wins(tmp_path):
    try:
        raise ValueError("broken data")
    except ValueError as exc:
        assert write_error(tmp_path, rank=3, exc=exc, oom=False)
    assert not write_error(tmp_path, rank=0, exc=RuntimeError("later"), oom=False)
    report = json.loads((tmp_path / "error.json").read_text())
    assert (report["rank"], report["exception"], report["message"]) == (
        3,
        "ValueError",
        "broken data",
    )
    assert report["oom"] is False and "broken data" in report["traceback"][-1]
    assert [p.name for p in tmp_path.iterdir()] == ["error.json"]  # no temp files left


def test_progress_file(tmp_path):
    write_progress(tmp_path, point_id=4, epoch=2, step=5, reason="deadline")
    report = json.loads((tmp_path / "progress.json").read_text())
    assert (report["epochs_completed"], report["step_in_epoch"], report["reason"]) == (
        2,
        5,
        "deadline",
    )


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("HIP out of memory"))
    assert not is_out_of_memory(ValueError("out of memory"))
