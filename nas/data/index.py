"""The image index: one scan of a class-per-folder tree, loaded by every rank.

Scanning 14 million files on a parallel file system takes long and loads the
metadata servers; doing it on every rank of every candidate would be worse.
``splinenas data index ROOT --out INDEX.h5`` scans once and stores, in HDF5:

* ``classes``: class (folder) names, sorted; label k is ``classes[k]``;
* ``paths``: the relative paths, UTF-8, concatenated into one byte array with
  ``offsets`` (n + 1 integers), so loading 14 M paths is two contiguous reads;
* ``labels`` (int32) and ``split`` (uint8: 0 training, 1 validation);
* attributes ``format``, ``root`` (absolute), ``seed``.

The split is per label (:func:`per_label_split`), so each class, however rare,
appears in both halves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import UserError

INDEX_FORMAT = 1
TRAIN, VALIDATION = 0, 1
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)


class ImageIndexError(UserError, ValueError):
    """An image tree or index file that cannot be used; the message names the path."""


@dataclass(frozen=True)
class ImageIndex:
    """Paths, labels and split of an image-folder tree."""

    root: str
    classes: tuple[str, ...]
    blob: np.ndarray  # uint8: the UTF-8 relative paths, concatenated
    offsets: np.ndarray  # int64, n + 1: path i is blob[offsets[i]:offsets[i + 1]]
    labels: np.ndarray
    split: np.ndarray
    seed: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def relative_path(self, i: int) -> str:
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.blob[start:stop].tobytes().decode("utf-8")

    def path(self, i: int) -> str:
        """Absolute path of image ``i``."""
        return os.path.join(self.root, self.relative_path(i))

    def positions(self, part: int) -> np.ndarray:
        """Indices of the images in ``part`` (:data:`TRAIN` or :data:`VALIDATION`)."""
        return np.flatnonzero(self.split == part)


def per_label_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """Split each label's items in half: training and validation.

    Within each label the items are shuffled with a generator seeded by
    ``(seed, label)``; the first ``n // 2`` go to training, the rest (the odd
    item included) to validation. The result depends only on the labels'
    order, the seed and the label values, not on the number of labels.

    Parameters
    ----------
    labels : (n,) integer array
    seed : int

    Returns
    -------
    split : (n,) uint8 array of :data:`TRAIN` (0) or :data:`VALIDATION` (1)
    """
    labels = np.asarray(labels)
    split = np.full(labels.shape[0], VALIDATION, dtype=np.uint8)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if members.size == 0:
            continue
        rng = np.random.default_rng([seed, int(labels[members[0]])])
        chosen = rng.permutation(members)[: members.size // 2]
        split[chosen] = TRAIN
    return split


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of ``size`` items (all of them if fewer) with every label in its share.

    The learning curve evaluates this subset of the validation split every
    epoch. Each label with items gets one first (when ``size`` allows one per
    label), the rest is split in proportion to what every label has left,
    rounded by largest remainder, so the counts sum to ``size`` exactly. Which
    items of a label are taken comes from a generator seeded by ``(seed,
    label)``: the subset depends only on the labels, ``size`` and ``seed``,
    so every point of a search evaluates the same images.

    Returns
    -------
    positions : sorted int64 array into ``labels``
    """
    labels = np.asarray(labels)
    if size >= labels.shape[0]:
        return np.arange(labels.shape[0], dtype=np.int64)
    values, counts = np.unique(labels, return_counts=True)
    first = np.ones_like(counts) if size >= values.size else np.zeros_like(counts)
    spare = counts - first
    exact = (size - int(first.sum())) * spare / max(int(spare.sum()), 1)
    quota = first + np.floor(exact).astype(np.int64)
    short = size - int(quota.sum())
    order = np.lexsort((values, -(exact - np.floor(exact))))  # largest remainder first
    quota[order[:short]] += 1
    groups = np.split(np.argsort(labels, kind="stable"), np.cumsum(counts)[:-1])
    chosen = []
    for value, take, members in zip(values, quota, groups, strict=True):
        rng = np.random.default_rng([seed, int(value)])
        chosen.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def class_sizes(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Number of items of every label 0..num_classes-1."""
    return np.bincount(np.asarray(labels), minlength=num_classes)


def skew_summary(sizes: np.ndarray) -> dict[str, float]:
    """Minimum, median and maximum class size: how long-tailed the data is."""
    return {
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "max": int(sizes.max()),
    }


# --------------------------------------------------------------------------- scanning


def _scan_class(root: str, name: str) -> list[str]:
    """Relative paths of the image files below one class folder (recursive, sorted)."""
    found: list[str] = []
    pending = [os.path.join(root, name)]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=True):
                    pending.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(os.path.relpath(entry.path, root))
    found.sort()
    return found


def scan_tree(
    root: str | Path,
    *,
    seed: int = 0,
    threads: int = 16,
    progress: Callable[[int, int, int], None] | None = None,
) -> ImageIndex:
    """Scan ``root`` (one folder per class) with parallel ``os.scandir`` calls.

    Args:
        root: the tree; hidden folders are ignored.
        seed: seed of the per-label split.
        threads: class folders scanned at once (I/O bound, so threads help).
        progress: called as ``progress(classes_done, classes_total, images_so_far)``.

    Raises:
        ImageIndexError: ``root`` is not a folder, has no class folders, or holds no images.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ImageIndexError(f"{root}: not a folder")
    with os.scandir(root) as entries:
        classes = sorted(
            e.name for e in entries if e.is_dir(follow_symlinks=True) and not e.name.startswith(".")
        )
    if not classes:
        raise ImageIndexError(f"{root}: no class folders inside")
    per_class: list[list[str]] = []
    images = 0
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, found in enumerate(pool.map(lambda name: _scan_class(root, name), classes), 1):
            per_class.append(found)
            images += len(found)
            if progress is not None:
                progress(done, len(classes), images)
    if images == 0:
        raise ImageIndexError(f"{root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    labels = np.concatenate(
        [np.full(len(found), k, dtype=np.int32) for k, found in enumerate(per_class)]
    )
    blob, offsets = _pack([path for found in per_class for path in found])
    return ImageIndex(
        root=root,
        classes=tuple(classes),
        blob=blob,
        offsets=offsets,
        labels=labels,
        split=per_label_split(labels, seed),
        seed=seed,
    )


def _pack(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate UTF-8 paths into one byte array with n + 1 offsets."""
    encoded = [path.encode("utf-8") for path in paths]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


# --------------------------------------------------------------------------- the file


def write_index(index: ImageIndex, out: str | Path) -> None:
    """Store ``index`` in HDF5 (temp file + rename, so readers never see half a file)."""
    import h5py

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = INDEX_FORMAT
        f.attrs["root"] = index.root
        f.attrs["seed"] = index.seed
        f.create_dataset("classes", data=np.array(index.classes, dtype=h5py.string_dtype()))
        f.create_dataset("paths", data=index.blob)
        f.create_dataset("offsets", data=index.offsets)
        f.create_dataset("labels", data=index.labels.astype(np.int32))
        f.create_dataset("split", data=index.split.astype(np.uint8))
    os.replace(tmp, out)


def load_index(path: str | Path, root: str | None = None) -> ImageIndex:
    """Load an index file; ``root`` overrides the stored root (the tree was moved).

    Raises:
        ImageIndexError: not an index file of this format.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT:
                raise ImageIndexError(f"{path}: not a format-{INDEX_FORMAT} splinenas image index")
            return ImageIndex(
                root=root or str(f.attrs["root"]),
                classes=tuple(c.decode("utf-8") for c in f["classes"][()]),
                blob=f["paths"][()],
                offsets=f["offsets"][()],
                labels=f["labels"][()],
                split=f["split"][()],
                seed=int(f.attrs["seed"]),
            )
    except (OSError, KeyError) as exc:
        raise ImageIndexError(f"{path}: cannot read image index: {exc}") from None
