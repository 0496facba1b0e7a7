"""``splinenas report``: one self-contained HTML page of a search, rewritten while it runs.

It reads the state without its lock, like ``status`` and ``plot``, so it is
safe next to a running controller; ``--watch`` rewrites the page every so
many seconds (the page reloads itself as often) until the controller that
holds the lock has gone, then writes it once more without the reload.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from nas.commands import summary
from nas.commands.common import (
    EXIT_OK,
    emit_json,
    path_arg,
    reported,
    seconds_arg,
    writable_path,
)
from nas.control import policy
from nas.record.lock import holder_alive, lock_path, read_holder
from nas.record.state import State
from nas.record.store import StateStore

#: The page inside ``--out``.
PAGE = "index.html"


def _plots(state: State) -> dict[str, tuple[bytes, str]]:
    """The plots of ``status`` as PNG bytes with their caption; none before the first measurement."""
    from matplotlib import pyplot

    from nas.report.html import figure_png
    from nas.report.plots import DPI, caption, figures, search_data

    data = search_data(state)
    if not data.params:
        return {}
    pictures = {}
    for stem, figure in figures(data).items():
        pictures[stem] = figure_png(figure, DPI), caption(stem, data)
        pyplot.close(figure)
    return pictures


def _front(study: policy.Study) -> dict[str, tuple[bytes, str]]:
    """The trade-off figure (:mod:`nas.commands.frontplot`), when the experiment has one."""
    from nas.commands.frontplot import front_png
    from nas.report.front import STEM
    from nas.report.plots import DPI

    figure = front_png(study, DPI)
    return {} if figure is None else {STEM: figure}


def _curves(state: State, metric: str) -> dict[int, tuple[list[float], list[float], str]]:
    """Each point's learning curve from the state (``/curves``): epochs, a figure, a label.

    The figure is the experiment's metric where the stored curves hold it (the
    built-in trainer's ``top1``, or a command's own figure of that name), else
    the training loss.
    """
    stored = state.curves.values()
    if not any(e.get(metric) is not None for curve in stored for e in curve):
        metric = "loss"
    curves = {}
    for point in state.points:
        entries = [e for e in state.curves.get(point.id, []) if e.get(metric) is not None]
        if len(entries) < 2:
            continue
        epochs = [float(e["epoch"]) for e in entries]
        values = [float(e[metric]) for e in entries]
        label = (
            f"point {point.id}: {metric} {values[0]:.4g} at epoch {epochs[0]:g} to "
            f"{values[-1]:.4g} at epoch {epochs[-1]:g}"
        )
        curves[point.id] = epochs, values, label
    return curves


def recipe(experiment: Any) -> list[tuple[str, str]]:
    """What every candidate is trained with, as (name, text) rows for the page."""
    cfg = experiment.experiment
    rows = [("search", f"{cfg.goal} {cfg.metric}; tolerance {cfg.tolerance:g}")]
    model, data, train, cluster = (
        experiment.model,
        experiment.data,
        experiment.train,
        experiment.cluster,
    )
    if not experiment.builtin_trainer:  # an own model: its command, not a family, trains it
        rows.append(("own command", shlex.join(train.command)))
    if model is not None:
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(model.fixed.items())) or "none"
        if model.family is not None:
            rows.append(("family", model.family))
        rows.append(("fixed coordinates", fixed))
        if experiment.num_classes() is not None:
            rows.append(("classes", str(experiment.num_classes())))
    if data is not None:
        where = data.index or data.root or "built in"
        rows.append(("data", f"{data.kind} ({where}) at {data.resolution} px"))
    if model is not None and data is not None:
        rows.append(
            (
                "training",
                f"{train.epochs} epochs, batch {train.batch_per_gpu} per GPU, lr {train.lr:g}, "
                f"warm-up {train.warmup_epochs:g} epochs, precision {train.amp}",
            )
        )
        gpus = f" x {cluster.gpus_per_node} GPUs" if cluster.gpus_per_node else " (CPU)"
        rows.append(("per job", f"{cluster.backend}, {cluster.nodes} node(s){gpus}"))
    return rows


def _device_hours(pace: dict[str, float] | None, gpu_hours: float) -> float | None:
    """A point's device-hours (CPU or GPU, from its result), else its GPU-hours if any."""
    if pace and "device_hours" in pace:
        return pace["device_hours"]
    return gpu_hours if gpu_hours else None


def cost_lines(doc: dict[str, Any], points: list[dict[str, Any]]) -> list[str]:
    """Device-hours in total and per measured point, and the pace of training."""
    spent = [p["device_hours"] for p in points if p.get("device_hours") is not None]
    measured = sum(1 for p in points if p["value"] is not None)
    if not spent:
        return [f"no device-hours recorded yet ({measured} measured points)"]
    total = sum(spent)
    lines = [
        f"{total:.3g} device-hours in total over {len(spent)} trained points "
        f"({total / len(spent):.3g} per point; GPU-hours on GPUs: {doc['gpu_hours']:.3g})"
    ]
    paces = [p["images_per_second"] for p in points if p.get("images_per_second") is not None]
    if paces:
        lines.append(
            f"pace: {min(paces):.4g} to {max(paces):.4g} images/s per rank "
            f"(median {sorted(paces)[len(paces) // 2]:.4g})"
        )
    budget = doc["budget"]
    if budget["max_gpu_hours"] is not None:
        lines.append(f"budget: {doc['gpu_hours']:.3g} of {budget['max_gpu_hours']:g} GPU-hours")
    return lines


def write_report(state_path: Path, out: Path, refresh_seconds: float | None) -> Path:
    """Read the state (no lock) and write ``out/index.html`` atomically."""
    from nas.report.html import build_page

    state = StateStore.read(state_path)
    study = policy.Study.of(state, state_path)
    experiment = study.experiment
    now = time.time()
    doc = summary.status_doc(study, state_path, now)
    gpu_hours = {p.id: p.gpu_hours for p in state.points}
    points = []
    for point in doc["points"]:
        pace = doc["pace"].get(str(point["id"]))
        device_hours = _device_hours(pace, gpu_hours[point["id"]])
        speed = None if not pace else pace.get("images_per_second")
        points.append({**point, "device_hours": device_hours, "images_per_second": speed})
    page = build_page(
        title=f"splinenas: {experiment.experiment.name}",
        summary_lines=[*summary.summary_lines(doc), *summary.activity_lines(doc, now)],
        recipe=recipe(experiment),
        cost_lines=cost_lines(doc, points),
        points=points,
        best_id=None if doc["best"] is None else doc["best"]["id"],
        plots={**_plots(state), **_front(study)},
        curves=_curves(state, experiment.experiment.metric),
        events=[
            {"time": e.time, "kind": e.kind, "point_id": e.point_id, "message": e.message}
            for e in state.events
        ],
        refresh_seconds=refresh_seconds,
        written=now,
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
        help="one self-contained HTML page: summary, recipe, cost, points, plots, curves, events",
        description=(
            "Write OUT/index.html: the status summary (running points, the controller), what "
            "is trained (family or own command, fixed coordinates, data, epochs), what it cost "
            "(device-hours per point and in total, pace), a sortable points table with the best "
            "row highlighted, the plots with captions (inline, no server or network needed), "
            "each point's learning curve from the state, and the events grouped by point. "
            "Reads the state without its lock."
        ),
    )
    parser.add_argument("--state", required=True, type=path_arg, metavar="PATH", help="state file")
    parser.add_argument(
        "--out", required=True, type=path_arg, metavar="DIR", help="folder of the page"
    )
    parser.add_argument(
        "--watch",
        type=seconds_arg(zero=False),
        metavar="SECONDS",
        help="rewrite the page this often (it reloads itself) while a controller holds the lock; "
        "at most a day",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(func=run_report)
