"""A submission in flight stays visible to the next controller on any host, even after a SIGKILL.

``sbatch`` and ``bsub`` retry for minutes when the scheduler is busy, and a
controller killed meanwhile leaves them running: such an orphan may submit
*after* a restarted controller asked the scheduler for the job name and
found nothing, and the point would run twice. Three rules close that gap:

1. **Evidence with the state.** Before a submitter starts, the controller
   commits a :class:`Submission` into the point's record in the state file
   (shared by every login node): host, controller pid, start time, job name,
   the host-local lock file and the longest the submitter can run.
2. **A bounded submitter.** The submitter runs under coreutils ``timeout``
   (:func:`submitting`), which kills its whole process group after
   :func:`deadline` seconds even when the controller is gone, so no orphan
   outlives :attr:`Submission.seconds`.
3. **Judging the evidence** (:func:`in_flight`). On the host that started it,
   the submitter and any child of it hold an ``flock`` on the lock file, taken
   by the controller and inherited; a free lock means every one of them has
   ended. On another host (or when the lock file is gone) nothing can be
   checked, so the point waits until :attr:`Submission.seconds` have passed on
   this controller's own clock since it first saw the evidence (no clock
   comparison), or the evidence is older than that by any clock within
   :data:`CLOCK_SKEW` seconds. Only then does the controller ask the scheduler
   for the job name, and it cancels every extra job under that name.

The lock files live in the local temporary folder (``flock`` semantics vary
on network file systems); the evidence names the file by its absolute path,
so a controller restarted with another ``TMPDIR`` still finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from nas.cluster.proc import Guard, guarded
from nas.record.lock import Holder, holder_alive, hostname

log = logging.getLogger(__name__)

#: Seconds the clocks of two login nodes may differ; evidence older than its
#: submitter's bound plus this is over without waiting.
CLOCK_SKEW = 300.0
#: Seconds ``timeout`` waits after its signal before it sends SIGKILL.
KILL_AFTER = 5.0
#: Seconds added to a submitter's bound for starting and reaping it.
SLACK = 5.0


class LockHeld(RuntimeError):
    """An earlier submitter of this job name (an orphan of a killed controller) still runs."""


@dataclass(frozen=True)
class Submission:
    """Evidence of one submission, committed to the state before the submitter starts."""

    job_name: str
    host: str
    pid: int
    started: float
    lock: str
    seconds: float

    @classmethod
    def begin(cls, job_name: str, cwd: str | os.PathLike, timeout: float) -> Submission:
        """The evidence of a submission this process is about to make."""
        limit = deadline(timeout)
        return cls(job_name, hostname(), os.getpid(), time.time(), str(lock_path(job_name, cwd)),
                   limit + KILL_AFTER + SLACK)  # fmt: skip

    @classmethod
    def from_dict(cls, raw: object) -> Submission | None:
        """The evidence as stored, or None when there is none or it is unreadable."""
        if not isinstance(raw, Mapping):
            return None
        try:
            return cls(str(raw["job_name"]), str(raw["host"]), int(raw["pid"]),
                       float(raw["started"]), str(raw["lock"]), float(raw["seconds"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def deadline(timeout: float) -> float:
    """Seconds a submitter may run: ``SPLINENAS_SUBMIT_SECONDS``, else the command timeout."""
    text = os.environ.get("SPLINENAS_SUBMIT_SECONDS", "")
    try:
        value = float(text) if text else timeout
    except ValueError:
        value = timeout
    return value if math.isfinite(value) and value > 0 else timeout


def lock_path(job_name: str, cwd: str | os.PathLike) -> Path:
    """The host-local lock file of one submission: the job name plus a digest of its folder."""
    where = hashlib.sha256(os.fsencode(os.path.realpath(cwd))).hexdigest()[:16]
    return lock_folder() / f"{job_name}-{where}.lock"


#: The lock folder this process uses, per temporary folder (:func:`lock_folder`).
_folders: dict[Path, Path] = {}


def lock_folder() -> Path:
    """This user's folder of submission locks in the local temporary folder, made private.

    Its name is predictable (``splinenas-submit-<uid>``) and ``/tmp`` is shared
    on a login node: a folder another user made first could hold a lock that
    blocks a submission for good, or a link that makes the controller create
    files elsewhere. One that is not a real folder of this user's, closed to
    others, is not used: the locks go to a new private folder instead (its
    path is in each submission's evidence, so a restarted controller finds them).
    """
    base = Path(tempfile.gettempdir()) / f"splinenas-submit-{os.getuid()}"
    if base not in _folders:
        with contextlib.suppress(FileExistsError):
            base.mkdir(mode=0o700)
        problem = _not_private(base)
        folder = base
        if problem is not None:
            folder = Path(tempfile.mkdtemp(prefix=f"{base.name}-"))
            log.warning("%s %s: submission locks go to %s instead", base, problem, folder)
        _folders[base] = folder
    return _folders[base]


def _not_private(folder: Path) -> str | None:
    """Why ``folder`` may not hold this user's locks, or None: a folder of its own, 0700."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is a link or a file, not a folder"
    if info.st_uid != os.getuid():
        return f"belongs to uid {info.st_uid}"
    if info.st_mode & 0o077:
        return f"is open to others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


@contextlib.contextmanager
def submitting(job_name: str, cwd: str | os.PathLike, timeout: float) -> Iterator[None]:
    """Hold the submission lock while commands started inside run as the submitter.

    Every command run through :func:`nas.cluster.proc.run_command` in this
    context inherits the lock and runs under ``timeout`` for :func:`deadline`
    seconds (when coreutils ``timeout`` is on PATH), whether or not this
    process lives that long.

    Raises:
        LockHeld: another process on this host holds the lock.
    """
    path = lock_path(job_name, cwd)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"an earlier submission of {job_name} is still running") from None
        with guarded(_guard(fd, deadline(timeout))):
            yield
    finally:
        os.close(fd)
    _held(path)  # removes the file unless a submitter's child still holds it


def _guard(fd: int, seconds: float) -> Guard:
    """Run under ``timeout`` (its own process group, killed as a whole), inheriting ``fd``."""
    program = shutil.which("timeout")
    if program is None:
        log.warning("coreutils `timeout` is not on PATH: a submitter orphaned by a killed "
                    "controller is not stopped after %g s", seconds)  # fmt: skip
        return Guard(prefix=(), fds=(fd,), timeout=seconds)
    prefix = (program, f"--kill-after={KILL_AFTER:g}", f"{seconds:g}")
    return Guard(prefix=prefix, fds=(fd,), timeout=seconds + KILL_AFTER + SLACK / 2)


def in_flight(evidence: Submission) -> str | None:
    """Why the submission ``evidence`` describes may still be running, or None when it is over.

    On the host that started it the lock file says, and the starting
    controller's process (a private ``TMPDIR`` removed while its submitter
    still runs is outside the rule: a batch system ends both together);
    elsewhere only time does.
    """
    if evidence.host != hostname():
        return _waiting(evidence)
    if _held(Path(evidence.lock)):
        return "its submitter still runs on this host"
    starter = Holder(evidence.host, evidence.pid, evidence.started)
    if evidence.pid != os.getpid() and holder_alive(starter):
        return f"the controller that started it (pid {evidence.pid}) still runs"
    return None  # no lock file: the submitter ended (or never started) and removed it


#: When this process first saw each piece of evidence (its own monotonic clock).
_first_seen: dict[Submission, float] = {}


def _waiting(evidence: Submission) -> str | None:
    """Wait out the submitter's bound, measured on this process's clock; None when over."""
    if time.time() - evidence.started > evidence.seconds + CLOCK_SKEW:
        return None
    first = _first_seen.setdefault(evidence, time.monotonic())
    left = evidence.seconds - (time.monotonic() - first)
    if left <= 0:
        return None
    return (f"it was started on host {evidence.host} (pid {evidence.pid}), which this host "
            f"cannot check: waiting {left:.0f} s more for its submitter's time limit")  # fmt: skip


def _held(path: Path) -> bool | None:
    """Whether a process holds the lock file; None when there is no such file.

    A free lock file is removed, under the lock, so the folder does not fill up.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # cannot tell: count it as held
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(fd)
    return False
