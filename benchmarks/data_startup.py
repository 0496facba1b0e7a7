"""Time to a ready training dataset: the index file vs. torchvision ImageFolder scanning.

Generates a class-per-folder tree of ``--files`` small PNG files (default
100,000 in 1,000 classes), builds the index once (``splinenas data index``'s
code path), then times, each ``--repeats`` times, the best of

* ``ImageFolder(root)``: what every rank would do without an index (scan, sort,
  check extensions), and
* ``load_index`` + both :class:`~nas.data.images.IndexedImages` halves: what
  every rank does with the index.

The tree sits on local disk with a warm page cache, the scan's best case; on a
parallel file system the scan's metadata calls cost far more. Run::

    python benchmarks/data_startup.py --files 100000 --json
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from reporting import print_report

from nas.data.images import IndexedImages
from nas.data.index import TRAIN, VALIDATION, load_index, scan_tree, write_index


def make_tree(root: Path, files: int, classes: int) -> None:
    """``files`` copies of one tiny PNG spread over ``classes`` folders."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    for k in range(classes):
        (root / f"c{k:05d}").mkdir(parents=True)
    for i in range(files):
        (root / f"c{i % classes:05d}" / f"{i:08d}.png").write_bytes(data)


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from torchvision.datasets import ImageFolder

    with tempfile.TemporaryDirectory() as scratch:
        root, index_file = Path(scratch) / "tree", Path(scratch) / "index.h5"
        started = time.perf_counter()
        make_tree(root, args.files, args.classes)
        generate = time.perf_counter() - started
        started = time.perf_counter()
        write_index(scan_tree(root), index_file)
        build = time.perf_counter() - started

        def from_index() -> None:
            index = load_index(index_file)
            IndexedImages(index, TRAIN, train=True, resolution=32)
            IndexedImages(index, VALIDATION, train=False, resolution=32)

        scan = best_of(args.repeats, lambda: ImageFolder(str(root)))
        indexed = best_of(args.repeats, from_index)
    report = {
        "files": args.files,
        "classes": args.classes,
        "generate_seconds": generate,
        "index_build_seconds": build,
        "imagefolder_seconds": scan,
        "index_load_seconds": indexed,
        "speedup": scan / indexed,
    }
    print_report(report, as_json=args.json, float_format=".4g")
    return 0


if __name__ == "__main__":
    sys.exit(main())
