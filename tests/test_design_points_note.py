"""A ``design_points`` below d+1 that a cost-spread design raises is never raised silently.

``init`` and ``init --validate-only`` print one note naming the file and the key
and store the raised number of points, and the state's events record it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cost_support import resnet_experiment
from experiment_support import run

from nas.control.tradeoffs import DESIGN_POINTS_RAISED, DESIGN_REPLACED
from nas.record.store import StateStore

#: The note for ``design_points = 2`` in the two dimensions of :func:`resnet_experiment`.
RAISED = "[experiment] design_points: 2 is raised to d+1 = 3 for the cost-spread design"


def _init(folder: Path, capsys: pytest.CaptureFixture, settings: str) -> tuple[list[str], Path]:
    """``splinenas init`` of the experiment with ``settings``: its notes and the state file."""
    (folder / "e.toml").write_text(resnet_experiment(settings=settings))
    state = folder / "e.h5"
    code, _, err = run(capsys, "init", str(folder / "e.toml"), "--state", str(state), "--offline")
    assert code == 0, err
    prefix = "splinenas init: note: "
    return [
        line.removeprefix(prefix) for line in err.splitlines() if line.startswith(prefix)
    ], state


def test_init_says_that_the_cost_spread_design_raises_design_points(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    notes, path = _init(
        tmp_path, capsys, 'strategy = "paper"\ndesign_points = 2\ntradeoff = "gmacs"'
    )
    assert len(notes) == 1 and RAISED in notes[0], notes
    assert notes[0].startswith(f"{tmp_path / 'e.toml'}: ") and 'tradeoff = "gmacs"' in notes[0]
    state = StateStore.read(path)
    assert [(e.kind, e.message) for e in state.events if e.kind.startswith("design-")] == [
        (DESIGN_POINTS_RAISED, notes[0])
    ]
    assert len(state.points) == 3


def test_validate_only_gives_the_same_note_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = resnet_experiment(settings='strategy = "paper"\ndesign_points = 2\ntradeoff = "gmacs"')
    (tmp_path / "e.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "init", "e.toml", "--validate-only", "--offline", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["valid"], err
    assert doc["notes"] == [f"e.toml: {RAISED} because tradeoff = \"gmacs\" is a known cost "
                            "(a spline in 2 dimensions needs 3 points); set at least 3 to "
                            "silence this note"]  # fmt: skip
    assert doc["initial_design"] == 3


def test_a_replaced_design_and_raised_points_are_two_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    notes, path = _init(
        tmp_path, capsys, 'design = "corners"\ndesign_points = 2\ntradeoff = "gmacs"'
    )
    assert len(notes) == 2 and "[experiment] design: 'corners' is replaced" in notes[0]
    assert RAISED in notes[1]
    kinds = [e.kind for e in StateStore.read(path).events if e.kind.startswith("design-")]
    assert kinds == [DESIGN_REPLACED, DESIGN_POINTS_RAISED]


@pytest.mark.parametrize("points", [3, 4])
def test_no_note_where_design_points_is_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture, points: int
) -> None:
    settings = f'strategy = "paper"\ndesign_points = {points}\ntradeoff = "gmacs"'
    notes, path = _init(tmp_path, capsys, settings)
    assert notes == []
    assert len(StateStore.read(path).points) == points
