"""Finding 12: ``propose --max-points N`` below the trainings spent is refused, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cost_support import init_costly, measure_pending
from experiment_support import run

from nas.record.store import StateStore, load_state


@pytest.fixture
def spent(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The 5-point design trained: 5 trainings spent of a budget of 60."""
    state = init_costly(tmp_path, capsys)
    with StateStore.open(state) as store:
        measure_pending(store.state)
        store.commit()
    return state


@pytest.mark.parametrize(
    ("points", "than"), [("3", "below"), ("5", "no more than")], ids=["below", "equal"]
)
@pytest.mark.parametrize("dry", [(), ("--dry-run",)], ids=["stored", "dry-run"])
def test_a_budget_below_the_trainings_spent_is_a_usage_error_that_stores_nothing(
    spent: Path, capsys: pytest.CaptureFixture, points: str, than: str, dry: tuple[str, ...]
) -> None:
    argv = ["propose", "--state", str(spent), "--max-points", points, *dry, "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and json.loads(out)["exit_code"] == 2
    assert f"--max-points {points} is {than} the 5 trainings already spent; nothing stored" in err
    assert "raise it" not in err
    state = load_state(spent)
    assert "max_points" not in state.meta and not [e for e in state.events if e.kind == "budget"]
    assert len(state.points) == 5
