"""The image index: scan, per-label split, HDF5 round trip, CLI, and unreadable images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from nas.commands.main import main
from nas.data.images import BAD_LABEL, IndexedImages
from nas.data.index import (
    TRAIN,
    VALIDATION,
    ImageIndexError,
    load_index,
    per_label_split,
    scan_tree,
    write_index,
)

#: class -> image files (PNG and JPEG mixed, one nested folder)
TREE = {
    "ant": ["a0.png", "a1.jpg", "a2.png", "a3.jpeg", "a4.png"],
    "bee": ["b0.jpg", "b1.png", "deep/b2.png", "b3.JPG"],
    "cow": ["c0.png"],
}
CORRUPT = "bee/b4.jpg"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label, files in TREE.items():
        for name in files:
            path = root / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, format="PNG" if name.endswith(".png") else "JPEG")
    (root / CORRUPT).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"")
    return root


def test_scan_finds_images_per_class_and_ignores_the_rest(tree):
    index = scan_tree(tree, seed=0, threads=2)
    assert index.classes == ("ant", "bee", "cow")
    assert len(index) == 11  # 10 images + the corrupt one, which only loading detects
    assert np.bincount(index.labels).tolist() == [5, 5, 1]
    paths = {index.relative_path(i) for i in range(len(index))}
    assert "bee/deep/b2.png" in paths and CORRUPT in paths
    assert not any(p.endswith(".txt") or ".cache" in p for p in paths)
    assert index.path(0).startswith(str(tree))


def test_split_is_per_label_with_the_odd_image_to_validation(tree):
    index = scan_tree(tree, seed=0)
    for label, size in enumerate([5, 5, 1]):
        parts = index.split[index.labels == label]
        assert (parts == TRAIN).sum() == size // 2
        assert (parts == VALIDATION).sum() == size - size // 2


def test_split_is_deterministic_and_depends_on_the_seed():
    labels = np.repeat(np.arange(50), 7)
    first = per_label_split(labels, seed=1)
    assert np.array_equal(first, per_label_split(labels, seed=1))
    assert not np.array_equal(first, per_label_split(labels, seed=2))
    # a label's split does not depend on which other labels exist
    assert np.array_equal(per_label_split(labels[labels == 3], 1), first[labels == 3])


def test_index_file_round_trip_and_moved_root(tree, tmp_path):
    index = scan_tree(tree, seed=5)
    out = tmp_path / "index.h5"
    write_index(index, out)
    loaded = load_index(out)
    assert loaded.classes == index.classes and loaded.seed == 5
    assert np.array_equal(loaded.labels, index.labels)
    assert np.array_equal(loaded.split, index.split)
    assert [loaded.path(i) for i in range(len(loaded))] == [
        index.path(i) for i in range(len(index))
    ]
    moved = tmp_path / "moved"
    shutil.move(tree, moved)
    assert load_index(out, root=str(moved)).path(0).startswith(str(moved))


def test_load_index_rejects_other_files(tmp_path):
    bogus = tmp_path / "x.h5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(ImageIndexError, match="cannot read image index"):
        load_index(bogus)


def test_scan_errors_name_the_folder(tmp_path):
    with pytest.raises(ImageIndexError, match="not a folder"):
        scan_tree(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageIndexError, match="empty: no class folders"):
        scan_tree(tmp_path / "empty")
    with pytest.raises(ImageIndexError, match="no image files"):
        scan_tree(tmp_path)  # one class folder, "empty", without images


def test_cli_index_reports_skew_as_json(tree, tmp_path, capsys):
    out = tmp_path / "i.h5"
    assert main(["data", "index", str(tree), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["images"] == 11 and summary["classes"] == 3
    assert (summary["train"], summary["validation"]) == (4, 7)
    assert summary["class_size"] == {"min": 1, "median": 5.0, "max": 5}
    assert "scanned 3/3 class folders" in captured.err
    assert load_index(out).classes == ("ant", "bee", "cow")


def test_cli_index_failure_and_usage(tmp_path, capsys):
    assert main(["data", "index", str(tmp_path / "nope"), "--out", str(tmp_path / "i.h5")]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert main(["data", "index", str(tmp_path), "--out", "i.h5", "--threads", "0"]) == 2


def test_dataset_decodes_images_and_marks_the_corrupt_one(tree, caplog):
    index = scan_tree(tree, seed=0)
    seen = {}
    for part in (TRAIN, VALIDATION):
        dataset = IndexedImages(index, part, train=part == TRAIN, resolution=16)
        for i in range(len(dataset)):
            image, label = dataset[i]
            assert image.shape == (3, 16, 16)
            seen[index.relative_path(int(dataset.rows[i]))] = (label, image)
    label, image = seen[CORRUPT]
    assert label == BAD_LABEL and torch.count_nonzero(image) == 0
    assert CORRUPT in caplog.text
    assert sum(label == BAD_LABEL for label, _ in seen.values()) == 1
    assert seen["cow/c0.png"][0] == 2


def test_progress_in_a_batch_log_is_a_line_per_tenth_without_carriage_returns() -> None:
    import io

    from nas.commands.data import ProgressLine, progress_printer

    log = io.StringIO()
    report = progress_printer(ProgressLine(log))
    for done in range(1, 1001):
        report(done, 1000, 7 * done)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11
    assert lines[0] == "scanned 1/1000 class folders, 7 images"
    assert lines[-1] == "scanned 1000/1000 class folders, 7000 images"
