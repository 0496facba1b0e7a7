"""The search settings are declared once and every reader gets the same object.

``[experiment]`` exposes the fields of :class:`nas.search.settings.SearchSettings`
with their metadata, the controller and the plots build their optimizer from
:meth:`nas.config.ExperimentConfig.search_settings`, so the plotted surface is
the controller's (smoothing chosen for ``noise`` included).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nas.config import ConfigError, ExperimentConfig, parse_experiment
from nas.control.policy import Study
from nas.record.store import StateStore
from nas.report import plots
from nas.search.settings import SETTINGS, STRATEGY_NAMES, SearchSettings, SettingError
from nas.search.strategies import STRATEGIES

SPACE = '[[space]]\nname = "a"\ntype = "int"\nlow = 0\nhigh = 40\n'
SPACE += '[[space]]\nname = "b"\ntype = "float"\nlow = 0.0\nhigh = 1.0\n'


def test_experiment_table_exposes_the_declared_fields() -> None:
    table = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    exposed = set(table) & set(SETTINGS)
    assert exposed == set(SETTINGS) - {"categories"}
    for name in exposed:
        assert table[name].default == SETTINGS[name].default, name
        assert table[name].metadata == SETTINGS[name].metadata, name


def test_search_settings_round_trip_from_a_file() -> None:
    text = '[experiment]\nname = "s"\ntolerance = 2\nbatch_size = 3\nnoise = "auto"\n' + SPACE
    settings = parse_experiment(text).experiment.search_settings()
    assert settings == SearchSettings(tolerance=2.0, batch_size=3, noise="auto")
    assert parse_experiment('[experiment]\nname = "s"\n' + SPACE).experiment.search_settings() == (
        SearchSettings()
    )


def test_every_strategy_name_is_registered() -> None:
    assert set(STRATEGIES) == set(STRATEGY_NAMES)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("min_distance", "1.0", "expected less than 1.0, got 1.0"),
        ("noise", "-0.5", "expected a number >= 0 or 'auto'"),
        ("design_points", "1", "expected at least 2"),
        ("warping", '"sometimes"', "expected one of 'auto', 'off', got 'sometimes'"),
    ],
)
def test_file_and_optimizer_refuse_alike(key: str, value: str, message: str) -> None:
    text = f'[experiment]\nname = "s"\n{key} = {value}\n' + SPACE
    with pytest.raises(ConfigError, match=f"\\[experiment\\] {key}: {message}"):
        parse_experiment(text, "e.toml")
    with pytest.raises(SettingError, match=f"{key}: {message}"):
        SearchSettings(**{key: json.loads(value)})


def test_plot_fits_the_controllers_surface(tmp_path) -> None:
    """With ``noise`` the smoothing is chosen per fit; the plot must use the same one."""
    text = '[experiment]\nname = "s"\nnoise = "auto"\n' + SPACE
    experiment = parse_experiment(text)
    rng = np.random.default_rng(4)
    path = tmp_path / "s.h5"
    with StateStore.create(path, experiment) as store:
        for a, b in zip(rng.integers(0, 41, 14), rng.random(14), strict=True):
            value = 50 - (a - 25) ** 2 / 20 - 30 * (b - 0.4) ** 2 + 3 * rng.standard_normal()
            point = store.state.add_point({"a": int(a), "b": float(b)}, "manual", 0)
            store.state.record(point.id, float(value))
        store.commit()
    state = StateStore.read(path)
    controller = Study(state, experiment).optimizer.fit()
    surrogate = plots.fit_surrogate(plots.search_data(state))
    assert controller is not None and controller.smoothing > 0
    grid = np.random.default_rng(0).random((50, 2))
    (drawn,) = surrogate.splines.values()
    (solved,) = controller.splines.values()
    assert drawn.smoothing_used == solved.smoothing_used
    np.testing.assert_allclose(drawn(grid), solved(grid))
