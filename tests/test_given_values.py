"""Values a person gives (``record``, ``add --value``, ``import``) and the points' own jobs.

A value given for a point whose job may still run would make the point done
while the job trains on: its result would be dropped when it came, its
GPU-hours never counted, and nothing would watch the job. An import that
gives a pending design point its value trained nothing of this campaign.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.control import inbox
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, max_points=12)


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A state whose point 0 has a job running; points 1-4 pending (the corner design)."""
    state = init_state(tmp_path, capsys, TOML)
    with StateStore.open(state) as store:
        store.state.update_point(0, attempts=1, job_name="toy-p0-r0a1s0")
        store.state.set_status(0, PointStatus.SUBMITTING)
        store.state.update_point(0, job_id="7")
        store.state.set_status(0, PointStatus.SUBMITTED, "job 7")
        store.state.set_status(0, PointStatus.RUNNING)
        store.commit()
    return state


def _params_text(state: Path, point_id: int) -> str:
    params = load_state(state).point(point_id).params
    return ",".join(f"{k}={v!r}" for k, v in params.items())


def _csv(folder: Path, state: Path, point_id: int, value: float) -> Path:
    params = load_state(state).point(point_id).params
    path = folder / "old.csv"
    path.write_text(f"x,y,value\n{params['x']!r},{params['y']!r},{value}\n")
    return path


@pytest.mark.parametrize("how", ["record", "add", "import"])
def test_a_value_for_a_point_whose_job_runs_is_refused(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture, how: str
) -> None:
    argv = {
        "record": ["record", "--state", str(toy), "0", "45"],
        "add": ["add", "--state", str(toy), "--params", _params_text(toy, 0), "--value", "45"],
        "import": ["import", "--state", str(toy), str(_csv(tmp_path, toy, 0, 45.0))],
    }[how]
    before = load_state(toy).generation
    code, _, err = run(capsys, *argv)
    assert code == 1, err
    assert "point 0 is running (job 7)" in err and "splinenas cancel 0" in err, err
    assert "Traceback" not in err
    state = load_state(toy)
    assert (state.point(0).status, state.point(0).value) == (PointStatus.RUNNING, None)
    assert state.generation == before, "nothing was written"


def test_once_the_job_is_cancelled_the_value_is_taken(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    with StateStore.open(toy) as store:  # as `cancel` leaves it (job 7 is no real job here)
        store.state.set_status(0, PointStatus.CANCELLED, "cancelled by a person")
        store.commit()
    code, _, err = run(capsys, "record", "--state", str(toy), "0", "45")
    assert code == 0, err
    assert load_state(toy).point(0).value == 45.0


def test_an_import_that_measures_a_pending_design_point_trains_nothing_of_the_budget(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "import", "--state", str(toy), str(_csv(tmp_path, toy, 1, 40.0)))
    assert code == 0, err
    point = load_state(toy).point(1)
    assert (point.value, point.origin) == (40.0, "initial")
    assert point.extra["import"]["source"].endswith("old.csv") and point.extra["import"]["row"]
    code, out, err = run(capsys, "status", "--state", str(toy), "--json")
    assert code == 0, err
    budget = json.loads(out)["budget"]
    # point 0 runs, points 2-4 are pending: four trainings; point 1 came from elsewhere
    assert (budget["trainings"], budget["imported_points"]) == (4, 1), budget


def test_a_change_applied_at_once_names_who_made_it(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """As a request queued for a running controller does (it was "unknown" here)."""
    with StateStore.open(toy) as store:
        store.state.set_status(1, PointStatus.CANCELLED, "cancelled by a person")
        store.commit()
    code, _, err = run(capsys, "rerun", "--state", str(toy), "1")
    assert code == 0, err
    events = [e.message for e in load_state(toy).events if e.point_id == 1]
    assert "unknown" not in " ".join(events)
    assert any(f"by {inbox.requester()}" in message for message in events), events


def test_a_row_repeated_in_an_import_is_said_to_count_once(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "twice.csv"
    source.write_text("x,y,value\n0.25,0.75,40\n0.5,0.5,41\n0.25,0.75,40\n")
    code, _, err = run(capsys, "import", "--state", str(toy), str(source))
    assert code == 0, err
    assert f"{source} row 3: repeats row 1; counted once" in err, err
    assert sum(p.origin == "import" for p in load_state(toy).points) == 2


def test_a_failed_point_rerun_then_given_an_imported_value_stays_a_training(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``rerun`` clears the job name; the attempts its jobs made still count for the budget."""
    with StateStore.open(toy) as store:
        store.state.set_status(0, PointStatus.FAILED, "gave up after 1 attempts: exit 1")
        store.commit()
    assert run(capsys, "rerun", "--state", str(toy), "0")[0] == 0
    assert load_state(toy).point(0).job_name == ""
    code, _, err = run(capsys, "import", "--state", str(toy), str(_csv(tmp_path, toy, 0, 40.0)))
    assert code == 0, err
    code, out, err = run(capsys, "status", "--state", str(toy), "--json")
    budget = json.loads(out)["budget"]
    assert (budget["trainings"], budget["imported_points"]) == (5, 0), budget
