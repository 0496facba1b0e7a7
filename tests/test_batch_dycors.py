"""The DYCORS batch fill: its schedule, its radius and the batches it makes."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.dycors import (
    RADIUS_MAX,
    RADIUS_MIN,
    adapted_radius,
    perturbation_probability,
    subspace_perturb,
)
from nas.search.optimizer import SplineOptimizer
from nas.search.propose import propose
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy

SPACE = SearchSpace([Dim(f"x{i}", "int", 0, 40) for i in range(6)])
PEAK = np.array([0.3, 0.7, 0.2, 0.55, 0.8, 0.4])


#: The DYCORS fill, asked for by name: the default fill draws from the posterior.
DYCORS = DefaultStrategy(batch_fill="dycors")


def bowl_spline(seed: int, n: int) -> PolyharmonicSpline:
    x = SPACE.snap_unit(np.random.default_rng(seed).random((n, SPACE.d)))
    return PolyharmonicSpline(x, -((x - PEAK) ** 2).sum(axis=1))


def dycors_batch(seed: int, n: int = 20, q: int = 4, **kwargs):
    return propose(SPACE, {(): bowl_spline(seed, n)}, q=q, strategy=DYCORS, seed=seed, **kwargs)


def test_every_coordinate_moves_early_and_few_late():
    assert perturbation_probability(7, 6, 60) == 1.0  # nothing after the start yet
    schedule = [perturbation_probability(n, 6, 60) for n in range(7, 80)]
    assert all(a >= b for a, b in zip(schedule, schedule[1:], strict=False))
    assert schedule[-1] == pytest.approx(1 / 6)  # the floor: one coordinate in d
    assert perturbation_probability(41, 40, 400) == 0.5  # min(20/d, 1) in high dimensions


def test_radius_doubles_after_three_improving_batches_and_halves_after_failing_ones():
    d, q = 6, 4  # failure tolerance max(ceil(6/4), ceil(4/4)) = 2 batches
    start = list(np.linspace(0.0, 1.0, d + 1))
    failing = start + [0.5] * (2 * q)
    assert adapted_radius(np.array(failing), d, q) == RADIUS_MAX / 2
    improving = failing + [2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0]
    assert adapted_radius(np.array(improving), d, q) == RADIUS_MAX
    assert adapted_radius(np.array(improving[:-q]), d, q) == RADIUS_MAX / 2
    stuck = start + [0.5] * (200 * q)
    assert adapted_radius(np.array(stuck), d, q) == RADIUS_MIN


def test_q_one_counts_single_points_as_batches():
    d = 6  # failure tolerance max(6, 4) = 6 points
    values = np.array(list(np.linspace(0.0, 1.0, d + 1)) + [0.5] * 6)
    assert adapted_radius(values, d, 1) == RADIUS_MAX / 2
    assert adapted_radius(values[:-1], d, 1) == RADIUS_MAX


def test_subspace_perturbations_move_the_scheduled_share_of_coordinates():
    rng = np.random.default_rng(0)
    center = np.full(6, 0.5)
    late = subspace_perturb(center, 0.1, 2000, 0.0, rng)
    assert ((late != center).sum(axis=1) == 1).all()  # at least one, and only one
    early = subspace_perturb(center, 0.1, 2000, 1.0, rng)
    assert (early != center).all()
    wide = subspace_perturb(np.array([0.02, 0.98]), 0.5, 2000, 1.0, rng)
    assert wide.min() >= 0.0 and wide.max() <= 1.0


@pytest.mark.parametrize("seed", range(3))
def test_batch_is_deterministic_distinct_admissible_and_led_by_the_single_proposal(seed):
    spline = bowl_spline(seed, 20)
    pending = [SPACE.from_unit(PEAK), SPACE.from_unit(PEAK + 0.05)]
    feasible = lambda p: p["x5"] <= 24  # noqa: E731 - a memory-like cap on one coordinate
    kwargs = {"avoid": pending, "feasible": feasible, "min_distance": 0.05}
    out = dycors_batch(seed, **kwargs)
    assert out == dycors_batch(seed, **kwargs)
    assert out[0] == dycors_batch(seed, q=1, **kwargs)[0]
    assert [c.fill for c in out] == [False, True, True, True]
    keys = [SPACE.key(c.params) for c in out]
    assert len(set(keys)) == 4 and all(c.params["x5"] <= 24 for c in out)
    points = SPACE.to_unit_many([c.params for c in out])
    existing = np.vstack([spline.points, SPACE.to_unit_many(pending)])
    gaps = np.linalg.norm(points[:, None] - np.vstack([existing, points])[None], axis=2)
    gaps[np.arange(4), len(existing) + np.arange(4)] = np.inf  # a point and itself
    assert gaps.min() >= 0.05
    np.testing.assert_allclose([c.predicted for c in out], spline(points))


def moved_coordinates(n: int, seed: int = 1) -> list[int]:
    """Per fill of a batch after ``n`` told points: coordinates moved from the nearer centre."""
    spline = bowl_spline(seed, n)
    out = dycors_batch(seed, n=n)
    centres = np.vstack([spline.points[np.argmax(spline.values)], SPACE.to_unit(out[0].params)])
    moved = []
    for fill in out[1:]:
        x = SPACE.to_unit(fill.params)
        moved.append(min(int((~np.isclose(x, c)).sum()) for c in centres))
    return moved


def test_late_fills_move_fewer_coordinates_than_early_ones():
    late = moved_coordinates(80)  # the schedule's floor: one coordinate in d, at least one
    assert max(late) <= 3, late
    early = moved_coordinates(8)  # every coordinate may move
    assert np.mean(early) > np.mean(late) + 1, (early, late)


def test_optimizer_batches_respect_a_memory_limit():
    limit = lambda p: p["x0"] + p["x1"] <= 40  # noqa: E731 - stands for a memory estimate
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=4, seed=2), feasible=limit)
    while len(opt.history) < 30:
        batch = opt.ask()
        assert batch and all(limit(p) for p in batch)
        for p in batch:
            opt.tell(p, -float(((SPACE.to_unit(p) - PEAK) ** 2).sum()))
    assert len({SPACE.key(r.params) for r in opt.history}) == len(opt.history)


def test_fills_perturb_the_best_measured_point_not_the_unmeasured_argmax():
    """On a rising plane the argmax is the far corner; the fills stay round the best point.

    Neighbours of slot 1 share its outcome (were the plane to bend there, all of
    them would disappoint together), so DYCORS's fills are perturbations of
    the best measured point only.
    """
    x = SPACE.snap_unit(np.random.default_rng(4).random((20, SPACE.d)) * 0.4)
    spline = PolyharmonicSpline(x, x.sum(axis=1))
    out = propose(SPACE, {(): spline}, q=4, strategy=DYCORS, seed=0)
    best, first = x[np.argmax(spline.values)], SPACE.to_unit(out[0].params)
    assert np.allclose(first, 1.0)  # the spline's argmax: the all-high corner
    fills = SPACE.to_unit_many([c.params for c in out[1:]])
    to_best = np.linalg.norm(fills - best, axis=1)
    to_first = np.linalg.norm(fills - first, axis=1)
    assert (to_best < to_first).all(), (to_best, to_first)
    assert [c.fill for c in out] == [False, True, True, True]
