"""``splinenas data index|shards``: scan an image tree once for all ranks; pack it into tar shards."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from nas.commands.common import EXIT_OK, UsageError, emit_json, reported, writable_path


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
    index.add_argument("--out", required=True, help="index file to write (HDF5)")
    index.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    index.add_argument("--threads", type=int, default=16, help="parallel scans (default 16)")
    index.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    index.set_defaults(func=run_index)
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
    shards.add_argument("--out", required=True, help="empty folder for the shards")
    shards.add_argument("--root", help="image tree, if it moved since the index was built")
    shards.add_argument(
        "--images-per-shard", type=int, default=1024, help="images per tar file (default 1024)"
    )
    shards.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    shards.set_defaults(func=run_shards)


def progress_printer(out: TextIO, step_percent: int = 10) -> Callable[[int, int, int], None]:
    """Scan progress: one rewritten line on a terminal, else a line per ``step_percent`` %.

    A batch log keeps every ``\r`` update, which makes one giant line.
    """
    terminal = out.isatty()
    shown = [-1]

    def report(done: int, total: int, images: int) -> None:
        text = f"scanned {done}/{total} class folders, {images} images"
        if terminal:
            out.write(f"\r{text}" + ("\n" if done == total else ""))
        else:
            step = done * 100 // max(total, 1) // step_percent
            if step == shown[0] and done != total:
                return
            shown[0] = step
            out.write(text + "\n")
        out.flush()

    return report


@reported
def run_index(args: argparse.Namespace) -> int:
    from nas.data.index import TRAIN, VALIDATION, class_sizes, scan_tree, skew_summary, write_index

    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    writable_path(Path(args.out), "--out")
    started = time.perf_counter()
    index = scan_tree(
        args.root, seed=args.seed, threads=args.threads, progress=progress_printer(sys.stderr)
    )
    write_index(index, args.out)
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


def _shard_progress(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    sys.stderr.write(f"\rpacked {done}/{total} images{end}")
    sys.stderr.flush()


@reported
def run_shards(args: argparse.Namespace) -> int:
    from nas.data.index import load_index
    from nas.data.shards import write_shards

    if args.images_per_shard < 1:
        raise UsageError(f"--images-per-shard must be at least 1, got {args.images_per_shard}")
    started = time.perf_counter()
    index = load_index(args.index, root=args.root)
    counts = write_shards(
        index, args.out, images_per_shard=args.images_per_shard, progress=_shard_progress
    )
    summary = {"out": args.out, **counts, "seconds": round(time.perf_counter() - started, 3)}
    print(
        f"{counts['images']} images ({counts['bytes'] / 2**20:.1f} MiB) in {counts['shards']} "
        f"shards written to {args.out} in {summary['seconds']} s",
        file=sys.stderr,
    )
    if args.json:
        emit_json(summary)
    return EXIT_OK
