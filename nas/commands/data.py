"""``splinenas data index|shards``: scan an image tree once for all ranks; pack it into tar shards."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from nas.commands.common import (
    EXIT_OK,
    UsageError,
    emit_json,
    reported,
    whole_number_arg,
    writable_path,
)
from nas.data import SEED_MAX


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare training data")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    index = actions.add_parser(
        "index",
        help="index an image-folder tree (one folder per class) with its per-label split",
        description=(
            "Scan ROOT once (parallel os.scandir) and store relative paths, labels, class "
            "names and the per-label split (half training, half validation, the odd image "
            "to validation) in an HDF5 file that every rank loads instead of scanning."
        ),
    )
    index.add_argument("root", help="image tree: ROOT/<class>/<image>")
    index.add_argument(
        "--out", required=True, help="index file to write (HDF5), not inside a class folder"
    )
    index.add_argument(
        "--replace", action="store_true", help="replace an existing index file at --out"
    )
    index.add_argument(
        "--seed", type=seed_arg, default=0, help=f"seed of the split, 0..{SEED_MAX} (default 0)"
    )
    index.add_argument(
        "--threads", type=whole_number_arg, default=16, help="parallel scans (default 16)"
    )
    index.add_argument(
        "--nested",
        action="store_true",
        help="accept class folders that hold their images only in sub-folders (refused "
        "otherwise: the shape of a ROOT one level too high, such as imagenet/ for imagenet/train)",
    )
    index.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    index.set_defaults(func=run_index, command="data index")
    shards = actions.add_parser(
        "shards",
        help="pack the images of an index into uncompressed tar shards ([data] kind = 'shards')",
        description=(
            "Copy every image of INDEX into tar files of --images-per-shard images each "
            "(train-NNNNN.tar, validation-NNNNN.tar, shuffled once) and write OUT/shards.h5, "
            "so that ranks read a few large files instead of millions of small ones."
        ),
    )
    shards.add_argument("index", help="index file from `splinenas data index`")
    shards.add_argument(
        "--out",
        required=True,
        help="folder for the shards: empty, or one that a stopped run of this command left",
    )
    shards.add_argument("--root", help="image tree, if it moved since the index was built")
    shards.add_argument(
        "--images-per-shard",
        type=whole_number_arg,
        default=1024,
        help="images per tar file (default 1024)",
    )
    shards.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    shards.set_defaults(func=run_shards, command="data shards")


def seed_arg(text: str) -> int:
    """A split seed: an integer that the index file can store (a signed 64-bit attribute)."""
    seed = whole_number_arg(text)
    if not 0 <= seed <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_MAX}, got {text}")
    return seed


class ProgressLine:
    """Progress: one rewritten line on a terminal, else a line per ``step_percent`` %.

    A batch log keeps every ``\r`` update, which makes one giant line. :meth:`end`
    finishes a line left open on a terminal, so that an error starts its own line.
    """

    def __init__(self, out: TextIO, step_percent: int = 10) -> None:
        self.out, self.step_percent = out, step_percent
        self.terminal = out.isatty()
        self.shown_step = -1
        self.open = False

    def show(self, done: int, total: int, text: str) -> None:
        """Show ``text`` for ``done`` of ``total`` steps."""
        if self.terminal:
            self.out.write(f"\r{text}" + ("\n" if done == total else ""))
            self.open = done != total
        else:
            step = done * 100 // max(total, 1) // self.step_percent
            if step == self.shown_step and done != total:
                return
            self.shown_step = step
            self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        """End a line left open, before anything else is printed."""
        if self.open:
            self.out.write("\n")
            self.out.flush()
            self.open = False


@contextmanager
def progress_line(out: TextIO) -> Iterator[ProgressLine]:
    """A :class:`ProgressLine` that is ended however the work stops (an error included)."""
    line = ProgressLine(out)
    try:
        yield line
    finally:
        line.end()


def progress_printer(line: ProgressLine) -> Callable[[int, int, int], None]:
    """The scan's progress callback, shown on ``line``."""

    def report(done: int, total: int, images: int) -> None:
        line.show(done, total, f"scanned {done}/{total} class folders, {images} images")

    return report


def warning_printer(command: str) -> Callable[[str], None]:
    """Print a warning as one line naming the command, as its errors are."""

    def warn(text: str) -> None:
        print(f"splinenas {command}: warning: {text}", file=sys.stderr)

    return warn


def check_out(root: str, out: Path, replace: bool) -> str | None:
    """Refuse an --out that would overwrite an image or anything but an earlier index;
    return what an index there that ``replace`` allows to replace holds.

    Inside a class folder the index could overwrite an image and mix with the
    data; an existing file is replaced only if it is an index (``--replace``), so
    a campaign's state file or an image given there by mistake is never lost.
    """
    from nas.data.index import ImageIndexError, class_folder_holding, describe_index

    holder = class_folder_holding(root, out)
    if holder is not None:
        raise ImageIndexError(
            f"--out {out}: lies inside the class folder {holder!r} of {root}; "
            "write the index beside the class folders or outside the tree"
        )
    if not os.path.lexists(out):
        return None
    if not out.exists():
        raise ImageIndexError(f"--out {out}: is a broken symlink; remove it or choose another")
    found = describe_index(out)
    if found is None:
        raise ImageIndexError(
            f"--out {out}: exists and is not an image index; refusing to overwrite it"
        )
    if not replace:
        raise ImageIndexError(f"--out {out}: already holds {found}; give --replace to replace it")
    return found


@reported
def run_index(args: argparse.Namespace) -> int:
    from nas.data.index import TRAIN, VALIDATION, class_sizes, scan_tree, skew_summary, write_index

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    out = writable_path(Path(args.out), "--out")
    replaced = check_out(args.root, out, args.replace)
    started = time.perf_counter()
    with progress_line(sys.stderr) as line:
        index = scan_tree(
            args.root,
            seed=args.seed,
            threads=args.threads,
            nested="allow" if args.nested else "refuse",
            progress=progress_printer(line),
            warn=warning_printer(args.command),
        )
    write_index(index, out)
    if replaced is not None:
        print(f"splinenas {args.command}: replaced {out}, which held {replaced}", file=sys.stderr)
    skew = skew_summary(class_sizes(index.labels, len(index.classes)))
    summary = {
        "index": args.out,
        "root": index.root,
        "classes": len(index.classes),
        "images": len(index),
        "train": int((index.split == TRAIN).sum()),
        "validation": int((index.split == VALIDATION).sum()),
        "class_size": skew,
        "seconds": round(time.perf_counter() - started, 3),
    }
    print(
        f"{summary['images']} images in {summary['classes']} classes "
        f"({summary['train']} training, {summary['validation']} validation); images per "
        f"class min {skew['min']}, median {skew['median']:g}, max {skew['max']}; "
        f"written to {args.out} in {summary['seconds']} s",
        file=sys.stderr,
    )
    if args.json:
        emit_json(summary)
    return EXIT_OK


@reported
def run_shards(args: argparse.Namespace) -> int:
    from nas.data.index import load_index
    from nas.data.shards import write_shards

    if args.images_per_shard < 1:
        raise UsageError(f"--images-per-shard must be at least 1, got {args.images_per_shard}")
    started = time.perf_counter()
    index = load_index(args.index, root=args.root)
    with finished_shards_kept(args), progress_line(sys.stderr) as line:
        counts = write_shards(
            index,
            args.out,
            images_per_shard=args.images_per_shard,
            progress=lambda done, total: line.show(done, total, f"packed {done}/{total} images"),
            warn=warning_printer(args.command),
        )
    summary = {"out": args.out, **counts, "seconds": round(time.perf_counter() - started, 3)}
    print(
        f"{counts['images']} images ({counts['bytes'] / 2**20:.1f} MiB) in {counts['shards']} "
        f"shards written to {args.out} in {summary['seconds']} s"
        + (f"; {counts['skipped']} unreadable images left out" if counts["skipped"] else "")
        + (f"; {counts['reused']} shards kept from the run before" if counts["reused"] else ""),
        file=sys.stderr,
    )
    if args.json:
        emit_json(summary)
    return EXIT_OK


@contextmanager
def finished_shards_kept(args: argparse.Namespace) -> Iterator[None]:
    """When a file stops the packing, say that the finished shards stay and how to go on."""
    from nas.data.shards import SHARD_NAME

    try:
        yield
    except OSError:
        folder = Path(args.out)
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        kept = [name for name in names if SHARD_NAME.fullmatch(name)]
        if kept:
            print(
                f"splinenas {args.command}: {len(kept)} finished shards stay in {args.out}; "
                "the same command continues after them once the cause is fixed",
                file=sys.stderr,
            )
        raise
