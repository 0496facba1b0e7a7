"""One spline shared by all categories: each categorical choice is a coordinate.

Algorithm 1 fits one spline per category, so every category pays for its
own d+1 support points before it has a model, and nothing measured in one
category informs another. Categories of a NAS space (block type, activation,
optimizer) usually change a network's accuracy by an offset and a mild
interaction, not by a different landscape. The shared model fits one cubic
spline over the numeric unit coordinates extended by one indicator
coordinate per non-first choice of each categorical dimension (choice 0 at
the origin, choice k at ``CATEGORY_DISTANCE`` e_k): the linear tail then
holds a per-choice offset, the kernel couples the categories at that
distance and the surface still interpolates every measurement.

:class:`EmbeddedSpace` is the search space in those coordinates, so
:func:`nas.search.propose.propose` and every strategy search the categories
together (the category is one more coordinate to perturb and to maximise
over). :class:`CategoryView` is the shared spline seen from one category, for
readers that expect a spline per category (plots, predictions, ``best``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.search.space import Params, SearchSpace, Value, indicator_count
from nas.search.spline import PolyharmonicSpline

#: Unit-box distance between two choices of a categorical dimension (the indicator's
#: value for a non-first choice). Well below 1 (a full side of the numeric box) the
#: kernel couples the categories tightly: a category shares the others' shape and
#: differs by an offset plus what its own points demand. On the benchmark nas5cat
#: (``benchmarks/sample_efficiency.py``, 5 seeds, space-filling design) the median
#: evaluations to 1 % / 0.1 % regret were 16 / 40 at 0.1, 21 / 31 at 0.2, 19 / 42 at 0.3,
#: 24 / >50 at 0.5 and 26 / >50 at 1.0.
CATEGORY_DISTANCE = 0.2


class EmbeddedSpace:
    """The numeric unit box times the category indicators, with one category ``()``.

    Offers what :func:`nas.search.propose.propose` and the strategies ask of
    a :class:`~nas.search.space.SearchSpace`; legal points have indicators
    0 or ``CATEGORY_DISTANCE``, at most one non-zero per categorical
    dimension. Strategies sample the whole unit box, so an indicator changes
    category whenever a perturbation moves it past half the distance: with a
    short distance the search tries the other categories near the incumbent
    often.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.names = space.names
        self.numeric_d = space.d
        self._sizes = [len(dim.choices) - 1 for dim in space.categorical]
        self.d = space.d + indicator_count(space)

    def categories(self) -> list[tuple[Value, ...]]:
        return [()]

    def category_of(self, params: Mapping[str, Any]) -> tuple[Value, ...]:
        self.space.category_of(params)  # validates the choices
        return ()

    def key(self, params: Mapping[str, Any]) -> tuple[Value, ...]:
        return self.space.key(params)

    def indicators(self, category: Sequence[Value]) -> np.ndarray:
        """The indicator coordinates of a category of the original space."""
        out = []
        for dim, size, value in zip(self.space.categorical, self._sizes, category, strict=True):
            block = np.zeros(size)
            index = dim.choices.index(value)
            if index:
                block[index - 1] = CATEGORY_DISTANCE
            out.append(block)
        return np.concatenate(out) if out else np.empty(0)

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        return self.embed(self.space.to_unit(params), self.space.category_of(params))

    def embed(self, x: np.ndarray, category: Sequence[Value]) -> np.ndarray:
        """Numeric unit points (M, d) or (d,) extended by the indicators of ``category``."""
        x = np.asarray(x, dtype=np.float64)
        tail = np.broadcast_to(self.indicators(category), (*x.shape[:-1], self.d - self.numeric_d))
        return np.concatenate([x, tail], axis=-1)

    def category_at(self, x: np.ndarray) -> tuple[Value, ...]:
        """The category of the nearest legal indicators to the coordinates of ``x`` (d_total,)."""
        out, start = [], self.numeric_d
        for dim, size in zip(self.space.categorical, self._sizes, strict=True):
            block = x[start : start + size]
            k = int(np.argmax(block)) if size else 0
            on = size and block[k] > CATEGORY_DISTANCE / 2
            out.append(dim.choices[k + 1] if on else dim.choices[0])
            start += size
        return tuple(out)

    def from_unit(self, x: np.ndarray, category: Sequence[Value] = ()) -> Params:
        x = np.asarray(x, dtype=np.float64)
        return self.space.from_unit(x[: self.numeric_d], self.category_at(x))

    def snap_unit(self, x: np.ndarray) -> np.ndarray:
        """Numeric coordinates snapped as the space does; indicators to the nearest choice."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        out[:, : self.numeric_d] = self.space.snap_unit(x[:, : self.numeric_d])
        start = self.numeric_d
        for size in self._sizes:
            block = x[:, start : start + size]
            k = np.argmax(block, axis=1)
            on = block[np.arange(len(x)), k] > CATEGORY_DISTANCE / 2
            snapped = np.zeros_like(block)
            snapped[np.flatnonzero(on), k[on]] = CATEGORY_DISTANCE
            out[:, start : start + size] = snapped
            start += size
        return out

    def lattice_neighbours(self, x: np.ndarray) -> np.ndarray:
        """The space's numeric neighbours of ``x`` in every category (the snapped one first)."""
        numeric = self.space.lattice_neighbours(x[: self.numeric_d])
        own = self.category_at(x)
        others = [cat for cat in self.space.categories() if cat != own]
        return np.vstack([self.embed(numeric, cat) for cat in [own, *others]])


class CategoryView:
    """The shared spline at one category, read like a spline over the numeric coordinates.

    ``points`` and ``values`` are the support of this category only, and
    :meth:`loo_errors` follows them; evaluation covers the whole box.
    """

    def __init__(
        self, joint: PolyharmonicSpline, embedded: EmbeddedSpace, category: tuple[Value, ...]
    ) -> None:
        self.joint = joint
        self._embedded = embedded
        self._category = category
        d = embedded.numeric_d
        self._rows = np.all(joint.points[:, d:] == embedded.indicators(category), axis=1)
        self.points: np.ndarray = joint.points[self._rows, :d]
        self.values: np.ndarray = joint.values[self._rows]
        self.smoothing = joint.smoothing
        self.smoothing_used = joint.smoothing_used
        self.conditioning = joint.conditioning

    @property
    def d(self) -> int:
        return self._embedded.numeric_d

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.joint(self._embedded.embed(x, self._category))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.joint.gradient(self._embedded.embed(x, self._category))[..., : self.d]

    def loo_errors(self) -> np.ndarray:
        return self.joint.loo_errors()[self._rows]

    def kernel_frame(self, x: np.ndarray) -> tuple[PolyharmonicSpline, np.ndarray]:
        """The shared spline and ``x`` with this category's indicators appended."""
        return self.joint.kernel_frame(self._embedded.embed(x, self._category))

    @property
    def loo_rmse(self) -> float:
        return float(np.sqrt(np.mean(self.loo_errors() ** 2)))


def views(
    joint: PolyharmonicSpline, embedded: EmbeddedSpace
) -> dict[tuple[Value, ...], CategoryView]:
    """The shared spline seen from every category of the space."""
    return {cat: CategoryView(joint, embedded, cat) for cat in embedded.space.categories()}
