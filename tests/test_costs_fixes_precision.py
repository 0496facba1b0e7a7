"""Finding 11: a cost and its limit are printed alike, so that "within" reads as within."""

from __future__ import annotations

from nas.control.frontier import cost_lines, point_constraint_lines

LIMIT = 0.003303744


def row(cost: float, limit: float = LIMIT) -> dict:
    """A :func:`~nas.control.frontier.point_constraints` row of gmacs at ``cost``."""
    return {"name": "gmacs", "limit": limit, "cost": cost, "within": cost <= limit, "binds": True}


def test_a_cost_at_its_limit_prints_as_the_limit() -> None:
    (line,) = point_constraint_lines([row(LIMIT)])
    assert line == "gmacs 0.00330374 (limit 0.00330374) within; binds the search"


def test_a_cost_just_above_its_limit_prints_every_digit() -> None:
    (line,) = point_constraint_lines([row(LIMIT * (1 + 1e-9))])
    cost, limit = line.split()[1], line.split()[3].rstrip(")")
    assert float(cost) > float(limit) and "BREAKS it" in line


def test_the_best_within_a_bound_prints_like_the_bound() -> None:
    best = {"id": 4, "params": {}, "value": 83.7, "cost": LIMIT}
    doc = {
        "constraints": [
            {"name": "gmacs", "limit": LIMIT, "binds": False, "why": None, "best": best}
        ],
        "front": None,
    }
    (line,) = cost_lines(doc)
    assert line.startswith("constraint gmacs <= 0.00330374: ")
    assert line.endswith("at gmacs 0.00330374")
