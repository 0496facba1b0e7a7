"""Finding 14: the predicted front holds neither measured points nor points the measured
front dominates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cost_support import init_costly, measure_pending
from experiment_support import run

from nas.record.store import StateStore

MORE = [{"g1": g1, "g2": g2} for g1 in (6, 12, 20, 28) for g2 in (12, 24, 40, 56)]


@pytest.fixture
def measured(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The design and a grid of 16 more points measured: many candidates are held."""
    state = init_costly(tmp_path, capsys)
    with StateStore.open(state) as store:
        for params in MORE:
            store.state.add_point(params, "manual", store.state.next_batch())
        measure_pending(store.state)
        store.commit()
    return state


@pytest.mark.parametrize("cost", ["gmacs", "params_m"])
def test_the_predicted_front_is_new_and_beyond_the_measured_one(
    measured: Path, capsys: pytest.CaptureFixture, cost: str
) -> None:
    code, _, err = run(capsys, "propose", "--state", str(measured))  # stores a fit
    assert code == 0, err
    code, out, err = run(capsys, "front", "--state", str(measured), "--cost", cost, "--json")
    assert code == 0, err
    doc = json.loads(out)
    held = [p.params for p in StateStore.read(measured).points]
    for point in doc["predicted"]:
        assert point["params"] not in held
        assert not any(
            m["cost"] <= point["cost"]
            and m["metric"] >= point["metric"]
            and (m["cost"], m["metric"]) != (point["cost"], point["metric"])
            for m in doc["measured"]
        ), point
