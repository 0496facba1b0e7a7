"""Vectorised row identity: first occurrences and membership, exact under hash collisions."""

import numpy as np
import pytest

from nas.search import rows
from nas.search.rows import first_of_each_row, rows_in


def _reference_first(a: np.ndarray) -> np.ndarray:
    first: dict[bytes, int] = {}
    for i, row in enumerate(np.ascontiguousarray(a)):
        first.setdefault(row.tobytes(), i)
    return np.fromiter(first.values(), dtype=int)


def _repeating(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.floor(rng.random((5000, 6)) * 4.0)  # 4^6 cells: many repeats
    a[100] = a[7]
    return a


@pytest.mark.parametrize("seed", [0, 1])
def test_first_of_each_row_equals_the_dictionary_walk(seed: int) -> None:
    a = _repeating(seed)
    np.testing.assert_array_equal(first_of_each_row(a), _reference_first(a))


def test_a_hash_collision_falls_back_to_comparing_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _repeating(2)
    monkeypatch.setattr(rows, "_hash", lambda words: np.zeros(len(words), dtype=np.uint64))
    np.testing.assert_array_equal(first_of_each_row(a), _reference_first(a))


def test_rows_in_is_exact_membership() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((300, 4))
    b = np.vstack([a[::5], rng.random((50, 4))])
    expected = np.zeros(300, dtype=bool)
    expected[::5] = True
    np.testing.assert_array_equal(rows_in(a, b), expected)
    assert not rows_in(a, np.empty((0, 4))).any()
    assert first_of_each_row(np.empty((0, 4))).size == 0
