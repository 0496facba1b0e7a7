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
shard holds a random sample of the classes. Training reads whole shards:
:class:`ShardOrderSampler` gives each rank its own list of shards per epoch,
reads them one after another, and shuffles the images inside a shard, so
every file is opened once per epoch by one rank. No pickle: the index is
HDF5, an image is a byte range, and each read checks that the tar header at
that offset names the expected member.
"""

from __future__ import annotations

import io
import math
import os
import re
import tarfile
from collections.abc import Callable, Iterator
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

SHARDS_FORMAT = 1
SHARDS_INDEX = "shards.h5"
PART_NAMES = {TRAIN: "train", VALIDATION: "validation"}
SHARD_NAME = re.compile(r"^(train|validation)-[0-9]{5}\.tar$")
MEMBER_NAME = re.compile(r"^[0-9]{9}\.[a-z]{3,4}$")
HEADER = 512


def member_name(item: int, path: str) -> str:
    """``000001234.jpg``: the item's number and its file's extension (lower case)."""
    extension = os.path.splitext(path)[1].lower().lstrip(".") or "img"
    return f"{item:09d}.{extension}"


def write_shards(
    index: ImageIndex,
    out: str | Path,
    *,
    images_per_shard: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Pack every image of ``index`` into tar shards in ``out`` and write ``out/shards.h5``.

    Returns:
        counts: ``shards``, ``images`` and ``bytes`` written.

    Raises:
        ImageIndexError: ``out`` already holds shards.
        OSError: an image cannot be read.
    """
    import h5py

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / SHARDS_INDEX).exists():
        raise ImageIndexError(f"{out}: already holds {SHARDS_INDEX}; choose an empty folder")
    names: list[str] = []
    columns: dict[str, list[int]] = {k: [] for k in ("shard", "offset", "size", "label", "split")}
    written = 0
    for part, part_name in PART_NAMES.items():
        rows = np.random.default_rng([index.seed, part]).permutation(index.positions(part))
        for start in range(0, rows.size, images_per_shard):
            name = f"{part_name}-{start // images_per_shard:05d}.tar"
            chunk = rows[start : start + images_per_shard]
            entries = _write_tar(out / name, index, chunk, first=start)
            for (offset, size), row in zip(entries, chunk, strict=True):
                for key, value in zip(
                    columns,
                    (len(names), offset, size, int(index.labels[row]), part),
                    strict=True,
                ):
                    columns[key].append(value)
                written += size
            names.append(name)
            if progress is not None:
                progress(len(columns["shard"]), len(index))
    tmp = out / f".{SHARDS_INDEX}.tmp"
    with removed_on_failure(tmp), h5py.File(tmp, "w") as f:
        f.attrs["format"] = SHARDS_FORMAT
        f.attrs["seed"] = np.int64(index.seed)
        f.create_dataset("classes", data=np.array(index.classes, dtype=h5py.string_dtype()))
        f.create_dataset("shard_names", data=np.array(names, dtype=h5py.string_dtype()))
        dtypes = (np.int32, np.int64, np.int64, np.int32, np.uint8)
        for key, dtype in zip(columns, dtypes, strict=True):
            f.create_dataset(key, data=np.asarray(columns[key], dtype=dtype))
    os.replace(tmp, out / SHARDS_INDEX)
    return {"shards": len(names), "images": len(columns["shard"]), "bytes": written}


def _write_tar(
    path: Path, index: ImageIndex, rows: np.ndarray, first: int
) -> list[tuple[int, int]]:
    """One uncompressed USTAR file; returns (header offset, size) of each member."""
    entries = []
    tmp = path.with_name(f".{path.name}.tmp")
    with removed_on_failure(tmp), tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for k, row in enumerate(rows):
            source = index.path(int(row))
            with open(source, "rb") as handle:
                data = handle.read()
            info = tarfile.TarInfo(member_name(first + k, source))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            entries.append((tar.offset, len(data)))
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
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
