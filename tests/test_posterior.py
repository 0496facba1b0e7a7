"""The spline's kriging posterior: its covariance, its amplitude and draws from it."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.categories import EmbeddedSpace, views
from nas.search.posterior import PosteriorSampler, amplitude, error_covariance, plausible
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.warp import fit_warped, warp_of


def wavy(n: int, d: int, seed: int) -> PolyharmonicSpline:
    x = np.random.default_rng(seed).random((n, d))
    return PolyharmonicSpline(x, np.sin(4 * x[:, 0]) + x[:, 1:].sum(axis=1) ** 2)


def cubic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None] - b[None], axis=2) ** 3


def cardinal_covariance(spline: PolyharmonicSpline, x: np.ndarray) -> np.ndarray:
    """C by another route: the spline is linear in its data, s(x) = sum_i u_i(x) y_i, with
    u_i the spline through the i-th unit vector, so its error f(x) - s(x) has covariance
    K(x, x') - u(x)^T K(z, x') - K(x, z) u(x') + u(x)^T K(z, z) u(x')."""
    z = spline.points
    u = np.column_stack([spline.refit(z, e)(x) for e in np.eye(len(z))])
    kxz = cubic(x, z)
    return cubic(x, x) - u @ kxz.T - kxz @ u.T + u @ cubic(z, z) @ u.T


@pytest.mark.parametrize("d", [1, 3])
def test_the_covariance_is_the_error_covariance_of_the_spline_as_a_linear_predictor(d):
    spline = wavy(14, d, seed=d)
    x = np.vstack([spline.points[:3], np.random.default_rng(9).random((6, d))])
    mean, cov = error_covariance(spline, x)
    np.testing.assert_allclose(mean, spline(x))
    np.testing.assert_allclose(cov, cardinal_covariance(spline, x), atol=1e-9)
    np.testing.assert_allclose(np.diag(cov)[:3], 0.0, atol=1e-10)  # it interpolates there
    assert (np.diag(cov)[3:] > 1e-8).all()
    assert np.linalg.eigvalsh(cov).min() > -1e-9


def test_uncertainty_grows_away_from_the_data():
    spline = PolyharmonicSpline(np.linspace(0.0, 0.5, 8)[:, None], np.linspace(0.0, 0.5, 8) ** 2)
    _, cov = error_covariance(spline, np.array([[0.25 + 1 / 28], [0.6], [0.8], [1.0]]))
    variance = np.diag(cov)
    assert (np.diff(variance) > 0).all() and variance[-1] > 1e3 * variance[0]


def test_amplitude_scales_with_the_square_of_the_values_and_vanishes_on_a_plane():
    spline = wavy(12, 2, seed=0)
    assert amplitude(spline) > 0
    scaled = spline.refit(spline.points, 3 * spline.values)
    assert amplitude(scaled) == pytest.approx(9 * amplitude(spline))
    plane = spline.refit(spline.points, spline.points @ [2.0, -1.0] + 0.5)
    assert amplitude(plane) == pytest.approx(0.0, abs=1e-12)


def test_draws_are_reproducible_exact_at_the_data_and_have_the_stated_covariance():
    spline = wavy(10, 2, seed=1)
    x = np.vstack([spline.points[:2], np.random.default_rng(4).random((3, 2))])
    sampler = PosteriorSampler(spline, x, spread=0.5, z=np.inf)
    first = sampler.draw(np.random.default_rng(7))
    np.testing.assert_array_equal(first, sampler.draw(np.random.default_rng(7)))
    np.testing.assert_allclose(first[:2], spline.values[:2], atol=1e-9)
    rng = np.random.default_rng(0)
    draws = np.array([sampler.draw(rng) for _ in range(20000)])
    _, cov = error_covariance(spline, x)
    expected = 0.25 * amplitude(spline) * cov
    np.testing.assert_allclose(np.cov(draws.T)[2:, 2:], expected[2:, 2:], rtol=0.06)
    np.testing.assert_allclose(
        draws.mean(axis=0), spline(x), atol=4 * np.sqrt(expected.max() / 2e4)
    )
    still = PosteriorSampler(spline, x, spread=0.0, z=np.inf).draw(np.random.default_rng(3))
    np.testing.assert_allclose(still, spline(x))


def test_a_draw_does_not_depend_on_the_eigenbasis_lapack_returns(monkeypatch):
    """Eigenvectors are fixed only up to sign (and up to rotation where eigenvalues repeat),
    and which ones LAPACK returns depends on the CPU's BLAS kernel: the same seed must draw
    the same function whichever valid basis comes back, or one seed proposes different
    batches on the login node and the compute node."""
    spline = wavy(12, 2, seed=5)
    x = np.vstack([spline.points[:3], np.random.default_rng(6).random((8, 2))])
    before = PosteriorSampler(spline, x, spread=1.0, z=np.inf).draw(np.random.default_rng(11))
    eigh = np.linalg.eigh

    def another_basis(a):
        w, v = eigh(a)
        return w, v * np.where(np.arange(len(w)) % 2, -1.0, 1.0)

    monkeypatch.setattr(np.linalg, "eigh", another_basis)
    after = PosteriorSampler(spline, x, spread=1.0, z=np.inf).draw(np.random.default_rng(11))
    assert np.abs(after - spline(x)).max() > 1e-3  # a real draw, not the mean
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-9)


def test_views_read_the_kernel_where_their_spline_was_fitted():
    """A warped spline and a category of a shared one are exact at their own support points
    and nowhere else: the kernel is read in the coordinates they were fitted in."""
    x = np.random.default_rng(2).random((12, 2)) * 0.9 + 0.1
    warped = fit_warped(
        x, np.log(x[:, 0]) + x[:, 1], warp_of(np.array([True, False]), np.ones(2), np.full(2, 64.0)),
        PolyharmonicSpline,
    )  # fmt: skip
    _, cov = error_covariance(warped, np.vstack([x[:2], [[0.5, 0.5]]]))
    np.testing.assert_allclose(np.diag(cov)[:2], 0.0, atol=1e-10)
    assert cov[2, 2] > 1e-8

    space = SearchSpace([Dim("a", "float", 0.0, 1.0), Dim("c", "categorical", choices=("u", "v"))])
    embedded = EmbeddedSpace(space)
    numeric = np.random.default_rng(5).random((8, 1))
    rows = [embedded.embed(numeric[i : i + 1], (("u", "v")[i % 2],))[0] for i in range(8)]
    joint = PolyharmonicSpline(np.array(rows), np.sin(3 * numeric[:, 0]))
    seen = views(joint, embedded)
    _, own = error_covariance(seen[("u",)], numeric[0::2])
    _, other = error_covariance(seen[("v",)], numeric[0::2])
    np.testing.assert_allclose(np.diag(own), 0.0, atol=1e-10)
    assert (np.diag(other) > 1e-8).all()


def test_only_candidates_that_can_win_are_drawn_and_the_winners_are_those_of_full_draws():
    """The screen leaves out candidates whose mean + 4 sd stays below the leader's
    mean - 4 sd; they keep the spline's value, and over 4,000 draws each candidate wins
    as often as in 4,000 draws of the unscreened sampler (another stream: the screened
    sampler draws fewer normal variates)."""
    spline = wavy(16, 2, seed=3)
    x = np.random.default_rng(6).random((200, 2))
    full = PosteriorSampler(spline, x, spread=0.5, z=np.inf)
    screened = PosteriorSampler(spline, x, spread=0.5)
    mean, cov = error_covariance(spline, x)
    sd = 0.5 * np.sqrt(amplitude(spline) * np.clip(np.diag(cov), 0.0, None))
    kept = mean + 4 * sd >= np.max(mean - 4 * sd)
    np.testing.assert_array_equal(screened.drawn, np.flatnonzero(kept))
    assert 0 < kept.sum() < len(x) // 2  # the screen does cut, and keeps the leaders
    rng = np.random.default_rng(1)
    draws = np.array([screened.draw(rng) for _ in range(4000)])
    np.testing.assert_array_equal(draws[:, ~kept], np.tile(mean[~kept], (4000, 1)))
    wins = np.bincount(draws.argmax(axis=1), minlength=len(x)) / 4000
    rng = np.random.default_rng(2)
    unscreened = np.array([full.draw(rng) for _ in range(4000)])
    reference = np.bincount(unscreened.argmax(axis=1), minlength=len(x)) / 4000
    assert not wins[~kept].any() and not reference[~kept].any()
    np.testing.assert_allclose(wins, reference, atol=0.035)


def test_a_limit_draws_only_the_candidates_with_the_highest_upper_bounds():
    """Where more candidates can win than the limit, the highest mean + z sd are drawn;
    the rest keep the spline's value, and a limit above the screen's count changes nothing."""
    spline = wavy(16, 2, seed=3)
    x = np.random.default_rng(6).random((200, 2))
    mean, cov = error_covariance(spline, x)
    sd = 0.5 * np.sqrt(amplitude(spline) * np.clip(np.diag(cov), 0.0, None))
    upper = mean + 4 * sd
    for z in (np.inf, 4.0):
        capped = PosteriorSampler(spline, x, spread=0.5, z=z, limit=12)
        screen = np.flatnonzero(plausible(mean, sd, z))
        assert len(screen) > 12
        best = screen[np.argsort(-upper[screen], kind="stable")[:12]]
        np.testing.assert_array_equal(capped.drawn, np.sort(best))
        draw = capped.draw(np.random.default_rng(0))
        rest = np.setdiff1d(np.arange(len(x)), best)
        np.testing.assert_array_equal(draw[rest], mean[rest])
        assert (draw[best] != mean[best]).all()
    wide = PosteriorSampler(spline, x, spread=0.5, limit=len(x))
    np.testing.assert_array_equal(wide.drawn, PosteriorSampler(spline, x, spread=0.5).drawn)
    with pytest.raises(ValueError, match="limit"):
        PosteriorSampler(spline, x, spread=0.5, limit=0)
