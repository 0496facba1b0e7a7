"""The trade-off figure: the metric against a cost, measured front and predicted front.

Draws what :mod:`nas.control.frontier` computes (the caller passes it in, so
this module needs no cost model): every measured point, the measured
non-dominated set as a staircase, the predicted front with its error
estimates as bars, and for each constraint its bound and the best measured
point within it highlighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Stem of the figure's file (``front.png``) and its caption.
STEM = "front"
CAPTION = (
    "{metric} against {cost}: every measured point (grey), the measured trade-off front "
    "(black staircase: no measured point beats one of its points in both), the front the spline "
    "predicts over the rest of the box (blue, bars: the error estimate), each constraint's bound "
    "(dashed) and the best measured point within it (star)."
)


@dataclass(frozen=True)
class FrontData:
    """What the figure shows; costs and metrics in their own units."""

    metric: str
    cost: str
    goal: str
    points: Sequence[tuple[float, float]]  #: (cost, metric) of every measured point
    front: Sequence[tuple[float, float]]  #: the measured front, cheapest first
    predicted: Sequence[tuple[float, float, float]]  #: (cost, metric, error), cheapest first
    #: (bound text, limit on this figure's cost or None, (cost, metric) of the best within it)
    constraints: Sequence[tuple[str, float | None, tuple[float, float] | None]] = field(
        default_factory=tuple
    )


def caption(data: FrontData) -> str:
    """The figure's caption for the report."""
    return CAPTION.format(metric=data.metric, cost=data.cost)


def draw_front(data: FrontData):  # -> matplotlib.figure.Figure
    """The trade-off figure (matplotlib is imported here, with the figure)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    if data.points:
        cost, metric = zip(*data.points, strict=True)
        axes.scatter(cost, metric, s=14, color="0.65", label="measured", zorder=2)
    if data.front:
        cost, metric = zip(*data.front, strict=True)
        axes.step(cost, metric, where="post", color="black", lw=1.2, zorder=3)
        axes.scatter(cost, metric, s=26, color="black", label="measured front", zorder=4)
    if data.predicted:
        cost, metric, error = zip(*data.predicted, strict=True)
        axes.errorbar(
            cost, metric, yerr=error, fmt="o", ms=3, color="tab:blue", elinewidth=0.8,
            label="predicted front ± error", zorder=3,
        )  # fmt: skip
    for index, (text, limit, best) in enumerate(data.constraints):
        color = f"C{(index + 1) % 10}"
        if limit is not None:
            axes.axvline(limit, color=color, ls="--", lw=1, label=text)
        if best is not None:
            axes.scatter(*best, marker="*", s=180, color=color, edgecolor="black", zorder=5)
    axes.set_xlabel(data.cost)
    axes.set_ylabel(f"{data.metric} ({data.goal})")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure
