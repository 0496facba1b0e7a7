"""Plots that tell the truth: colours inside the metric's range, off-slice points marked with
their distance, nothing clipped, frames around the measurements, a caption per figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colorbar import Colorbar

from nas.config import parse_experiment
from nas.record.store import StateStore
from nas.report import plots

TEXT = (
    '[experiment]\nname = "t"\n'
    '[[space]]\nname = "g1"\ntype = "int"\nlow = 8\nhigh = 64\n'
    '[[space]]\nname = "d1"\ntype = "int"\nlow = 1\nhigh = 4\n'
)
THIRD = '[[space]]\nname = "d2"\ntype = "int"\nlow = 1\nhigh = 4\n'


def state_of(tmp_path: Path, text: str, value) -> Path:
    experiment = parse_experiment(text)
    path = tmp_path / "s.h5"
    with StateStore.create(path, experiment) as store:
        for params in experiment.space.initial_design():
            point = store.state.add_point(params, "initial", 0)
            store.state.record(point.id, value(params))
        store.commit()
    return path


def steep(params: dict) -> float:
    """Measured up to 100 %, so the spline overshoots to ~102 % between the points."""
    return 99.5 if params["g1"] == 36 else (100.0 if params["g1"] > 40 else 90.0)


def data_of(path: Path) -> plots.SearchData:
    return plots.search_data(StateStore.read(path))


def colour_bar(fig) -> Colorbar:
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    return bar


def test_the_colour_scale_stays_in_the_metrics_range_and_says_where_the_spline_leaves_it(
    tmp_path: Path,
) -> None:
    data = data_of(state_of(tmp_path, TEXT, steep))
    surrogate = plots.fit_surrogate(data)
    sheet = plots.projection_sheet(
        data.space, surrogate.splines[()], data.params[data.best], (0, 1)
    )
    assert sheet[2].max() > 100.0  # the premise: the spline really overshoots
    fig = plots.plot_projections(data, surrogate, ())
    bar = colour_bar(fig)
    low, high = bar.get_ylim()
    assert high <= 100.0 and low >= 0.0
    assert "leaves [0, 100]" in bar.get_ylabel() and "coloured at the limit" in bar.get_ylabel()


def test_a_search_inside_the_range_carries_no_flag(tmp_path: Path) -> None:
    data = data_of(state_of(tmp_path, TEXT, lambda p: 60.0 + p["g1"] / 4 + p["d1"]))
    fig = plots.plot_projections(data, plots.fit_surrogate(data), ())
    assert "leaves" not in colour_bar(fig).get_ylabel()


def test_points_off_the_slice_are_hollow_and_labelled_with_their_distance(tmp_path: Path) -> None:
    data = data_of(state_of(tmp_path, TEXT + THIRD, lambda p: 70.0 + p["g1"] / 8 - p["d2"]))
    fig = plots.plot_projections(data, plots.fit_surrogate(data), ())
    panel = fig.axes[0]  # g1 vs d1: d2 is held at the best point's value
    best = data.params[data.best]
    off = [p for p in data.params if p["d2"] != best["d2"]]
    assert off, "the premise: some points lie off the slice"
    hollow = [
        c
        for c in panel.collections
        if isinstance(c, PathCollection) and c.get_label().startswith("measured off it")
    ]
    assert len(hollow) == 1 and len(hollow[0].get_offsets()) == len(off)
    assert len(hollow[0].get_facecolors()) == 0  # hollow markers
    labels = sorted(t.get_text() for t in panel.texts)
    expected = sorted(f"{plots.slice_distance(data.space, p, best, (0, 1)):.2f}" for p in off)
    assert labels == expected and all(float(t) > 0 for t in labels)


def test_nothing_is_clipped_and_the_legend_sits_outside_the_panels(tmp_path: Path) -> None:
    data = data_of(state_of(tmp_path, TEXT, steep))
    fig = plots.plot_projections(data, plots.fit_surrogate(data), ())
    panel = fig.axes[0]
    low, high = panel.get_xlim()
    assert low < 8 and high > 64  # a point or the star on the box's edge is drawn whole
    low, high = panel.get_ylim()
    assert low < 1 and high > 4
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


def test_predicted_vs_measured_frames_the_measurements(tmp_path: Path) -> None:
    data = data_of(state_of(tmp_path, TEXT, steep))
    surrogate = plots.fit_surrogate(data)
    fig = plots.plot_predicted_vs_measured(data, surrogate)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    predicted = data.values - surrogate.loo
    shown = np.concatenate([data.values, predicted[np.isfinite(predicted)]])
    assert low <= shown.min() and high >= shown.max()  # every marker inside
    assert high <= max(100.0, shown.max()) and low >= min(0.0, shown.min())
    span = shown.max() - shown.min()
    assert high - low <= span * 1.2 + 2 * data.tolerance  # a frame, not the error bars' reach


def test_a_bar_past_the_frame_is_labelled_with_its_length(tmp_path: Path) -> None:
    data = data_of(state_of(tmp_path, TEXT, steep))
    surrogate = plots.fit_surrogate(data)
    y = data.values - surrogate.loo
    wide = plots.SearchData(  # one proposal whose leave-one-out error is far wider than the data
        data.space, data.params, data.values, np.where(np.arange(len(y)) == 0, y, np.nan),
        data.origins, data.metric, data.settings, data.valid_range,
    )  # fmt: skip
    wide_surrogate = plots.Surrogate(
        surrogate.splines, np.where(np.arange(len(y)) == 0, 50.0, surrogate.loo)
    )
    fig = plots.plot_predicted_vs_measured(wide, wide_surrogate)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "±50" in texts and any("runs past the frame" in t for t in texts)


@pytest.mark.parametrize("stem", ["projections", "projections-basic", "predicted-vs-measured",
                                  "convergence", "parallel-coordinates"])  # fmt: skip
def test_every_figure_has_a_caption_sentence(tmp_path: Path, stem: str) -> None:
    data = data_of(state_of(tmp_path, TEXT, steep))
    text = plots.caption(stem, data)
    assert text.endswith(".") and len(text.split()) >= 12 and "top1" in text
