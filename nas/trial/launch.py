"""``python -m nas.trial.launch --point-dir DIR [--workdir DIR] [--deadline T] -- COMMAND...``.

One rank's command. Every rank of a job script runs this in front of ``[train] command`` (the
built-in trainer included). It derives the rank and the rendezvous once from
the launcher (:mod:`nas.pointdir.rendezvous`), sets the contract's variables
(:mod:`nas.pointdir.contract`), starts the command (argv, no shell), passes
SIGUSR2, SIGTERM and SIGINT on to it, and exits with its status (128 + the
signal when a signal ended it; 1 when it exited 0 without a result).
Rank 0 keeps the point folder's heartbeat while the command runs
(:mod:`nas.pointdir.heartbeat`), whatever the command: a job the scheduler
forgets while its training goes on is then not retried beside it.

What the command left is checked on rank 0 so that the controller can name a
broken contract instead of retrying blindly: a command that cannot be started
(not found, not executable) or that exits 0 without ``result.json`` gets an
``error.json`` of kind ``"contract"``; exit 3 without ``progress.json`` gets
one (the last epoch of its learning curve as the position reached); exit 4 or 5
without ``error.json`` gets one saying out of memory or diverged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from nas.pointdir import heartbeat
from nas.pointdir.contract import CONTRACT_VAR, CONTRACT_VERSION, DEADLINE_VAR, POINT_DIR_VAR
from nas.pointdir.curve import epochs_reached, read_curve
from nas.pointdir.layout import (
    ERROR_FILE,
    EXIT_COMPLETE,
    EXIT_DIVERGED,
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_OUT_OF_MEMORY,
    EXIT_USAGE,
    PROGRESS_FILE,
    RESULT_FILE,
    SUPERSEDED_PROGRESS_FILE,
    point_folder_problem,
)
from nas.pointdir.outcome import (
    write_command_divergence,
    write_contract_failure,
    write_error,
    write_progress,
)
from nas.pointdir.rendezvous import LaunchError, detect, torch_environment

#: Signals passed on to the command.
FORWARDED = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
#: Exit status of a command that cannot be run (the shell's convention).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
USAGE = (
    "usage: python -m nas.trial.launch --point-dir DIR [--workdir DIR] "
    "[--deadline UNIX_SECONDS] -- COMMAND..."
)


def parse(argv: Sequence[str]) -> tuple[Path, Path, str | None, list[str]]:
    """(point folder, working folder, deadline text or None, command) from the arguments.

    The command runs in ``--workdir`` (the folder ``splinenas run`` was started
    in, where relative paths of the experiment are taken from), else the point folder.

    Raises:
        ValueError: the arguments are not of the usage form; the message says how.
    """
    if "--" not in argv:
        raise ValueError("no '--' before the command")
    split = list(argv).index("--")
    options, command = list(argv[:split]), list(argv[split + 1 :])
    if not command:
        raise ValueError("no command after '--'")
    values: dict[str, str] = {}
    while options:
        flag = options.pop(0)
        if flag not in ("--point-dir", "--workdir", "--deadline") or not options:
            raise ValueError(f"unexpected {flag!r}")
        values[flag] = options.pop(0)
    if "--point-dir" not in values:
        raise ValueError("--point-dir is required")
    point_dir = Path(values["--point-dir"]).absolute()
    workdir = Path(values.get("--workdir", point_dir)).absolute()
    return point_dir, workdir, values.get("--deadline"), command


def command_environment(
    environ: Mapping[str, str], point_dir: Path, deadline: str | None
) -> tuple[int, dict[str, str]]:
    """(rank, the command's environment): the launcher's, plus the contract's variables.

    Raises:
        LaunchError: the launcher's variables describe no usable set of ranks.
    """
    dist_env = detect(environ)
    env = {**environ, **torch_environment(dist_env)}
    env[POINT_DIR_VAR] = str(point_dir)
    env[CONTRACT_VAR] = str(CONTRACT_VERSION)
    if deadline is not None:
        env[DEADLINE_VAR] = deadline
    return dist_env.rank, env


def run(command: list[str], env: dict[str, str], point_dir: Path, workdir: Path, rank: int) -> int:
    """Start ``command`` in ``workdir``, pass the stop signals on, wait; its exit status.

    The handlers are in place before the command starts: a stop signal that arrives
    while it is being started is held and passed on once it runs, instead of ending
    this wrapper with the default action and leaving the command orphaned.
    """
    held: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            held.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        child = subprocess.Popen(command, env=env, cwd=workdir)
    except OSError as exc:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        return _start_failure(command, exc, point_dir, rank)
    for signum in held:
        forward(signum, None)
    code = child.wait()
    return 128 - code if code < 0 else code


def _start_failure(command: list[str], exc: OSError, point_dir: Path, rank: int) -> int:
    """Name a command that could not start in ``error.json``; the exit status for it."""
    if isinstance(exc, FileNotFoundError):
        message = f"command not found: {command[0]!r} (not on the job's PATH, or no such file)"
        code = EXIT_NOT_FOUND
    else:
        message = f"cannot run {command[0]!r}: {exc.strerror or exc}"
        code = EXIT_NOT_EXECUTABLE
    write_contract_failure(point_dir, rank=rank, message=message)
    print(f"splinenas: {message}", file=sys.stderr)
    return code


def settle(point_dir: Path, code: int, rank: int, deadline: str | None, world_size: int) -> int:
    """Leave the file the controller needs where the command's exit status left none.

    Returns the status to exit with: the command's, or 1 for an exit 0 without a result.
    """
    present = {
        name: (point_dir / name).exists() for name in (RESULT_FILE, PROGRESS_FILE, ERROR_FILE)
    }
    if rank == 0 and code == EXIT_COMPLETE and not present[RESULT_FILE]:
        write_contract_failure(
            point_dir, rank=rank, message="the command exited 0 without writing result.json"
        )
        return EXIT_ERROR
    elif rank == 0 and code == EXIT_COMPLETE and present[PROGRESS_FILE]:
        supersede_progress(point_dir)
    elif rank == 0 and code == EXIT_INCOMPLETE and not present[PROGRESS_FILE]:
        epochs = epochs_reached(read_curve(point_dir))
        write_progress(point_dir, point_id=None, epoch=epochs, step=0,
                       reason=f"the command exited {code} (incomplete) after {epochs} epoch(s)")  # fmt: skip
    elif code == EXIT_DIVERGED and not present[ERROR_FILE]:
        left = max(0.0, float(deadline) - time.time()) if deadline else 0.0
        write_command_divergence(point_dir, reason=f"the command exited {code} (diverged)",
                                 saved_seconds=left, world_size=world_size)  # fmt: skip
    elif code == EXIT_OUT_OF_MEMORY and not present[ERROR_FILE]:
        exc = MemoryError(f"the command exited {code} (out of memory)")
        write_error(point_dir, rank=rank, exc=exc, oom=True)
    return code


def supersede_progress(point_dir: Path) -> None:
    """Rename a ``progress.json`` the command left beside its final result.

    Under the contract only a segment that exits 3 writes it, but a command
    that saves its position every epoch leaves one after the last as well. A
    controller told the job's exit status ignores it; one the scheduler told
    nothing (Slurm without accounting, LSF past ``CLEAN_PERIOD``, a purged PBS
    history) would take the result beside it for a segment's interim one, set
    it aside and train the point again. Renamed, not deleted, and said in the log.
    """
    if point_folder_problem(point_dir) is not None:
        return  # a point folder swapped for a link: rename nothing in someone else's folder
    path = point_dir / PROGRESS_FILE
    target = path.with_name(SUPERSEDED_PROGRESS_FILE)
    with contextlib.suppress(OSError):  # tidying must not fail a finished training
        os.replace(path, target)
        print(
            f"splinenas: the command exited 0 with {RESULT_FILE}: its {PROGRESS_FILE} "
            f"(where an incomplete segment stops) is renamed {target.name}",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one rank's command; the exit status to leave with."""
    try:
        point_dir, workdir, deadline, command = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"splinenas: {exc}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    environ = dict(os.environ if environ is None else environ)
    try:
        rank, env = command_environment(environ, point_dir, deadline)
    except LaunchError as exc:
        write_error(point_dir, rank=-1, exc=exc, oom=False)
        print(f"splinenas: cannot derive the ranks: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with heartbeat.beating(point_dir) if rank == 0 else contextlib.nullcontext():
        code = run(command, env, point_dir, workdir, rank)
    return settle(point_dir, code, rank, deadline, int(env["WORLD_SIZE"]))


if __name__ == "__main__":
    sys.exit(main())
