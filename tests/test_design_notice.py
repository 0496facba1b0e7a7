"""An explicit ``[experiment] design`` that a cost-spread design replaces is never replaced silently.

``init`` and ``init --validate-only`` print one note naming the file and the key,
and the state's events record it; a design left to its default, or kept (a
measured trade-off cost, a bound without a trade-off), gives no note.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cost_support import resnet_experiment
from experiment_support import run

from nas.config import parse_experiment
from nas.control.costs import known_cost
from nas.control.tradeoffs import DESIGN_REPLACED
from nas.record.store import StateStore
from nas.search.design import initial_design

#: The all-high corner, the corner design's first point; a cost-spread design starts at the cheapest.
ALL_HIGH = {"g1": 32, "g2": 64}
ALL_LOW = {"g1": 4, "g2": 8}


def _init(folder: Path, capsys: pytest.CaptureFixture, text: str) -> tuple[str, Path]:
    """``splinenas init`` of ``text`` as ``e.toml``: its stderr and the state file."""
    (folder / "e.toml").write_text(text)
    state = folder / "e.h5"
    code, _, err = run(capsys, "init", str(folder / "e.toml"), "--state", str(state), "--offline")
    assert code == 0, err
    return err, state


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("splinenas init: note: ")]


def test_init_says_that_the_tradeoff_replaces_the_design_and_the_events_record_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text = resnet_experiment(settings='design = "corners"\ntradeoff = "gmacs"')
    err, path = _init(tmp_path, capsys, text)
    notes = _notes(err)
    assert len(notes) == 1, err
    assert str(tmp_path / "e.toml") in notes[0]
    assert "[experiment] design: 'corners' is replaced by the cost-spread design" in notes[0]
    assert 'tradeoff = "gmacs"' in notes[0]
    state = StateStore.read(path)
    events = [e for e in state.events if e.kind == DESIGN_REPLACED]
    assert [e.message for e in events] == [notes[0].removeprefix("splinenas init: note: ")]
    stored = [p.params for p in state.points]
    assert stored[0] == ALL_LOW and ALL_HIGH not in stored  # the cost-spread design, not corners


def test_a_design_written_out_at_its_default_value_is_reported_too(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = resnet_experiment(settings='design = "space-filling"\ntradeoff = "gmacs"')
    assert parse_experiment(text).experiment.design == "space-filling"  # the default
    (tmp_path / "e.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "init", "e.toml", "--validate-only", "--offline", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["valid"], err
    assert len(doc["notes"]) == 1 and _notes(err) == [f"splinenas init: note: {doc['notes'][0]}"]
    assert doc["notes"][0].startswith("e.toml: [experiment] design: 'space-filling' is replaced")
    assert 'tradeoff = "gmacs" is a known cost' in doc["notes"][0]
    assert not (tmp_path / "state").exists()
    # the count it gives is the design init stores
    code, out, err = run(capsys, "init", "e.toml", "--offline", "--json")
    assert code == 0, err
    assert len(json.loads(out)["points"]) == doc["initial_design"]
    assert json.loads(out)["notes"] == doc["notes"]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param('tradeoff = "gmacs"', id="design-not-given"),
        pytest.param('design = "corners"\ntradeoff = "device_hours"', id="measured-cost-keeps-it"),
        pytest.param('design = "corners"', id="nothing-replaces-it"),
    ],
)
def test_no_note_where_the_file_sets_no_design_or_its_design_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture, settings: str
) -> None:
    text = resnet_experiment(settings=settings)
    if "design" not in settings:
        text = text.replace('design = "corners"\n', "", 1)
    assert parse_experiment(text).given("experiment", "design") == ("design" in settings)
    err, path = _init(tmp_path, capsys, text)
    assert _notes(err) == []
    assert not [e for e in StateStore.read(path).events if e.kind == DESIGN_REPLACED]


def test_a_key_given_under_its_former_name_counts_as_given() -> None:
    text = resnet_experiment() + "\n[cluster]\nmax_gpu_memory_gb = 16\n"
    experiment = parse_experiment(text)
    assert experiment.given("cluster", "max_gpu_memory_gib")
    assert not experiment.given("cluster", "account")
    assert not experiment.given("train", "epochs")  # no such table in the file


def _init_under_bound(
    folder: Path, capsys: pytest.CaptureFixture, rank: int
) -> tuple[str, list[dict], list, Callable[[dict], bool]]:
    """``init`` of the space-filling design bounded at its ``rank``-th cheapest point's GMACs:
    stderr, the design points within the bound, the stored points, and the bound as a rule."""
    probe = parse_experiment(resnet_experiment(settings='design = "space-filling"'))
    gmacs = known_cost(probe, "gmacs")
    design = initial_design(probe.space, "space-filling", seed=probe.experiment.seed)
    limit = sorted(gmacs(p) for p in design)[rank]
    text = resnet_experiment(settings='design = "space-filling"', constraints=f"gmacs = {limit!r}")
    err, path = _init(folder, capsys, text)
    within = [p for p in design if gmacs(p) <= limit]
    return err, within, StateStore.read(path).points, lambda p: gmacs(p) <= limit


def test_a_bound_keeps_the_design_and_leaves_out_its_points_beyond_the_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    err, within, points, _ = _init_under_bound(tmp_path, capsys, -2)  # the all-high corner beyond
    assert _notes(err) == []  # nothing replaced: nothing to say
    assert len(within) == 3  # of d+2 = 4: enough to fit a spline in two dimensions
    assert [p.params for p in points] == within


def test_a_bound_that_leaves_too_few_design_points_adds_the_rest_to_the_first_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    err, within, points, allowed = _init_under_bound(tmp_path, capsys, 1)
    assert _notes(err) == []
    assert len(within) == 2  # too few to fit a spline in two dimensions
    assert [p.params for p in points[: len(within)]] == within
    assert len(points) == 3  # d+1: the missing one now, not a round of trainings later
    assert all(allowed(p.params) for p in points)
    assert {p.batch for p in points} == {points[0].batch}
