"""``python -m nas.train`` on image folders that are not what the point expects: a
classifier larger than the data's classes, and a tree of unreadable images, which must
stop the training at its first progress step, not at the end of the epoch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from PIL import Image
from test_train_run import FIXED, PARAMS

from nas.config import DataConfig, TrainConfig
from nas.pointdir.layout import EXIT_COMPLETE, EXIT_ERROR
from nas.pointdir.point import write_point_file
from nas.train.__main__ import main


def image_tree(root: Path, per_class: tuple[int, ...]) -> Path:
    """Class folders ``c0``, ``c1``, ... of ``per_class[k]`` small images that decode."""
    for k, count in enumerate(per_class):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (20, 20), (80 * k, 10 * i, 0)).save(root / f"c{k}" / f"{i}.png")
    return root


def tree_point(
    directory: Path, root: Path, *, batch: int = 4, num_classes: int | None = None, **data
) -> Path:
    """A one-epoch point on the tree at ``root``; ``data`` sets more ``[data]`` keys."""
    settings = {"kind": "imagefolder", "root": str(root), "resolution": 16, "workers": 0}
    write_point_file(
        directory,
        point_id=1,
        experiment="test",
        family="resnet",
        params=PARAMS,
        fixed=FIXED,
        num_classes=num_classes,
        data=DataConfig(**{**settings, **data}),
        train=TrainConfig(epochs=1, batch_per_gpu=batch, log_every=1, curve_images=4),
        seed=7,
    )
    return directory


def train(point: Path) -> int:
    return main(["--point-dir", str(point)], environ={})


def test_a_classifier_larger_than_the_data_trains_with_a_warning(tmp_path, caplog):
    root = image_tree(tmp_path / "tree", (4, 4))
    point = tree_point(tmp_path / "p", root, num_classes=1000)
    with caplog.at_level(logging.WARNING, logger="nas.train.run"):
        assert train(point) == EXIT_COMPLETE
    assert (
        f"[model] num_classes = 1000, but {root} has 2 classes: 998 outputs of the classifier "
        "never get a training image" in caplog.text
    )


def test_unreadable_images_stop_the_training_at_the_first_progress_step(tmp_path):
    root = image_tree(tmp_path / "tree", (16, 16))
    for image in root.rglob("*.png"):
        image.write_bytes(b"")  # a tree that is not there: every open gives nothing
    point = tree_point(tmp_path / "p", root, max_bad_images=3)
    assert train(point) == EXIT_ERROR
    error = json.loads((point / "error.json").read_text())
    assert error["exception"] == "TooManyBadImages"
    assert error["message"] == (
        "4 unreadable images in epoch 1 by step 1 of 4 (max_bad_images = 3); their paths are "
        "in the log"
    )


def test_an_index_its_tree_outgrew_is_a_usage_error_not_retried(tmp_path):
    """The same stale index meets every attempt: one line, exit 2, no retry by the controller."""
    from test_train_entry_errors import error_file, verdict

    from nas.control.ingest import Verdict
    from nas.data.index import scan_tree, write_index
    from nas.pointdir.layout import EXIT_USAGE, USAGE_FAILURE

    root = image_tree(tmp_path / "tree", (4, 4))
    write_index(scan_tree(root), tmp_path / "index.h5")
    image_tree(tmp_path / "more", (4, 4, 4))
    (tmp_path / "more" / "c2").rename(root / "c2")  # a class added after the index
    point = tree_point(tmp_path / "p", root, index=str(tmp_path / "index.h5"))
    assert train(point) == EXIT_USAGE
    error = error_file(point)
    assert error["kind"] == USAGE_FAILURE and "added: 'c2'" in error["message"]
    assert verdict(point) is Verdict.USAGE
