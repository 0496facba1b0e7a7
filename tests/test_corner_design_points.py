"""A ``design_points`` that the corner design ignores is never ignored silently.

The corner design is the 2d+3 corners and centre whatever the file asks for:
``init`` and ``init --validate-only`` print one note naming the file and the
key, and the state's events record it. The number is used (and no note given)
by a space-filling design and by a cost-spread design that replaces the corners.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, run

from nas.control.tradeoffs import DESIGN_POINTS_IGNORED
from nas.record.store import StateStore

SPACE = {"x": FLOAT_BOX, "y": FLOAT_BOX}
#: The note's start for ``design_points = 5`` (the file, then this).
IGNORED = "[experiment] design_points: 5 is ignored: with "
CORNERS = "the initial design is the corner design, 5 points (the box's corners and centre)"


def _init(folder: Path, capsys: pytest.CaptureFixture, **settings: object) -> tuple[list, Path]:
    """``splinenas init`` of a 2-dim experiment with ``settings``: its notes and the state."""
    (folder / "e.toml").write_text(experiment_toml("c", SPACE, **settings))
    state = folder / "e.h5"
    code, _, err = run(capsys, "init", str(folder / "e.toml"), "--state", str(state), "--offline")
    assert code == 0, err
    prefix = "splinenas init: note: "
    notes = [line.removeprefix(prefix) for line in err.splitlines() if line.startswith(prefix)]
    return notes, state


def test_init_says_that_the_corner_design_ignores_design_points(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    notes, path = _init(tmp_path, capsys, design="corners", design_points=5)
    assert notes == [
        f'{tmp_path / "e.toml"}: {IGNORED}design = "corners" {CORNERS}; leave the key out to '
        'silence this note, or set design = "space-filling" to use it'
    ]
    state = StateStore.read(path)
    assert [(e.kind, e.message) for e in state.events if e.kind.startswith("design-")] == [
        (DESIGN_POINTS_IGNORED, notes[0])
    ]
    assert (
        len(state.points) == 5
    )  # the corner design (2d+3, the coinciding corners once), as before


def test_the_paper_strategy_names_itself_as_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "e.toml").write_text(
        experiment_toml("c", SPACE, strategy="paper", design_points=5).replace(
            'design = "corners"\n', ""
        )
    )
    code, out, err = run(
        capsys, "init", str(tmp_path / "e.toml"), "--validate-only", "--offline", "--json"
    )
    document = json.loads(out)
    assert code == 0 and document["valid"], err
    assert document["notes"] == [
        f'{tmp_path / "e.toml"}: {IGNORED}strategy = "paper" (its design: "corners") '
        f'{CORNERS}; leave the key out to silence this note, or set design = "space-filling" '
        "to use it"
    ]
    assert document["initial_design"] == 5


@pytest.mark.parametrize(
    ("settings", "points"),
    [({"design": "corners"}, 5), ({"design": "space-filling", "design_points": 5}, 5)],
)
def test_no_note_where_design_points_is_unset_or_used(
    tmp_path: Path, capsys: pytest.CaptureFixture, settings: dict, points: int
) -> None:
    notes, path = _init(tmp_path, capsys, **settings)
    state = StateStore.read(path)
    assert notes == [] and not [e for e in state.events if e.kind.startswith("design-")]
    assert len(state.points) == points
