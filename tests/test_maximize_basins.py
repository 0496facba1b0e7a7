"""The argmax search polishes every basin of its Halton screen, not only the best start's."""

from __future__ import annotations

import numpy as np

from nas.search.maximize import basin_tops, maximize

BROAD, NARROW = np.array([0.25, 0.3]), np.array([0.8, 0.75])
WIDE, THIN = 0.1, 0.0005  # squared widths: a broad hill and a taller, narrow peak far from it


def _bumps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_2d(x)
    a = np.exp(-((x - BROAD) ** 2).sum(axis=1) / WIDE)
    b = 1.05 * np.exp(-((x - NARROW) ** 2).sum(axis=1) / THIN)
    return a, b


def f(x: np.ndarray) -> np.ndarray:
    a, b = _bumps(x)
    return (a + b)[0] if np.ndim(x) == 1 else a + b


def gradient(x: np.ndarray) -> np.ndarray:
    single = np.ndim(x) == 1
    x2 = np.atleast_2d(x)
    a, b = _bumps(x2)
    g = -2.0 * (x2 - BROAD) / WIDE * a[:, None] - 2.0 * (x2 - NARROW) / THIN * b[:, None]
    return g[0] if single else g


def test_basin_tops_name_one_point_in_each_basin() -> None:
    x = np.random.default_rng(0).random((4096, 2))
    tops = basin_tops(x, f(x))
    near = [np.linalg.norm(x[tops] - centre, axis=1).min() for centre in (BROAD, NARROW)]
    assert max(near) < 0.05
    assert np.all(np.diff(f(x[tops])) <= 0.0)  # best first


def test_the_narrow_peak_is_found_though_the_best_start_lies_on_the_broad_hill() -> None:
    x_best, f_best = maximize(f, 2, seed=0, gradient=gradient, n_starts=1, max_levels=3)
    assert np.linalg.norm(x_best - NARROW) < 1e-4
    assert f_best > 1.04
