"""`splinenas data index` and the trainer's data start-up against trees that look right but
are not: a root one folder too high, hidden files, a class linked to a sibling, and an
index older than its tree. Each case is real image files in tmp_path."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.commands.main import main
from nas.config import DataConfig
from nas.data.dataset import build_splits
from nas.data.index import ImageIndexError, load_index, scan_tree, write_index

INDEX, SHARDS = "splinenas data index", "splinenas data shards"


def picture(path: Path, value: int = 0) -> None:
    """A small real PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5, 3), value, dtype=np.uint8)).save(path)


def class_tree(root: Path, classes: tuple[str, ...], per_class: int = 4) -> Path:
    for k, name in enumerate(classes):
        for i in range(per_class):
            picture(root / name / f"{i}.png", 20 * k + i)
    return root


def index_cli(root: Path, out: Path, *extra: str) -> int:
    return main(["data", "index", str(root), "--out", str(out), *extra])


def lines_of(err: str, kind: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{INDEX}: {kind}:")]


# --------------------------------------------------------------------------- root too high


@pytest.fixture
def imagenet(tmp_path: Path) -> Path:
    """imagenet/{train,val}/<class>/*.png: the layout whose top folder is not a root."""
    for split in ("train", "val"):
        class_tree(tmp_path / "imagenet" / split, ("n01", "n02", "n03"), per_class=3)
    return tmp_path / "imagenet"


def test_a_root_one_folder_too_high_is_refused_with_the_way_out(imagenet, tmp_path, capsys):
    out = tmp_path / "index.h5"
    assert index_cli(imagenet, out) == 1
    (error,) = lines_of(capsys.readouterr().err, "error")
    assert "2 of 2 class folders hold no image of their own, only sub-folders of images: " in error
    assert "'train', 'val'" in error and "imagenet/ rather than imagenet/train" in error
    assert error.endswith("index the tree with `splinenas data index --nested`")
    assert not out.exists()
    assert index_cli(imagenet / "train", out) == 0  # the folder that holds the classes
    assert load_index(out).classes == ("n01", "n02", "n03")


def test_nested_class_folders_are_taken_when_the_index_says_so(imagenet, tmp_path, capsys):
    out = tmp_path / "index.h5"
    assert index_cli(imagenet, out, "--nested") == 0
    assert lines_of(capsys.readouterr().err, "warning") == []
    assert len(load_index(out)) == 18


def test_class_folders_with_images_of_their_own_and_deeper_are_not_nested(tmp_path, capsys):
    root = class_tree(tmp_path / "tree", ("ant", "bee"))
    picture(root / "bee" / "deep" / "x.png")
    assert index_cli(root, tmp_path / "index.h5") == 0
    assert lines_of(capsys.readouterr().err, "warning") == []


def test_the_trainer_scan_warns_about_a_root_too_high_and_keeps_running(imagenet, caplog):
    config = DataConfig(kind="imagefolder", root=str(imagenet), resolution=8, workers=0)
    with caplog.at_level(logging.WARNING, logger="nas.data.index"):
        splits = build_splits(config)
    assert splits.classes == ("train", "val")  # a valid nested tree must keep working
    assert "'train', 'val'" in caplog.text and "--nested" in caplog.text


# --------------------------------------------------------------------------- hidden names


def test_hidden_files_and_junk_folders_are_left_out_and_counted(tmp_path, capsys):
    root = class_tree(tmp_path / "tree", ("n01", "n02"))
    for name in ("n01", "n02"):
        (root / name / "._0.png").write_bytes(b"\x00\x05\x16\x07Mac OS X")  # AppleDouble
        picture(root / name / ".ipynb_checkpoints" / "0-checkpoint.png")  # a copy of 0.png
    (root / "n01" / ".DS_Store").write_bytes(b"\x00")  # no image name: not counted
    picture(root / "__MACOSX" / "n01" / "._0.png")
    out = tmp_path / "index.h5"
    assert index_cli(root, out) == 0
    assert lines_of(capsys.readouterr().err, "warning") == [
        f"{INDEX}: warning: skipped 5 hidden files and folders (names starting with '.', and "
        "__MACOSX), which copies and tools leave beside the data: '__MACOSX', 'n01/._0.png', "
        "'n01/.ipynb_checkpoints' and 2 more"
    ]
    index = load_index(out)
    assert index.classes == ("n01", "n02")
    paths = sorted(index.relative_path(i) for i in range(len(index)))
    assert paths == [f"{c}/{i}.png" for c in ("n01", "n02") for i in range(4)]


# --------------------------------------------------------------------------- shared images


def test_a_class_linked_to_a_sibling_is_refused_naming_both(tmp_path, capsys):
    root = class_tree(tmp_path / "tree", ("n01", "n02"))
    (root / "n01_alias").symlink_to("n01")
    out = tmp_path / "index.h5"
    assert index_cli(root, out) == 1
    assert lines_of(capsys.readouterr().err, "error") == [
        f"{INDEX}: error: {root}: class folders that reach the same images through symlinks, "
        "which would index them under two labels: 'n01_alias' (images of 'n01'); remove the "
        "link that should not be a class"
    ]
    assert not out.exists()


def test_classes_reaching_one_folder_outside_the_tree_are_refused(tmp_path):
    root = class_tree(tmp_path / "tree", ("ant", "bee"))
    outside = class_tree(tmp_path / "outside", ("shared",))
    (root / "cow").symlink_to(outside / "shared")  # a class of its own: fine alone
    assert len(scan_tree(root)) == 12
    (root / "bee" / "more").symlink_to(outside)  # ... but bee now reaches cow's images too
    with pytest.raises(ImageIndexError, match=r"'cow' \(images of 'bee'\)"):
        scan_tree(root)


# --------------------------------------------------------------------------- stale index


def test_an_index_older_than_its_class_folders_is_refused_at_start(tmp_path, capsys):
    root = class_tree(tmp_path / "tree", ("n01", "n02", "n03"))
    out = tmp_path / "index.h5"
    assert index_cli(root, out) == 0
    class_tree(root, ("n00",))  # sorts first: a new index would renumber every class
    for image in (root / "n02").iterdir():
        image.unlink()
    (root / "n02").rmdir()
    config = DataConfig(kind="imagefolder", index=str(out), resolution=8, workers=0)
    with pytest.raises(ImageIndexError) as refused:
        build_splits(config)
    assert str(refused.value) == (
        f"{out}: the class folders of {root} changed since this index was built (added: "
        f"'n00'; gone: 'n02'); build it again (splinenas data index {root} --out {out} "
        "--replace); its new split differs, so points trained with this index start over"
    )
    capsys.readouterr()
    assert main(["data", "shards", str(out), "--out", str(tmp_path / "shards")]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{SHARDS}: error: {refused.value}"]


def test_an_index_of_an_earlier_scan_rule_still_loads(tmp_path):
    """A junk folder an earlier scan took for a class is still there: nothing is gone."""
    root = class_tree(tmp_path / "tree", ("__MACOSX", "n01"))
    index = scan_tree(root)  # n01 only
    earlier = dataclasses.replace(index, classes=("__MACOSX", "n01"), labels=index.labels + 1)
    write_index(earlier, tmp_path / "index.h5")
    assert load_index(tmp_path / "index.h5").classes == ("__MACOSX", "n01")


def test_a_moved_tree_given_as_root_is_checked_too(tmp_path):
    root = class_tree(tmp_path / "tree", ("ant", "bee"))
    write_index(scan_tree(root), tmp_path / "index.h5")
    other = class_tree(tmp_path / "other", ("ant", "cow"))
    with pytest.raises(ImageIndexError, match="added: 'cow'; gone: 'bee'"):
        load_index(tmp_path / "index.h5", root=str(other))
    with pytest.raises(ImageIndexError, match="not a folder .* give its new place"):
        load_index(tmp_path / "index.h5", root=str(tmp_path / "nowhere"))
