"""A state file's checksum: SHA-256 over its canonical content, verified on every read.

A flipped bit on a disk or a network file system can leave an HDF5 file that
still opens but holds other numbers. Every generation therefore carries the
SHA-256 of its content twice, as the root attribute ``sha256`` and as the
dataset ``/sha256``, so a flip that destroys one copy is still noticed; a
file with neither is from before checksums and is read unchecked.

The content is walked generically (every group, dataset and attribute in
name order), so attributes added later are covered without change here.
Before any dataset is read its declared size is checked against the file's
size, so a flipped shape cannot make a read run for hours or exhaust memory.
"""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np

#: Name of the checksum attribute (on the root group) and dataset.
CHECKSUM = "sha256"


class IntegrityError(ValueError):
    """The content does not match its checksum, or declares impossible sizes."""


def content_digest(file: h5py.File, file_bytes: int | None = None) -> str:
    """SHA-256 (hex) of every object, attribute and value except the checksum itself.

    Args:
        file: an open state file.
        file_bytes: the file's size; a dataset declaring more elements than
            this cannot be genuine and raises before it is read.

    Raises:
        IntegrityError: a dataset declares more elements than the file can hold.
    """
    digest = hashlib.sha256()
    _walk(file, "/", digest, file_bytes)
    return digest.hexdigest()


def _walk(group: h5py.Group, path: str, digest: hashlib._Hash, limit: int | None) -> None:
    _attributes(group, path, digest)
    for name in sorted(group):
        if path == "/" and name == CHECKSUM:
            continue
        item = group[name]
        where = f"{path}{name}"
        if isinstance(item, h5py.Group):
            digest.update(f"group {where}\n".encode())
            _walk(item, where + "/", digest, limit)
        else:
            _dataset(item, where, digest, limit)


def _attributes(obj: h5py.HLObject, path: str, digest: hashlib._Hash) -> None:
    for name in sorted(obj.attrs):
        if path == "/" and name == CHECKSUM:
            continue
        digest.update(f"attr {path}@{name}={_canonical(obj.attrs[name])!r}\n".encode())


def _dataset(dataset: h5py.Dataset, where: str, digest: hashlib._Hash, limit: int | None) -> None:
    if limit is not None and dataset.size > max(limit, 1):
        raise IntegrityError(
            f"dataset {where} declares {dataset.size} elements, more than the file's "
            f"{limit} bytes can hold"
        )
    digest.update(f"dataset {where} {dataset.dtype.str} {dataset.shape}\n".encode())
    _attributes(dataset, where, digest)
    data = dataset[()]
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        digest.update(np.ascontiguousarray(data).tobytes())
    else:
        digest.update(repr(_canonical(data)).encode())


def _canonical(value: object) -> object:
    """Plain Python values with a stable repr (arrays as nested lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def stamp(file: h5py.File) -> None:
    """Store the checksum of ``file``'s content (both copies); call after writing it all."""
    value = content_digest(file)
    file.attrs[CHECKSUM] = value
    file.create_dataset(CHECKSUM, data=value, dtype=h5py.string_dtype("ascii"))


def verify(file: h5py.File, path: str | os.PathLike) -> bool:
    """Check ``file`` against its stored checksum; False for a file from before checksums.

    Raises:
        IntegrityError: a copy of the checksum is missing or differs from the content.
    """
    stored = {_stored_attribute(file), _stored_dataset(file)} - {None}
    if not stored:
        return False
    actual = content_digest(file, os.path.getsize(path))
    if stored != {actual}:
        raise IntegrityError(f"its content does not match its SHA-256 checksum ({actual[:12]}...)")
    return True


def _stored_attribute(file: h5py.File) -> str | None:
    value = file.attrs.get(CHECKSUM)
    return value.decode() if isinstance(value, bytes) else value


def _stored_dataset(file: h5py.File) -> str | None:
    item = file.get(CHECKSUM)
    if not isinstance(item, h5py.Dataset) or item.shape != () or item.dtype.kind not in "SO":
        return None
    value = item[()]
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
