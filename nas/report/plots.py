"""Pictures of a search: spline projections, predicted vs measured, convergence, all points,
learning curves.

The drawing functions are pure: they take a :class:`SearchData` (and the
fitted splines) and return a matplotlib :class:`~matplotlib.figure.Figure`
that no global pyplot state knows about, so they are safe in any process
and render with the Agg canvas. :func:`write_plots` reads a state file
without taking its lock and writes every picture as PNG.

The surrogate drawn is the one the search uses: a
:class:`~nas.search.optimizer.SplineOptimizer` is told every measured point and
fitted, so categories, goal and smoothing are handled exactly as in the
search. All axes are in real units (log-scaled where a dimension is), not
in the unit box.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nas.config import parse_experiment
from nas.errors import UserError
from nas.names import shown
from nas.record.state import PointStatus, State
from nas.record.store import StateStore
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import GOALS, SearchSettings
from nas.search.space import Dim, Params, SearchSpace, Value
from nas.search.spline import PolyharmonicSpline

#: Grid points per axis of a projection sheet.
GRID = 60
#: Filled contour levels of a projection sheet; a line is drawn at every other one.
LEVELS = 21
#: The largest magnitude an axis or a colour scale reaches: matplotlib adds and subtracts
#: the ends of a scale (margins, ticks, the colour bar's ends), which overflows near the
#: largest float (measurements of 1e308 where no value_range bounds them), and a filled
#: contour extended at both ends adds levels at ±1e250, which must lie beyond the scale.
SCALE_LIMIT = 1e249
#: Resolution of the PNG files.
DPI = 100
COLORMAP = "viridis"

#: Axis units by coordinate name (the model families' coordinates); first match wins.
UNITS: tuple[tuple[str, str], ...] = (
    (r"^[cgw]\d+$", "channels"),
    (r"^d\d+$", "blocks"),
    (r"^alpha$", "width ratio big/little"),
    (r"^beta$", "depth ratio big/little"),
    (r"^phi$", "width multiplier"),
    (r"^(cardinality|groups)$", "groups"),
    (r"^(basewidth|width_per_group)$", "channels per group"),
)

_METRIC_NAMES = {"top1": "top-1 accuracy", "top5": "top-5 accuracy"}


class PlotError(UserError, ValueError):
    """A state that cannot be drawn; the message names the file and what is missing."""


@dataclass(frozen=True)
class SearchData:
    """The measured points of a search, in id (proposal) order.

    ``predicted`` holds the spline's prediction when the point was proposed
    (NaN for the initial design and manual points).
    """

    space: SearchSpace
    params: tuple[Params, ...]
    values: np.ndarray
    predicted: np.ndarray
    origins: tuple[str, ...]
    metric: str = "top1"
    #: The experiment's search settings: the surface drawn is the controller's.
    settings: SearchSettings = field(default_factory=SearchSettings)
    #: Where a measurement can lie ([0, 100] for a percentage); colour scales stay inside it.
    valid_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        n = len(self.params)
        if self.values.shape != (n,) or self.predicted.shape != (n,) or len(self.origins) != n:
            raise PlotError(
                f"expected {n} values, predictions and origins, got {self.values.shape}, "
                f"{self.predicted.shape} and {len(self.origins)}"
            )

    @property
    def goal(self) -> str:
        """``"maximize"`` or ``"minimize"`` the metric."""
        return self.settings.goal

    @property
    def tolerance(self) -> float:
        """The stopping tolerance, in the metric's units."""
        return self.settings.tolerance

    @property
    def best(self) -> int:
        """Index of the best measured point."""
        return int(np.argmax(GOALS[self.goal] * self.values))


@dataclass(frozen=True)
class Surrogate:
    """One fitted spline per category and every point's leave-one-out error (NaN: none)."""

    splines: Mapping[tuple[Value, ...], PolyharmonicSpline]
    loo: np.ndarray


# --------------------------------------------------------------------------- data


def search_data(state: State) -> SearchData:
    """The measured points of ``state`` with the experiment's metric, goal and tolerance."""
    experiment = parse_experiment(state.experiment_text, "<state experiment>").experiment
    done = state.with_status(PointStatus.DONE)
    return SearchData(
        space=state.space,
        params=tuple(p.params for p in done),
        values=np.array([p.value for p in done], dtype=float),
        predicted=np.array(
            [math.nan if p.judged_prediction is None else p.judged_prediction for p in done]
        ),
        origins=tuple(p.origin for p in done),
        metric=experiment.metric,
        settings=experiment.search_settings(),
        valid_range=experiment.valid_range(),
    )


def fit_surrogate(data: SearchData) -> Surrogate:
    """Fit the search's splines to ``data`` and map each spline's LOO errors back to points."""
    optimizer = SplineOptimizer(data.space, data.settings)
    for params, value in zip(data.params, data.values, strict=True):
        optimizer.tell(params, float(value))
    fit = optimizer.fit()
    splines = {} if fit is None else dict(fit.splines)
    loo = np.full(len(data.params), np.nan)
    sign = GOALS[data.goal]
    for category, spline in splines.items():
        errors = sign * spline.loo_errors()
        for index, params in enumerate(data.params):
            if data.space.category_of(params) != category:
                continue
            unit = data.space.to_unit(params)
            rows = np.flatnonzero(np.all(spline.points == unit, axis=1))
            if rows.size:
                loo[index] = errors[rows[0]]
    return Surrogate(splines, loo)


# --------------------------------------------------------------------------- labels


def axis_label(dim: Dim) -> str:
    """The dimension's name with its unit (and scale where it is logarithmic)."""
    unit = next((u for pattern, u in UNITS if re.match(pattern, dim.name)), None)
    if unit is None:
        unit = {"int": "integer", "categorical": "choice"}.get(dim.type, "value")
    return f"{dim.name} ({unit}{', log scale' if dim.log else ''})"


def metric_label(metric: str) -> str:
    """Validation metrics are percentages (the trainer's result file checks it)."""
    return f"validation {_METRIC_NAMES.get(metric, metric)} (%)"


def _category_text(space: SearchSpace, category: tuple[Value, ...]) -> str:
    names = (dim.name for dim in space.categorical)
    return ", ".join(f"{name}={value}" for name, value in zip(names, category, strict=True))


def _real(dim: Dim, t: np.ndarray) -> np.ndarray:
    """Real values of unit-box coordinates ``t`` along numeric ``dim``."""
    if dim.log:
        return dim.low * (dim.high / dim.low) ** t
    return dim.low + t * (dim.high - dim.low)


# --------------------------------------------------------------------------- projections


def projection_sheet(
    space: SearchSpace,
    spline: PolyharmonicSpline,
    center: Params,
    pair: tuple[int, int],
    sign: float = 1.0,
    grid: int = GRID,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spline on the plane of numeric dims ``pair`` through ``center``.

    Parameters
    ----------
    space : SearchSpace
    spline : PolyharmonicSpline
        Fitted in the unit box of ``space``'s numeric dims, maximising ``sign * metric``.
    center : dict
        The point the plane passes through (all other numeric dims held at its values).
    pair : (i, j)
        Indices into ``space.numeric``; ``i == j`` gives a 1-D line.
    sign : float
        +1 or -1: maps the spline back to metric units.
    grid : int
        Samples per axis.

    Returns
    -------
    xs, ys, z : ndarray
        Real-unit axes (grid,) and values z[row=j, col=i] of shape (grid, grid),
        or (grid,) when ``i == j``.
    """
    i, j = pair
    t = np.linspace(0.0, 1.0, grid)
    base = space.to_unit(center)
    if i == j:
        units = np.repeat(base[None, :], grid, axis=0)
        units[:, i] = t
        values = sign * spline(units)
        return _real(space.numeric[i], t), _real(space.numeric[i], t), values
    tx, ty = np.meshgrid(t, t)
    units = np.repeat(base[None, :], tx.size, axis=0)
    units[:, i] = tx.ravel()
    units[:, j] = ty.ravel()
    z = (sign * spline(units)).reshape(tx.shape)
    return _real(space.numeric[i], t), _real(space.numeric[j], t), z


def _pairs(d: int) -> list[tuple[int, int]]:
    return [(k, k) for k in range(d)] if d == 1 else [(k, k + 1) for k in range(d - 1)]


def plot_projections(data: SearchData, surrogate: Surrogate, category: tuple[Value, ...]) -> Figure:
    """Contour sheets of the spline of ``category`` through the best point, one per
    consecutive pair of numeric dims (a curve for a 1-dim space), with the measured
    points of the category overlaid in the same colours."""
    space, sign = data.space, GOALS[data.goal]
    spline = surrogate.splines[category]
    center = {
        **data.params[data.best],
        **dict(zip((d.name for d in space.categorical), category, strict=True)),
    }
    members = [k for k, p in enumerate(data.params) if space.category_of(p) == category]
    pairs = _pairs(space.d)
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(5.2 * cols, 4.6 * rows), dpi=DPI, layout="constrained")
    low, high, beyond = _value_range(data, surrogate, category)
    norm = Normalize(low, high)
    axes = []
    for n, pair in enumerate(pairs):
        axes.append(fig.add_subplot(rows, cols, n + 1))
        _draw_pair(axes[-1], data, spline, center, pair, members, norm, sign)
    # one scale for every panel, so equal colours mean equal values across them
    label = metric_label(data.metric) + (f"\n{beyond}" if beyond else "")
    fig.colorbar(ScalarMappable(norm, COLORMAP), ax=axes, label=label)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize="small")
    where = ", ".join(f"{dim.name}={center[dim.name]}" for dim in space.numeric)
    title = f"Spline surrogate through the best measured point\n{where}"
    if category:
        title += f"; category {_category_text(space, category)}"
    fig.suptitle(title)
    return fig


def _value_range(
    data: SearchData, surrogate: Surrogate, category: tuple[Value, ...]
) -> tuple[float, float, str]:
    """Common colour range of all sheets of a category, and a note when the spline leaves
    the metric's valid range there (the colours stop at the limit: no 108 % top-1)."""
    space, sign = data.space, GOALS[data.goal]
    center = data.params[data.best]
    spline = surrogate.splines[category]
    cat = dict(zip((d.name for d in space.categorical), category, strict=True))
    values = [data.values]
    for pair in _pairs(space.d):
        values.append(
            np.ravel(projection_sheet(space, spline, {**center, **cat}, pair, sign, 15)[2])
        )
    merged = np.concatenate(values)
    finite = merged[np.isfinite(merged)]  # the measurements are finite: never empty
    low, high = float(np.min(finite)), float(np.max(finite))
    notes = []
    if finite.size < merged.size:
        notes.append("the spline is not finite on parts of these slices (left blank)")
    if data.valid_range is not None:
        valid_low, valid_high = data.valid_range
        if low < valid_low or high > valid_high:
            notes.append(
                f"the spline leaves [{valid_low:g}, {valid_high:g}] on these slices "
                f"({low:.4g} to {high:.4g}): coloured at the limit"
            )
        low, high = max(low, valid_low), min(high, valid_high)
    if low < -SCALE_LIMIT or high > SCALE_LIMIT:
        notes.append(f"values beyond ±{SCALE_LIMIT:.3g} are coloured at the limit")
    return (*_scale(low, high), "\n".join(notes))


def _scale(low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` as a scale matplotlib can draw: within :data:`SCALE_LIMIT`, with
    :data:`LEVELS` increasing levels.

    Equal values, or values equal but for rounding (every measurement 70), have
    no levels between them, which matplotlib refuses: such a flat range gets a
    margin of 0.5, or of a millionth of its value where that is more.
    """
    low = min(max(low, -SCALE_LIMIT), SCALE_LIMIT)
    high = min(max(high, -SCALE_LIMIT), SCALE_LIMIT)
    if _levels(low, high) is None:
        middle = low / 2 + high / 2
        margin = max(0.5, abs(middle) * 1e-6)
        low, high = middle - margin, middle + margin
    return low, high


def _levels(low: float, high: float) -> np.ndarray | None:
    """:data:`LEVELS` contour levels from ``low`` to ``high``, or None where they would not
    increase (a flat or non-finite range: matplotlib refuses those)."""
    with np.errstate(over="ignore", invalid="ignore"):
        levels = np.linspace(low, high, LEVELS)
        usable = bool(np.isfinite(levels).all() and (np.diff(levels) > 0).all())
    return levels if usable else None


def _within_limits(fig: Figure) -> Figure:
    """``fig`` with every axis inside :data:`SCALE_LIMIT`: an axis scaled to data near the
    largest float cannot be ticked (matplotlib's arithmetic on its ends overflows)."""
    for ax in fig.axes:
        for get, set_ in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
            low, high = get()
            if not (-SCALE_LIMIT <= min(low, high) and max(low, high) <= SCALE_LIMIT):
                set_(*_scale(min(low, high), max(low, high)))
    return fig


def slice_distance(
    space: SearchSpace, params: Params, center: Params, pair: tuple[int, int]
) -> float:
    """How far ``params`` lies from the slice through ``center`` along dims ``pair``: the
    unit-box distance over every other numeric dim (categories differ: infinite)."""
    if space.category_of(params) != space.category_of(center):
        return math.inf
    offset = space.to_unit(params) - space.to_unit(center)
    others = [k for k in range(space.d) if k not in pair]
    return float(np.linalg.norm(offset[others])) if others else 0.0


def _padded(dim: Dim, fraction: float = 0.04) -> tuple[float, float]:
    """The box of ``dim`` widened a little, so a point or star on its edge is drawn whole."""
    if dim.log:
        factor = (dim.high / dim.low) ** fraction
        return dim.low / factor, dim.high * factor
    pad = fraction * (dim.high - dim.low)
    return dim.low - pad, dim.high + pad


def _draw_pair(
    ax: Axes,
    data: SearchData,
    spline: PolyharmonicSpline,
    center: Params,
    pair: tuple[int, int],
    members: list[int],
    norm: Normalize,
    sign: float,
) -> None:
    """One panel: the sheet, the measured points (hollow and labelled with their distance
    when off the slice) and the best point, inside a frame a little wider than the box."""
    space = data.space
    i, j = pair
    xs, ys, z = projection_sheet(space, spline, center, pair, sign)
    dx = space.numeric[i]
    distance = np.array([slice_distance(space, data.params[k], center, pair) for k in members])
    on = distance < 1e-9
    px = np.array([data.params[k][dx.name] for k in members], dtype=float)
    pv = data.values[members]
    note = ""
    if i == j:
        ax.plot(xs, z, color="tab:blue", label="spline")
        py = pv
        ax.set_ylabel(metric_label(data.metric))
    else:
        dy = space.numeric[j]
        py = np.array([data.params[k][dy.name] for k in members], dtype=float)
        note = _draw_sheet(ax, xs, ys, z, norm)
        ax.set_ylabel(axis_label(dy))
        _integer_ticks(ax.yaxis, dy)
        if dy.log:
            ax.set_yscale("log")
        ax.set_ylim(*_padded(dy))
    colours = ScalarMappable(norm, COLORMAP).to_rgba(pv)
    ax.scatter(px[on], py[on], c=colours[on], edgecolors="w", s=40, zorder=3, clip_on=False,
               label="measured on this slice")  # fmt: skip
    if (~on).any():
        ax.scatter(px[~on], py[~on], facecolors="none", edgecolors=colours[~on], linewidths=1.5,
                   s=40, zorder=3, clip_on=False,
                   label="measured off it (label: distance in the unit box)")  # fmt: skip
        for x, y, d in zip(px[~on], py[~on], distance[~on], strict=True):
            ax.annotate("other category" if math.isinf(d) else f"{d:.2f}", (x, y),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, clip_on=False)  # fmt: skip
    if i != j:
        ax.plot(center[dx.name], center[space.numeric[j].name], marker="*", color="red",
                markersize=16, markeredgecolor="k", linestyle="none", zorder=4, clip_on=False,
                label="best")  # fmt: skip
    if dx.log:
        ax.set_xscale("log")
    ax.set_xlim(*_padded(dx))
    _integer_ticks(ax.xaxis, dx)
    ax.set_xlabel(axis_label(dx))
    title = f"{dx.name} vs {space.numeric[j].name}" if i != j else f"along {dx.name}"
    ax.set_title(title + (f"\n{note}" if note else ""))


def _draw_sheet(ax: Axes, xs: np.ndarray, ys: np.ndarray, z: np.ndarray, norm: Normalize) -> str:
    """The filled contours of a sheet and their lines, at the same levels in every panel;
    returns a note for the panel's title ("" when there is none).

    Where the spline is not finite (measurements near the float limit) the sheet
    is left blank; a sheet with no finite value says so instead. A flat sheet
    (every measurement equal) is drawn in one colour without lines: its
    rounding noise would otherwise straddle a level and draw a line through nothing.
    """
    levels = _levels(norm.vmin, norm.vmax)
    sheet = np.ma.masked_invalid(z)
    if levels is None or not sheet.count():
        ax.text(0.5, 0.5, "the spline is not finite on this slice", ha="center", va="center",
                transform=ax.transAxes, fontsize="small")  # fmt: skip
        return ""
    low, high = float(sheet.min()), float(sheet.max())
    flat = high - low < (levels[1] - levels[0]) / 1000
    if flat:
        sheet = np.ma.masked_array(np.full(z.shape, float(sheet.mean())), mask=sheet.mask)
    ax.contourf(xs, ys, sheet, levels=levels, cmap=COLORMAP, norm=norm, extend="both")
    if flat:
        return f"flat: {float(sheet.mean()):.6g} on this slice"
    lines = levels[::2][(levels[::2] > low) & (levels[::2] < high)]  # none: no line to draw
    if lines.size:
        ax.contour(xs, ys, sheet, levels=lines, colors="k", linewidths=0.4, alpha=0.5)
    return ""


def _integer_ticks(axis: Any, dim: Dim) -> None:
    """An integer dimension has no value 1.25: tick it at integers only."""
    if dim.type == "int" and not dim.log:
        axis.set_major_locator(MaxNLocator(integer=True))


# --------------------------------------------------------------------------- other views


def plot_predicted_vs_measured(data: SearchData, surrogate: Surrogate) -> Figure:
    """Prediction against measurement for every measured point.

    Proposed points show the prediction made when they were proposed, with
    the point's leave-one-out error as an error bar (how far the spline
    misses it when it is left out of the fit). The others (initial design,
    manual) show their leave-one-out prediction itself: its distance from
    the diagonal is that error, so it gets no bar that would repeat it.
    """
    loo = surrogate.loo
    proposed = np.isfinite(data.predicted)
    y = np.where(proposed, data.predicted, data.values - loo)
    err = np.where(proposed & np.isfinite(loo), np.abs(loo), 0.0)
    fig = Figure(figsize=(6.4, 5.6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if proposed.any():
        ax.errorbar(data.values[proposed], y[proposed], yerr=err[proposed], fmt="o", capsize=3,
                    label="predicted when proposed")  # fmt: skip
    others = ~proposed & np.isfinite(y)
    if others.any():
        ax.plot(data.values[others], y[others], "s", label="leave-one-out prediction")
    low, high = prediction_frame(data, y)
    line = np.array([low, high])
    cut = np.isfinite(y) & ((y - err < low) | (y + err > high))
    for value, centre, bar in zip(data.values[cut], y[cut], err[cut], strict=True):
        ax.annotate(f"±{bar:.3g}", (value, min(max(centre, low), high)), textcoords="offset points",
                    xytext=(5, -3), fontsize=7, color="tab:blue")  # fmt: skip
    ax.plot(line, line, color="k", linewidth=1, label="prediction = measurement")
    ax.fill_between(line, line - data.tolerance, line + data.tolerance, color="grey", alpha=0.2,
                    label=f"stopping tolerance ±{data.tolerance:g}")  # fmt: skip
    ax.set_xlim(*line)
    ax.set_ylim(*line)
    ax.set_xlabel(f"measured {metric_label(data.metric)}")
    ax.set_ylabel(f"predicted {metric_label(data.metric)}")
    ax.set_title("Predicted vs measured (error bars: leave-one-out error)")
    if cut.any():
        ax.text(0.99, 0.01, "a bar labelled ±e runs past the frame", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7)  # fmt: skip
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    return fig


def prediction_frame(data: SearchData, predicted: np.ndarray) -> tuple[float, float]:
    """The square frame of predicted vs measured: the measurements and the predictions
    (not their error bars, which may be far wider), padded, inside the metric's range."""
    shown = np.concatenate([data.values, predicted[np.isfinite(predicted)]])
    low, high = float(np.min(shown)), float(np.max(shown))
    pad = max(0.08 * (high - low), data.tolerance, 1e-9)
    low, high = low - pad, high + pad
    if data.valid_range is not None:
        low = max(low, min(data.valid_range[0], float(np.min(shown))))
        high = min(high, max(data.valid_range[1], float(np.max(shown))))
    return _scale(low, high)


def plot_convergence(data: SearchData) -> Figure:
    """Best measured value and prediction gap against the number of measured points."""
    n = np.arange(1, len(data.values) + 1)
    sign = GOALS[data.goal]
    best = sign * np.maximum.accumulate(sign * data.values)
    fig = Figure(figsize=(7.0, 6.0), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(n, data.values, "o", color="grey", alpha=0.6, label="measured")
    top.step(n, best, where="post", color="tab:blue", linewidth=2, label="best so far")
    top.set_ylabel(metric_label(data.metric))
    top.set_title("Convergence")
    top.legend(loc="lower right" if data.goal == "maximize" else "upper right")
    gap = np.abs(data.values - data.predicted)
    has = np.isfinite(gap)
    if has.any():
        bottom.plot(n[has], gap[has], "o-", color="tab:orange", label="|measured − predicted|")
    else:
        bottom.text(0.5, 0.5, "no proposed points measured yet", ha="center", va="center",
                    transform=bottom.transAxes)  # fmt: skip
    bottom.axhline(data.tolerance, color="k", linestyle="--",
                   label=f"stopping tolerance {data.tolerance:g}")  # fmt: skip
    bottom.set_ylim(*_scale(0.0, 1.4 * max(np.max(gap[has], initial=0.0), data.tolerance, 1e-9)))
    bottom.set_ylabel("prediction gap (percent points)")
    bottom.set_xlabel("number of measured points")
    bottom.legend(loc="upper left")
    return fig


def plot_parallel(data: SearchData) -> Figure:
    """Every measured point as a line across all dimensions and the metric.

    Numeric axes span the search box (log where the dimension is), categorical
    axes spread their choices evenly, the metric axis spans the measured range.
    Lines are coloured by the measured value; the best point is drawn in red.
    """
    space = data.space
    columns, ticks = [], []
    for dim in space.dims:
        if dim.is_numeric:
            t = np.array([_unit_of(dim, p[dim.name]) for p in data.params])
            ticks.append((f"{dim.low:g}", f"{dim.high:g}"))
        else:
            t = np.array([_choice_position(dim, p[dim.name]) for p in data.params])
            ticks.append((str(dim.choices[0]), str(dim.choices[-1])))
        columns.append(t)
    low, high = float(np.min(data.values)), float(np.max(data.values))
    half_span = high / 2 - low / 2  # halves: 1e308 - (-1e308) overflows
    columns.append((data.values / 2 - low / 2) / half_span if high > low else 0 * data.values)
    ticks.append((f"{low:.4g}", f"{high:.4g}"))
    table = np.column_stack(columns)
    names = [axis_label(dim) for dim in space.dims] + [metric_label(data.metric)]
    norm = Normalize(*_scale(low, high))
    cmap = ScalarMappable(norm, COLORMAP)
    fig = Figure(figsize=(max(6.0, 1.3 * len(names) + 2.0), 5.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(names))
    order = np.argsort(GOALS[data.goal] * data.values)  # best drawn last, on top
    for k in order:
        ax.plot(x, table[k], color=cmap.to_rgba(data.values[k]), alpha=0.8, linewidth=1.2)
    ax.plot(x, table[data.best], color="red", linewidth=2.5)
    for position, (lo, hi) in zip(x, ticks, strict=True):
        ax.axvline(position, color="k", linewidth=0.8)
        ax.text(position, -0.04, lo, ha="center", va="top", fontsize="small")
        ax.text(position, 1.04, hi, ha="center", va="bottom", fontsize="small")
    ax.set_xticks(x, names, rotation=15, ha="right")
    ax.tick_params(axis="x", pad=16)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.set_ylabel("position in the search box (bottom: low, top: high)")
    ax.set_title(f"All {len(data.values)} measured points (best in red)")
    fig.colorbar(cmap, ax=ax, label=metric_label(data.metric))
    return fig


#: Figures of a stored curve that ``learning-curves.png`` can draw, with their axis labels.
CURVE_PANELS = {
    "top1": "top-1 accuracy on the subset [%]",
    "top5": "top-5 accuracy on the subset [%]",
    "loss": "mean training loss",
}


def curve_panels(curves: Mapping[int, list[dict]], metric: str) -> list[str]:
    """The figures ``learning-curves.png`` draws: the experiment's metric where the stored
    curves hold it (the built-in trainer's top-1, or a command's own figure of that name),
    the subset top-1 and the loss, each only where some entry has a value.

    A command of its own reports its loss and its metric, not the built-in
    trainer's top-1: an empty panel would only look like a broken training.
    """
    wanted = dict.fromkeys((metric, "top1", "loss"))
    return [n for n in wanted if any(e.get(n) is not None for c in curves.values() for e in c)]


def _panel_label(name: str) -> str:
    """A curve panel's axis label: the built-in figure's, else the own figure's name (a ``$``
    in it escaped: matplotlib reads text between two as mathematics)."""
    return CURVE_PANELS.get(name, shown(name).replace("$", r"\$"))


def plot_curves(
    curves: Mapping[int, list[dict]], incumbent: int | None, metric: str = "top1"
) -> Figure | None:
    """Every point's learning curve (the figures of :func:`curve_panels` by epoch), the
    incumbent (best measured point) highlighted in red, so a run that lags or diverged
    stands out; None when the curves hold none of those figures."""
    panels = curve_panels(curves, metric)
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for point_id in sorted(curves, key=lambda i: i == incumbent):  # the incumbent on top
        entries = curves[point_id]
        epochs = [e["epoch"] for e in entries]
        style = (
            {"color": "red", "linewidth": 2.5, "label": f"point {point_id} (best)", "zorder": 3}
            if point_id == incumbent
            else {"color": "0.55", "linewidth": 1.0, "alpha": 0.8}
        )
        for ax, name in zip(axes, panels, strict=True):
            values = [math.nan if e.get(name) is None else e[name] for e in entries]
            ax.plot(epochs, values, marker=".", **style)
    for ax, name in zip(axes, panels, strict=True):
        ax.set(xlabel="epoch", ylabel=_panel_label(name))
    if "loss" in panels:
        losses = [e["loss"] for c in curves.values() for e in c if e["loss"] is not None]
        if min(losses) > 0:  # a loss of a command of its own may be 0 or negative
            axes[panels.index("loss")].set_yscale("log")
    if incumbent in curves:
        axes[0].legend(loc="lower right" if panels[0] != "loss" else "upper right")
    fig.suptitle(f"Learning curves of {len(curves)} points")
    return _within_limits(fig)


def _unit_of(dim: Dim, value: float) -> float:
    if dim.log:
        return math.log(value / dim.low) / math.log(dim.high / dim.low)
    return (value - dim.low) / (dim.high - dim.low)


def _choice_position(dim: Dim, value: Value) -> float:
    n = len(dim.choices)
    return 0.5 if n == 1 else dim.choices.index(value) / (n - 1)


# --------------------------------------------------------------------------- files


def figures(data: SearchData) -> dict[str, Figure]:
    """Every picture of ``data`` by file stem; sheets need a fitted spline.

    numpy's warnings are silenced while drawing: measurements near the float
    limit make the spline overflow, and the figures show that themselves (a
    blank sheet and a note) where the warnings would only repeat it on stderr.
    """
    if not data.params:
        raise PlotError("no measured points to draw")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        surrogate = fit_surrogate(data)
        out: dict[str, Figure] = {}
        best_category = data.space.category_of(data.params[data.best])
        categories = sorted(surrogate.splines, key=lambda c: (c != best_category, str(c)))
        for category in categories:
            suffix = "-".join(_slug(v) for v in category)
            out["projections" + (f"-{suffix}" if suffix else "")] = plot_projections(
                data, surrogate, category
            )
        if surrogate.splines or np.isfinite(data.predicted).any():
            out["predicted-vs-measured"] = plot_predicted_vs_measured(data, surrogate)
        out["convergence"] = plot_convergence(data)
        out["parallel-coordinates"] = plot_parallel(data)
    return {stem: _within_limits(fig) for stem, fig in out.items()}


def _slug(value: Value) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)) or "_"


def save(figs: Mapping[str, Figure], out_dir: str | Path) -> list[Path]:
    """Write each figure as ``<out_dir>/<stem>.png``; returns the paths in order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, fig in figs.items():
        path = out / f"{stem}.png"
        fig.savefig(path, format="png", dpi=DPI)
        paths.append(path)
    return paths


def write_plots(state_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Read the state file (no lock taken) and write all PNGs into ``out_dir``.

    Raises:
        PlotError: the state has no measured point yet.
    """
    state = StateStore.read(state_path)
    data = search_data(state)
    if not data.params:
        raise PlotError(f"{state_path}: no measured points yet; nothing to draw")
    figs = figures(data)
    if state.curves:
        done = state.with_status(PointStatus.DONE)
        curves = plot_curves(state.curves, done[data.best].id, data.metric)
        if curves is not None:  # no figure it can draw: no empty picture
            figs["learning-curves"] = curves
    return save(figs, out_dir)


#: One sentence per figure kind (by the stem's first word), for the report and the README.
_CAPTIONS = {
    "projections": (
        "The spline's {metric} on two-dimensional slices through the best point (star), "
        "other dimensions held at the best point's values; measured points on the slice are "
        "filled, points off it hollow, labelled with their distance to it."
    ),
    "predicted-vs-measured": (
        "Each measured point's {metric} against its leave-one-out prediction (error bar: its "
        "leave-one-out error) and, for proposals, the prediction when it was proposed; points "
        "inside the band agree within the tolerance."
    ),
    "convergence": (
        "Best {metric} so far and each proposal's |measured - predicted| against the "
        "tolerance, per measured point in the order measured."
    ),
    "parallel-coordinates": (
        "Every measured point as a line through its coordinates, coloured by {metric}; "
        "the best in red."
    ),
}


def caption(stem: str, data: SearchData) -> str:
    """The sentence that says what the figure ``stem`` shows."""
    kind = next((k for k in _CAPTIONS if stem == k or stem.startswith(k + "-")), None)
    if kind is None:
        return stem
    return _CAPTIONS[kind].format(metric=data.metric)
