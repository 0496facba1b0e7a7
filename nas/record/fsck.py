"""Check a state file and its previous generation; put back the newest good one.

``splinenas fsck`` reads both generations as strictly as every command does
(version, SHA-256 checksum, decoding) and reports each. With ``--repair`` a
current file that fails while ``.prev`` passes is replaced by ``.prev``, under
the state's lock; the corrupt file is kept next to it as
``<name>.corrupt-<time>``, so nothing is deleted.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nas.record import integrity
from nas.record.hdf5 import READ_ERRORS, StateFormatError, corruption, read_verified
from nas.record.lock import FileLock
from nas.record.store import previous_path, real_path


@dataclass(frozen=True)
class Generation:
    """What one file holds: ``ok``, ``unchecked`` (no checksum yet), ``corrupt`` or ``missing``."""

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
    """Read ``path`` as every command would and say what it holds."""
    path = Path(path)
    if not os.path.lexists(path):
        return Generation(str(path), "missing")
    try:
        state = read_verified(path)
        dict(state.curves)  # decoded when asked for: fsck asks for every one
    except StateFormatError as exc:
        return Generation(str(path), "corrupt", detail=str(exc))
    except READ_ERRORS as exc:
        return Generation(str(path), "corrupt", detail=corruption(exc))
    _, checked = integrity.read_checked(path)
    detail = "" if checked else "written before checksums; read unchecked"
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
        if not prev.good:
            raise StateFormatError(
                f"no good generation: {current.line()}; {prev.line()}; restore from a backup"
            )
        return _restore(path, previous_path(path), current, prev)
    finally:
        lock.release()


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
