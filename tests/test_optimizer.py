"""SplineOptimizer: the ask/tell loop of Algorithm 1."""

import math

import numpy as np
import pytest

from nas.search.optimizer import SplineOptimizer
from nas.search.propose import SearchError
from nas.search.settings import SearchSettings, SettingError
from nas.search.space import Dim, SearchSpace

SPACE = SearchSpace([Dim("a", "float", -2.0, 2.0), Dim("b", "int", 0, 20)])


def _objective(p: dict) -> float:
    return -((p["a"] - 0.7) ** 2) - ((p["b"] - 13) / 10) ** 2


def _run(opt: SplineOptimizer, f, rounds: int = 30) -> list:
    """Suggest and tell until the stop rule fires (its two checks away from the best included)."""
    suggested = []
    for _ in range(rounds):
        for proposal in opt.suggest():
            suggested.append(proposal)
            opt.tell(proposal.params, f(proposal.params))
        if opt.converged:
            break
    return suggested


def test_ask_tell_loop_converges_on_toy_problem() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(tolerance=0.01, seed=1))
    suggested = _run(opt, _objective)
    n = len(opt.initial_design())
    assert [p.origin for p in suggested[: n + 1]] == ["initial"] * n + ["incremental"]
    assert opt.converged
    params, value = opt.best
    assert value > -0.05 and abs(params["a"] - 0.7) < 0.3 and abs(params["b"] - 13) <= 2
    keys = [SPACE.key(p.params) for p in suggested]
    assert len(keys) == len(set(keys))
    summary = opt.fit()
    assert summary.n_support == len(suggested) and math.isfinite(summary.loo_rmse)


def test_minimize_goal() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(tolerance=0.01, seed=1, goal="minimize"))
    _run(opt, lambda p: -_objective(p))
    assert opt.converged
    assert opt.best[1] < 0.05
    assert opt.fit().predicted_max < 0.05


def test_determined_by_seed_and_data() -> None:
    def rebuilt(seed: int) -> list:
        opt = SplineOptimizer(SPACE, SearchSettings(seed=seed, batch_size=3))
        for p in SPACE.initial_design():
            opt.tell(p, _objective(p))
        return opt.suggest()

    assert rebuilt(4) == rebuilt(4)


def test_never_reproposes_measured_or_pending_points() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=2, min_distance=0.05))
    for p in SPACE.initial_design():
        opt.tell(p, _objective(p))
    first = opt.suggest()
    for proposal in first:
        opt.mark_pending(proposal.params)
    second = opt.suggest()
    taken = {SPACE.key(p) for p in SPACE.initial_design()} | {SPACE.key(p.params) for p in first}
    assert not taken & {SPACE.key(p.params) for p in second}
    for new in second:
        for old in [p.params for p in first] + SPACE.initial_design():
            assert SPACE.unit_distance(new.params, old) >= 0.05
    opt.forget_pending(first[0].params)
    assert opt.suggest(1)[0].params == first[0].params


@pytest.mark.parametrize("strategy", ["default", "paper"])
def test_asking_again_while_points_train_continues_their_batch(strategy: str) -> None:
    """One point at a time with the earlier ones pending gives the batch asked for at once:
    not the lattice neighbours of the unchanged spline's argmax."""

    def measured_design() -> SplineOptimizer:
        opt = SplineOptimizer(SPACE, SearchSettings(seed=3, strategy=strategy))
        for p in opt.initial_design():
            opt.tell(p, _objective(p))
        return opt

    batch = [p.params for p in measured_design().suggest(3)]
    one_by_one = measured_design()
    asked = []
    for _ in range(3):
        (proposal,) = one_by_one.suggest(1)
        one_by_one.mark_pending(proposal.params)
        asked.append(proposal.params)
    assert asked == batch
    unaware = measured_design()  # pending, but not known as its batch's head
    unaware.mark_pending(batch[0])
    neighbour = unaware.suggest(1)[0].params  # the unchanged spline's next candidate
    if strategy == "default":  # a DYCORS fill; the paper's believer rule may agree with it
        assert batch[1] != neighbour


def test_the_batch_goes_on_while_its_proposals_are_out() -> None:
    """Workers that each ask for one point: once the head is measured the fills still out
    keep the batch going (fills on the refitted spline); once none is out, a new head."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=3))
    for p in opt.initial_design():
        opt.tell(p, _objective(p))
    out = []
    for _ in range(3):
        (proposal,) = opt.suggest(1)
        opt.mark_pending(proposal.params)
        out.append(proposal)
    assert [p.origin for p in out] == ["incremental", "fill", "fill"]
    opt.tell(out[0].params, _objective(out[0].params))
    (fourth,) = opt.suggest(1)
    assert fourth.origin == "fill"
    rebuilt = SplineOptimizer(SPACE, SearchSettings(seed=3))
    for record in opt.history:
        rebuilt.tell(record.params, record.value)
    for fill in out[1:]:
        rebuilt.mark_pending(fill.params, origin="fill")  # as a state file records them
    assert rebuilt.suggest(1) == [fourth]
    for fill in out[1:]:
        opt.tell(fill.params, _objective(fill.params))
    assert opt.suggest(1)[0].origin == "incremental"


def test_initial_design_first_and_pending_blocks_fit() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=10))
    batch = opt.suggest()
    assert [p.params for p in batch] == opt.initial_design()
    for p in batch:
        opt.mark_pending(p.params)
    assert opt.suggest() == [] and opt.fit() is None


def test_tell_defaults_prediction_and_nan_is_failure() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(tolerance=1e-9, stop="paper", design="corners"))
    for p in SPACE.initial_design():
        opt.tell(p, _objective(p))
    (proposal,) = opt.suggest()
    with pytest.warns(RuntimeWarning, match="recorded as a failure"):
        opt.tell(proposal.params, float("nan"))
    assert opt.history[-1].predicted == proposal.predicted
    assert math.isnan(opt.history[-1].value) and opt.n_measured == 5
    assert SPACE.key(opt.suggest()[0].params) != SPACE.key(proposal.params)
    opt.tell(proposal.params, proposal.predicted)
    assert opt.converged
    with pytest.raises(ValueError, match="already told"):
        opt.tell(proposal.params, 1.0)


def test_feasibility_predicate_excludes_initial_and_proposals() -> None:
    def feasible(p: dict) -> bool:
        return p["b"] <= 15

    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=4), feasible=feasible)
    design = [p.params for p in opt.suggest(20)]
    assert all(p["b"] <= 15 for p in design) and len(design) < len(SPACE.initial_design())


def test_a_bound_adds_the_design_points_it_refused_to_the_first_batch() -> None:
    """The top-up points come up front, in the order single proposals gave them one by one."""

    def feasible(p: dict) -> bool:
        return p["a"] + p["b"] / 5 <= 1.0  # the all-high corner and most of the design beyond

    settings = SearchSettings(batch_size=8, design="space-filling", seed=4)
    plain = SplineOptimizer(SPACE, settings, feasible=None).initial_design()
    within = [p for p in plain if feasible(p)]
    assert len(within) < SPACE.d + 1  # too few to fit a spline
    bounded = SplineOptimizer(SPACE, settings, feasible=feasible)
    first = [p.params for p in bounded.suggest()]
    assert first[: len(within)] == within and len(first) == SPACE.d + 1
    assert all(feasible(p) for p in first)
    # a search given only the design's admissible points tops up once they are measured
    single = SplineOptimizer(SPACE, settings, feasible=feasible, design=within)
    told = []
    while single.fit() is None:
        (proposal,) = single.suggest(1)
        single.tell(proposal.params, _objective(proposal.params))
        told.append(proposal.params)
    assert told == first


def test_separate_categories_get_their_own_design() -> None:
    space = SearchSpace([Dim("a", "float", 0.0, 1.0), Dim("c", "categorical", choices=("x", "y"))])
    opt = SplineOptimizer(space, SearchSettings(batch_size=2, strategy="paper"))
    assert opt.categories == "separate" and opt.initial_design() == space.initial_design()
    design = space.initial_design()
    for p in design[:3]:
        opt.tell(p, p["a"])
    proposals = opt.suggest(4)
    assert [p.origin for p in proposals] == ["initial"] * 3 + ["incremental"]
    assert proposals[3].params["c"] == "x"
    assert opt.predict({"a": 0.5, "c": "x"}) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"no spline for category \('y',\)"):
        opt.predict({"a": 0.5, "c": "y"})


def test_exhausted_space_raises() -> None:
    space = SearchSpace([Dim("n", "int", 0, 2)])
    opt = SplineOptimizer(space)
    for p in space.initial_design():
        opt.tell(p, float(p["n"]))
    with pytest.raises(SearchError, match="no feasible candidate"):
        opt.suggest()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size: expected at least 1, got 0"),
        ({"batch_size": 1.5}, "batch_size: expected an integer, got float 1.5"),
        ({"tolerance": -1.0}, "tolerance: expected at least 0.0"),
        ({"goal": "max"}, "goal: expected one of 'maximize', 'minimize', got 'max'"),
        ({"strategy": "bayes"}, "strategy: expected one of 'default', 'paper', got 'bayes'"),
        ({"min_distance": 1.0}, r"min_distance: expected less than 1.0, got 1.0"),
        ({"smoothing": math.nan}, "smoothing: expected a finite number"),
        ({"tolerance": 10**400}, "tolerance: expected a finite number"),  # TOML reads it exactly
        ({"noise": "loud"}, "noise: expected a number >= 0 or 'auto'"),
    ],
)
def test_settings_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        SearchSettings(**kwargs)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="feasible must be callable"):
        SplineOptimizer(SPACE, feasible=3)
    with pytest.raises(
        SettingError, match=r"design_points: .* needs at least d\+1 = 3 points, got 2"
    ):
        SplineOptimizer(SPACE, SearchSettings(design="space-filling", design_points=2))


def test_off_design_measurements_fit_without_the_design() -> None:
    """Earlier measurements anywhere in the box are support points; no design is needed."""
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=1))
    for a, b in [(-1.5, 2), (1.2, 3), (0.3, 17), (-0.4, 9)]:
        opt.tell({"a": a, "b": b}, _objective({"a": a, "b": b}))
    summary = opt.fit()
    assert summary is not None and summary.n_support == 4 and summary.warnings == ()
    assert opt.predict({"a": 0.3, "b": 17}) == pytest.approx(_objective({"a": 0.3, "b": 17}))
    # the design is still what is asked for first when it is unmeasured
    assert opt.suggest()[0].origin == "initial"


def test_an_ill_conditioned_fit_is_smoothed_and_says_so() -> None:
    space = SearchSpace([Dim("a", "float", 0.0, 1.0)])
    opt = SplineOptimizer(space)
    rng = np.random.default_rng(0)
    a = rng.random(40)
    a[7] = a[3] + 1e-13  # nearly one point, measured twice with other values
    for x, value in zip(a, 100.0 * rng.random(40), strict=True):
        opt.tell({"a": float(x)}, float(value))
    summary = opt.fit()
    assert summary.smoothing > 0.0
    assert len(summary.warnings) == 1 and "ill-conditioned" in summary.warnings[0]
