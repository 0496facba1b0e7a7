"""Finding 2: ``import`` of another campaign's state carries its measured costs along."""

from __future__ import annotations

from pathlib import Path

import pytest
from cost_support import accuracy, init_costly
from experiment_support import run

from nas.control import policy
from nas.record.state import PointStatus
from nas.record.store import StateStore


def device_hours(params: dict) -> float:
    """A made-up measured cost that grows with both widths."""
    return 0.001 * params["g1"] * params["g2"]


def campaign(folder: Path, capsys: pytest.CaptureFixture, constraints: str = "") -> Path:
    """A new state of the resnet experiment in ``folder`` (with ``constraints``)."""
    folder.mkdir()
    return init_costly(folder, capsys, constraints)


def trained(folder: Path, capsys: pytest.CaptureFixture) -> Path:
    """A campaign whose design was measured as a trainer reports: pace, metrics, GPU-hours."""
    state = campaign(folder, capsys)
    with StateStore.open(state) as store:
        for point in store.state.with_status(PointStatus.PENDING):
            hours = device_hours(point.params)
            extra = {
                "pace": {"device_hours": hours},
                "metrics": {"top1": accuracy(point.params), "latency_ms": point.params["g1"]},
            }
            store.state.update_point(point.id, gpu_hours=hours, extra=extra)
            store.state.record(point.id, accuracy(point.params))
        store.commit()
    return state


def test_import_of_a_state_carries_its_measured_costs_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    old = trained(tmp_path / "old", capsys)
    new = campaign(tmp_path / "new", capsys, constraints="device_hours = 1.0")
    code, _, err = run(capsys, "import", "--state", str(new), str(old))
    assert code == 0, err
    assert "measured costs carried: device_hours, latency_ms" in err
    state = StateStore.read(new)
    imported = [p for p in state.points if "import" in p.extra]  # design points too
    assert imported
    for point in imported:
        assert point.extra["pace"]["device_hours"] == pytest.approx(device_hours(point.params))
        assert point.extra["metrics"]["latency_ms"] == point.params["g1"]
        assert point.extra["import"]["costs"] == ["metrics", "pace"]
        assert point.gpu_hours == 0.0  # the new campaign's GPU budget never paid for it
    study = policy.Study(state, policy.experiment_of(state, new))
    assert study.measured_cost_blocker("device_hours") is None


def test_a_csv_import_without_costs_is_named_as_the_reason_a_cost_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    new = campaign(tmp_path / "new", capsys, constraints="device_hours = 1.0")
    rows = ["g1,g2,value"] + [
        f"{g1},{g2},{accuracy({'g1': g1, 'g2': g2})}"
        for g1, g2 in [(4, 8), (32, 8), (4, 64), (32, 64), (16, 32)]
    ]
    (tmp_path / "old.csv").write_text("\n".join(rows) + "\n")
    code, _, err = run(capsys, "import", "--state", str(new), str(tmp_path / "old.csv"))
    assert code == 0, err
    assert "measured costs carried" not in err
    state = StateStore.read(new)
    study = policy.Study(state, policy.experiment_of(state, new))
    why = study.measured_cost_blocker("device_hours")
    assert why is not None and "5 of the 5 point(s) without it were imported" in why
    assert ".h5" in why
