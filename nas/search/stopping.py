"""When the search may stop: Algorithm 1's test and a stricter default, with their evidence.

Algorithm 1 stops as soon as one proposal is measured within ``tolerance``
of its prediction. One agreement is weak evidence: early on the spline is
often right about a point that is nowhere near the optimum (an independent
benchmark found 44 of 90 runs stopped with more than 1 % regret, at about
evaluation 22 of an 8-dimensional search). The default rule asks for four
things at once:

(a) **the model is right where it looks**: each of the last
    k = max(3, ceil(d/2)) proposals was measured within the tolerance of
    its prediction (several consecutive agreements, not one, as in the
    "successive agreement" stopping rules of surrogate optimisation, e.g.
    the consecutive-failure counters of Regis & Shoemaker's DYCORS and of
    TuRBO, Eriksson et al., NeurIPS 2019). In a batch every proposal counts,
    its fills too: they are where the batch looked; (d) and (e) then ask
    for the evidence a fill near known points does not give;
(b) **the search has stalled**: the best measured value rose by less than
    the tolerance over the last max(12, 2d) measurements (the "no improvement
    within a window" rule used by pySOT and by most evolutionary codes);
(c) **the model promises nothing more**: the spline's legal argmax predicts
    less than the tolerance above the best measurement (the "expected
    improvement below a threshold" stop of Jones, Schonlau & Welch, J. Global
    Optim. 13, 1998, with the spline's own prediction in place of EI);
(d) **the model is right around the point it returns**: each of the d+1
    measured points nearest the best, left out of the fit, is predicted
    within the tolerance (leave-one-out cross-validation, by Rippa's formula
    without refits; Rippa, Adv. Comput. Math. 11, 1999). The agreements of
    (a) are where the spline looked last, which need not be where the
    returned point lies; a spline that cannot reproduce the best's
    neighbours from each other has not pinned the optimum down (on the
    benchmark's space-filling runs this condition halved the stops with
    more than 1 % regret, 8 of 80 to 4).
    (c) and (d) are computed only once (a) and (b) hold: they need a fit and
    an argmax search;
(e) **the model is right away from the best**: once (a)-(d) hold, the next
    proposals are *checks* (origin ``check``; :mod:`nas.search.exploration`
    chooses them): first a point far from the best, then a point on the axis
    lines through the best, by merit of value and distance, then one in the
    best's wider neighbourhood. The search stops only when
    :data:`CHECKS_NEEDED` checks told since the best last rose passed, that
    is, were not measured more than the tolerance better than predicted
    (:func:`check_progress`). A batch of q > 1 proposals carries up to q - 1
    of the checks still needed, in that order, in place of its fills (one
    slot stays the search's own): a campaign of batches of four makes its
    three checks in one round of trainings instead of three. The axis check
    answers stops on a ridge: a search whose steps shrank while it crept
    along one stalled 2-3 tolerances below the optimum, where one coordinate
    moved alone still gains (on the benchmark's NAS problems the far and
    neighbourhood checks never did). (a)-(d) all look where the search
    already is: on a multimodal function the search can settle in a second
    basin where every statistic of the fit looks converged
    (``benchmarks/stop_statistics.py``), and only evaluations away from the
    incumbent can show that the spline underestimated another region. The
    test is one-sided: a check measured below its prediction shows the
    spline was optimistic there, no sign of a better region. A check
    measured better than predicted (a surprise) is followed by checks around
    it until one is predicted within the tolerance either way; a check that
    beats the best resets (b) and the checks start afresh. Checks do not
    count towards (a): they are chosen for their distance, not their value.

The climb on a stall (:mod:`nas.search.climb`) holds the default rule back
while it is under way (:func:`nas.search.climb.hold`): its polls, the best's
one-level neighbours on coarse integer axes and its steps inward from the
faces of the other axes it sits on, are evidence the rule waits for, and
a poll that beats the best starts (b) and the checks afresh.
Polls are not agreements of (a) nor checks of (e): they are chosen for
their place next to the best, not for their value.

With a noise sd (given or estimated) the rule compares two kinds of
numbers, and each gets the tolerance it can be held to:

* a measurement against a prediction ((a), (d), (e)): never closer than
  twice the noise sd (:func:`effective_tolerance`), since a measurement
  cannot agree with a prediction more closely than its own noise allows;
* the search's progress ((b) and (c)): judged on the smoothed values of
  the fit at the measured points (``smoothed``), with the configured
  tolerance. The best raw measurement is the luckiest draw: it rises by
  the noise's upper tail early and then barely moves, so a stall counted
  on raw values at twice the sd fires while the search is still climbing
  (an independent check found 21 of 40 noisy runs stopped with more than
  1 % regret that way). The smoothed values average the noise out, so the
  user's tolerance means what it says. Without ``smoothed`` (a stored fit
  from an older file) the raw values and the raised tolerance are used.

Under declared bounds (``gmacs <= 20``, ``device_hours <= 3``) the search
returns the best measured point that meets them, so (b)-(d) concern that
point (``eligible``): a measured network beyond a bound stays in the fit but
is nobody's best, and while no measured point meets the bounds the rule does
not stop.

Values here are in the optimizer's internal orientation (higher is
better).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nas.search.settings import STOP_RULES

#: A measured check: (position among the told values, measured, predicted), higher is
#: better, and optionally the batch it was proposed in (None: a batch of its own).
Check = tuple[int, float, float] | tuple[int, float, float, int | None]


@dataclass(frozen=True)
class StopEvidence:
    """A stopping decision and what it rests on, for ``status`` and logs.

    Attributes
    ----------
    rule : str
        ``"default"`` or ``"paper"``.
    stop : bool
        Whether the rule says the search has converged.
    tolerance : float
        The tolerance a measurement is compared with a prediction at (the
        configured one, raised to 2x the noise sd).
    gaps : tuple of float
        |measured - predicted| of the last ``k`` measured proposals, oldest first.
    k : int
        Agreements the rule needs (1 for "paper").
    stall : int
        Measurements since the best value last rose by at least ``tolerance``.
    stall_needed : int
        Stall length the rule needs (0 for "paper").
    gain : float or None
        Predicted gain of the spline's argmax over the best measurement
        (None when not computed).
    local_error : float or None
        Largest leave-one-out error among the d+1 measured points nearest the
        best (None when not computed; inf: no fit to check with; NaN: a stored
        fit that did not record it).
    reason : str
        One sentence for people: why it stopped, or what is missing.
    away : float or None
        Measured minus predicted value (higher is better) of the last check
        point away from the best measured since the best last rose (None: no
        such check, or not computed).
    explore : bool
        (a)-(d) hold but (e) does not: the next proposal is a check point
        away from the best.
    progress_tolerance : float or None
        The tolerance of (b) and (c) where it differs from ``tolerance``
        (the configured one, on smoothed values); None: ``tolerance``.
    """

    rule: str
    stop: bool
    tolerance: float
    gaps: tuple[float, ...]
    k: int
    stall: int
    stall_needed: int
    gain: float | None
    local_error: float | None
    reason: str
    away: float | None = None
    explore: bool = False
    progress_tolerance: float | None = None


def agreements_needed(d: int) -> int:
    """k = max(3, ceil(d/2)) consecutive proposals within the tolerance."""
    return max(3, math.ceil(d / 2))


def stall_needed(d: int) -> int:
    """Window of max(12, 2d) measurements without an improvement of the tolerance."""
    return max(12, 2 * d)


def effective_tolerance(tolerance: float, noise_sd: float = 0.0) -> float:
    """The tolerance, never below twice the noise sd."""
    return max(float(tolerance), 2.0 * float(noise_sd))


def counted(values: Sequence[float], eligible: Sequence[bool] | None = None) -> list[float]:
    """``values`` as the search's progress counts them: those ``eligible`` marks False as -inf.

    A measured point beyond a declared bound (a network over budget) is valid
    data for the fit but cannot be returned: counted at its value, one such
    point became a best no allowed point could beat, and (b) found the search
    stalled from the first proposal on. ``eligible`` None: every value counts.
    """
    if eligible is None:
        return list(values)
    if len(eligible) != len(values):
        raise ValueError(f"{len(eligible)} eligibility flags for {len(values)} measurements")
    return [v if ok else -math.inf for v, ok in zip(values, eligible, strict=True)]


def stall_length(values: Sequence[float], tolerance: float) -> int:
    """Largest m such that the best value rose by less than ``tolerance`` over the last m.

    ``values`` are measurements in the order they were told (higher is
    better), -inf for one that does not count (:func:`counted`); 0 when the
    last one improved the best by ``tolerance`` or more, and while none counts:
    nothing has been found that could stall.
    """
    best = -math.inf
    prefix = []
    for v in values:
        best = max(best, v)
        prefix.append(best)
    if not prefix or prefix[-1] == -math.inf:
        return 0
    m = 0
    while m < len(prefix) - 1 and prefix[-1] - prefix[-2 - m] < tolerance:
        m += 1
    return m


def decide(
    rule: str,
    values: Sequence[float],
    proposals: Sequence[tuple[float, float]],
    d: int,
    tolerance: float,
    noise_sd: float = 0.0,
    gain: Callable[[], float] | None = None,
    local_error: Callable[[], float] | None = None,
    checks: Sequence[Check] | None = None,
    smoothed: Sequence[float] | None = None,
    eligible: Sequence[bool] | None = None,
) -> StopEvidence:
    """Apply ``rule`` to a search's measurements.

    Parameters
    ----------
    rule : str
        One of :data:`STOP_RULES`.
    values : sequence of float
        Every finite measurement in the order told (higher is better).
    proposals : sequence of (measured, predicted)
        The measured proposals that carry a prediction, in the order told,
        oriented as ``values`` (higher is better).
    d : int
        Numeric dimensions of the search space.
    tolerance, noise_sd : float
        Configured tolerance and the noise sd (0 when noise-free).
    gain : callable, optional
        Returns the argmax's predicted gain over the best measurement; called
        only when (a) and (b) hold. None skips condition (c).
    local_error : callable, optional
        Returns the largest leave-one-out error near the best (inf: no fit to
        check with; NaN: a stored fit that did not record it); called only
        when (a) and (b) hold. None skips condition (d).
    checks : sequence of (position, measured, predicted[, batch]), optional
        The measured check points away from the best (higher is better), in
        the order told; ``position`` indexes ``values``, ``batch`` says which
        checks were proposed together (:func:`check_progress`). None skips
        condition (e).
    smoothed : sequence of float, optional
        With a noise sd: the fit's smoothed value at each point of
        ``values`` (same order). (b) then counts the stall on them and (b)
        and (c) use the configured tolerance (the module says why); ``gain``
        must then measure the argmax against the best smoothed value.
    eligible : sequence of bool, optional
        Which of ``values`` the search may return as its best: those that meet
        every declared bound (None: all). (b) counts the stall on them alone
        (:func:`counted`), ``gain`` must measure the argmax against the best of
        them, and while none is there neither rule stops: there is no best to
        return.
    """
    if rule not in STOP_RULES:
        raise ValueError(f"stop rule must be one of {STOP_RULES}, got {rule!r}")
    if smoothed is not None and len(smoothed) != len(values):
        raise ValueError(f"{len(smoothed)} smoothed values for {len(values)} measurements")
    tol = effective_tolerance(tolerance, noise_sd)
    smooth = smoothed is not None and tol > tolerance
    progress_tol = float(tolerance) if smooth else tol
    gaps_all = [abs(measured - predicted) for measured, predicted in proposals]
    stall = stall_length(counted(smoothed if smooth else values, eligible), progress_tol)
    unbounded = eligible is None or any(eligible)
    if rule == "paper":
        hit = any(g <= tol for g in gaps_all) and unbounded
        reason = (
            "a proposal was measured within the tolerance of its prediction (Algorithm 1)"
            if hit
            else "no proposal measured within the tolerance of its prediction yet"
            if unbounded
            else NONE_WITHIN
        )
        return StopEvidence(rule, hit, tol, tuple(gaps_all[-1:]), 1, stall, 0, None, None, reason)
    k, window = agreements_needed(d), stall_needed(d)
    gaps = tuple(gaps_all[-k:])
    agree = len(gaps) == k and all(g <= tol for g in gaps)
    stalled = stall >= window
    checked = agree and stalled
    promised = gain() if checked and gain is not None else None
    near = local_error() if checked and local_error is not None else None
    flat = promised is None or promised < progress_tol
    pinned = near is None or near <= tol
    fresh = [] if checks is None else fresh_checks(checks, len(values), stall)
    away = fresh[-1][1] - fresh[-1][2] if fresh else None
    looked = checks is None or checked_away(fresh, tol)
    ready = checked and flat and pinned
    stop = ready and looked
    if stop:
        reason = (
            f"the last {k} proposals were each measured within {tol:g} of their predictions "
            f"and the best {_valued(smooth)} rose by less than {progress_tol:g} over the last "
            f"{stall} measurements"
        )
        if promised is not None:
            reason += f"; the spline promises {promised:.3g} more"
        if near is not None:
            reason += f"; the best's neighbours are predicted within {near:.3g} when left out"
        if away is not None:
            reason += f"; a point away from the best was measured {_versus(away)}"
    elif ready:
        reason = "not yet: " + _unchecked(fresh, tol)
    else:
        missing = []
        if not agree:
            within = sum(g <= tol for g in gaps)
            missing.append(
                f"{within} of the last {k} proposals within {tol:g} of their predictions"
            )
        if not unbounded:
            missing.append(NONE_WITHIN)
        elif not stalled:
            missing.append(
                f"best {_valued(smooth)} flat (within {progress_tol:g}) for {stall} of "
                f"{window} measurements"
            )
        if not flat:
            missing.append(f"the spline still promises {promised:.3g} above the best")
        if not pinned:
            missing.append(_unpinned(near))
        reason = "not yet: " + "; ".join(missing)
    return StopEvidence(
        rule,
        stop,
        tol,
        gaps,
        k,
        stall,
        window,
        promised,
        near,
        reason,
        away,
        ready and not looked,
        progress_tol if smooth else None,
    )


#: Why no rule stops while no measured point meets the declared bounds.
NONE_WITHIN = "no measured point meets the declared bounds yet, so there is no best to return"


def _valued(smooth: bool) -> str:
    """What (b) counts on: the measurements, or the fit's smoothed values of them."""
    return "smoothed value" if smooth else "value"


def fresh_checks(checks: Sequence[Check], n: int, stall: int) -> list[Check]:
    """The checks told after the best last rose, in the order told.

    ``n`` values were told and the best last rose by the tolerance at
    position ``n - 1 - stall``: a check told before compared the spline with
    another incumbent. A check that itself raised the best is not after it.
    """
    return [c for c in checks if c[0] > n - 1 - stall]


#: Checks away from the best that condition (e) needs: one far from it, one on its axis
#: lines, one in its wider neighbourhood (:mod:`nas.search.exploration`).
CHECKS_NEEDED = 3


def check_progress(fresh: Sequence[Check], tol: float) -> tuple[int, bool]:
    """Checks passed since the best last rose, and whether a surprise is still open.

    A check passes when it is not measured more than ``tol`` better than
    predicted. One that is (a surprise: the spline underestimated a region)
    is followed by checks around the best of the surprising ones
    (:func:`surprise_centre`, :class:`~nas.search.exploration.NearSurprise`)
    until one is predicted within ``tol`` either way: a spline that was
    wrong about a region is not trusted there again until it predicts a new
    point of it right. That one passes and ends the surprise. A check that
    beats the incumbent raises the best, which starts the checks afresh.

    Checks proposed in one batch (a fourth entry, the batch, equal) were all
    chosen before any was measured: one of them that passes counts, but it
    cannot end a surprise of its batch mates, since it was not chosen to
    look at the surprising region.
    """
    progress = _progress(fresh, tol)
    return progress.passed, progress.surprised


def surprise_centre(fresh: Sequence[Check], tol: float) -> int | None:
    """Position (``check[0]``) of the best measured check of the open surprise; None when none is
    open. Checks that passed are not where the spline was wrong, whatever they measured."""
    return _progress(fresh, tol).centre


@dataclass(frozen=True)
class _Progress:
    passed: int
    surprised: bool
    #: measured - predicted of the last check that opened or kept the surprise (0: none open)
    gap: float
    #: position of the best measured check of the open surprise (None: none open)
    centre: int | None


def _progress(fresh: Sequence[Check], tol: float) -> _Progress:
    """The walk through the checks behind :func:`check_progress` and :func:`surprise_centre`."""
    passed, opened, surprising = 0, None, []
    for check in fresh:
        gap = check[1] - check[2]
        batch = check[3] if len(check) > 3 else None
        if surprising and batch is not None and batch == opened:
            passed += gap <= tol  # judged on its own, one-sided; the surprise stays open
            if gap > tol:
                surprising.append(check)
        elif abs(gap) <= tol or not surprising and gap <= tol:
            passed, surprising = passed + 1, []
        else:
            opened = batch
            surprising.append(check)
    if not surprising:
        return _Progress(passed, False, 0.0, None)
    last = surprising[-1]
    centre = max(surprising, key=lambda c: c[1])[0]
    return _Progress(passed, True, last[1] - last[2], centre)


def checked_away(fresh: Sequence[Check], tol: float) -> bool:
    """Condition (e): :data:`CHECKS_NEEDED` checks passed since the best last rose, no surprise open."""
    passed, surprised = check_progress(fresh, tol)
    return passed >= CHECKS_NEEDED and not surprised


def _unchecked(fresh: Sequence[Check], tol: float) -> str:
    """Why condition (e) fails: checks still to make, or a surprise the spline has not caught up with."""
    progress = _progress(fresh, tol)
    passed, surprised, gap = progress.passed, progress.surprised, progress.gap
    head = f"checking convergence away from the best: (a)-(d) hold, {passed} of {CHECKS_NEEDED} checks passed"
    if surprised:
        return (
            f"{head}; a check was measured {_versus(gap)}, so the next looks around the best "
            f"check until one is predicted within {tol:g}"
        )
    return f"{head}; the next is a point away from the best, which must not measure more than {tol:g} better than predicted"


def _versus(away: float) -> str:
    """Measured minus predicted (higher is better) in words that hold for either goal."""
    return f"{away:.3g} better than predicted" if away > 0 else f"{-away:.3g} worse than predicted"


def _unpinned(near: float) -> str:
    """Why condition (d) fails: an error too large, no fit to check with, or a fit without the check."""
    if math.isnan(near):
        return "the stored fit predates the neighbour check; the controller's next fit has it"
    if math.isinf(near):
        return "no fit of the measured points to check the best's neighbours with"
    return f"a neighbour of the best is predicted {near:.3g} off when left out"
