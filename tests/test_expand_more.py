"""``splinenas expand`` / ``--refine`` in a running search: bounds, the one design, odd arguments.

A widened box or a sub-box adds one 2d+3 design (origin ``expand``). Its points
keep to ``[experiment.constraints]`` as ``init``'s design and every proposal do,
the widened box's own initial design is never proposed on top of it (a campaign's
initial design is its first box's), and arguments that would be dropped or would
change nothing say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from experiment_support import command_experiment, experiment_toml, run

from nas.config import parse_experiment
from nas.control import inbox, policy
from nas.pointdir import layout
from nas.record.state import PointStatus, State
from nas.record.store import StateStore, load_state
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, Params, SearchSpace

REPO = Path(__file__).resolve().parent.parent
SCORE = REPO / "examples" / "shell" / "score.sh"
#: ``x`` in [0, 1] and an integer width ``w`` in [4, 40]: the box of the probe's campaign.
BOX = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "w": {"type": "int", "low": 4, "high": 40}}
#: The latency bound: ``w`` at most 16 (at ``x = 0``) keeps ``lat`` within it.
LIMIT = 9.0
COSTS = '''
def costs(values):
    """A latency known before training, growing with the width."""
    return {"lat": 1 + values["w"] / 2 + values["x"]}
'''


def lat(params: Params) -> float:
    return 1 + params["w"] / 2 + params["x"]


def score(params: Params) -> float:
    return 90 - (params["x"] - 0.3) ** 2 * 50 - (params["w"] - 20) ** 2 / 40


def measure_pending(state_path: Path) -> None:
    """Record every pending point of the state at ``state_path`` as :func:`score` says."""
    with StateStore.open(state_path) as store:
        for point in store.state.with_status(PointStatus.PENDING):
            store.state.record(point.id, score(point.params))
        store.commit()


@pytest.fixture
def bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Path:
    """A measured design of an own model whose known cost ``lat`` is bounded (``[model] costs``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "probecosts.py").write_text(COSTS)
    text = command_experiment(
        "kc", [str(SCORE), "{x}", "{w}"], BOX, metric="score", max_points=14, seed=3
    )
    text = text.replace("[train]\n", '[model]\ncosts = "probecosts:costs"\n[train]\n')
    text += f"[experiment.constraints]\nlat = {LIMIT}\n"
    (tmp_path / "kc.toml").write_text(text)
    state = tmp_path / "kc.h5"
    code, _, err = run(capsys, "init", str(tmp_path / "kc.toml"), "--state", str(state))
    assert code == 0, err
    measure_pending(state)
    return state


# ---------------------------------------------------------------- known bounds (finding 5)


@pytest.mark.parametrize(
    "argv",
    [
        ["--dim", "w", "--high", "60", "--max-points", "40"],
        ["--refine", "x=0.1:0.4,w=10:40", "--max-points", "40"],
    ],
)
def test_an_expand_design_leaves_points_beyond_a_known_bound_out_and_says_which(
    bounded: Path, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    """Such a point would be submitted and trained: `init` and proposals never store one."""
    assert all(lat(p.params) <= LIMIT for p in load_state(bounded).points)
    code, out, err = run(capsys, "expand", "--state", str(bounded), *argv, "--json")
    assert code == 0, err
    state = load_state(bounded)
    added = [p for p in state.points if p.origin == "expand"]
    assert all(lat(p.params) <= LIMIT for p in added), [p.params for p in added]
    messages = [o["message"] for o in json.loads(out)["outcomes"]]
    left_out = [m for m in messages if " left out: " in m]
    line = re.compile(rf"x=[0-9.]+,w=([0-9]+) left out: lat = ([0-9.]+) breaks lat <= {LIMIT:g}")
    matches = [line.fullmatch(m) for m in left_out]
    assert left_out and all(matches), left_out
    assert all(float(m.group(2)) > LIMIT for m in matches if m is not None)
    summary = f"{len(added)} design points added, {len(left_out)} left out beyond "
    assert summary + "[experiment.constraints]" in messages[-1]


def test_an_expand_design_keeps_to_a_measured_bound_as_proposals_do() -> None:
    """A measured cost is held to its bound through the spline of the measured costs:
    predicted, with its error estimate, within the limit (as every proposal is)."""
    text = experiment_toml("m", BOX, metric="score", seed=3)
    text += f"[experiment.constraints]\nlat = {LIMIT}\n"
    experiment = parse_experiment(text, "m.toml")
    state = State(experiment.text, experiment.space)
    for point in policy.Study(state, experiment).initial_batch():
        state.record(point.id, score(point.params))
        state.update_point(point.id, extra={"metrics": {"lat": lat(point.params)}})
    outcomes = inbox.execute(state, {"action": "expand", "bounds": {"w": [None, 60]}})
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    added = [p for p in state.points if p.origin == "expand"]
    assert all(lat(p.params) <= LIMIT + 1e-6 for p in added), [p.params for p in added]
    left_out = [o.message for o in outcomes if " left out: " in o.message]
    assert left_out and all(" predicted " in m and " ± " in m for m in left_out), left_out


# ---------------------------------------------------------------- one design (finding 6)


NARROW = SearchSpace([Dim("x", "float", 0.0, 1.0), Dim("w", "int", 4, 40)])
WIDE = NARROW.with_bounds("w", high=60)
SETTINGS = SearchSettings(design="space-filling", seed=3)


def within_lat(params: Params) -> bool:
    return lat(params) <= LIMIT


@pytest.mark.parametrize("feasible", [None, within_lat])
def test_an_optimizer_of_a_widened_box_keeps_the_design_its_first_box_issued(feasible) -> None:
    """Rebuilt for the widened box, the optimizer must not find that box's own design
    unissued: it would propose it (origin initial) on top of expand's design."""
    first = SplineOptimizer(NARROW, SETTINGS, feasible=feasible)
    design = first.ask(len(first.unissued_design))
    widened = SplineOptimizer(WIDE, SETTINGS, feasible=feasible, design_space=NARROW)
    assert widened.initial_design() == first.initial_design()
    for params in design:
        widened.tell(params, score(params))
    assert widened.unissued_design == []
    proposals = widened.suggest(2)
    assert proposals and all(p.origin != "initial" for p in proposals)
    assert all(p.predicted is not None for p in proposals)


@pytest.mark.parametrize("design", ["space-filling", "corners"])
@pytest.mark.parametrize("feasible", [None, within_lat])
def test_a_search_in_its_first_box_draws_the_design_it_always_drew(design: str, feasible) -> None:
    space = SearchSpace([*NARROW.dims, Dim("block", "categorical", choices=("a", "b"))])
    settings = SearchSettings(design=design, seed=5)
    given = SplineOptimizer(space, settings, feasible=feasible, design_space=space)
    default = SplineOptimizer(space, settings, feasible=feasible)
    assert given.initial_design() == default.initial_design()


def test_a_design_box_that_is_not_within_the_box_is_refused() -> None:
    with pytest.raises(ValueError, match="design_space must have the dimensions"):
        SplineOptimizer(NARROW, SETTINGS, design_space=WIDE)
    other = SearchSpace([Dim("x", "float", 0.0, 1.0), Dim("v", "int", 4, 40)])
    with pytest.raises(ValueError, match="design_space must have the dimensions"):
        SplineOptimizer(WIDE, SETTINGS, design_space=other)


def test_after_expand_the_search_proposes_spline_points_not_the_widened_boxs_design(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text = experiment_toml("toy", BOX, metric="score", design="space-filling", max_points=30)
    (tmp_path / "toy.toml").write_text(text)
    state = tmp_path / "toy.h5"
    assert run(capsys, "init", str(tmp_path / "toy.toml"), "--state", str(state))[0] == 0
    measure_pending(state)
    code, _, err = run(capsys, "expand", "--state", str(state), "--dim", "w", "--high", "60")
    assert code == 0, err
    measure_pending(state)
    code, out, err = run(capsys, "propose", "--state", str(state), "-n", "3", "--dry-run", "--json")
    assert code == 0, err
    proposals = json.loads(out)
    assert proposals and all(p["predicted"] is not None for p in proposals), proposals


# ---------------------------------------------------------------- arguments (finding 13)


def test_a_refine_naming_a_dimension_twice_is_a_usage_error(
    bounded: Path, capsys: pytest.CaptureFixture
) -> None:
    """Keeping either range would drop the other without a word (`--dim` twice is refused too)."""
    before = bounded.read_bytes()
    argv = ["expand", "--state", str(bounded), "--refine", "x=0.1:0.2,x=0.3:0.4"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--refine: x is given twice" in err, err
    assert bounded.read_bytes() == before


def test_an_expand_to_the_current_box_says_so_and_changes_nothing(
    bounded: Path, capsys: pytest.CaptureFixture
) -> None:
    """As every operation that finds nothing to do: exit 0 with a note, no design, no phase."""
    points = len(load_state(bounded).points)
    argv = ["expand", "--state", str(bounded), "--dim", "w", "--low", "4", "--high", "40"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert "box unchanged: w = [4, 40] is the box already; no design added" in err, err
    state = load_state(bounded)
    assert len(state.points) == points and policy.current_phase(state)["number"] == 0
    assert not layout.inbox_dir(layout.run_dir(bounded)).exists()
    assert not any(e.kind == "expand" for e in state.events)
