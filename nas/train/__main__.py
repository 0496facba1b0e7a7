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
from pathlib import Path
from typing import TYPE_CHECKING

from nas import trial
from nas.pointdir.layout import EXIT_COMPLETE, EXIT_ERROR, EXIT_OUT_OF_MEMORY, EXIT_USAGE

if TYPE_CHECKING:
    import torch

    from nas.train.launch import DistEnv


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
        type=float,
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
    if not (args.point_dir / "point.json").is_file():
        parser.error(f"no point.json in {args.point_dir}")
    return args


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/ROCm out of memory, from the dedicated type or the message of older builds."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def shutdown() -> None:
    """Leave the process group after a clean finish (every rank has passed the last barrier)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(dist_env: DistEnv, environ: dict[str, str]) -> torch.device:
    """This rank's device; a :class:`DeviceError` names the rank, the world and the launcher."""
    from nas.train.device import DeviceError, Placement, local_world_size, select_device

    placement = Placement(dist_env.local_rank, local_world_size(environ))
    try:
        return select_device(placement, environ)
    except DeviceError as exc:
        where = f"rank {dist_env.rank} of {dist_env.world_size} ({dist_env.launcher})"
        raise DeviceError(f"{where}, {exc}") from None


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
    from nas.pointdir.point import PointFileError
    from nas.pointdir.result import write_error
    from nas.train.device import DeviceError
    from nas.train.launch import detect, init_process_group
    from nas.train.run import Segment, run_segment

    environ = dict(os.environ if environ is None else environ)
    rank = 0
    try:
        dist_env = detect(environ)
        rank = dist_env.rank
        device = rank_device(dist_env, environ)
        init_process_group(dist_env, device, environ)
        code = run_segment(
            Segment(args.point_dir, dist_env, device, args.deadline, args.segment_epochs)
        )
        shutdown()
        return code
    except Exception as exc:
        oom = is_out_of_memory(exc)
        if isinstance(exc, DeviceError):  # the layout, not the candidate: no retry, no traceback
            write_error(args.point_dir, rank=rank, exc=exc, oom=False, kind=exc.kind,
                        exit_code=EXIT_ERROR)  # fmt: skip
            logging.getLogger("nas.train").error("rank %d: %s", rank, exc)
            return EXIT_ERROR
        write_error(args.point_dir, rank=rank, exc=exc, oom=oom)
        logging.getLogger("nas.train").exception("rank %d failed", rank)
        if isinstance(exc, PointFileError):
            return EXIT_USAGE
        return EXIT_OUT_OF_MEMORY if oom else EXIT_ERROR


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code != EXIT_COMPLETE:
        os._exit(code)  # do not wait in process-group teardown for ranks that may be gone
    sys.exit(code)
