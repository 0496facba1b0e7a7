"""Check a state file and its previous generation; put back the newest good one.

``splinenas fsck`` reads both generations as strictly as every command does
(version, SHA-256 checksum, decoding; a file without a checksum in a child
process under a time limit) and reports each. A sound file of another format
version is ``newer`` or ``older``, never corrupt. With ``--repair`` a current
file that fails while ``.prev`` passes is replaced by ``.prev``, under the
state's lock; the corrupt file is kept next to it as ``<name>.corrupt-<time>``,
so nothing is deleted, and every point whose status or value differs between
the two generations is named (read from the corrupt file as far as it decodes).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nas.record import integrity
from nas.record.hdf5 import (
    READ_ERRORS,
    StateFormatError,
    StateVersionError,
    corruption,
    decode_image,
)
from nas.record.lock import FileLock
from nas.record.state import Point, State
from nas.record.store import previous_path, real_path
from nas.record.verify import read_verified, sealed_copy

#: Statuses of a file that another splinenas version reads: reported, never repaired away.
OTHER_VERSION = ("newer", "older")


@dataclass(frozen=True)
class Generation:
    """What one file holds: ``ok``, ``unchecked`` (no checksum yet), ``corrupt``, ``missing``,
    or ``newer``/``older`` (a sound file of another format version)."""

    path: str
    status: str
    generation: int | None = None
    detail: str = ""

    @property
    def good(self) -> bool:
        return self.status in ("ok", "unchecked")

    def line(self) -> str:
        number = "" if self.generation is None else f" (generation {self.generation})"
        return f"{self.path}: {self.status}{number}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check(path: str | os.PathLike) -> Generation:
    """Read ``path`` as every command would and say what it holds.

    A file is read once per process while it stays the same file (a repair
    checks each generation before and after; a file without a checksum costs
    a child process each time).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return Generation(str(path), "missing")
    key = _identity(path)
    if key not in _checked:
        _checked[key] = _check(path)
    return _checked[key]


def _identity(path: Path) -> tuple[str, int, int, int, int]:
    stat = path.stat()
    return (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


#: Verdicts by file identity, for this process.
_checked: dict[tuple[str, int, int, int, int], Generation] = {}


def _check(path: Path) -> Generation:
    try:
        state = read_verified(path)
        dict(state.curves)  # decoded when asked for: fsck asks for every one
    except StateVersionError as exc:
        return Generation(str(path), "newer" if exc.newer else "older", detail=str(exc))
    except StateFormatError as exc:
        return Generation(str(path), "corrupt", detail=str(exc))
    except READ_ERRORS as exc:
        return Generation(str(path), "corrupt", detail=corruption(exc))
    checked = integrity.file_has_checksum(path)
    detail = "" if checked else "written before checksums; sealed by the next controller or write"
    return Generation(str(path), "ok" if checked else "unchecked", state.generation, detail)


def check_both(path: str | os.PathLike) -> tuple[Generation, Generation]:
    """The current generation and ``.prev``."""
    return check(path), check(previous_path(path))


def repair(path: str | os.PathLike) -> str:
    """Put ``.prev`` back when the current file fails and ``.prev`` passes; what was done.

    Raises:
        LockError: a controller holds the state.
        StateFormatError: neither generation is good.
    """
    path = real_path(path)
    lock = FileLock(path)
    lock.acquire()
    try:
        current, prev = check_both(path)
        if current.good:
            return f"{path} is good (generation {current.generation}); nothing to repair"
        if current.status in OTHER_VERSION:
            raise StateFormatError(f"not repaired: {current.detail}")
        if not prev.good:
            raise StateFormatError(
                f"no good generation: {current.line()}; {prev.line()}; restore from a backup"
            )
        lost = differences(path, current, read_verified(previous_path(path)))
        return _restore(path, previous_path(path), current, prev) + f"; {lost}"
    finally:
        lock.release()


def differences(path: Path, current: Generation, good: State) -> str:
    """Every point whose status or value differs between the corrupt file and ``good``.

    The corrupt file is decoded without its checksum, in a child process under
    a time limit; its numbers may be damaged too, so the lines say what it reads.
    """
    if current.status == "missing":
        return "the current generation is missing: what its last commit changed is unknown"
    if not integrity.file_has_checksum(path):
        return f"what its last commit changed cannot be read ({current.detail})"
    try:
        lost = decode_image(sealed_copy(path, unverified=True), path)
    except (StateFormatError, *READ_ERRORS) as exc:
        return f"what its last commit changed cannot be read ({corruption(exc)})"
    return changed_points(lost, good)


def changed_points(lost: State, kept: State) -> str:
    """One phrase per point whose status or value differs, as the corrupt file reads."""
    kept_points = {p.id: p for p in kept.points}
    lines = []
    for point in lost.points:
        before = kept_points.get(point.id)
        if before is None:
            lines.append(f"point {point.id} ({_what(point)}) is not in the restored generation")
        elif (before.status, before.value) != (point.status, point.value):
            lines.append(f"point {point.id}: {_what(point)} becomes {_what(before)}")
    if not lines:
        return "no point's status or value differs between the two generations"
    return "points that differ (as the corrupt file reads): " + "; ".join(lines)


def _what(point: Point) -> str:
    status, value = point.status.value, point.value
    return status if value is None else f"{status} {value:.6g}"


def _restore(path: Path, prev: Path, current: Generation, good: Generation) -> str:
    staging = path.with_name(f"{path.name}.tmp.fsck")
    shutil.copyfile(prev, staging)
    with open(staging, "rb") as handle:
        os.fsync(handle.fileno())
    kept = ""
    if current.status != "missing":
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.link(path, aside)
        kept = f"; the corrupt file is kept as {aside.name}"
    os.replace(staging, path)
    return f"restored generation {good.generation} from {prev.name} to {path}{kept}"
