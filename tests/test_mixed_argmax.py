"""The spline's legal argmax on a space of floats and integers: floats re-polished per integer.

The climb moves a polished point's integer coordinates to the best legal
ones and used to keep its float coordinates where the real-valued polish had
left them, optimal for other integers than those chosen.
"""

from __future__ import annotations

import numpy as np

from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace

SPACE = SearchSpace([Dim("x", "float", low=-1, high=1), Dim("n", "int", low=1, high=4)])
#: Measurements whose spline is lowest at n = 2 inside the x range, not on its face.
TOLD = [
    ({"x": 1.0, "n": 4}, 5.0),
    ({"x": 0.568832142278552, "n": 2}, 0.2),
    ({"x": -0.2404331974685192, "n": 3}, 3.0),
    ({"x": -0.831278458237648, "n": 1}, 9.9),
    ({"x": 1.0, "n": 2}, 0.1),
]


def test_the_reported_optimum_is_the_splines_on_a_dense_grid() -> None:
    search = SplineOptimizer(SPACE, SearchSettings(goal="minimize", tolerance=0.01))
    for params, value in TOLD:
        search.tell(params, value)
    fit = search.fit()
    grid = min(
        search.predict({"x": float(x), "n": n})
        for x in np.linspace(-1, 1, 2001)
        for n in (1, 2, 3, 4)
    )
    assert fit.predicted_max <= grid + 1e-9, (fit.predicted_max, grid, fit.argmax)
    assert fit.argmax["n"] == 2 and -1 < fit.argmax["x"] < 1  # inside, not on the face x = 1
    assert search.predicted_gain() > 0.05  # the stop rule's (c) sees the gain left (was 2e-6)
