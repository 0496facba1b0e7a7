"""TensorBoard event files of a search, for the viewers people already use offline on clusters.

One run per point (``DIR/point-0007``): its learning curve as scalars by epoch
(``curve/top1``, ``curve/loss``, ...), its final measurement, prediction and
costs (``final/...``, ``cost/...``), and its coordinates as hyperparameters
with those final numbers as the metrics, so TensorBoard's HParams tab compares
the architectures; plus one run ``DIR/search`` with the best value so far per
measured point. The files are written by tensorboardX (the ``tensorboard``
extra), a maintained writer of the format; nothing here encodes it by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nas.curvefields import CURVE_FIELDS
from nas.record.state import Point, PointStatus, State
from nas.search.settings import GOALS

#: Curve fields drawn as scalars; the others (images, seconds) are bookkeeping. A command's
#: own figures (``curve/val_acc``) follow them.
CURVE_SCALARS = ("top1", "top5", "loss", "lr")


class ExportError(ValueError):
    """The folder cannot take a new export; the message names it."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def point_metrics(point: Point, metric: str) -> dict[str, float]:
    """The final numbers of ``point``: measurement, prediction and costs (finite ones only)."""
    pace = point.extra.get("pace") or {}
    found = {
        f"final/{metric}": _number(point.value),
        "final/predicted": _number(point.predicted),
        "cost/gpu_hours": _number(point.gpu_hours),
        "cost/device_hours": _number(pace.get("device_hours")),
        "cost/images_per_second": _number(pace.get("images_per_second")),
    }
    return {key: value for key, value in found.items() if value is not None}


def _hparams(point: Point) -> dict[str, bool | str | float | int]:
    """The point's coordinates and bookkeeping, as TensorBoard's HParams tab takes them."""
    values: dict[str, bool | str | float | int] = dict(point.params)
    values.update(status=point.status.value, origin=point.origin, batch=point.batch)
    return values


def export_tensorboard(state: State, out: Path, *, metric: str, goal: str) -> list[Path]:
    """Write one TensorBoard run per point (and one for the search) under ``out``.

    Raises:
        ExportError: ``out`` already holds runs (a second export would double every curve).
        ModuleNotFoundError: tensorboardX is not installed (the ``tensorboard`` extra).
    """
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    if out.is_dir() and any(out.glob("*/events.out.tfevents.*")):
        raise ExportError(f"{out} already holds TensorBoard runs; give an empty or new folder")
    runs = []
    for point in state.points:
        folder = out / f"point-{point.id:04d}"
        with SummaryWriter(logdir=str(folder)) as writer:
            for entry in state.curves.get(point.id, []):
                for name in (*CURVE_SCALARS, *(n for n in entry if n not in CURVE_FIELDS)):
                    value = _number(entry.get(name))
                    if value is not None:
                        writer.add_scalar(f"curve/{name}", value, int(entry["epoch"]))
            metrics = point_metrics(point, metric)
            step = max((int(e["epoch"]) for e in state.curves.get(point.id, [])), default=0)
            for name, value in metrics.items():
                writer.add_scalar(name, value, step)
            for summary in hparams(_hparams(point), metrics):
                writer.file_writer.add_summary(summary)
        runs.append(folder)
    runs.append(_search_run(state, metric, GOALS[goal], out / "search"))
    return runs


def _search_run(state: State, metric: str, goal: float, folder: Path) -> Path:
    """The best value so far after each measured point, in the order they were measured."""
    from tensorboardX import SummaryWriter

    done = sorted(state.with_status(PointStatus.DONE), key=lambda p: p.updated)
    best = None
    with SummaryWriter(logdir=str(folder)) as writer:
        for count, point in enumerate(done, start=1):
            if point.value is None:
                continue
            best = point.value if best is None else goal * max(goal * best, goal * point.value)
            writer.add_scalar(f"search/best_{metric}", best, count)
            writer.add_scalar(f"search/{metric}", point.value, count)
    return folder
