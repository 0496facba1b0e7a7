"""Reading a state file so that no file can hang the reader.

A file with a checksum is hashed before HDF5 parses a byte of it
(:mod:`nas.record.integrity`). A file from before checksums cannot be known
sound before parsing, and damaged metadata can make the HDF5 library spin for
ever, so it is parsed in a child process (``python -m nas.record.reseal``)
that is killed after :func:`read_limit` seconds; what comes back is the same
state encoded by :mod:`nas.record.hdf5`, behind its checksum.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from nas.record import integrity
from nas.record.hdf5 import (
    StateFormatError,
    StateVersionError,
    UnsealedReadError,
    decode_image,
    decode_source,
)
from nas.record.state import State

#: Seconds a file without a checksum may take to decode before it counts as corrupt.
READ_LIMIT = 15.0


def read_verified(path: Path) -> State:
    """Decode the state file at ``path`` after checking its checksum and its version.

    The bytes are hashed, then parsed from the same open file; learning curves
    are decoded when first asked for (``state.curves``).

    Raises:
        StateFormatError: another format version (:class:`StateVersionError`),
            or not a state file.
        IntegrityError, UnsealedReadError, and any of
            :data:`nas.record.hdf5.READ_ERRORS`: the file is corrupt.
    """
    handle, checked = integrity.open_checked(path)
    if not checked:
        handle.close()
        return decode_image(sealed_copy(path), path)
    return decode_source(handle, path)


def read_limit() -> float:
    """Seconds a child may spend decoding a file without a checksum (``SPLINENAS_READ_LIMIT``)."""
    text = os.environ.get("SPLINENAS_READ_LIMIT", "")
    try:
        value = float(text) if text else READ_LIMIT
    except ValueError:
        return READ_LIMIT
    return value if math.isfinite(value) and value > 0 else READ_LIMIT


def sealed_copy(path: str | os.PathLike, *, unverified: bool = False) -> bytes:
    """The state in ``path`` re-encoded and sealed by a child process with a time limit.

    HDF5 can spin for ever on damaged metadata, and only a file with a
    checksum can be known sound before parsing. So a file without one is
    parsed in ``python -m nas.record.reseal``, killed after :func:`read_limit`
    seconds; what comes back was written by this codec and carries its
    checksum. With ``unverified`` a sealed file whose checksum fails is
    decoded all the same (what a repair compares, never what is loaded).

    Raises:
        StateVersionError, StateFormatError: as :func:`read_verified`.
        UnsealedReadError: the child failed or ran out of time.
    """
    limit = read_limit()
    argv = [sys.executable, "-m", "nas.record.reseal", os.fspath(path)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    try:
        done = subprocess.run(
            argv + (["--unverified"] if unverified else []),
            capture_output=True,
            timeout=limit,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnsealedReadError(
            f"it has no checksum and could not be decoded within {limit:g} s "
            f"(damaged HDF5 metadata can make the library spin)"
        ) from None
    if done.returncode == 0:
        try:
            integrity.check_image(done.stdout)
        except integrity.IntegrityError as exc:
            raise UnsealedReadError(
                f"its decoding child answered unreadable bytes ({exc})"
            ) from None
        return done.stdout
    raise _child_error(done.stderr, path)


def _child_error(stderr: bytes, path: str | os.PathLike) -> Exception:
    """The error the reseal child reported on its last stderr line (JSON)."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1])
        kind, message = report["error"], str(report["message"])
    except (IndexError, ValueError, KeyError, TypeError):
        tail = lines[-1] if lines else "no message"
        return UnsealedReadError(f"its decoding child failed: {tail}")
    if kind == "version":
        return StateVersionError(path, int(report["version"]), str(report["package_version"]))
    if kind == "format":
        return StateFormatError(message)
    return UnsealedReadError(message)
