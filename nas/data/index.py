"""The image index: one scan of a class-per-folder tree, loaded by every rank.

Scanning 14 million files on a parallel file system takes long and loads the
metadata servers; doing it on every rank of every candidate would be worse.
``splinenas data index ROOT --out INDEX.h5`` scans once and stores, in HDF5:

* ``classes``: class (folder) names, sorted; label k is ``classes[k]``;
* ``paths``: the relative paths, UTF-8, concatenated into one byte array with
  ``offsets`` (n + 1 integers), so loading 14 M paths is two contiguous reads;
* ``labels`` (int32) and ``split`` (uint8: 0 training, 1 validation);
* attributes ``format``, ``root`` (absolute), ``seed``.

The split is per label (:func:`per_label_split`), so each class with two
images or more, however rare, appears in both halves; the scan warns about a
class with one image (validation only) or none.

Loading an index compares its class names with the class folders of the tree
(one listing of the root), so a class added or removed since the scan stops
the start instead of being left out unseen or failing image by image.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas.errors import UserError

if TYPE_CHECKING:
    import h5py

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
TRAIN, VALIDATION = 0, 1
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)
#: Folders that copies and archives leave beside the data; like names starting with
#: "." (``._x.jpg`` AppleDouble files, ``.ipynb_checkpoints``) they are never data.
JUNK_FOLDERS = frozenset({"__MACOSX"})
#: What ``scan_tree`` does with class folders that hold images only in sub-folders.
NESTED_POLICIES = ("refuse", "warn", "allow")


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

#: Names shown in a warning or error line about many files; the rest are counted.
SHOWN_NAMES = 3


@dataclass
class _Found:
    """What a walk found, and what it left out (and why)."""

    found: list[str] = field(default_factory=list)
    undecodable: list[bytes] = field(default_factory=list)  # names that are not UTF-8
    loops: list[str] = field(default_factory=list)  # symlinked folders leading back
    unusable: list[str] = field(default_factory=list)  # broken links, not regular files
    hidden: list[str] = field(default_factory=list)  # hidden or junk folders and image names
    nested: list[str] = field(default_factory=list)  # classes whose images all lie deeper
    followed: list[str] = field(default_factory=list)  # real folders reached through symlinks
    real: dict[str, str] = field(default_factory=dict)  # class folder -> its real path


def _is_hidden(name: str) -> bool:
    """Whether a file or folder is left out of every scan: a hidden name or a junk folder."""
    return name.startswith(".") or name in JUNK_FOLDERS


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_utf8(name: str) -> bool:
    """Whether ``name`` can be stored: the index holds UTF-8 paths, and a name
    that is not UTF-8 on disk arrives from ``os.scandir`` with surrogates."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _within(inner: str, outer: str) -> bool:
    """Whether the absolute path ``inner`` is ``outer`` or lies below it."""
    return os.path.commonpath([inner, outer]) == outer


def _leads_back(target: str, walked: list[str]) -> bool:
    """Whether the real folder ``target`` is, lies inside, or contains a folder of ``walked``.

    Following such a symlink would index images twice or walk forever.
    """
    return any(_within(target, folder) or _within(folder, target) for folder in walked)


def _usable(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a symlink to one: a broken link or a FIFO would stop
    ``data shards`` half-way. Only a symlink costs a ``stat`` (the directory
    entry tells the rest), so the scan still reads names, never sizes or pixels:
    an empty or corrupt image is indexed and counted as unreadable in training."""
    return entry.is_file(follow_symlinks=True)


def _scan_class(root: str, name: str, real_root: str) -> _Found:
    """The image files below one class folder (recursive, sorted), and what was left out.

    A symlinked folder is followed unless it leads back into the tree (``real_root``)
    or into a folder this walk already followed. Hidden names are left out: a macOS
    copy has a ``._x.jpg`` beside every image, which no decoder reads, and a
    notebook's ``.ipynb_checkpoints`` copy of an image could land in the other half
    of the split than the image itself.
    """
    scan = _Found()
    walked = [real_root]
    pending = [os.path.join(root, name)]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if _is_hidden(entry.name):
                    if _is_image_name(entry.name) or entry.is_dir(follow_symlinks=True):
                        scan.hidden.append(os.path.relpath(entry.path, root))
                elif not _is_utf8(entry.name):
                    scan.undecodable.append(os.fsencode(os.path.relpath(entry.path, root)))
                elif entry.is_dir(follow_symlinks=True):
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if _leads_back(target, walked):
                            scan.loops.append(os.path.relpath(entry.path, root))
                            continue
                        walked.append(target)
                        scan.followed.append(target)
                    pending.append(entry.path)
                elif _is_image_name(entry.name):
                    kept = scan.found if _usable(entry) else scan.unusable
                    kept.append(os.path.relpath(entry.path, root))
    scan.found.sort()
    if scan.found and all(path.count(os.sep) > 1 for path in scan.found):
        scan.nested.append(name)  # "name/sub/image": none in the class folder itself
    return scan


def _class_folders(root: str, real_root: str) -> _Found:
    """The class folders of ``root`` (sorted, hidden ones in ``hidden``) and their real paths.

    A symlinked class folder that leads to ``root`` or above it would index the
    whole tree as one class: it goes to ``loops``.
    """
    scan = _Found()
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=True):
                continue
            if _is_hidden(entry.name):
                scan.hidden.append(entry.name)
                continue
            real = (
                os.path.realpath(entry.path)
                if entry.is_symlink()
                else os.path.join(real_root, entry.name)
            )
            if not _is_utf8(entry.name):
                scan.undecodable.append(os.fsencode(entry.name))
            elif _within(real_root, real):
                scan.loops.append(entry.name)
            else:
                scan.real[entry.name] = real
    scan.found = sorted(scan.real)
    return scan


def class_folder_holding(root: str | Path, path: str | Path) -> str | None:
    """The class folder of ``root`` that ``path`` would lie in (real paths), else None.

    A file written there could overwrite an image or be taken for one by the next scan.
    """
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        return None
    real_path = os.path.realpath(path)
    folders = _class_folders(os.path.abspath(root), real_root).real
    return next((name for name, real in folders.items() if _within(real_path, real)), None)


def _some(names: Sequence[object], show: Callable[[object], str] = repr) -> str:
    """The first few of ``names`` (repr: safe for any character), and how many more."""
    shown = ", ".join(show(name) for name in names[:SHOWN_NAMES])
    more = len(names) - SHOWN_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def scan_tree(
    root: str | Path,
    *,
    seed: int = 0,
    threads: int = 16,
    nested: str = "warn",
    progress: Callable[[int, int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ImageIndex:
    """Scan ``root`` (one folder per class) with parallel ``os.scandir`` calls.

    Args:
        root: the tree; hidden names (and ``__MACOSX``) are ignored at every level.
        seed: seed of the per-label split.
        threads: class folders scanned at once (I/O bound, so threads help).
        nested: what class folders that hold images only in sub-folders get, one of
            :data:`NESTED_POLICIES` (see :func:`_check_nested`).
        progress: called as ``progress(classes_done, classes_total, images_so_far)``.
        warn: called with one line per kind of file left out or class that cannot be
            split as the README says (default: a logged warning).

    Raises:
        ImageIndexError: ``root`` is not a folder, has no class folders, holds no
            images, holds names that are not UTF-8, reaches the same images from two
            class folders, or (``nested = "refuse"``) has class folders of sub-folders.
    """
    if nested not in NESTED_POLICIES:
        raise ValueError(f"nested must be one of {NESTED_POLICIES}, got {nested!r}")
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ImageIndexError(f"{root}: not a folder")
    if not _is_utf8(root):
        raise ImageIndexError(f"{os.fsencode(root)!r}: the path is not valid UTF-8")
    real_root = os.path.realpath(root)
    folders = _class_folders(root, real_root)
    classes = folders.found
    if not classes and not folders.undecodable:
        raise ImageIndexError(f"{root}: no class folders inside")
    per_class: list[list[str]] = []
    images = 0
    left_out = _Found(undecodable=folders.undecodable, loops=folders.loops, hidden=folders.hidden)
    reached = [(name, folders.real[name]) for name in classes]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        scans = pool.map(lambda name: _scan_class(root, name, real_root), classes)
        for done, (name, scan) in enumerate(zip(classes, scans, strict=True), 1):
            per_class.append(scan.found)
            images += len(scan.found)
            for kind in ("undecodable", "loops", "unusable", "hidden", "nested"):
                getattr(left_out, kind).extend(getattr(scan, kind))
            reached.extend((name, target) for target in scan.followed)
            if progress is not None:
                progress(done, len(classes), images)
    _refuse_undecodable(root, left_out.undecodable)
    _refuse_shared(root, reached)
    if images == 0:
        raise ImageIndexError(f"{root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    warn = warn or logger.warning
    _check_nested(root, left_out.nested, len(classes), nested, warn)
    _warn_left_out(left_out, classes, per_class, warn)
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


def _shared_folders(reached: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs of classes (sorted) that reach the same real folder, or one inside the other's.

    ``reached`` holds (class, real folder) for every class folder and every folder a
    class reached through a symlink. Each folder's parents are looked up, so the
    cost grows with the folders times their depth, not with the pairs of classes.
    """
    owner: dict[str, str] = {}
    pairs: set[tuple[str, str]] = set()
    for name, folder in reached:
        first = owner.setdefault(folder, name)
        if first != name:
            pairs.add((min(first, name), max(first, name)))
    for folder, name in owner.items():
        inner, parent = folder, os.path.dirname(folder)
        while parent != inner:
            other = owner.get(parent)
            if other is not None and other != name:
                pairs.add((min(other, name), max(other, name)))
            inner, parent = parent, os.path.dirname(parent)
    return sorted(pairs)


def _refuse_shared(root: str, reached: list[tuple[str, str]]) -> None:
    """Refuse class folders that reach the same images (a class symlinked to a sibling):
    each image would be indexed under two labels, and split twice."""
    pairs = _shared_folders(reached)
    if pairs:
        shown = _some([f"{second!r} (images of {first!r})" for first, second in pairs], str)
        raise ImageIndexError(
            f"{root}: class folders that reach the same images through symlinks, which would "
            f"index them under two labels: {shown}; remove the link that should not be a class"
        )


def _check_nested(
    root: str, names: list[str], classes: int, policy: str, warn: Callable[[str], None]
) -> None:
    """Refuse, warn about or allow class folders whose images all lie in sub-folders.

    That is the shape of a root given one level too high: ``imagenet/`` instead of
    ``imagenet/train`` makes ``train`` and ``val`` the only classes, with every image
    folded into them. A tree whose classes really keep their images in sub-folders
    (a folder per session or per day) says so with ``splinenas data index --nested``.
    """
    if not names or policy == "allow":
        return
    line = (
        f"{root}: {len(names)} of {classes} class folders hold no image of their own, only "
        f"sub-folders of images: {_some(names)}; if {root} is the folder above the class "
        "folders (imagenet/ rather than imagenet/train), give the folder that holds them; "
        "if these classes keep their images in sub-folders, index the tree with "
        "`splinenas data index --nested`"
    )
    if policy == "refuse":
        raise ImageIndexError(line)
    warn(line)


def _refuse_undecodable(root: str, names: list[bytes]) -> None:
    """Refuse names that are not UTF-8 rather than drop their images from the data unseen."""
    if names:
        shown = _some(sorted(names))
        raise ImageIndexError(
            f"{root}: names that are not valid UTF-8, which the index stores: {shown} "
            f"({len(names)} in all); rename them (e.g. convmv -f latin1 -t utf8) and scan again"
        )


def _warn_left_out(
    left_out: _Found, classes: list[str], per_class: list[list[str]], warn: Callable[[str], None]
) -> None:
    """One line per kind of thing the index leaves out or cannot split as documented."""
    if left_out.loops:
        warn(
            f"skipped {len(left_out.loops)} symlinked folders that lead back into the tree "
            f"or into a folder already walked (a loop or a second copy): {_some(sorted(left_out.loops))}"
        )
    if left_out.hidden:
        warn(
            f"skipped {len(left_out.hidden)} hidden files and folders (names starting with '.', "
            f"and {', '.join(sorted(JUNK_FOLDERS))}), which copies and tools leave beside the "
            f"data: {_some(sorted(left_out.hidden))}"
        )
    if left_out.unusable:
        warn(
            f"skipped {len(left_out.unusable)} image names that are broken symlinks or not "
            f"regular files: {_some(sorted(left_out.unusable))}"
        )
    empty = [name for name, found in zip(classes, per_class, strict=True) if not found]
    if empty:
        warn(
            f"{len(empty)} class folders hold no images and stay classes without images "
            f"(labels follow the folders): {_some(empty)}"
        )
    single = [name for name, found in zip(classes, per_class, strict=True) if len(found) == 1]
    if single:
        warn(
            f"{len(single)} classes have a single image, which goes to validation: they get "
            f"no training image: {_some(single)}"
        )


def _pack(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate UTF-8 paths into one byte array with n + 1 offsets."""
    encoded = [path.encode("utf-8") for path in paths]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


# --------------------------------------------------------------------------- the file


@contextmanager
def removed_on_failure(tmp: Path) -> Iterator[None]:
    """Remove the temp file ``tmp`` when writing it fails (a seed h5py cannot store,
    an image that vanished half-way): nothing but finished files is left behind."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_index(index: ImageIndex, out: str | Path) -> None:
    """Store ``index`` in HDF5 (temp file + rename, so readers never see half a file)."""
    import h5py

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    with removed_on_failure(tmp), h5py.File(tmp, "w") as f:
        f.attrs["format"] = INDEX_FORMAT
        f.attrs["root"] = index.root
        f.attrs["seed"] = np.int64(index.seed)
        f.create_dataset("classes", data=np.array(index.classes, dtype=h5py.string_dtype()))
        f.create_dataset("paths", data=index.blob)
        f.create_dataset("offsets", data=index.offsets)
        f.create_dataset("labels", data=index.labels.astype(np.int32))
        f.create_dataset("split", data=index.split.astype(np.uint8))
    os.replace(tmp, out)


#: Datasets every index file holds (with the attributes ``format`` and ``root``).
INDEX_DATASETS = ("classes", "paths", "offsets", "labels", "split")


def _is_index(f: h5py.File) -> bool:
    """Whether an open HDF5 file is an image index of this format: its ``format``
    attribute alone would also match a shard index or another tool's file."""
    stored = f.attrs.get("format")
    return (
        isinstance(stored, int | np.integer)
        and stored == INDEX_FORMAT
        and "root" in f.attrs
        and all(name in f for name in INDEX_DATASETS)
    )


def first_line(exc: Exception) -> str:
    """The first line of an error's message: h5py's own message spans several lines."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _unreadable(path: str | Path, exc: Exception) -> ImageIndexError:
    """One line for an index file that cannot be opened, naming the path and why."""
    if os.path.isdir(path):
        return ImageIndexError(f"{path}: is a folder; give the index file (`splinenas data index`)")
    return ImageIndexError(f"{path}: cannot read image index: {first_line(exc)}")


def describe_index(path: str | Path) -> str | None:
    """``"an image index of N images in K classes (seed S)"`` if ``path`` is one, else None.

    Used before overwriting: only a file this command wrote may be replaced.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if not _is_index(f):
                return None
            images, classes = f["labels"].shape[0], f["classes"].shape[0]
            return (
                f"an image index of {images} images in {classes} classes (seed {f.attrs['seed']})"
            )
    except (OSError, KeyError):
        return None


def load_index(path: str | Path, root: str | None = None, *, check_tree: bool = True) -> ImageIndex:
    """Load an index file; ``root`` overrides the stored root (the tree was moved).

    With ``check_tree`` the tree's class folders must still be the index's
    (:func:`require_same_classes`): one listing of the root, cheap at any size.

    Raises:
        ImageIndexError: not an index file of this format, or not the tree's index.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if not _is_index(f):
                raise ImageIndexError(f"{path}: not a format-{INDEX_FORMAT} splinenas image index")
            index = ImageIndex(
                root=root or str(f.attrs["root"]),
                classes=tuple(c.decode("utf-8") for c in f["classes"][()]),
                blob=f["paths"][()],
                offsets=f["offsets"][()],
                labels=f["labels"][()],
                split=f["split"][()],
                seed=int(f.attrs["seed"]),
            )
    except (OSError, KeyError) as exc:
        raise _unreadable(path, exc) from None
    if check_tree:
        require_same_classes(index, path)
    return index


def require_same_classes(index: ImageIndex, path: str | Path) -> None:
    """Refuse an index whose tree has gained or lost class folders since the scan.

    A class added later would be left out of the search unseen; the images of a
    class removed or renamed would each fail in training. Only class names are
    compared, which one listing of the root gives; images added or removed inside
    a class are not seen here. A folder the scan now leaves out (hidden, a junk folder, a loop) still counts
    as present, so an index written by an earlier scan rule stays usable.

    Raises:
        ImageIndexError: the root is not a folder, or its class folders differ.
    """
    root = index.root
    if not os.path.isdir(root):
        raise ImageIndexError(
            f"{root}: not a folder (the image tree of {path}); if the tree moved, give its "
            "new place ([data] root, or --root)"
        )
    folders = _class_folders(root, os.path.realpath(root))
    present = {*folders.found, *folders.hidden, *folders.loops}
    known = set(index.classes)
    added = [name for name in folders.found if name not in known]
    gone = [name for name in index.classes if name not in present]
    if added or gone:
        changes = "; ".join(
            f"{what}: {_some(names)}" for what, names in (("added", added), ("gone", gone)) if names
        )
        raise ImageIndexError(
            f"{path}: the class folders of {root} changed since this index was built "
            f"({changes}); build it again (splinenas data index {root} --out {path} "
            "--replace); its new split differs, so points trained with this index start over"
        )
