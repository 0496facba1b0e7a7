"""One perturbation rule for DYCORS and the trade-off pool; only the rule at the faces differs."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.dycors import subspace_perturb


def draws(boundary: str, sigma: float | np.ndarray = 0.4) -> np.ndarray:
    center = np.array([0.02, 0.5, 0.95])
    return subspace_perturb(center, sigma, 400, 0.7, np.random.default_rng(11), boundary)


def test_the_rules_differ_only_where_a_step_leaves_the_box() -> None:
    reflected, clipped = draws("reflect"), draws("clip")
    left = (clipped == 0.0) | (clipped == 1.0)
    assert np.allclose(reflected[~left], clipped[~left], rtol=0.0, atol=1e-12)
    assert left.sum() > 100  # a centre near a face sends many of its steps out
    assert np.all((reflected >= 0.0) & (reflected <= 1.0))
    assert np.all(reflected[left] > 0.0) and np.all(reflected[left] < 1.0)
    assert set(np.unique(clipped[left])) == {0.0, 1.0}


def test_a_scale_per_perturbation_scales_its_own_steps() -> None:
    sigma = np.where(np.arange(400) % 2 == 0, 1e-3, 0.2)
    x = draws("clip", sigma)
    center = np.array([0.02, 0.5, 0.95])
    small, large = np.abs(x[0::2] - center).max(), np.abs(x[1::2] - center).max()
    assert small < 0.01 < large


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="boundary must be one of"):
        draws("wrap")
