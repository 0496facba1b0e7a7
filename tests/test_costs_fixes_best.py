"""Findings 10 and 13: ``best --where`` says what it leaves out and refuses the metric;
``front`` says why a measured cost has no predicted front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cost_support import init_costly, measure_pending
from experiment_support import run

from nas.record.state import PointStatus
from nas.record.store import StateStore


@pytest.fixture
def measured(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The design measured; only the first two points' results carry latency_ms."""
    state = init_costly(tmp_path, capsys)
    with StateStore.open(state) as store:
        measure_pending(store.state)
        for point in store.state.with_status(PointStatus.DONE)[:2]:
            store.state.update_point(point.id, extra={"metrics": {"latency_ms": 1.0}})
        store.commit()
    return state


def test_best_where_says_how_many_points_lack_the_cost(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["best", "--state", str(measured), "--where", "latency_ms<=5"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    done = len(StateStore.read(measured).with_status(PointStatus.DONE))
    assert f"note: {done - 2} measured point(s) have no latency_ms; left out" in err
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0 and json.loads(out)["without_cost"] == {"latency_ms": done - 2}


def test_best_where_on_the_searched_metric_is_a_usage_error_like_front(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "best", "--state", str(measured), "--where", "top1<=80", "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2
    assert "--where top1: is the searched metric" in err


def test_front_says_why_a_measured_cost_has_no_predicted_front(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "propose", "--state", str(measured))  # stores a fit
    assert code == 0, err
    code, out, err = run(capsys, "front", "--state", str(measured), "--cost", "latency_ms")
    assert code == 0, err
    assert "note: no predicted front: the spline of latency_ms cannot be fitted: only 2" in err
