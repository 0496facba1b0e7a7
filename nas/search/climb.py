"""The climb on a stall: the best's neighbours, one level on coarse integer axes, polled.

A search over depths and block counts moves on integer axes of a few
levels (a stage of 1-6 blocks). On such an axis one level is a fifth of the
range, and the spline's slope between two levels is least known exactly
where the best sits on a face of the box: a search can creep along a ridge
while the best's neighbour one block down, where the optimum lies, is never
measured (``benchmarks/results/sample_efficiency.md``, "Fresh seeds 20-39":
8 of the 9 single-proposal nas8 runs that ended above 1 % regret had the
better neighbour there unmeasured, some for fifty evaluations). A stall is
the sign: when the best has not risen by the tolerance over the stop rule's
window (condition (b), :func:`~nas.search.stopping.stall_needed`), the
search *polls* the best's one-level neighbours on every integer axis of at
most :data:`COARSE_LEVELS` levels, down then up, axis by axis: a coordinate
search's poll step (the pattern search of Torczon, SIAM J. Optim. 7, 1997,
at the lattice's own mesh). A poll that beats the best becomes the best and
the climb goes on from it; the climb ends when every such neighbour of the
best is measured, pending or beyond a bound, and the next climb waits as
long again. While a climb is under way the search does not stop.

Measured on the benchmark's six NAS problems, seeds 0-39
(``benchmarks/results/stop_rule.md``, "The first climb waits for the
search"): stops with more than 1 % regret 10 -> 0 of 240 runs with single
proposals and 7 -> 0 with batches of four; fewer runs stop within 80
evaluations (184 against 209, 176 against 201): a stop now needs the best's
coarse neighbours measured.

A best on a face of a wider axis (a width at its bound, a learning rate at
its limit) is polled too, one eighth of that range inward
(:func:`face_steps`): the same ridge stop on a fine axis, where a
one-level poll would learn nothing. Measured (``stop_rule.md``, "Inward
from the faces of the fine axes", nine problems, single proposals seeds
0-59 and batches of four 0-79): too-early stops 25 -> 17 of 1,260 runs (on
the NAS problems 2 -> 1), right stops 757 -> 758, evaluations to 1 %
regret the same median everywhere; a box whose optimum lies on such faces
pays a poll per face per climb (``nas8c``, single proposals: 3-4.5 later to
the stop).

Everything here is a function of the told points (which were polls, in the
order told) and the best: an optimizer rebuilt from the state file after a
restart is in the same climb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from nas.search.space import Params, SearchSpace, Value
from nas.search.stopping import StopEvidence, stall_needed

#: Integer axes with at most this many levels are polled one level each way.
COARSE_LEVELS = 8
#: How far inward, in the unit box, a best on a face of any other numeric axis is polled:
#: one eighth, a little under one level of the finest coarse axis (8 levels, steps of 1/7).
FACE_STEP = 1.0 / COARSE_LEVELS
#: What a climb polls around the best, in the words of stop reasons and events.
POLLED = "one level each way on coarse integer axes, one step inward from a face on the others"


def coarse_axes(space: SearchSpace) -> list[str]:
    """Names of the integer dimensions of ``space`` with at most :data:`COARSE_LEVELS` levels."""
    return [
        dim.name
        for dim in space.dims
        if dim.type == "int" and int(dim.high) - int(dim.low) < COARSE_LEVELS
    ]


def one_level_neighbours(space: SearchSpace, point: Params, axes: Sequence[str]) -> list[Params]:
    """``point`` moved one level down, then up, along each of ``axes``, inside the box."""
    dims = {dim.name: dim for dim in space.dims}
    out = []
    for name in axes:
        dim = dims[name]
        for step in (-1, 1):
            level = int(point[name]) + step
            if dim.low <= level <= dim.high:
                out.append({**point, name: level})
    return out


def face_steps(space: SearchSpace, point: Params) -> list[Params]:
    """``point`` moved :data:`FACE_STEP` of the box inward on each fine axis whose face it sits on.

    Fine axes are the numeric ones :func:`coarse_axes` leaves out (wider
    integer ranges, floats; in the unit box, so a log axis steps by a ratio).
    A best on the face of such an axis is where a ridge stop hides on it
    too: the spline's slope at a face rests on points inside only, and a
    search that crept to the face does not look back one mesh step
    (``benchmarks/results/stop_rule.md``, "Inward from the faces of the
    fine axes"). A best inside the range is not polled on fine axes: their
    slope there is the spline's to find.
    """
    coarse = set(coarse_axes(space))
    x = space.to_unit(point)
    category = space.category_of(point)
    out = []
    for k, dim in enumerate(space.numeric):
        if dim.name in coarse or 0.0 < x[k] < 1.0:
            continue
        inward = x.copy()
        inward[k] = FACE_STEP if x[k] <= 0.0 else 1.0 - FACE_STEP
        level = space.from_unit(inward, category)[dim.name]
        if level != point[dim.name]:
            out.append({**point, dim.name: level})
    return out


def climb_due(
    polls: Sequence[bool],
    best_is_poll: bool,
    stall: int,
    window: int,
    pending: int = 0,
    proposed: Sequence[bool] | None = None,
    values: Sequence[float] | None = None,
) -> bool:
    """Whether the search is in a climb or should start one.

    ``polls``: for each measured point in the order told, whether it was a
    poll; ``pending``: polls issued and not yet told; ``proposed``: for each
    measured point, whether the search proposed it from a fit (None: all
    were); ``values``: the measurements in the same order, higher is better
    (None: every point the search did not propose is a start, below). A climb
    is under way while a poll is pending, the last told point is a poll or the
    best is one (it goes on from a poll that beat the best); a new one starts
    once the best has stalled for ``window`` measurements and as many were
    told since the last poll and since the last start from outside the search
    (:func:`outside_starts`: the initial design or imported measurements, an
    added one that became the best). A stall is the search's own steps failing
    to rise: a best from the design that ten spline proposals have not yet
    beaten has not stalled a search that has barely begun
    (``benchmarks/results/stop_rule.md``, "The first climb waits for the search").
    """
    if pending or best_is_poll or (polls and polls[-1]):
        return True
    starts = [i for i, poll in enumerate(polls) if poll]
    if proposed is not None:
        starts += outside_starts(proposed, values)
    return stall >= window and len(polls) - 1 - max(starts, default=-1) >= window


def outside_starts(proposed: Sequence[bool], values: Sequence[float] | None = None) -> list[int]:
    """Positions of the measured points from outside the search that restart a climb's wait.

    ``proposed`` and ``values`` as :func:`climb_due` takes them. Every point
    the search did not propose before its first own proposal (the initial
    design, a warm start's imported measurements, an earlier phase's points)
    starts the wait, and so does a later one that became the best when told
    (an added measurement the search has not yet looked around). A later one
    below the best does not: the best's stall is what it was, and waiting
    another window would cost that many trainings for nothing. Without
    ``values`` every point not proposed is a start.
    """
    first_own = next((i for i, own in enumerate(proposed) if own), len(proposed))
    best, out = -math.inf, []
    for i, own in enumerate(proposed):
        value = -math.inf if values is None else values[i]
        if not own and (values is None or i < first_own or value > best):
            out.append(i)
        best = max(best, value)
    return out


def polls_due(
    space: SearchSpace,
    best: Params,
    known: Collection[tuple[Value, ...]],
    admissible: Callable[[Params], bool] | None = None,
    min_distance: float = 0.0,
) -> list[Params]:
    """The polls a climb would ask for around the best, in order.

    The best's one-level neighbours on the coarse axes
    (:func:`one_level_neighbours`), then its steps inward from the faces of
    the other numeric axes it sits on (:func:`face_steps`).

    A neighbour already told or pending (its key in ``known``), one
    ``admissible`` refuses (a cost bound, the memory limit) and one closer
    than ``min_distance`` to the best in the unit box (a log axis near its
    top) are left out.
    """
    return [
        p
        for p in one_level_neighbours(space, best, coarse_axes(space)) + face_steps(space, best)
        if space.key(p) not in known
        and space.unit_distance(p, best) >= min_distance
        and (admissible is None or admissible(p))
    ]


def climb_polls(
    space: SearchSpace,
    best: Params,
    polls: Sequence[bool],
    best_is_poll: bool,
    stall: int,
    known: Collection[tuple[Value, ...]],
    admissible: Callable[[Params], bool] | None = None,
    min_distance: float = 0.0,
    pending: int = 0,
    proposed: Sequence[bool] | None = None,
    values: Sequence[float] | None = None,
) -> list[Params]:
    """The polls a climb asks for now: :func:`polls_due` where :func:`climb_due` holds, else none.

    ``polls``, ``best_is_poll``, ``stall``, ``pending``, ``proposed`` and ``values`` as
    :func:`climb_due` takes them (the window is the stop rule's,
    :func:`~nas.search.stopping.stall_needed`); ``known``, ``admissible`` and
    ``min_distance`` as :func:`polls_due` takes them.
    """
    todo = polls_due(space, best, known, admissible, min_distance)
    window = stall_needed(space.d)
    if todo and climb_due(polls, best_is_poll, stall, window, pending, proposed, values):
        return todo
    return []


def hold(evidence: StopEvidence, polls: int, pending: bool) -> StopEvidence:
    """``evidence`` of the default rule, held back from a stop while a climb is under way.

    ``polls``: the polls still due (:func:`climb_polls`); ``pending``: a poll is
    issued and not yet told. Checks wait too (``explore`` off): a poll that beats
    the best would start them afresh.
    """
    if evidence.rule != "default" or not (polls or pending):
        return evidence
    return replace(
        evidence,
        stop=False,
        explore=False,
        reason=(
            f"not yet: climbing: the best rose by less than the tolerance over "
            f"{evidence.stall} measurements; {polls} neighbour(s) of the best ({POLLED}) still "
            f"to propose, {'some' if pending else 'none'} pending"
        ),
    )
