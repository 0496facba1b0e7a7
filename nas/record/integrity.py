"""A state file's checksum: SHA-256 of its bytes, checked before HDF5 parses any of them.

A flipped bit on a disk or a network file system can leave an HDF5 file that
still opens but holds other numbers, or that sends the HDF5 library into an
endless loop while it parses metadata. So every generation starts with an
HDF5 *user block* (512 bytes the library skips) holding the SHA-256 of the
rest of the file. A reader hashes the bytes first and hands only verified
bytes to h5py: a flip anywhere, the user block included, is a clear error
before anything is parsed, and nothing is parsed that could hang. The hash
covers every dataset and attribute, including ones added later.

A file that starts with the plain HDF5 signature was written before checksums
existed; it is parsed in a child process under a time limit
(:func:`nas.record.verify.sealed_copy`) and sealed by the first writer that opens it.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

#: Bytes reserved at the start of every state file (HDF5 ``userblock_size``).
USERBLOCK = 512
_MAGIC = b"splinenas-state sha256="
#: The HDF5 signature; it starts the file or follows a user block of 512 * 2**k bytes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Where HDF5 looks for its signature in a file (a state file's is at 512).
_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096)


class IntegrityError(ValueError):
    """The bytes do not match their checksum, or the checksum block is damaged."""


def seal(image: bytes) -> bytes:
    """The HDF5 file ``image`` behind a user block that holds its checksum.

    HDF5 finds its superblock at offset 512 and reads addresses relative to
    it, so prepending the block needs no change inside the image.
    """
    header = _MAGIC + hashlib.sha256(image).hexdigest().encode() + b"\n"
    return header.ljust(USERBLOCK, b"\0") + image


def read_checked(path: str | os.PathLike) -> tuple[bytes, bool]:
    """The file's bytes, verified; and whether they carried a checksum.

    Raises:
        IntegrityError: the checksum block is damaged or does not match.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if not has_checksum(data):
        return data, False
    check_image(data)
    return data, True


def open_checked(path: str | os.PathLike) -> tuple[BinaryIO, bool]:
    """The file opened for reading, its bytes verified; and whether they carried a checksum.

    The bytes are hashed in blocks, not held: a reader parses them from this
    handle afterwards. Committed generations are replaced by a rename, never
    written in place, so what the handle reads later is what was verified
    even when a newer generation replaces the path meanwhile.

    Raises:
        IntegrityError: the checksum block is damaged or does not match.
        OSError: the file cannot be read.
    """
    handle = open(path, "rb")  # noqa: SIM115 (returned open: the state's curves read from it)
    try:
        header = handle.read(USERBLOCK)
        if not has_checksum(header):
            handle.seek(0)
            return handle, False
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
        _compare(header, digest.hexdigest())
        handle.seek(0)
        return handle, True
    except BaseException:
        handle.close()
        raise


def has_checksum(data: bytes) -> bool:
    """False for the bytes of a file from before checksums (the plain HDF5 signature first)."""
    return not data.startswith(HDF5_SIGNATURE)


def is_hdf5(data: bytes) -> bool:
    """Whether ``data`` (a file's first 4 kB or more) is the start of an HDF5 file."""
    return any(data[offset:].startswith(HDF5_SIGNATURE) for offset in _SIGNATURE_OFFSETS)


def file_is_hdf5(path: str | os.PathLike) -> bool:
    """:func:`is_hdf5` of a file's first bytes; False for what is not a regular file (a FIFO
    would block the reader) or cannot be read."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as handle:
            return is_hdf5(handle.read(_SIGNATURE_OFFSETS[-1] + len(HDF5_SIGNATURE)))
    except OSError:
        return False


def file_has_checksum(path: str | os.PathLike) -> bool:
    """:func:`has_checksum` of the file's first bytes."""
    with open(path, "rb") as handle:
        return has_checksum(handle.read(len(HDF5_SIGNATURE)))


def check_image(data: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``data`` is a sealed image that matches its checksum."""
    _compare(data[:USERBLOCK], hashlib.sha256(memoryview(data)[USERBLOCK:]).hexdigest())


def _compare(header: bytes, actual: str) -> None:
    """Raise :class:`IntegrityError` unless the user block ``header`` holds the checksum ``actual``."""
    end = header.find(b"\n")
    if not header.startswith(_MAGIC) or end != len(_MAGIC) + 64:
        raise IntegrityError("its checksum block is damaged (not a splinenas state header)")
    stored = header[len(_MAGIC) : end].decode("ascii", errors="replace")
    if header[end + 1 :].strip(b"\0"):
        raise IntegrityError("its checksum block is damaged (bytes after the checksum)")
    if stored != actual:
        raise IntegrityError(
            f"its content does not match its SHA-256 checksum (stored {stored[:12]}..., "
            f"computed {actual[:12]}...)"
        )
