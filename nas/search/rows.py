"""Exact identity of the rows of point arrays, vectorised.

Candidate lists reach ~150,000 rows (the hierarchical samples of the
search for max s), so the questions "which rows repeat" and "which rows
occur in another array" are answered by sorting 64-bit hashes of the rows'
bytes, not by a Python loop over rows. Hashes that collide are checked
byte for byte; a real collision falls back to sorting the rows themselves.
Rows are compared by their bytes, as ``ndarray.tobytes`` would (so -0.0
and 0.0 differ; the unit-box points compared here are never -0.0).
"""

from __future__ import annotations

import numpy as np

#: Odd 64-bit multipliers of the row hash, one per column (cycled).
_MULTIPLIERS = np.random.default_rng(0x5EED).integers(1, 2**63, 64, dtype=np.uint64) | 1


def _words(a: np.ndarray) -> np.ndarray:
    """The rows of ``a`` (M, d) as unsigned 64-bit words, (M, d), no copy where possible."""
    rows = np.ascontiguousarray(a, dtype=np.float64)
    return rows.view(np.uint64).reshape(rows.shape)


def _hash(words: np.ndarray) -> np.ndarray:
    """64-bit multiplicative hash of each row (wrap-around arithmetic)."""
    d = words.shape[1]
    weights = np.resize(_MULTIPLIERS, d)
    h = np.zeros(words.shape[0], dtype=np.uint64)
    for k in range(d):  # d columns, not rows: a handful of vector operations
        h ^= words[:, k] * weights[k]
        h ^= h >> np.uint64(29)
    return h


def first_of_each_row(a: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of ``a``, in order."""
    words = _words(a)
    if len(words) == 0:
        return np.empty(0, dtype=np.intp)
    h = _hash(words)
    order = np.argsort(h, kind="stable")  # equal hashes keep their original order
    sorted_h = h[order]
    same = sorted_h[1:] == sorted_h[:-1]
    pairs = np.flatnonzero(same)
    if not (words[order[pairs]] == words[order[pairs + 1]]).all():  # a true collision
        keys = np.ascontiguousarray(words).view(np.dtype((np.void, 8 * words.shape[1]))).ravel()
        keys = np.ascontiguousarray(words).view(np.dtype((np.void, 8 * words.shape[1]))).ravel()
        _, first = np.unique(keys, return_index=True)
        return np.sort(first)
    starts = np.concatenate(([True], ~same))
    return np.sort(order[starts])


def rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which rows of ``a`` also occur in ``b`` (byte-exact), as a boolean array."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    words = np.concatenate([_words(a), _words(b)])
    keys = np.ascontiguousarray(words).view(np.dtype((np.void, 8 * words.shape[1]))).ravel()
    return np.isin(keys[: len(a)], keys[len(a) :])
