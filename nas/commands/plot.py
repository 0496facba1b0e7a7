"""``splinenas plot``: pictures of a search from its state file.

matplotlib (and with it :mod:`nas.report.plots`) is imported only when the command
runs, so that the other commands answer fast on a login node.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.commands.common import EXIT_OK, emit_json, path_arg, reported, writable_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw the spline, predicted vs measured, convergence, all points and learning curves as PNG",
        description=(
            "Write PNG pictures of a search: 2-D projections of the spline through the best "
            "point, predicted vs measured with leave-one-out error bars, convergence, and a "
            "parallel-coordinates view of every measured point, and the learning curves (the "
            "incumbent in red). Reads the state file without "
            "taking its lock, so it is safe while the controller runs."
        ),
    )
    parser.add_argument("--state", required=True, type=path_arg, help="state file (HDF5)")
    parser.add_argument("--out", required=True, type=path_arg, help="folder for the PNG files")
    parser.add_argument("--json", action="store_true", help="print the written paths as JSON")
    parser.set_defaults(func=run)


@reported
def run(args: argparse.Namespace) -> int:
    writable_path(args.out, "--out", folder=True, create=True)
    from nas.report.plots import write_plots

    paths = write_plots(args.state, args.out)
    paths += _front(args.state, args.out)
    if args.json:
        emit_json({"state": str(args.state), "plots": [str(p) for p in paths]})
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _front(state: Path, out: Path) -> list[Path]:
    """``front.png`` (:mod:`nas.commands.frontplot`) when the experiment has a trade-off to draw."""
    from nas.commands.frontplot import write_front
    from nas.control.policy import Study
    from nas.record.store import StateStore
    from nas.report.plots import DPI

    path = write_front(Study.of(StateStore.read(state), state), out, DPI)
    return [] if path is None else [path]
