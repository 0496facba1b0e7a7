"""``python -m nas.train [--point-dir DIR] [--deadline UNIX_SECONDS] [--segment-epochs N]``.

The built-in trainer is one command of the trainer contract
(:mod:`nas.pointdir.contract`): without options it takes the point folder and
the deadline from ``SPLINENAS_POINT_DIR`` and ``SPLINENAS_DEADLINE``
(:mod:`nas.trial`), and the ranks from the env:// variables that the launch
wrapper set. Exit codes are those of :mod:`nas.train`. On an exception the failing rank
writes ``error.json`` and leaves at once without waiting for the others: their
next collective fails (gloo) or the launcher tears them down (torchrun, or
``srun --kill-on-bad-exit``), so no rank is left hanging.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from nas import trial
from nas.data.index import ImageIndexError
from nas.models import ModelConfigError
from nas.pointdir.contract import DEADLINE_VAR
from nas.pointdir.layout import (
    EXIT_COMPLETE,
    EXIT_ERROR,
    EXIT_OUT_OF_MEMORY,
    EXIT_USAGE,
    POINT_FILE,
    USAGE_FAILURE,
)
from nas.pointdir.point import PointFileError
from nas.train.device import DeviceError

if TYPE_CHECKING:
    import torch

    from nas.train.launch import DistEnv
    from nas.train.stop import StopControl

#: What an allocator says when it runs out, lower-case. Each means the candidate does
#: not fit, so a retry cannot help (exit 4, ``infeasible``). CUDA, ROCm and XPU caching
#: allocators and older builds' RuntimeError: "out of memory". The CPU allocator of a
#: ``gpus_per_node = 0`` run: "DefaultCPUAllocator: can't allocate memory" and ENOMEM's
#: "Cannot allocate memory". Intel GPUs below torch's allocator, which reach Python as
#: a RuntimeError naming the code: Unified Runtime and Level Zero
#: (``UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY``, ``ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY``)
#: and the older SYCL plugin interface (``PI_ERROR_OUT_OF_RESOURCES``).
OUT_OF_MEMORY_TEXTS = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "out_of_device_memory",
    "pi_error_out_of_resources",
)


def deadline_argument(text: str) -> float:
    """``--deadline`` by the rule of ``SPLINENAS_DEADLINE`` (:func:`nas.trial.deadline`).

    One rule for both ways of giving it: finite UNIX seconds. ``nan`` given on
    the command line used to mean "no deadline" while the variable refused it.
    """
    try:
        value = trial.deadline({DEADLINE_VAR: text})
    except trial.TrialError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"expected UNIX seconds (a finite number), got {text!r}")
    return value


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nas.train", description="Train one candidate of a point folder."
    )
    parser.add_argument(
        "--point-dir", type=Path, help="folder with point.json (default: $SPLINENAS_POINT_DIR)"
    )
    parser.add_argument(
        "--deadline",
        type=deadline_argument,
        help="UNIX time by which to stop, checkpoint and exit 3 (default: $SPLINENAS_DEADLINE)",
    )
    parser.add_argument(
        "--segment-epochs", type=int, help="stop after this many epochs (checkpoint, exit 3)"
    )
    args = parser.parse_args(argv)
    try:
        args.point_dir = args.point_dir or trial.point_dir(environ)
        args.deadline = args.deadline if args.deadline is not None else trial.deadline(environ)
    except trial.TrialError as exc:
        parser.error(str(exc))
    if args.segment_epochs is not None and args.segment_epochs < 1:
        parser.error(f"--segment-epochs must be at least 1, got {args.segment_epochs}")
    if not (args.point_dir / POINT_FILE).is_file():
        parser.error(f"no {POINT_FILE} in {args.point_dir}")
    return args


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation the candidate's size made fail, on any device (:data:`OUT_OF_MEMORY_TEXTS`).

    ``torch.OutOfMemoryError`` (torch 2.5 and later; ``torch.cuda``'s before) is
    what CUDA, ROCm and XPU raise; the texts catch what other allocators raise.
    """
    import torch

    device_oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, (MemoryError, device_oom)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in OUT_OF_MEMORY_TEXTS)


@dataclass(frozen=True)
class Failure:
    """How the trainer ends on an exception: its exit code, ``error.json``'s kind, the log."""

    code: int
    kind: str | None = None  # error.json kind: "environment" is not retried
    line: str | None = None  # one line for the log; None keeps the traceback (a bug, a crash)

    @property
    def oom(self) -> bool:
        return self.code == EXIT_OUT_OF_MEMORY


def classify(exc: Exception, point_dir: Path) -> Failure:
    """What ``exc`` means for the controller and for the person reading the log.

    A layout or environment that cannot work (:class:`DeviceError`) and a
    ``point.json`` that cannot be used (its schema, or model coordinates no
    network has) are the same on every attempt and need a person, who needs
    the one line that names the variable, file or key, not a traceback.
    """
    if isinstance(exc, DeviceError):
        return Failure(EXIT_ERROR, kind=exc.kind, line=str(exc))
    if isinstance(exc, PointFileError):
        return Failure(EXIT_USAGE, kind=USAGE_FAILURE, line=str(exc))
    if isinstance(exc, ModelConfigError):
        return Failure(EXIT_USAGE, kind=USAGE_FAILURE, line=f"{point_dir / POINT_FILE}: {exc}")
    if isinstance(exc, ImageIndexError):  # the tree or its index as configured: no retry fixes it
        return Failure(EXIT_USAGE, kind=USAGE_FAILURE, line=str(exc))
    if is_out_of_memory(exc):
        return Failure(EXIT_OUT_OF_MEMORY)
    return Failure(EXIT_ERROR)


def report(point_dir: Path, rank: int, exc: Exception) -> int:
    """Leave ``error.json`` (the first failing rank's) and the log's account; the exit code."""
    from nas.pointdir.result import write_error

    failure = classify(exc, point_dir)
    write_error(point_dir, rank=rank, exc=exc, oom=failure.oom, kind=failure.kind,
                exit_code=failure.code)  # fmt: skip
    log = logging.getLogger("nas.train")
    if failure.line is None:
        log.exception("rank %d failed", rank)
    else:
        log.error("rank %d: %s", rank, failure.line)
    return failure.code


def shutdown() -> None:
    """Leave the process group after a clean finish (every rank has passed the last barrier)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(dist_env: DistEnv, environ: dict[str, str]) -> torch.device:
    """This rank's device; a :class:`DeviceError` names the rank, the world and the launcher."""
    from nas.train.device import Placement, local_world_size, select_device

    placement = Placement(dist_env.local_rank, local_world_size(environ))
    try:
        return select_device(placement, environ)
    except DeviceError as exc:
        where = f"rank {dist_env.rank} of {dist_env.world_size} ({dist_env.launcher})"
        raise DeviceError(f"{where}, {exc}") from None


def train(
    args: argparse.Namespace, dist_env: DistEnv, device: torch.device, stop: StopControl
) -> int:
    """Run the segment; the trainer's modules are imported only once torch passed its check."""
    from nas.train.run import Segment, run_segment

    return run_segment(
        Segment(args.point_dir, dist_env, device, args.deadline, args.segment_epochs, stop)
    )


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Run one segment; return the exit code (the caller exits with it)."""
    try:
        args = parse_args(argv, os.environ if environ is None else environ)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_COMPLETE
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from nas.train.device import require_torch
    from nas.train.launch import detect, init_process_group
    from nas.train.stop import StopControl

    # From here on a stop signal is noted, not fatal: one during torch's import, device
    # selection or the rendezvous ends the segment at its first check with progress.json.
    stop = StopControl(args.deadline)
    stop.install()
    environ = dict(os.environ if environ is None else environ)
    rank = 0
    try:
        dist_env = detect(environ)
        rank = dist_env.rank
        require_torch()
        device = rank_device(dist_env, environ)
        init_process_group(dist_env, device, environ)
        code = train(args, dist_env, device, stop)
        shutdown()
        return code
    except Exception as exc:
        return report(args.point_dir, rank, exc)
    finally:
        stop.restore()  # a caller in this process (a test, a notebook) gets its own back


def leave(code: int) -> NoReturn:
    """End the process with ``code`` once its output is flushed, without the interpreter's teardown.

    Every file the controller reads is written and renamed by now (``result.json``,
    ``progress.json``, ``error.json``), and the ranks have passed their last barrier
    or are stopping on their own. What the teardown would still do is only harmful
    in a distributed run: after a failure it waits for ranks that may be gone; after
    a clean finish a gloo worker thread can still be releasing the tensors of the
    last collective while Python finalises, cannot take the interpreter lock, and
    aborts the process (``terminate called without an active exception``, exit -6;
    pytorch/pytorch#179291 describes the crash), which the launcher then reports
    as a failed job although the result was written.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
