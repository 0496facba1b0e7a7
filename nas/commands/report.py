"""``splinenas report``: one self-contained HTML page of a search, rewritten while it runs.

It reads the state without its lock, like ``status`` and ``plot``, so it is
safe next to a running controller; ``--watch`` rewrites the page every so
many seconds (the page reloads itself as often) until the controller that
holds the lock has gone, then writes it once more without the reload.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from nas.commands import summary
from nas.commands.common import EXIT_OK, UsageError, emit_json, path_arg, reported, writable_path
from nas.control import policy
from nas.pointdir import layout
from nas.record.lock import holder_alive, lock_path, read_holder
from nas.record.state import State
from nas.record.store import StateStore

#: The page inside ``--out``.
PAGE = "index.html"


def _plots(state: State) -> dict[str, bytes]:
    """The plots of ``status`` as PNG bytes; none before the first measurement."""
    from matplotlib import pyplot

    from nas.report.html import figure_png
    from nas.report.plots import DPI, figures, search_data

    data = search_data(state)
    if not data.params:
        return {}
    pictures = {}
    for stem, figure in figures(data).items():
        pictures[stem] = figure_png(figure, DPI)
        pyplot.close(figure)
    return pictures


def _curves(state: State, state_path: Path) -> dict[int, Any]:
    """Each point's learning curve, where its ``result.json`` carries one (key ``curve``)."""
    from nas.pointdir.jsonio import read_json_object

    run = layout.run_dir(state_path)
    curves = {}
    for point in state.points:
        path = layout.point_dir(run, point.id) / "result.json"
        try:
            curve = read_json_object(path).get("curve") if path.is_file() else None
        except ValueError:
            continue
        if isinstance(curve, list) and curve:
            curves[point.id] = curve
    return curves


def write_report(state_path: Path, out: Path, refresh_seconds: float | None) -> Path:
    """Read the state (no lock) and write ``out/index.html`` atomically."""
    from nas.report.html import build_page

    state = StateStore.read(state_path)
    study = policy.Study.of(state, state_path)
    experiment = study.experiment
    doc = summary.status_doc(study, state_path)
    page = build_page(
        title=f"splinenas: {experiment.experiment.name}",
        summary_lines=summary.summary_lines(doc),
        points=doc["points"],
        plots=_plots(state),
        curves=_curves(state, state_path),
        events=[
            {"time": e.time, "kind": e.kind, "point_id": e.point_id, "message": e.message}
            for e in state.events
        ],
        refresh_seconds=refresh_seconds,
        written=time.time(),
    )
    out.mkdir(parents=True, exist_ok=True)
    target = out / PAGE
    staging = target.with_name(f".{PAGE}.{os.getpid()}.tmp")
    staging.write_text(page, encoding="utf-8")
    os.replace(staging, target)  # a browser never reads half a page
    return target


def controller_runs(state_path: Path) -> bool:
    """Whether a live process on this host holds the state's lock (another host counts too)."""
    holder = read_holder(lock_path(state_path))
    if holder is None:
        return False
    import socket

    return holder.host != socket.gethostname() or holder_alive(holder)


@reported
def run_report(args: argparse.Namespace) -> int:
    if args.watch is not None and not args.watch > 0:
        raise UsageError(f"--watch must be a positive number of seconds, got {args.watch:g}")
    writable_path(args.out, "--out", folder=True, create=True)
    watching = args.watch is not None
    page = write_report(args.state, args.out, args.watch if watching else None)
    print(f"wrote {page}", file=sys.stderr)
    while watching and controller_runs(args.state):
        time.sleep(args.watch)
        page = write_report(args.state, args.out, args.watch)
    if watching:
        page = write_report(args.state, args.out, None)
        print(f"no controller runs any more; wrote {page} a last time", file=sys.stderr)
    if args.json:
        emit_json({"state": str(args.state), "page": str(page)})
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``splinenas`` parser."""
    parser = subparsers.add_parser(
        "report",
        help="one self-contained HTML page: summary, points, plots, curves, events",
        description=(
            "Write OUT/index.html: the status summary, a sortable points table, the plots "
            "(inline, no server or network needed), each point's learning curve where its "
            "result has one, and the event history. Reads the state without its lock."
        ),
    )
    parser.add_argument("--state", required=True, type=path_arg, metavar="PATH", help="state file")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder of the page")
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="rewrite the page this often (it reloads itself) while a controller holds the lock",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(func=run_report)
