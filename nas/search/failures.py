"""Keep proposals away from trainings that failed.

A failed point is never proposed again, but on its own that moves the spline's
argmax one lattice step: the failure's cause (out of memory, a divergence, a
walltime that a larger network cannot meet) is shared by its neighbours, so
every later proposal landed next to it and failed too (five of five in a search
whose trainings failed beyond one width).

Each failed point ``f`` therefore refuses the candidates within a radius

.. math::  r_f = \\tfrac12 \\min_{m} \\lVert u(f) - u(m) \\rVert_2

of it, ``u`` the unit-box coordinates and ``m`` the measured points of its
category: half its distance to the nearest measurement. Such a candidate is
nearer the failure than any measurement (the ball lies in the failure's
Voronoi cell), so nothing measured speaks for it. A measurement near the failure
shrinks the ball, so the search closes in on the edge of a failing region by
halving its distance to it rather than stepping along it; a failure with no
measured point in its category refuses nothing beyond itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.search.space import Params, SearchSpace, Value

#: The share of a failed point's distance to the nearest measurement that its ball covers.
RADIUS_SHARE = 0.5


@dataclass(frozen=True)
class FailureZones:
    """Balls around failed points, by category: centres (k, d) and radii (k,)."""

    space: SearchSpace
    zones: dict[tuple[Value, ...], tuple[np.ndarray, np.ndarray]]

    @property
    def count(self) -> int:
        """How many failed points have a ball."""
        return sum(len(radii) for _, radii in self.zones.values())

    def allows(self, params: Params) -> bool:
        """Whether ``params`` lies outside every ball of its category."""
        found = self.zones.get(self.space.category_of(params))
        if found is None:
            return True
        centres, radii = found
        distances = np.linalg.norm(centres - self.space.to_unit(params), axis=1)
        return bool(np.all(distances >= radii))

    def text(self) -> str:
        """The rule for people, as a clause of the rules a candidate is held to."""
        return (
            f"away from {self.count} failed point(s): not within half a failed point's distance "
            "to the nearest measured point (rerun or record it to lift this)"
        )


def failure_zones(
    space: SearchSpace,
    failed: Sequence[Params],
    measured: Sequence[Params],
) -> FailureZones | None:
    """The balls around ``failed`` points (see the module), None where none has one."""
    by_category: dict[tuple[Value, ...], list[Params]] = {}
    for params in measured:
        by_category.setdefault(space.category_of(params), []).append(params)
    zones: dict[tuple[Value, ...], tuple[list[np.ndarray], list[float]]] = {}
    for params in failed:
        category = space.category_of(params)
        near = by_category.get(category)
        if not near:
            continue
        centre = space.to_unit(params)
        radius = RADIUS_SHARE * float(
            np.min(np.linalg.norm(space.to_unit_many(near) - centre, axis=1))
        )
        if radius > 0.0:
            centres, radii = zones.setdefault(category, ([], []))
            centres.append(centre)
            radii.append(radius)
    if not zones:
        return None
    arrays = {cat: (np.array(c), np.array(r)) for cat, (c, r) in zones.items()}
    return FailureZones(space, arrays)
