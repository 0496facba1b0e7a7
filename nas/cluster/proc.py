"""The one place that starts processes.

Every external command (sbatch, squeue, bsub, bjobs, ...) runs through
:func:`run_command`: an argv list, never a shell, always a timeout, and a
failure that carries the command's stderr so the message says why. Detached
jobs of the local backend start through :func:`spawn_detached`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Seconds a scheduler command may take before it counts as failed.
DEFAULT_TIMEOUT = 60.0

_STDERR_TAIL = 2000


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


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input_text: str | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    pass_fds: Sequence[int] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` without a shell and return its completed process.

    Args:
        argv: program and arguments; never joined into a shell string.
        timeout: seconds before the command is killed and counted as failed.
        input_text: text fed on stdin (e.g. a job script for ``bsub``).
        cwd: working directory of the command.
        env: the complete environment; ``None`` inherits this process's.
        check: raise on a non-zero exit status.
        pass_fds: descriptors the command inherits (a submitter's lock).

    Raises:
        CommandError: the program is missing, timed out, or (with ``check``)
            exited non-zero; the message holds the tail of its stderr.
    """
    argv = [os.fspath(arg) for arg in argv]
    if not argv:
        raise ValueError("empty command")
    try:
        done = subprocess.run(
            argv,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            shell=False,
            check=False,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        raise CommandError(argv, "failed: program not found on PATH") from None
    except PermissionError as exc:
        raise CommandError(argv, f"failed: {exc.strerror}") from None
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            argv, f"timed out after {timeout:g} s", stderr=_text(exc.stderr)
        ) from None
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
