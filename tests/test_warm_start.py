"""A warm start trains nothing twice: imported points replace the design, not add to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from controller_support import objective
from experiment_support import run
from test_dry_run_offline import offline_state  # noqa: F401 (the fixture, shared)

from nas.control.imports import WITHDRAWN
from nas.record.state import PointStatus
from nas.record.store import load_state

#: Measurements of an earlier campaign: none of them is a point of the 2d+3 design.
EARLIER = [(5, 6), (7, 13), (9, 9), (11, 5), (13, 12), (15, 8)]


@pytest.fixture
def state(offline_state: Path) -> Path:  # noqa: F811 (the imported fixture)
    """A Slurm search made with ``init --offline``: its dry run shows what it would submit."""
    return offline_state


def import_rows(capsys: pytest.CaptureFixture, state: Path, rows: list[tuple[int, int]]) -> dict:
    lines = ["g1,g2,value"]
    lines += [f"{a},{b},{objective({'g1': a, 'g2': b})}" for a, b in rows]
    source = state.parent / "earlier.csv"
    source.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "import", "--state", str(state), str(source), "--json")
    assert code == 0, err
    return json.loads(out)


def test_after_an_import_that_fits_the_dry_run_submits_no_design_point(
    state: Path, capsys: pytest.CaptureFixture
) -> None:
    design = [p.id for p in load_state(state).points]
    report = import_rows(capsys, state, EARLIER)
    assert sorted(report["withdrawn"]) == design
    after = load_state(state)
    assert all(after.point(i).status is PointStatus.CANCELLED for i in design)
    assert sorted(e.point_id for e in after.events if e.kind == WITHDRAWN) == design
    code, out, err = run(capsys, "run", "--state", str(state), "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["submit"] == [] and plan["stop"] is None
    assert plan["propose"] and all(p["origin"] != "initial" for p in plan["propose"])
    assert all(p["predicted"] is not None for p in plan["propose"])


def test_an_import_that_cannot_fit_leaves_the_design_pending(
    state: Path, capsys: pytest.CaptureFixture
) -> None:
    report = import_rows(capsys, state, [(5, 6), (7, 8), (9, 10)])  # on one line: no spline
    assert report["withdrawn"] == []
    design = [p for p in load_state(state).points if p.origin == "initial"]
    assert design and all(p.status is PointStatus.PENDING for p in design)
    code, out, err = run(capsys, "run", "--state", str(state), "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["submit"]


def test_imported_points_do_not_spend_the_budget_and_a_spent_one_says_how_to_raise_it(
    state: Path, capsys: pytest.CaptureFixture
) -> None:
    import_rows(capsys, state, EARLIER)
    doc = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])
    budget = doc["budget"]
    assert (budget["trainings"], budget["imported_points"]) == (0, len(EARLIER))
    assert budget["remaining_points"] == budget["max_points"] == 7
    code, out, err = run(capsys, "status", "--state", str(state))
    assert f"7 of 7 trainings left ({len(EARLIER)} imported points not counted)" in out + err
    code, out, err = run(capsys, "propose", "--state", str(state), "--max-points", "1", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 1
    code, _, err = run(capsys, "propose", "--state", str(state))
    assert code == 1
    assert "max_points reached: 1 trainings of 1" in err and "--max-points N" in err
    code, out, err = run(capsys, "run", "--state", str(state), "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["submit"] and not json.loads(out)["propose"]
    code, out, err = run(capsys, "run", "--state", str(state), "--dry-run", "--max-points", "3")
    assert code == 0, err
    assert load_state(state).meta["max_points"] == 1  # a dry run stores nothing
    code, _, err = run(capsys, "propose", "--state", str(state), "--max-points", "0")
    assert code == 2 and "--max-points must be at least 1" in err
    assert [e.kind for e in load_state(state).events].count("budget") == 1
