"""The one place that starts processes.

Every external command (sbatch, squeue, bsub, bjobs, ...) runs through
:func:`run_command`: an argv list, never a shell, always a timeout, and a
failure that carries the command's stderr so the message says why. Detached
jobs of the local backend start through :func:`spawn_detached`. While a
submitter is started (:func:`guarded`), commands inherit its lock and run
under its time limit.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

#: Seconds a scheduler command may take before it counts as failed.
DEFAULT_TIMEOUT = 60.0

_STDERR_TAIL = 2000
#: Exit status of coreutils ``timeout`` when it stopped the command.
_TIMED_OUT = 124


class CommandError(RuntimeError):
    """An external command that could not run, timed out or exited non-zero."""

    def __init__(
        self,
        argv: Sequence[str],
        problem: str,
        *,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        detail = stderr.strip()[-_STDERR_TAIL:]
        message = f"`{shlex.join(argv)}` {problem}" + (f": {detail}" if detail else "")
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class Guard:
    """How commands run while a submitter is being started (:mod:`nas.cluster.submitter`)."""

    #: Words put before the command (``timeout --kill-after=5 60``).
    prefix: tuple[str, ...]
    #: Descriptors the command inherits (the submission lock).
    fds: tuple[int, ...]
    #: The least timeout for the command, so that the prefix's own limit acts first.
    timeout: float


_GUARD: ContextVar[Guard | None] = ContextVar("submitter_guard", default=None)


@contextlib.contextmanager
def guarded(guard: Guard) -> Iterator[None]:
    """Run every :func:`run_command` of this context under ``guard``."""
    token = _GUARD.set(guard)
    try:
        yield
    finally:
        _GUARD.reset(token)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input_text: str | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` without a shell and return its completed process.

    Args:
        argv: program and arguments; never joined into a shell string.
        timeout: seconds before the command is killed and counted as failed.
        input_text: text fed on stdin (e.g. a job script for ``bsub``).
        cwd: working directory of the command.
        env: the complete environment; ``None`` inherits this process's.
        check: raise on a non-zero exit status.

    Raises:
        CommandError: the program is missing, timed out, or (with ``check``)
            exited non-zero; the message holds the tail of its stderr.
    """
    argv = [os.fspath(arg) for arg in argv]
    if not argv:
        raise ValueError("empty command")
    guard = _GUARD.get()
    run, pass_fds = argv, ()
    if guard is not None:
        if guard.prefix and shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
            raise CommandError(argv, "failed: program not found on PATH")
        run = [*guard.prefix, *argv]
        pass_fds = guard.fds
        timeout = max(timeout, guard.timeout)
    try:
        done = subprocess.run(
            run,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            shell=False,
            check=False,
            pass_fds=pass_fds,
        )
    except FileNotFoundError:
        raise CommandError(argv, "failed: program not found on PATH") from None
    except PermissionError as exc:
        raise CommandError(argv, f"failed: {exc.strerror}") from None
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            argv, f"timed out after {timeout:g} s", stderr=_text(exc.stderr)
        ) from None
    if guard is not None and guard.prefix and done.returncode == _TIMED_OUT:
        raise CommandError(argv, f"timed out after {guard.prefix[-1]} s", stderr=done.stderr)
    if check and done.returncode != 0:
        raise CommandError(
            argv,
            f"exited with status {done.returncode}",
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
        )
    return done


def spawn_detached(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in a new session that outlives this process.

    The child gets its own session and process group (so the whole tree can
    be found and signalled), no stdin, stdout + stderr appended to
    ``log_path``, and ``env`` as its complete environment (None: this one's).
    """
    argv = [os.fspath(arg) for arg in argv]
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                shell=False,
                env=None if env is None else dict(env),
            )
        except OSError as exc:
            raise CommandError(argv, f"failed to start: {exc.strerror}") from None


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
