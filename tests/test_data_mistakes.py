"""`splinenas data` against a user's mistakes and odd trees: refused or warned in one line.

Every case builds real files (images, symlinks, HDF5 state and index files) in
tmp_path and runs the command line; nothing the user gave may change, and no
traceback or temporary file may be left.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from experiment_support import FLOAT_BOX, experiment_toml
from PIL import Image

from nas.commands.data import ProgressLine, progress_line
from nas.commands.main import main
from nas.data import SEED_MAX
from nas.data.index import load_index, scan_tree, write_index

SIZES = {"ant": 4, "bee": 3}
#: How errors and warnings name the command (tests/test_mistakes.py pins it too).
INDEX, SHARDS = "splinenas data index", "splinenas data shards"


def picture(path: Path, value: int) -> None:
    """A small real PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """ROOT/ant: 4 PNGs, ROOT/bee: 3 PNGs."""
    root = tmp_path / "images"
    for name, size in SIZES.items():
        for i in range(size):
            picture(root / name / f"{i}.png", 10 * i)
    return root


def index_cli(root: Path, out: Path, *extra: str) -> int:
    return main(["data", "index", str(root), "--out", str(out), *extra])


def error_lines(err: str) -> list[str]:
    """The lines of stderr that report an error (each must start its own line)."""
    return [line for line in err.splitlines() if "error" in line]


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{INDEX}: warning:")]


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write could leave behind."""
    return sorted(p.name for p in folder.rglob("*.tmp"))


# --------------------------------------------------------------------------- --out


def test_out_inside_a_class_folder_is_refused_and_the_image_kept(tree, capsys):
    image = tree / "ant" / "0.png"
    before = image.read_bytes()
    assert index_cli(tree, image) == 1
    assert index_cli(tree, tree / "bee" / "new.h5", "--replace") == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [
        f"{INDEX}: error: --out {image}: lies inside the class folder 'ant' of "
        f"{tree}; write the index beside the class folders or outside the tree",
        f"{INDEX}: error: --out {tree / 'bee' / 'new.h5'}: lies inside the class "
        f"folder 'bee' of {tree}; write the index beside the class folders or outside the tree",
    ]
    assert image.read_bytes() == before and not (tree / "bee" / "new.h5").exists()
    assert "Traceback" not in err
    assert index_cli(tree, tree / "index.h5") == 0  # beside the class folders, as documented
    assert len(load_index(tree / "index.h5")) == 7


def test_a_campaign_state_file_is_never_overwritten(tree, tmp_path, capsys):
    (tmp_path / "toy.toml").write_text(experiment_toml("toy", {"x": FLOAT_BOX}, tolerance=0.05))
    state = tmp_path / "toy.h5"
    assert main(["init", str(tmp_path / "toy.toml"), "--state", str(state)]) == 0
    before = state.read_bytes()
    capsys.readouterr()
    for extra in ((), ("--replace",)):
        assert index_cli(tree, state, *extra) == 1
        assert error_lines(capsys.readouterr().err) == [
            f"{INDEX}: error: --out {state}: exists and is not an image index; "
            "refusing to overwrite it"
        ]
    assert state.read_bytes() == before and leftovers(tmp_path) == []


def test_a_shard_index_or_other_hdf5_file_is_not_taken_for_an_image_index(tree, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:  # format 1 and a seed, like shards.h5, but no paths
        f.attrs["format"], f.attrs["seed"] = 1, 0
        f["labels"] = np.zeros(3, np.int32)
    before = other.read_bytes()
    assert index_cli(tree, other, "--replace") == 1
    assert other.read_bytes() == before


def test_an_existing_index_is_replaced_only_with_replace(tree, tmp_path, capsys):
    out = tmp_path / "index.h5"
    assert index_cli(tree, out, "--seed", "1") == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert index_cli(tree, out, "--seed", "2") == 1
    assert error_lines(capsys.readouterr().err) == [
        f"{INDEX}: error: --out {out}: already holds an image index of 7 images "
        "in 2 classes (seed 1); give --replace to replace it"
    ]
    assert out.read_bytes() == before
    assert index_cli(tree, out, "--seed", "2", "--replace") == 0
    err = capsys.readouterr().err
    assert f"{INDEX}: replaced {out}, which held an image index of 7 images" in err
    assert load_index(out).seed == 2


def test_a_broken_symlink_as_out_is_refused(tree, tmp_path, capsys):
    link = tmp_path / "index.h5"
    link.symlink_to(tmp_path / "nowhere" / "index.h5")
    assert index_cli(tree, link) == 1
    assert "is a broken symlink" in capsys.readouterr().err
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- names, seeds


def test_a_name_that_is_not_utf8_is_refused_in_one_line(tree, tmp_path, capsys):
    bad = os.path.join(os.fsencode(tree / "ant"), b"bad\xff.png")
    with open(bad, "wb") as handle:
        handle.write(b"\x89PNG not really")
    out = tmp_path / "index.h5"
    assert index_cli(tree, out) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [
        f"{INDEX}: error: {tree}: names that are not valid UTF-8, which the index "
        "stores: b'ant/bad\\xff.png' (1 in all); rename them (e.g. convmv -f latin1 -t utf8) "
        "and scan again"
    ]
    assert "Traceback" not in err and not out.exists() and os.path.exists(bad)


@pytest.mark.parametrize("seed", [str(2**64), str(SEED_MAX + 1), "-1", "seven"])
def test_a_seed_the_file_cannot_store_is_a_usage_error(tree, tmp_path, capsys, seed):
    out = tmp_path / "index.h5"
    assert index_cli(tree, out, "--seed", seed) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("splinenas data index: error: argument --seed: ")
    assert not out.exists() and leftovers(tmp_path) == []


def test_the_largest_seed_round_trips(tree, tmp_path):
    out = tmp_path / "index.h5"
    assert index_cli(tree, out, "--seed", str(SEED_MAX)) == 0
    assert load_index(out).seed == SEED_MAX


def test_a_failed_write_leaves_no_temporary_file(tree, tmp_path):
    index = scan_tree(tree)
    unstorable = type(index)(**{**index.__dict__, "seed": 2**64})
    with pytest.raises((OverflowError, TypeError)):  # h5py's TypeError before the bound
        write_index(unstorable, tmp_path / "index.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


# --------------------------------------------------------------------------- odd trees


def test_a_symlink_loop_is_skipped_with_one_warning(tree, tmp_path, capsys):
    (tree / "ant" / "loop").symlink_to("..")
    outside = tmp_path / "outside"
    picture(outside / "x.png", 1)
    (outside / "again").symlink_to(outside)  # a loop outside the tree
    (tree / "bee" / "ext").symlink_to(outside)
    out = tmp_path / "index.h5"
    assert index_cli(tree, out) == 0
    warned = warnings_of(capsys.readouterr().err)
    assert warned == [
        f"{INDEX}: warning: skipped 2 symlinked folders that lead back into the "
        "tree or into a folder already walked (a loop or a second copy): 'ant/loop', "
        "'bee/ext/again'"
    ]
    index = load_index(out)
    assert np.bincount(index.labels).tolist() == [4, 4]  # bee: 3 + the one outside, once


def test_a_class_folder_linked_to_the_root_is_skipped(tree, tmp_path, capsys):
    (tree / "all").symlink_to(".")
    assert index_cli(tree, tmp_path / "index.h5") == 0
    assert "'all'" in warnings_of(capsys.readouterr().err)[0]
    assert load_index(tmp_path / "index.h5").classes == ("ant", "bee")


def test_broken_links_are_skipped_and_shards_then_work(tree, tmp_path, capsys):
    (tree / "ant" / "gone.png").symlink_to(tmp_path / "gone.png")
    (tree / "bee" / "gone.jpg").symlink_to("missing.jpg")
    (tree / "bee" / "folder.png").mkdir()  # a folder, walked, holding nothing
    (tree / "bee" / "empty.png").write_bytes(b"")  # indexed: training counts it unreadable
    out = tmp_path / "index.h5"
    assert index_cli(tree, out) == 0
    assert warnings_of(capsys.readouterr().err) == [
        f"{INDEX}: warning: skipped 2 image names that are broken symlinks or not regular "
        "files: 'ant/gone.png', 'bee/gone.jpg'"
    ]
    assert len(load_index(out)) == 8
    shards = tmp_path / "shards"
    assert main(["data", "shards", str(out), "--out", str(shards)]) == 0
    assert (shards / "shards.h5").is_file()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_a_fifo_named_like_an_image_is_skipped(tree, capsys):
    os.mkfifo(tree / "ant" / "pipe.png")  # opening it in `data shards` would wait forever
    warned: list[str] = []
    index = scan_tree(tree, warn=warned.append)
    assert len(index) == 7 and warned[0].endswith("not regular files: 'ant/pipe.png'")


def test_many_skipped_files_show_the_first_three_and_a_count(tree, tmp_path, capsys):
    for i in range(5):
        (tree / "ant" / f"z{i}.png").symlink_to(f"missing{i}.png")
    assert index_cli(tree, tmp_path / "index.h5") == 0
    assert warnings_of(capsys.readouterr().err)[0].endswith(
        "'ant/z0.png', 'ant/z1.png', 'ant/z2.png' and 2 more"
    )


def test_an_empty_class_and_a_single_image_class_are_named(tree, tmp_path, capsys):
    (tree / "cat").mkdir()
    picture(tree / "dog" / "only.png", 3)
    out = tmp_path / "index.h5"
    assert index_cli(tree, out) == 0
    assert warnings_of(capsys.readouterr().err) == [
        f"{INDEX}: warning: 1 class folders hold no images and stay classes "
        "without images (labels follow the folders): 'cat'",
        f"{INDEX}: warning: 1 classes have a single image, which goes to "
        "validation: they get no training image: 'dog'",
    ]
    index = load_index(out)
    assert index.classes == ("ant", "bee", "cat", "dog")
    assert np.bincount(index.labels, minlength=4).tolist() == [4, 3, 0, 1]


# --------------------------------------------------------------------------- shards


def test_shards_of_a_folder_is_one_clear_line(tree, tmp_path, capsys):
    assert main(["data", "shards", str(tree), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{SHARDS}: error: {tree}: is a folder; give the index file (`splinenas data index`)"
    ]


def test_shards_of_a_non_hdf5_file_is_one_line(tmp_path, capsys):
    bogus = tmp_path / "index.h5"
    bogus.write_text("not hdf5\n")
    assert main(["data", "shards", str(bogus), "--out", str(tmp_path / "s")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{SHARDS}: error: {bogus}: cannot read image index")


def test_an_image_gone_since_the_index_stops_shards_on_its_own_line(tree, tmp_path, capsys):
    out, shards = tmp_path / "index.h5", tmp_path / "shards"
    assert index_cli(tree, out) == 0
    index = load_index(out)
    validation_only = next(i for i in range(len(index)) if index.split[i] == 1)
    os.remove(index.path(validation_only))  # training shards are packed first
    capsys.readouterr()
    assert main(["data", "shards", str(out), "--out", str(shards), "--images-per-shard", "2"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"{SHARDS}: error: {index.path(validation_only)}: no such file or folder"
    )
    assert "packed" in err and leftovers(shards) == [] and not (shards / "shards.h5").exists()


class Terminal:
    """A text stream that says it is a terminal, to see the rewritten progress line."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_a_terminal_progress_line_is_ended_before_an_error():
    terminal = Terminal()
    with pytest.raises(OSError), progress_line(terminal) as line:  # type: ignore[arg-type]
        line.show(5, 13, "packed 5/13 images")
        raise OSError("image gone")
    assert terminal.text == "\rpacked 5/13 images\n"
    done = ProgressLine(terminal)  # type: ignore[arg-type]
    done.show(13, 13, "packed 13/13 images")
    done.end()
    assert terminal.text.endswith("\rpacked 13/13 images\n")  # one newline, not two
