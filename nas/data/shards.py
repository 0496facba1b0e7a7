"""Tar shards: ImageNet-scale training data as a few hundred large files.

A parallel file system (GPFS, Lustre) serves large sequential reads well and
millions of small-file opens badly: each open is a metadata request, and
hundreds of ranks make millions of them per epoch. ``splinenas data shards
INDEX --out DIR`` therefore packs the images of an index into uncompressed
tar files (plain POSIX tar: ``tar tf`` lists them) and writes ``DIR/shards.h5``:

* ``classes``; ``shard_names`` (``train-00000.tar``, ``validation-00000.tar``, ...);
* per image, in shard order: ``shard`` (int32), ``offset`` (int64, of its tar
  header), ``size`` (int64), ``label`` (int32), ``split`` (uint8);
* attributes ``format`` and ``seed``.

Each part's images are shuffled once (seeded) before they are packed, so a
shard holds a random sample of the classes. An image that cannot be read is
left out with a warning, as training would skip it; a packing that stops
half-way keeps its finished shards, and the same command continues after
them. Training reads whole shards: :class:`ShardOrderSampler` gives each rank
its own list of shards per epoch, reads them one after another, and shuffles
the images inside a shard, so every file is opened once per epoch by one rank.
No pickle: the index is HDF5, an image is a byte range, and each read checks
that the tar header at that offset names the expected member.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from nas.data.images import ImageItems
from nas.data.index import (
    TRAIN,
    VALIDATION,
    ImageIndex,
    ImageIndexError,
    first_line,
    removed_on_failure,
)

logger = logging.getLogger(__name__)

SHARDS_FORMAT = 1
SHARDS_INDEX = "shards.h5"
#: In a shard folder being packed: what the shards are packed from, so that a run
#: stopped half-way can be continued without packing the finished shards again.
RESUME_FILE = ".shards-resume"
PART_NAMES = {TRAIN: "train", VALIDATION: "validation"}
SHARD_NAME = re.compile(r"^(train|validation)-[0-9]{5}\.tar$")
MEMBER_NAME = re.compile(r"^[0-9]{9}\.[a-z]{3,4}$")
HEADER = 512


def member_name(item: int, path: str) -> str:
    """``000001234.jpg``: the item's number and its file's extension (lower case)."""
    extension = os.path.splitext(path)[1].lower().lstrip(".") or "img"
    return f"{item:09d}.{extension}"


#: A tar member: the image's place in its shard's rows, its header's offset and its size.
Entry = tuple[int, int, int]


@dataclass
class _Packed:
    """The columns of ``shards.h5`` so far, and what was left out or taken from a run before."""

    names: list[str] = field(default_factory=list)
    columns: dict[str, list[int]] = field(
        default_factory=lambda: {k: [] for k in ("shard", "offset", "size", "label", "split")}
    )
    written: int = 0
    skipped: int = 0
    reused: int = 0

    def add(self, name: str, entries: list[Entry], labels: np.ndarray, part: int) -> None:
        """Shard ``name`` with its members ``entries``; ``labels`` are its images' labels."""
        for k, offset, size in entries:
            row = (len(self.names), offset, size, int(labels[k]), part)
            for key, value in zip(self.columns, row, strict=True):
                self.columns[key].append(value)
            self.written += size
        self.skipped += labels.size - len(entries)
        self.names.append(name)


def write_shards(
    index: ImageIndex,
    out: str | Path,
    *,
    images_per_shard: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Pack every image of ``index`` into tar shards in ``out`` and write ``out/shards.h5``.

    An image that exists but cannot be read (no permission, an I/O error) is left
    out with a warning naming it, as training would skip it; one that is gone
    stops the packing, since the index no longer describes the tree. Finished
    shards stay: run again with the same index and shard size, the packing
    takes them as they are (:data:`RESUME_FILE` says whose they are) and goes on.

    Returns:
        counts: ``shards``, ``images``, ``bytes`` written, images ``skipped``, and
        the shards ``reused`` from an earlier run.

    Raises:
        ImageIndexError: ``out`` already holds shards, a finished shard there is not
            one of this index, or no image can be read.
        OSError: an image is gone since the index was built.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / SHARDS_INDEX).exists():
        raise ImageIndexError(f"{out}: already holds {SHARDS_INDEX}; choose an empty folder")
    resume = _claim(out, _fingerprint(index, images_per_shard))
    warn = warn or logger.warning
    packed, done = _Packed(), 0
    for part, part_name in PART_NAMES.items():
        rows = np.random.default_rng([index.seed, part]).permutation(index.positions(part))
        for start in range(0, rows.size, images_per_shard):
            name = f"{part_name}-{start // images_per_shard:05d}.tar"
            chunk = rows[start : start + images_per_shard]
            if resume and (out / name).is_file():
                entries = _finished_tar(out / name, index, chunk, start, warn)
                packed.reused += 1
            else:
                entries = _write_tar(out / name, index, chunk, start, warn)
            packed.add(name, entries, index.labels[chunk], part)
            done += chunk.size
            if progress is not None:
                progress(done, len(index))
    if not packed.columns["shard"]:
        raise ImageIndexError(f"{out}: none of the {len(index)} images could be read")
    _write_shard_index(out, index, packed)
    (out / RESUME_FILE).unlink()
    return {
        "shards": len(packed.names),
        "images": len(packed.columns["shard"]),
        "bytes": packed.written,
        "skipped": packed.skipped,
        "reused": packed.reused,
    }


def _fingerprint(index: ImageIndex, images_per_shard: int) -> str:
    """What decides every shard's content: the index's images, labels, split and seed,
    and the shard size (a SHA-256; an ImageNet index hashes in well under a second)."""
    digest = hashlib.sha256(f"{SHARDS_FORMAT} {images_per_shard} {index.seed}\n".encode())
    digest.update("\n".join(index.classes).encode("utf-8"))
    for array in (index.blob, index.offsets, index.labels, index.split):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _claim(out: Path, fingerprint: str) -> bool:
    """Mark ``out`` as being packed from ``fingerprint``; whether a run before packed it
    from the same, so that its finished shards can be taken as they are."""
    marker = out / RESUME_FILE
    try:
        earlier = marker.read_text()
    except FileNotFoundError:
        earlier = None
    marker.write_text(fingerprint)
    return earlier == fingerprint


def _write_shard_index(out: Path, index: ImageIndex, packed: _Packed) -> None:
    """``shards.h5`` (temp file + rename, so readers never see half a file)."""
    import h5py

    tmp = out / f".{SHARDS_INDEX}.tmp"
    with removed_on_failure(tmp), h5py.File(tmp, "w") as f:
        f.attrs["format"] = SHARDS_FORMAT
        f.attrs["seed"] = np.int64(index.seed)
        f.create_dataset("classes", data=np.array(index.classes, dtype=h5py.string_dtype()))
        f.create_dataset("shard_names", data=np.array(packed.names, dtype=h5py.string_dtype()))
        dtypes = (np.int32, np.int64, np.int64, np.int32, np.uint8)
        for key, dtype in zip(packed.columns, dtypes, strict=True):
            f.create_dataset(key, data=np.asarray(packed.columns[key], dtype=dtype))
    os.replace(tmp, out / SHARDS_INDEX)


def _read_image(source: str, warn: Callable[[str], None]) -> bytes | None:
    """The file's bytes, or None (with a warning naming it) if it exists but cannot be read.

    Raises:
        FileNotFoundError: it is gone: the index no longer describes the tree.
    """
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        warn(f"skipping unreadable image {source}: {exc.strerror or exc}")
        return None


def _write_tar(
    path: Path, index: ImageIndex, rows: np.ndarray, first: int, warn: Callable[[str], None]
) -> list[Entry]:
    """One uncompressed USTAR file of the readable images of ``rows``; their entries."""
    entries = []
    tmp = path.with_name(f".{path.name}.tmp")
    with removed_on_failure(tmp), tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for k, row in enumerate(rows):
            source = index.path(int(row))
            data = _read_image(source, warn)
            if data is None:
                continue
            info = tarfile.TarInfo(member_name(first + k, source))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            entries.append((k, tar.offset, len(data)))
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
    return entries


def _finished_tar(
    path: Path, index: ImageIndex, rows: np.ndarray, first: int, warn: Callable[[str], None]
) -> list[Entry]:
    """The entries of a shard an earlier run finished, read from its tar headers.

    Every member must be the one this index puts there; an image that run left
    out is named again, so the summary counts it.

    Raises:
        ImageIndexError: a member that this index does not put in this shard.
    """
    entries = []
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            k = int(info.name[:9]) - first if MEMBER_NAME.fullmatch(info.name) else -1
            if not 0 <= k < rows.size or info.name != member_name(
                first + k, index.path(int(rows[k]))
            ):
                raise ImageIndexError(
                    f"{path}: member {info.name!r} is not one this index puts there; "
                    "remove the shard, or pack into an empty folder"
                )
            entries.append((k, info.offset, info.size))
    kept = {k for k, _, _ in entries}
    for k in sorted(set(range(rows.size)) - kept):
        warn(
            f"skipping unreadable image {index.path(int(rows[k]))}: it could not be read when "
            f"{path.name} was packed; remove {path.name} to pack it again"
        )
    return entries


class ShardIndex:
    """``shards.h5`` loaded: where every image's bytes are."""

    def __init__(self, folder: str | Path) -> None:
        import h5py

        self.folder = Path(folder)
        path = self.folder / SHARDS_INDEX
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != SHARDS_FORMAT:
                    raise ImageIndexError(f"{path}: not a format-{SHARDS_FORMAT} shard index")
                self.classes = tuple(c.decode("utf-8") for c in f["classes"][()])
                self.shard_names = tuple(n.decode("utf-8") for n in f["shard_names"][()])
                self.shard, self.offset, self.size, self.labels, self.split = (
                    f[key][()] for key in ("shard", "offset", "size", "label", "split")
                )
        except (OSError, KeyError) as exc:
            raise ImageIndexError(f"{path}: cannot read shard index: {first_line(exc)}") from None
        bad = [n for n in self.shard_names if not SHARD_NAME.fullmatch(n)]
        if bad:
            raise ImageIndexError(f"{path}: invalid shard name {bad[0]!r}")
        missing = [n for n in self.shard_names if not (self.folder / n).is_file()]
        if missing:
            raise ImageIndexError(f"{self.folder}: shard {missing[0]} is missing")

    def positions(self, part: int) -> np.ndarray:
        return np.flatnonzero(self.split == part)


class ShardedImages(ImageItems):
    """One part of a shard folder; item ``i`` is a byte range of one tar file."""

    def __init__(self, shards: ShardIndex, part: int, **options: Any) -> None:
        self.shards = shards
        self.rows = shards.positions(part)
        self.handles: dict[int, Any] = {}  # per worker process: open shard files
        super().__init__(shards.labels[self.rows], **options)

    def shard_of(self, i: int) -> int:
        return int(self.shards.shard[self.rows[i]])

    def name(self, i: int) -> str:
        row = int(self.rows[i])
        return (
            f"{self.shards.shard_names[self.shards.shard[row]]} at byte {self.shards.offset[row]}"
        )

    def source(self, i: int) -> io.BytesIO:
        """The member's bytes, after checking that the tar header there is the expected one."""
        row = int(self.rows[i])
        shard, offset, size = (
            int(a[row]) for a in (self.shards.shard, self.shards.offset, self.shards.size)
        )
        handle = self.handles.get(shard)
        if handle is None:
            handle = self.handles[shard] = open(
                self.shards.folder / self.shards.shard_names[shard], "rb"
            )
        handle.seek(offset)
        block = handle.read(HEADER + size)
        name = block[:100].split(b"\0", 1)[0].decode("ascii", "replace")
        stored = block[124:136].split(b"\0", 1)[0].strip() or b"0"
        if not MEMBER_NAME.fullmatch(name) or int(stored, 8) != size or len(block) != HEADER + size:
            raise ValueError(f"tar member at byte {offset} is not the indexed image ({name!r})")
        return io.BytesIO(block[HEADER:])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "handles": {}}  # open files do not travel to workers


class ShardOrderSampler(Sampler[tuple[int, int]]):
    """Each rank reads its own run of shards one after another, images shuffled inside each.

    Per epoch (seeded by seed and epoch) the shards are put in a random order
    and the images inside each shard too; that sequence, continued from its
    start up to ``world_size * num_samples`` items, is cut into one contiguous
    piece per rank. So every image is read once per epoch, all ranks take the
    same number of steps, and a rank opens its whole shards plus at most the
    two it shares with its neighbours. ``start(epoch, skip)`` resumes mid-epoch.
    """

    def __init__(self, dataset: ShardedImages, rank: int, world_size: int, seed: int) -> None:
        self.dataset, self.rank, self.world_size, self.seed = dataset, rank, world_size, seed
        self.num_samples = math.ceil(len(dataset) / world_size)
        self.epoch = self.skip = 0
        shards = np.array([dataset.shard_of(i) for i in range(len(dataset))], dtype=np.int64)
        order = np.argsort(shards, kind="stable")
        ids, first = np.unique(shards[order], return_index=True)
        self.members = dict(zip(ids.tolist(), np.split(order, first[1:]), strict=True))

    def start(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> np.ndarray:
        """This rank's items of the current epoch, before the skip."""
        rng = np.random.default_rng([self.seed, self.epoch])
        shards = rng.permutation(sorted(self.members))
        sequence = np.concatenate([rng.permutation(self.members[int(s)]) for s in shards])
        sequence = np.resize(sequence, self.world_size * self.num_samples)
        return sequence[self.rank * self.num_samples : (self.rank + 1) * self.num_samples]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, int(i)) for i in self.order()[self.skip :]])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)
