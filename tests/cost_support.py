"""A two-width ResNet experiment on the digits and a made-up accuracy, for the tests of costs.

Shared by the tests of ``front``/``best``, constraints and the trade-off search:
the cost model computes every cost of these candidates in milliseconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from experiment_support import run

from nas.config import Experiment
from nas.control.policy import Study
from nas.record.state import PointStatus, State


def resnet_experiment(
    g1: tuple[int, int] = (4, 32),
    g2: tuple[int, int] = (8, 64),
    settings: str = "",
    constraints: str = "",
) -> str:
    """Experiment TOML: widths g1 and g2 searched, ``settings`` added to ``[experiment]``.

    The corner design unless ``settings`` names one: its 2d+3 points span the cost range.
    """
    if "design" not in settings:
        settings = f'design = "corners"\n{settings}'
    bounds = f"[experiment.constraints]\n{constraints}\n" if constraints else ""
    return f"""
[experiment]
name = "costly"
max_points = 60
seed = 1
{settings}
{bounds}
[[space]]
name = "g1"
type = "int"
low = {g1[0]}
high = {g1[1]}

[[space]]
name = "g2"
type = "int"
low = {g2[0]}
high = {g2[1]}

[model]
family = "resnet"
num_classes = 10
fixed = {{ block = "basic", stem = "conv7", maxpool = false, c1 = 16, g3 = 32, g4 = 32, d1 = 1, d2 = 1, d3 = 1, d4 = 1 }}

[data]
kind = "digits"
resolution = 16
"""


def accuracy(params: dict) -> float:
    """Rises and saturates with both widths: the widest (costliest) network is the best."""
    return 95.0 - 30.0 * math.exp(-params["g1"] / 12.0) - 25.0 * math.exp(-params["g2"] / 25.0)


def measure_pending(state: State) -> None:
    """Record :func:`accuracy` for every pending point."""
    for point in state.with_status(PointStatus.PENDING):
        state.record(point.id, accuracy(point.params))


def measured_design(state: State, experiment: Experiment) -> Study:
    """Store the initial design and measure it; the study of the result."""
    study = Study(state, experiment)
    study.initial_batch()
    measure_pending(state)
    return study


def init_costly(folder: Path, capsys: pytest.CaptureFixture, constraints: str = "") -> Path:
    """``init`` of :func:`resnet_experiment` (with ``constraints``) in ``folder``: the state."""
    (folder / "costly.toml").write_text(resnet_experiment(constraints=constraints))
    state = folder / "costly.h5"
    code, _, err = run(capsys, "init", str(folder / "costly.toml"), "--state", str(state))
    assert code == 0, err
    return state
