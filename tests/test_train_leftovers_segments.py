"""Segments of ``python -m nas.train`` across a re-saved ``point.json``, the reports that a
final result supersedes, and settings the data cannot train with (usage errors, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch
from test_data_leftovers_train import image_tree, tree_point
from test_train_entry_errors import error_file, verdict
from test_train_run import FIXED, PARAMS, write_point

from nas.config import DataConfig, TrainConfig
from nas.control.ingest import Verdict
from nas.data.dataset import ResumableSampler, build_splits
from nas.pointdir.layout import (
    EXIT_COMPLETE,
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    USAGE_FAILURE,
)
from nas.pointdir.point import point_hash, read_point_file, write_point_file
from nas.pointdir.result import write_error, write_progress
from nas.train.__main__ import main
from nas.train.launch import DistEnv
from nas.train.run import DataMismatch, require_batches


def train(point: Path, *args: str) -> int:
    return main(["--point-dir", str(point), *args], environ={})


def first_segment(directory: Path) -> Path:
    """A point of two one-step epochs, stopped after the first with its checkpoint."""
    point = write_point(directory, epochs=2, steps=1)
    assert train(point, "--segment-epochs", "1") == EXIT_INCOMPLETE
    return point


def file_hash(point: Path) -> str:
    """The input hash earlier versions wrote: SHA-256 of the file's bytes."""
    return hashlib.sha256((point / "point.json").read_bytes()).hexdigest()


def rewrite_checkpoint_hash(point: Path, input_hash: str) -> None:
    path = point / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    payload["input_hash"] = input_hash
    torch.save(payload, path)


# --------------------------------------------------------------------------- input hash


def test_a_point_file_saved_again_in_another_layout_keeps_its_checkpoint(tmp_path, capsys):
    point = first_segment(tmp_path / "p")
    document = json.loads((point / "point.json").read_text())
    resaved = json.dumps(dict(reversed(document.items())), indent=4)  # keys reversed, indent 4
    (point / "point.json").write_text(resaved)
    assert (point / "point.json").read_text() != json.dumps(document, indent=2, sort_keys=True)
    capsys.readouterr()
    assert train(point) == EXIT_COMPLETE
    assert "resuming after epoch 1, step 0" in capsys.readouterr().out
    result = json.loads((point / "result.json").read_text())
    assert result["input_hash"] == point_hash(point) != file_hash(point)


def test_a_checkpoint_and_a_result_of_the_file_hash_stay_this_points(tmp_path, capsys):
    point = first_segment(tmp_path / "p")
    rewrite_checkpoint_hash(point, file_hash(point))  # as written before the document hash
    capsys.readouterr()
    assert train(point) == EXIT_COMPLETE
    assert "resuming after epoch 1, step 0" in capsys.readouterr().out
    result = json.loads((point / "result.json").read_text())
    result["input_hash"] = file_hash(point)
    (point / "result.json").write_text(json.dumps(result))
    rewrite_checkpoint_hash(point, file_hash(point))
    kept = (point / "result.json").read_bytes()
    assert train(point) == EXIT_COMPLETE
    assert "already trained" in capsys.readouterr().out
    assert (point / "result.json").read_bytes() == kept


# --------------------------------------------------------------------------- earlier reports


def plant_earlier_error(point: Path) -> None:
    write_error(point, rank=1, exc=RuntimeError("an earlier segment's crash"), oom=False)
    hour_ago = time.time() - 3600
    os.utime(point / "error.json", (hour_ago, hour_ago))


def test_the_final_result_clears_the_reports_of_earlier_segments(tmp_path):
    point = first_segment(tmp_path / "p")
    assert (point / "progress.json").is_file()
    plant_earlier_error(point)
    (point / "progress.job-1.json").write_text("{}")  # archived by the controller: not ours
    assert train(point) == EXIT_COMPLETE
    assert (point / "result.json").is_file()
    assert not (point / "progress.json").exists() and not (point / "error.json").exists()
    assert (point / "progress.job-1.json").is_file()


def test_a_trained_point_clears_earlier_reports_but_not_this_segments(tmp_path):
    point = write_point(tmp_path / "p", epochs=1, steps=1)
    assert train(point) == EXIT_COMPLETE
    write_progress(point, point_id=1, epoch=0, step=1, reason="deadline")
    os.utime(point / "progress.json", (time.time() - 3600,) * 2)
    write_error(point, rank=1, exc=RuntimeError("another rank, meanwhile"), oom=False)
    later = time.time() + 3600  # written after this segment started
    os.utime(point / "error.json", (later, later))
    assert train(point) == EXIT_COMPLETE
    assert not (point / "progress.json").exists()
    assert error_file(point)["message"] == "another rank, meanwhile"


# --------------------------------------------------------------------------- usage errors


def test_fewer_classes_than_the_data_has_is_a_usage_error(tmp_path):
    point = tmp_path / "p"
    write_point_file(
        point,
        point_id=1,
        experiment="test",
        family="resnet",
        params=PARAMS,
        fixed=FIXED,
        num_classes=5,
        data=DataConfig(kind="digits", resolution=16),
        train=TrainConfig(epochs=1, batch_per_gpu=16, max_steps_per_epoch=1),
        seed=7,
    )
    assert train(point) == EXIT_USAGE
    error = error_file(point)
    assert (error["exception"], error["kind"]) == ("DataMismatch", USAGE_FAILURE)
    assert error["exit_code"] == EXIT_USAGE
    assert error["message"].endswith("num_classes: 5, but the data has 10 classes")
    assert verdict(point) is Verdict.USAGE  # the same every attempt: not retried


@pytest.mark.parametrize(("per_class", "images"), [((2, 1), 1), ((1, 1), 0)])
def test_a_training_without_a_batch_is_refused_at_start(tmp_path, per_class, images):
    root = image_tree(tmp_path / "tree", per_class)  # each class gives half its images to training
    point = tree_point(tmp_path / "p", root, batch=4)
    assert train(point) == EXIT_USAGE
    error = error_file(point)
    assert (error["exception"], error["kind"]) == ("DataMismatch", USAGE_FAILURE)
    named = f"[train] batch_per_gpu: 4, but {images} training image(s) over 1 rank(s)"
    assert named in error["message"]
    assert not (point / "result.json").exists() and not (point / "checkpoint.pt").exists()
    assert verdict(point) is Verdict.USAGE


@pytest.mark.parametrize(("train_images", "refused"), [(2, True), (3, False)])
def test_a_rank_without_a_batch_is_refused_on_every_rank(tmp_path, train_images, refused):
    root = image_tree(tmp_path / "tree", (2 * train_images, 1))
    point = read_point_file(tree_point(tmp_path / "p", root, batch=4))
    splits = build_splits(point.data)
    for rank in range(2):
        sampler = ResumableSampler(splits.train, rank, 2, seed=7)
        dist_env = DistEnv("torchrun", rank, 2, rank)
        if not refused:
            require_batches(point, splits, sampler, dist_env, tmp_path / "p")
            continue
        with pytest.raises(DataMismatch, match=r"2 training image\(s\) over 2 rank\(s\)"):
            require_batches(point, splits, sampler, dist_env, tmp_path / "p")
