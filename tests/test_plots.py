"""Plots from a state built through the public API: files, sizes, content."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import imread

from nas.commands import plot as plot_command
from nas.config import parse_experiment
from nas.record.store import StateStore
from nas.report import plots

HEADER = '[experiment]\nname = "t"\ntolerance = 0.5\ngoal = "{goal}"\n'
DIMS = {
    "g1": 'type = "int"\nlow = 8\nhigh = 64',
    "phi": 'type = "float"\nlow = 0.5\nhigh = 2.0\nlog = true',
    "d1": 'type = "int"\nlow = 1\nhigh = 4',
    "block": 'type = "categorical"\nchoices = ["basic", "bottleneck"]',
}


def accuracy(p: dict) -> float:
    """A smooth bump with its top inside the box; the block choice shifts it."""
    value = 80.0 - (p["g1"] - 40) ** 2 / 100
    value -= 5 * (p.get("phi", 1.2) - 1.2) ** 2 + (p.get("d1", 2.5) - 2.5) ** 2
    return value - 3.0 * (p.get("block") == "bottleneck")


def make_state(tmp_path, names, goal="maximize", proposal=None):
    text = HEADER.format(goal=goal) + "".join(
        f'[[space]]\nname = "{n}"\n{DIMS[n]}\n' for n in names
    )
    experiment = parse_experiment(text)
    path = tmp_path / "state.h5"
    with StateStore.create(path, experiment) as store:
        for params in experiment.space.initial_design():
            point = store.state.add_point(params, "initial", 0)
            store.state.record(point.id, accuracy(point.params))
        if proposal is not None:
            point = store.state.add_point(proposal, "incremental", 1, predicted=79.0)
            store.state.record(point.id, accuracy(point.params))
        store.commit()
    return path


def assert_picture(path, min_height=300, min_width=300):
    assert path.is_file()
    assert 10_000 < path.stat().st_size < 2_000_000
    image = imread(path)
    assert image.shape[0] >= min_height and image.shape[1] >= min_width
    assert image[..., :3].std() > 0.05, f"{path.name} looks blank"


def test_three_dims_writes_every_picture(tmp_path):
    state = make_state(tmp_path, ["g1", "phi", "d1"], proposal={"g1": 40, "phi": 1.1, "d1": 2})
    paths = plots.write_plots(state, tmp_path / "out")
    names = [p.name for p in paths]
    assert names == [
        "projections.png",
        "predicted-vs-measured.png",
        "convergence.png",
        "parallel-coordinates.png",
    ]
    for path in paths:
        assert_picture(path)
    # Two consecutive pairs side by side: the sheet is wider than tall.
    height, width = imread(paths[0]).shape[:2]
    assert width > 1.5 * height


def test_one_dim_space_draws_a_curve(tmp_path):
    state = make_state(tmp_path, ["g1"])
    paths = plots.write_plots(state, tmp_path / "out")
    assert [p.name for p in paths][0] == "projections.png"
    for path in paths:
        assert_picture(path)


def test_categorical_dim_gives_one_sheet_per_category_best_first(tmp_path):
    state = make_state(tmp_path, ["g1", "d1", "block"])
    paths = plots.write_plots(state, tmp_path / "out")
    names = [p.name for p in paths]
    assert names[:2] == ["projections-basic.png", "projections-bottleneck.png"]
    for path in paths:
        assert_picture(path)


def test_sheet_passes_through_the_best_point_in_real_units(tmp_path):
    state = make_state(tmp_path, ["g1", "phi", "d1"], goal="minimize")
    data = plots.search_data(StateStore.read(state))
    surrogate = plots.fit_surrogate(data)
    best = data.params[data.best]
    assert data.values[data.best] == data.values.min()
    (spline,) = surrogate.splines.values()
    # The centre sample of a 3-point grid lies on the best point in g1 (int) only
    # when it is the box centre; sample the g1-phi plane at the best point instead.
    xs, ys, z = plots.projection_sheet(data.space, spline, best, (0, 1), sign=-1.0, grid=2)
    assert xs.tolist() == [8.0, 64.0]
    assert ys == pytest.approx([0.5, 2.0])  # log dim: real ends, not the unit box
    corner = {**best, "g1": 8, "phi": 0.5}
    expected = -float(spline(data.space.to_unit(corner)))
    assert z[0, 0] == pytest.approx(expected)
    # Interpolation: the spline through the best point reproduces its measurement.
    line = plots.projection_sheet(data.space, spline, best, (0, 0), sign=-1.0, grid=57)
    at_best = np.interp(best["g1"], line[0], line[2])
    assert at_best == pytest.approx(data.values[data.best], abs=0.05)


def test_loo_error_of_each_point_matches_a_refit_without_it(tmp_path):
    state = make_state(tmp_path, ["g1", "d1"], proposal={"g1": 40, "d1": 2})
    data = plots.search_data(StateStore.read(state))
    surrogate = plots.fit_surrogate(data)
    units = data.space.to_unit_many(data.params)
    (spline,) = surrogate.splines.values()  # on the scales (warp) the search chose
    checked = 0
    for k in np.flatnonzero(np.isfinite(surrogate.loo)):
        rest = np.arange(len(data.values)) != k
        without = spline.refit(units[rest], data.values[rest])
        assert surrogate.loo[k] == pytest.approx(data.values[k] - without(units[k]), abs=1e-6)
        checked += 1
    assert checked >= len(data.values) - 3


def test_state_without_measurements_is_an_error(tmp_path):
    experiment = parse_experiment(
        HEADER.format(goal="maximize") + f'[[space]]\nname = "g1"\n{DIMS["g1"]}\n'
    )
    path = tmp_path / "state.h5"
    StateStore.create(path, experiment).close()
    with pytest.raises(plots.PlotError, match="no measured points"):
        plots.write_plots(path, tmp_path / "out")


def run_command(argv):
    parser = argparse.ArgumentParser()
    plot_command.register(parser.add_subparsers(dest="command"))  # as nas.commands.main builds it
    args = parser.parse_args(["plot", *argv])
    return args.func(args)


def test_command_prints_the_paths_as_json(tmp_path, capsys):
    state = make_state(tmp_path, ["g1", "d1"])
    assert run_command(["--state", str(state), "--out", str(tmp_path / "p"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [p.rsplit("/", 1)[1] for p in document["plots"]][-1] == "parallel-coordinates.png"
    for path in document["plots"]:
        assert_picture(tmp_path / "p" / path.rsplit("/", 1)[1])


def test_command_usage_and_failure(tmp_path, capsys):
    assert run_command(["--state", str(tmp_path / "missing.h5"), "--out", str(tmp_path)]) == 1
    assert run_command(["--state", str(tmp_path / "missing.h5"), "--out", __file__]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    experiment = parse_experiment(
        HEADER.format(goal="maximize") + f'[[space]]\nname = "g1"\n{DIMS["g1"]}\n'
    )
    StateStore.create(tmp_path / "empty.h5", experiment).close()
    assert run_command(["--state", str(tmp_path / "empty.h5"), "--out", str(tmp_path / "o")]) == 1


def test_projection_panels_share_one_colour_scale_and_integer_ticks(tmp_path):
    state = make_state(tmp_path, ["g1", "phi", "d1"], proposal={"g1": 40, "phi": 1.1, "d1": 2})
    data = plots.search_data(StateStore.read(state))
    fig = plots.plot_projections(data, plots.fit_surrogate(data), ())
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(fig.axes) - len(panels) == 1  # one colour bar for every panel
    levels = {tuple(np.round(c.levels, 9)) for ax in panels for c in ax.collections if
              hasattr(c, "levels") and c.get_array() is not None and len(c.levels) == 21}  # fmt: skip
    assert len(levels) == 1  # the filled sheets use the same levels
    fig.canvas.draw()
    d1_axis = panels[1].yaxis  # g1 vs phi, then phi vs d1: d1 is an integer dimension
    ticks = [t for t in d1_axis.get_ticklocs() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    scatters = [c for ax in panels for c in ax.collections if isinstance(c, PathCollection)]
    assert scatters and not any(c.get_clip_on() for c in scatters)  # edge points not cut


def test_predicted_vs_measured_shows_error_bars_once_and_whole(tmp_path):
    state = make_state(tmp_path, ["g1", "d1"], proposal={"g1": 40, "d1": 2})
    data = plots.search_data(StateStore.read(state))
    surrogate = plots.fit_surrogate(data)
    fig = plots.plot_predicted_vs_measured(data, surrogate)
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    proposed = np.isfinite(data.predicted)
    bar = np.abs(surrogate.loo[proposed])
    assert (data.predicted[proposed] - bar >= low).all() and (
        data.predicted[proposed] + bar <= high
    ).all()
    bars = [c for c in ax.containers if c.has_yerr]
    segments = sum(len(b.lines[2][0].get_segments()) for b in bars)
    assert segments == proposed.sum()  # leave-one-out points carry no bar repeating their offset


def test_parallel_coordinates_name_units(tmp_path):
    state = make_state(tmp_path, ["g1", "phi", "block"])
    fig = plots.plot_parallel(plots.search_data(StateStore.read(state)))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[-1] == "validation top-1 accuracy (%)"
    assert "log scale" in labels[1] and "(choice)" in labels[2]
