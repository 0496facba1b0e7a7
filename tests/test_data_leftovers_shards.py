"""`splinenas data shards` over files that cannot be read: left out and named, as training
would skip them, and a packing stopped half-way goes on after its finished shards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.commands.main import main
from nas.data.index import VALIDATION, load_index
from nas.data.shards import RESUME_FILE, ShardIndex

SHARDS = "splinenas data shards"
PER_CLASS = 6


@pytest.fixture
def index_file(tmp_path: Path) -> Path:
    """12 PNGs in two classes, indexed."""
    root = tmp_path / "tree"
    for k, name in enumerate(("ant", "bee")):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = np.full((6, 5, 3), 20 * k + i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    out = tmp_path / "index.h5"
    assert main(["data", "index", str(root), "--out", str(out)]) == 0
    return out


def shards_cli(index_file: Path, out: Path, *extra: str) -> int:
    return main(["data", "shards", str(index_file), "--out", str(out), *extra])


def test_an_unreadable_image_is_left_out_and_named(index_file, tmp_path, capsys):
    index = load_index(index_file)
    unreadable = index.path(3)
    os.remove(unreadable)
    os.symlink(os.path.basename(unreadable), unreadable)  # a link to itself: open fails
    out = tmp_path / "shards"
    capsys.readouterr()
    assert shards_cli(index_file, out, "--images-per-shard", "4", "--json") == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if "warning" in line]
    assert warned == [
        f"{SHARDS}: warning: skipping unreadable image {unreadable}: Too many levels of "
        "symbolic links"
    ]
    assert "11 images (0.0 MiB) in 4 shards written" in captured.err
    assert captured.err.rstrip().endswith("; 1 unreadable images left out")
    summary = json.loads(captured.out)
    assert (summary["images"], summary["skipped"], summary["reused"]) == (11, 1, 0)
    assert len(ShardIndex(out).labels) == 11 and not (out / RESUME_FILE).exists()


def test_a_stopped_packing_goes_on_after_its_finished_shards(index_file, tmp_path, capsys):
    index = load_index(index_file)
    gone = index.path(int(index.positions(VALIDATION)[0]))  # training shards come first
    shutil.move(gone, tmp_path / "aside.png")
    out = tmp_path / "shards"
    capsys.readouterr()
    assert shards_cli(index_file, out, "--images-per-shard", "2") == 1
    finished = {p.name: os.stat(p).st_ino for p in out.glob("*.tar")}
    assert len(finished) >= 3  # the training shards, and validation ones before the gap
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"{SHARDS}: {len(finished)} finished shards stay in {out}; the same command continues "
        "after them once the cause is fixed",
        f"{SHARDS}: error: {gone}: no such file or folder",
    ]
    shutil.move(tmp_path / "aside.png", gone)
    assert shards_cli(index_file, out, "--images-per-shard", "2") == 0
    assert f"; {len(finished)} shards kept from the run before" in capsys.readouterr().err
    assert {name: os.stat(out / name).st_ino for name in finished} == finished  # not rewritten
    fresh = tmp_path / "fresh"
    assert shards_cli(index_file, fresh, "--images-per-shard", "2") == 0
    assert (out / "shards.h5").is_file() and not (out / RESUME_FILE).exists()
    resumed, whole = ShardIndex(out), ShardIndex(fresh)
    assert resumed.shard_names == whole.shard_names
    for key in ("shard", "offset", "size", "labels", "split"):
        assert np.array_equal(getattr(resumed, key), getattr(whole, key)), key
    for name in whole.shard_names:
        assert (out / name).read_bytes() == (fresh / name).read_bytes()


def test_shards_of_another_index_are_packed_again(index_file, tmp_path, capsys):
    out = tmp_path / "shards"
    index = load_index(index_file)
    gone = index.path(int(index.positions(VALIDATION)[0]))
    shutil.move(gone, tmp_path / "aside.png")
    assert shards_cli(index_file, out, "--images-per-shard", "2") == 1
    shutil.move(tmp_path / "aside.png", gone)
    other = tmp_path / "other.h5"
    assert main(["data", "index", str(index.root), "--out", str(other), "--seed", "1"]) == 0
    capsys.readouterr()
    assert shards_cli(other, out, "--images-per-shard", "2", "--json") == 0
    assert json.loads(capsys.readouterr().out)["reused"] == 0
    assert sorted(ShardIndex(out).size.tolist()) == sorted(
        os.path.getsize(index.path(i)) for i in range(len(index))
    )
