"""Single-writer lock for a state file: an ``O_CREAT | O_EXCL`` side file.

``fcntl``/``flock`` locks are unreliable on NFS, GPFS and Lustre, where state
files of a cluster run usually live (Optuna's journal file storage makes the
same choice for the same reason). Creating a file with ``O_EXCL`` is atomic on
all of them. The lock file records the holder's host, pid and start time so a
refusal can name the holder, and a lock left by a dead process on this host
can be taken over. A lock held from another host cannot be checked from here:
it is refused, and ``splinenas unlock`` (:func:`break_lock`) removes it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nas.errors import UserError

log = logging.getLogger(__name__)

#: A lock file younger than this may still be being written by its holder.
GRACE_SECONDS = 5.0
#: How often a waiting :meth:`FileLock.acquire` looks again.
LOCK_POLL_SECONDS = 0.2
#: Process start times from /proc are whole seconds; allow this much skew.
_START_SLACK_SECONDS = 2.0


def hostname() -> str:
    """This machine's name, as ``socket.gethostname()`` says it (without importing socket)."""
    return os.uname().nodename


class LockError(UserError, RuntimeError):
    """The lock is held by someone else, or cannot be taken or broken."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: recorded in the lock file as JSON."""

    host: str
    pid: int
    started: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on host {self.host} since {when}"


def lock_path(path: str | Path) -> Path:
    """The side file that locks the state file ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def read_holder(lock: Path) -> Holder | None:
    """The recorded holder, or None when the file is empty or unreadable (not JSON, nested
    too deeply, not a holder): whatever is in it, the caller names the lock file."""
    try:
        raw = json.loads(lock.read_text(encoding="utf-8"))
        return Holder(host=str(raw["host"]), pid=int(raw["pid"]), started=float(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # deep: see parse_json
        return None


def _process_start(pid: int) -> float | None:
    """Start time of ``pid`` in epoch seconds (Linux /proc), or None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but not been reaped (state ``Z`` in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def holder_alive(holder: Holder) -> bool:
    """Whether the holder's process still runs; only meaningful on the holder's host.

    A pid that now belongs to a process started after the lock was taken has
    been reused: the holder is gone.
    """
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if _zombie(holder.pid):
        return False  # ended; its parent (or a container's init) has not reaped it yet
    started = _process_start(holder.pid)
    return started is None or started <= holder.started + _START_SLACK_SECONDS


class FileLock:
    """An acquired lock on ``path``; :meth:`release` removes the side file."""

    def __init__(self, path: str | Path) -> None:
        self.state_path = Path(path)
        self.path = lock_path(path)
        self.holder = Holder(host=hostname(), pid=os.getpid(), started=time.time())
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock or raise :class:`LockError` naming the holder.

        ``wait``: seconds to keep trying while a live holder (or one on another
        host) has it. A short command (``record`` at the end of each of several
        trainings that end together) holds the lock for a second or so; refused
        at once, all but one of them failed and a script that did not check the
        exit code lost its measurement.
        """
        deadline = time.monotonic() + wait
        takeovers = 0
        while takeovers < 3:  # a stale lock taken over by someone else in between: look again
            if self._try_create():
                self._held = True
                return
            try:
                holder = self._wait_for_holder()
            except FileNotFoundError:
                takeovers += 1
                continue  # released in the meantime
            if holder is None:
                raise LockError(
                    f"lock file {self.path} is unreadable; if no other splinenas process uses "
                    f"this state, run `splinenas unlock --force --state {self.state_path}`"
                )
            if holder.host == self.holder.host and not holder_alive(holder):
                log.warning("taking over stale lock %s left by %s", self.path, holder.describe())
                _remove_if_holder(self.path, holder)
                takeovers += 1
            elif time.monotonic() < deadline:
                time.sleep(LOCK_POLL_SECONDS)
            else:
                raise LockError(self._held_by(holder, wait))
        raise LockError(f"could not take lock {self.path}: it keeps changing hands")

    def _held_by(self, holder: Holder, waited: float) -> str:
        """Why the lock cannot be taken: who holds it (and how long this waited)."""
        text = f"state is locked by {holder.describe()} ({self.path})"
        text += f"; waited {waited:g} s" if waited else ""
        if holder.host != self.holder.host:
            unlock = f"splinenas unlock --force --state {self.state_path}"
            text += f"; if that process is gone, run `{unlock}`"
        return text

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LockError(f"cannot create lock file {self.path}: {exc.strerror}") from None
        try:
            os.write(fd, json.dumps(asdict(self.holder)).encode())
            os.fsync(fd)
        except OSError as exc:
            os.unlink(self.path)  # an empty lock would read as unreadable to the next one
            raise LockError(f"cannot write lock file {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return True

    def _wait_for_holder(self) -> Holder | None:
        """Read the holder, waiting out a lock file that is still being written.

        Raises:
            FileNotFoundError: the lock was released meanwhile.
        """
        while True:
            holder = read_holder(self.path)
            if holder is not None:
                return holder
            if time.time() - self.path.stat().st_mtime > GRACE_SECONDS:
                return None
            time.sleep(0.05)

    def still_ours(self) -> bool:
        """Whether the lock file still names this holder (not broken by `unlock --force`)."""
        return read_holder(self.path) == self.holder

    def release(self) -> None:
        """Remove the side file if this object still holds it."""
        if self._held:
            _remove_if_holder(self.path, self.holder)
            self._held = False


def _remove_if_holder(lock: Path, holder: Holder) -> None:
    """Remove ``lock`` only if it still names ``holder`` (not a newer lock).

    The file is first renamed to a private name, which is atomic, and then
    checked; a lock that turned out to be someone else's is linked back.
    """
    private = lock.with_name(f"{lock.name}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        os.rename(lock, private)
    except FileNotFoundError:
        return
    if read_holder(private) == holder:
        private.unlink()
        return
    try:
        os.link(private, lock)
    except FileExistsError:
        log.warning("lock %s was replaced while releasing it", lock)
    private.unlink()


def break_lock(path: str | Path, force: bool = False) -> Holder | None:
    """Remove the lock of state file ``path``; return the holder it named.

    Args:
        path: the state file (not the lock file).
        force: also remove a lock held from another host or an unreadable one,
            whose holder cannot be checked from here.

    Raises:
        LockError: the holder is alive on this host, or ``force`` is needed.
    """
    lock = lock_path(path)
    if not lock.exists():
        return None
    holder = read_holder(lock)
    host = hostname()
    if holder is not None and holder.host == host and holder_alive(holder):
        raise LockError(f"{lock} is held by {holder.describe()}, which is still running")
    if not force and (holder is None or holder.host != host):
        who = "an unreadable holder" if holder is None else holder.describe()
        raise LockError(f"{lock} is held by {who}; check it has stopped, then use --force")
    try:
        lock.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise LockError(f"cannot remove {lock}: {exc.strerror}") from None
    return holder
