"""Learning curves: the stratified subset, curve.jsonl, digits runs, resume and the divergence guard."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nas.config import DataConfig, TrainConfig
from nas.data.dataset import IndexedImages, curve_subset, dataset_labels
from nas.data.index import VALIDATION, scan_tree, stratified_subset
from nas.pointdir.curve import (
    CURVE_FIELDS,
    append_entry,
    keep_until,
    last_entry,
    make_entry,
    read_curve,
    write_curve,
)
from nas.pointdir.layout import CURVE_FILE, EXIT_COMPLETE, EXIT_DIVERGED, EXIT_INCOMPLETE
from nas.pointdir.point import write_point_file
from nas.train.__main__ import main
from nas.train.curve import chance_level, chance_streak

sys.path.insert(0, str(Path(__file__).parent))
from test_train_run import FIXED, PARAMS  # noqa: E402

#: Images per class of the test tree: long-tailed like ImageNet-22K.
CLASS_SIZES = {"c0": 120, "c1": 60, "c2": 30, "c3": 9, "c4": 3}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    for name, size in CLASS_SIZES.items():
        (root / name).mkdir()
        for i in range(size):
            (root / name / f"{i}.png").touch()  # the scan reads names, never pixels
    return scan_tree(root, seed=3)


def test_subset_is_stratified_by_class_on_the_image_index(index):
    validation = IndexedImages(index, VALIDATION, train=False, resolution=8)
    labels = dataset_labels(validation)
    sizes = np.bincount(labels)
    for size in (5, 17, 40, len(validation) - 1):
        subset = curve_subset(validation, size, seed=0)
        counts = np.bincount(labels[subset.indices], minlength=sizes.size)
        assert counts.sum() == size and len(set(subset.indices)) == size
        assert (counts >= 1).all()  # every class appears once the size allows one each
        share = (size - sizes.size) * (sizes - 1) / (sizes.sum() - sizes.size)
        assert np.all(np.abs(counts - 1 - share) < 1.0), (size, counts, share)
    assert curve_subset(validation, 10**6, seed=0).indices == list(range(len(validation)))


def test_subset_depends_on_labels_size_and_seed_only(index):
    labels = index.labels[index.positions(VALIDATION)]
    first = stratified_subset(labels, 20, seed=4)
    assert np.array_equal(first, stratified_subset(labels.copy(), 20, seed=4))
    assert not np.array_equal(first, stratified_subset(labels, 20, seed=5))
    assert np.all(np.diff(first) > 0)
    few = stratified_subset(labels, 3, seed=4)  # fewer images than classes: the largest win
    assert few.size == 3 and set(labels[few]) <= {0, 1, 2}


def entry(epoch: int, top1: float = 50.0, loss: float = 1.0) -> dict:
    return make_entry(
        epoch=epoch, images=10 * epoch, loss=loss, top1=top1, top5=90.0, lr=0.1, seconds=epoch
    )


def test_curve_file_appends_by_epoch_and_never_duplicates(tmp_path):
    append_entry(tmp_path, entry(1))
    append_entry(tmp_path, entry(2))
    append_entry(tmp_path, entry(2, top1=60.0))  # a repeated epoch replaces its entry
    append_entry(tmp_path, entry(3, loss=float("nan")))
    curve = read_curve(tmp_path)
    assert [e["epoch"] for e in curve] == [1, 2, 3]
    assert curve[1]["top1"] == 60.0 and curve[2]["loss"] is None
    assert list(curve[0]) == list(CURVE_FIELDS)
    assert last_entry(tmp_path)["epoch"] == 3
    assert [e["epoch"] for e in keep_until(tmp_path, 1)] == [1]
    assert [e["epoch"] for e in read_curve(tmp_path)] == [1]


def test_curve_reader_is_bounded_and_skips_what_is_not_an_entry(tmp_path):
    write_curve(tmp_path, [entry(e) for e in range(1, 201)])
    with open(tmp_path / CURVE_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"epoch": "x"}\nnot json\n[1, 2]\n')
    tail = read_curve(tmp_path, max_bytes=1000)
    assert 0 < len(tail) < 10 and tail[-1]["epoch"] == 200
    assert tail == read_curve(tmp_path)[-len(tail) :]
    assert read_curve(tmp_path / "missing") == [] and last_entry(tmp_path / "missing") is None


def test_chance_streak_counts_only_evaluations_after_the_warm_up():
    curve = [entry(1, 5.0), entry(2, 30.0), entry(3, 5.0), entry(4, 5.0), entry(5, 5.0)]
    assert chance_streak(curve, 10.0, after_epoch=1) == 3
    assert chance_streak(curve, 10.0, after_epoch=4) == 1
    assert chance_streak(curve[:2], 10.0, after_epoch=0) == 0
    assert chance_level(np.array([0, 0, 0, 1])) == 75.0


# --------------------------------------------------------------------------- trainer runs


def write_point(directory, *, epochs=2, steps=3, lr=0.1, seed=7, **train):
    write_point_file(
        directory,
        point_id=1,
        experiment="test",
        family="resnet",
        params=PARAMS,
        fixed=FIXED,
        data=DataConfig(kind="digits", resolution=16),
        train=TrainConfig(
            epochs=epochs,
            batch_per_gpu=16,
            log_every=1,
            max_steps_per_epoch=steps,
            lr=lr,
            curve_images=120,
            **train,
        ),
        seed=seed,
    )
    return directory


def test_a_digits_run_records_one_entry_per_epoch_on_the_same_subset(tmp_path, capsys):
    from nas.data.dataset import build_splits
    from nas.pointdir.point import read_point_file
    from nas.train.curve import Curve
    from nas.train.launch import DistEnv

    point = write_point(tmp_path / "a")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_COMPLETE
    curve = read_curve(point)
    assert [e["epoch"] for e in curve] == [1, 2]
    assert [e["images"] for e in curve] == [48, 96]  # 3 steps of 16 images per epoch
    assert all(0 <= e["top1"] <= e["top5"] <= 100 and e["loss"] > 0 for e in curve)
    assert curve[0]["seconds"] < curve[1]["seconds"]
    assert "subset top-1" in capsys.readouterr().out

    def subset_of(directory):
        config = read_point_file(directory)
        splits = build_splits(config.data)
        return Curve(
            point_dir=directory,
            validation=splits.validation,
            data_seed=config.data.seed,
            config=config.train,
            dist_env=DistEnv("none", rank=0, world_size=1, local_rank=0),
            make_loader=lambda subset, shard: None,
        ).indices

    other = write_point(tmp_path / "b", seed=99, lr=0.05)
    assert subset_of(point) == subset_of(other) and len(subset_of(point)) == 120


def test_a_resumed_run_has_a_gap_free_curve(tmp_path):
    point = write_point(tmp_path / "p", epochs=3, steps=2)
    assert main(["--point-dir", str(point), "--segment-epochs", "1"], environ={}) == EXIT_INCOMPLETE
    assert [e["epoch"] for e in read_curve(point)] == [1]
    # A segment killed after its evaluation but before its checkpoint left epoch 2;
    # a stale epoch 5 is left from an earlier training of the folder.
    append_entry(point, entry(2, top1=99.0))
    append_entry(point, entry(5))
    code = main(["--point-dir", str(point), "--deadline", str(time.time() + 1)], environ={})
    assert code == EXIT_INCOMPLETE  # stopped by the deadline before its first step
    assert [e["epoch"] for e in read_curve(point)] == [1]
    assert main(["--point-dir", str(point)], environ={}) == EXIT_COMPLETE
    curve = read_curve(point)
    assert [e["epoch"] for e in curve] == [1, 2, 3]
    assert curve[1]["top1"] != 99.0 and [e["images"] for e in curve] == [32, 64, 96]


def test_an_absurd_learning_rate_is_stopped_within_one_evaluation(tmp_path, capsys):
    point = write_point(tmp_path / "p", epochs=6, steps=3, lr=1e6)
    deadline = time.time() + 3600
    assert (
        main(["--point-dir", str(point), "--deadline", str(deadline)], environ={}) == EXIT_DIVERGED
    )
    error = json.loads((point / "error.json").read_text())
    assert error["kind"] == "diverged" and "not finite" in error["message"]
    assert error["epoch"] <= 1 and len(error["curve"]) <= 1
    assert error["curve"] == read_curve(point)
    assert 0 < error["saved_seconds"] < 3600  # the steps left, which end before the deadline
    assert error["saved_device_hours"] == pytest.approx(error["saved_seconds"] / 3600)
    assert not (point / "result.json").exists() and not (point / "progress.json").exists()
    assert "diverged" in capsys.readouterr().out
