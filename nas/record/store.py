"""The state file on disk: generations, crash-safe commits and a single writer.

Only the holder of the lock (:mod:`nas.record.lock`) writes. Every commit writes
a complete new file next to the old one (bytes from :mod:`nas.record.hdf5`),
fsyncs it, keeps the old one as ``<path>.prev`` and renames the new one into
place, so a crash at any moment leaves either the old or the new generation
under ``<path>``. Readers need no lock: a file is never modified once it has
been renamed into place. A second hard link to the state file is refused: its
lock file would differ, so two controllers could run one search.
"""

from __future__ import annotations

import codecs
import os
import shutil
from pathlib import Path
from typing import Protocol

from nas.names import shown
from nas.record import integrity
from nas.record.hdf5 import READ_ERRORS, StateFormatError, corruption, state_image
from nas.record.lock import FileLock, LockError
from nas.record.state import State, StateError
from nas.record.verify import read_verified
from nas.search.space import SearchSpace


class StateWriteError(StateError):
    """A commit that could not be written (disk full, quota); the state file is unchanged."""


#: Event kind of the commit that sealed a file written before checksums.
SEAL_EVENT = "seal"

#: Bytes a commit leaves free on the state's file system, so that the lock file,
#: point folders and the next commit's ``.prev`` link do not meet a full disk at once.
FREE_RESERVE = 64 * 1024


class _Named(Protocol):
    name: str


class Experiment(Protocol):
    """What a new state needs of a parsed experiment (:class:`nas.config.Experiment`)."""

    text: str
    space: SearchSpace
    experiment: _Named


def previous_path(path: str | Path) -> Path:
    """Where the generation before the last commit is kept."""
    path = Path(path)
    return path.with_name(path.name + ".prev")


def real_path(path: str | Path) -> Path:
    """The state file's real path: symlinks resolved, so one search has one lock."""
    return Path(os.path.realpath(path))


def missing_state_message(path: Path) -> str:
    """Why there is no state at ``path``, and the way on: ``init``, or its ``.prev``."""
    prev = previous_path(path)
    if prev.exists():
        return (
            f"no state file at {shown(path)}, but its previous generation {shown(prev)} exists; "
            f"copy it to {shown(path)} to continue the search from that generation"
        )
    return f"no state file at {shown(path)} (create one with `splinenas init`)"


def _existing_state_path(path: str | Path) -> Path:
    """``path`` as a Path once it is known to be a file; else a StateError that says what it is.

    A run folder (``state/<name>/``) sits next to its state file and is an
    easy slip for ``--state``: the message names the state files it meant.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [p for p in (path.with_name(path.name + ".h5"),) if p.is_file()]
        candidates += sorted(path.glob("*.h5"))
        hint = f"; did you mean {' or '.join(map(shown, candidates[:3]))}?" if candidates else ""
        raise StateError(f"{shown(path)} is a folder, not a state file{hint}")
    if not path.exists():
        raise StateError(missing_state_message(path))
    return path


def load_state(path: str | Path) -> State:
    """Read a state file (no lock needed: committed files are never modified).

    The content is checked against the file's SHA-256 checksum; files written
    before checksums existed have none and are read unchecked.

    Raises:
        StateError: no such file.
        StateFormatError: corrupt, not a state file, or another format version.
    """
    path = _existing_state_path(path)
    try:
        return read_verified(path)
    except StateFormatError:
        raise
    except READ_ERRORS as exc:
        if path.suffix.lower() not in STATE_SUFFIXES and _is_text(path):
            raise StateFormatError(
                f"{path} is a text file, not a state file (a state is an HDF5 file that "
                "`splinenas init EXPERIMENT.toml --state STATE.h5` creates); give the state "
                "with --state"
            ) from None
        raise StateFormatError(
            f"{path} is corrupt or incomplete ({corruption(exc)}); {_previous_advice(path)}"
        ) from None


#: Names of state files: one of them holding text was a state (overwritten by a tool, say),
#: and the advice on its previous generation and backups applies.
STATE_SUFFIXES = (".h5", ".hdf5")


def _is_text(path: Path) -> bool:
    """Whether ``path`` starts as UTF-8 text without NUL bytes: an experiment ``.toml`` or a
    CSV given as the state, never a damaged state file (an HDF5 file's first bytes, its
    superblock, hold NUL bytes whatever bits of it are flipped)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at 4096 is fine
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and b"\0" not in head


def _previous_advice(path: Path) -> str:
    """What to do about a corrupt ``path``, after checking its ``.prev`` as strictly."""
    prev = previous_path(path)
    if not prev.exists():
        return f"there is no previous generation ({prev} does not exist): restore it from a backup"
    try:
        state = read_verified(prev)
    except StateFormatError as exc:
        return f"the previous generation is unusable too ({exc}): restore it from a backup"
    except READ_ERRORS as exc:
        return (
            f"the previous generation {prev} is corrupt too ({corruption(exc)}): "
            f"restore both from a backup"
        )
    return (
        f"the previous generation {prev} (generation {state.generation}) is intact: "
        f"`splinenas fsck --repair --state {path}` puts it back (or copy it over {path}), "
        f"going back one commit"
    )


def _previous_staging(path: Path) -> Path:
    """The name :func:`_keep_previous` links the current generation to before it becomes ``.prev``."""
    prev = previous_path(path)
    return prev.with_name(prev.name + ".tmp")


def _refuse_hard_links(path: Path) -> None:
    """A state file with another hard link could be run by two controllers under two locks.

    The expected second links are those a commit leaves when it is killed
    while it keeps the previous generation: ``.prev.tmp`` (linked, not yet
    renamed) or ``.prev`` (renamed, the new generation not yet in place).
    """
    links = path.stat().st_nlink
    expected = [
        name
        for name in (previous_path(path), _previous_staging(path))
        if name.exists() and os.path.samefile(name, path)
    ]
    if links == 1 + len(expected):
        return
    raise LockError(
        f"{path} has {links} hard links: another name for the same state file would let a "
        f"second controller run this search; remove the other names "
        f"(`find / -samefile {path}`) or copy the file"
    )


def write_state(state: State, path: Path) -> None:
    """Write ``state`` as a complete new file at ``path`` (not crash-safe by itself).

    Raises:
        StateWriteError: not enough space, or the write failed; ``path`` is removed again.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateWriteError(f"cannot create a file in {path.parent}: {exc.strerror}") from None
    try:
        image = state_image(state)
        _check_free_space(path.parent, len(image))
        view = memoryview(image)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StateWriteError(f"{exc.strerror} while writing the new generation") from None
        raise
    finally:
        os.close(fd)


def _check_free_space(folder: Path, needed: int) -> None:
    """Refuse to start a write that would leave less than :data:`FREE_RESERVE` free.

    The new image is the only new space a commit takes: the generation it
    replaces stays as ``.prev`` by a hard link.
    """
    try:
        stats = os.statvfs(folder)
    except OSError:
        return  # cannot tell: the write itself will say
    free = stats.f_bavail * stats.f_frsize
    if free < needed + FREE_RESERVE:
        raise StateWriteError(
            f"{free} bytes free in {folder}, but writing the state takes {needed} bytes "
            f"and {FREE_RESERVE} more are kept free (a reserve for the lock and point files)"
        )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make renames in directory ``path`` durable (not possible on every platform)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network file systems refuse fsync on directories
    finally:
        os.close(fd)


def _keep_previous(path: Path) -> None:
    """Make ``<path>.prev`` the current generation before it is replaced."""
    prev = previous_path(path)
    staging = _previous_staging(path)
    staging.unlink(missing_ok=True)
    try:
        os.link(path, staging)
    except OSError:  # file systems without hard links
        shutil.copyfile(path, staging)
        _fsync_file(staging)
    os.replace(staging, prev)


class StateStore:
    """The writer of one state file; holds its lock until :meth:`close`.

    Use :meth:`create` or :meth:`open` (writers) and :meth:`read` (no lock)::

        with StateStore.open(path) as store:
            store.state.record(3, 71.2)
            store.commit()
    """

    def __init__(self, path: Path, state: State, lock: FileLock) -> None:
        self.path = path
        self.state = state
        self._lock = lock
        self._committed_revision: int | None = None if not path.exists() else state.revision

    @classmethod
    def create(cls, path: str | Path, experiment: Experiment) -> StateStore:
        """Create a state file for ``experiment`` (generation 1, no points) and hold it."""
        path = real_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path)
        lock.acquire()
        try:
            if path.exists():
                raise StateError(f"{path} already exists; choose another --state path")
            store = cls(path, State(experiment.text, experiment.space), lock)
            store.state.log("create", f"experiment {experiment.experiment.name}")
            store.commit()
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def open(cls, path: str | Path, wait: float = 0.0) -> StateStore:
        """Open an existing state file for writing; raises LockError if it is held
        (after trying for ``wait`` seconds, :meth:`FileLock.acquire`).

        The lock and every commit go through the real path, so a symlinked
        name locks the same search and stays a symlink; a second hard link
        is refused, since its lock file would differ.
        """
        path = real_path(_existing_state_path(path))
        _refuse_hard_links(path)
        lock = FileLock(path)
        lock.acquire(wait)
        try:
            for leftover in path.parent.glob(f"{path.name}.tmp.*"):
                leftover.unlink()  # from a writer that died mid-commit
            _previous_staging(path).unlink(missing_ok=True)  # likewise
            store = cls(path, load_state(path), lock)
            store._seal()
        except BaseException:
            lock.release()
            raise
        return store

    def _seal(self) -> None:
        """Give a file from before checksums its checksum: every later read is verified.

        Until then each read parses the file in a child process under a time
        limit (:func:`nas.record.verify.sealed_copy`); the unsealed generation
        stays as ``.prev``.
        """
        if integrity.file_has_checksum(self.path):
            return
        self.state.log(SEAL_EVENT, "added the SHA-256 checksum block this file was written without")
        self.commit()

    @staticmethod
    def read(path: str | Path) -> State:
        """The last committed generation, without taking the lock."""
        return load_state(path)

    def commit(self) -> None:
        """Write the state as the next generation, crash-safely; a no-op when nothing changed.

        Raises:
            StateWriteError: the disk is full (or the write failed otherwise);
                the state file on disk is the last committed generation.
        """
        if not self._lock.held or not self._lock.still_ours():
            raise LockError(f"lock {self._lock.path} is no longer held by this process")
        if self.state.revision == self._committed_revision:
            return
        staging = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}")
        staging.unlink(missing_ok=True)
        self.state.generation += 1
        try:
            write_state(self.state, staging)
            if self.path.exists():
                _keep_previous(self.path)
            os.replace(staging, self.path)
            _fsync_dir(self.path.parent)
            self._committed_revision = self.state.revision
        except BaseException as exc:
            self.state.generation -= 1
            staging.unlink(missing_ok=True)
            if not isinstance(exc, (OSError, StateWriteError)):
                raise
            raise StateWriteError(self._failure(exc)) from None

    def _failure(self, exc: BaseException) -> str:
        """What a failed commit left: the last generation, or (at creation) no file at all."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if not self.path.exists():
            return f"cannot create {self.path}: {reason}; nothing was written"
        return (
            f"commit failed: {reason}; {self.path} is unchanged (generation "
            f"{self.state.generation}) and a restart resumes from it"
        )

    def close(self) -> None:
        """Release the lock; uncommitted changes are dropped."""
        self._lock.release()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
