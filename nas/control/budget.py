"""``[experiment] max_gpu_hours`` as a bound on what the next trainings may cost.

The budget stops proposals once the results report that many GPU-hours; on its
own that lets the last proposal cost many times what is left (a network
predicted at 6 GPU-hours proposed with 1.2 left ended a 12 GPU-hour campaign at
16.8). Once the campaign has counted GPU-hours, the device-hours of a candidate
are predicted by the spline of the measured device-hours, as a bound on
``device_hours`` is judged (:func:`nas.control.constraints.candidate_rule`):
a candidate is proposed only when its predicted device-hours with their error
fit what is left, which is the limit less the GPU-hours counted and less the
predicted device-hours of the points still out. A batch is cut where its
proposals together would not fit (:meth:`GpuBudget.trim`).

Before the spline can be fitted, or on a campaign whose results count no
GPU-hours (a CPU run), every candidate fits, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nas.config import Experiment
from nas.control.constraints import predicted_within
from nas.control.costs import DEVICE_HOURS, cost_predictor, cost_source
from nas.numbers import amount_text, plural
from nas.record.state import ACTIVE, READY, State
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.search.tradeoff import Predictor

#: The event of proposals left out of a batch because together they would not fit.
BUDGET_EVENT = "budget"


@dataclass(frozen=True)
class GpuBudget:
    """What is left of ``max_gpu_hours`` and how a candidate's device-hours are predicted."""

    limit: float
    #: GPU-hours the results counted (every point's ``gpu_hours``).
    used: float
    #: Predicted device-hours of the points still out, less what they counted already.
    committed: float
    #: How many points are still out.
    out: int
    #: Device-hours (value, error) of candidates; NaN while they cannot be predicted.
    predict: Predictor

    @property
    def left(self) -> float:
        """GPU-hours that new proposals may still cost."""
        return self.limit - self.used - self.committed

    def fits(self, params: Params) -> bool:
        """Whether the candidate's predicted device-hours with their error fit :attr:`left`
        (every candidate while they cannot be predicted). The campaign's own points are
        not judged by it (:meth:`nas.control.policy.Study.admissible`)."""
        return predicted_within(self.predict, params, self.left)

    def trim(self, batch: Sequence[Params]) -> int:
        """How many of ``batch``, taken in order, fit :attr:`left` together (at least one:
        each was proposed because it fits alone)."""
        if not batch:
            return 0
        values, errors = self.predict(list(batch))
        upper = np.nan_to_num(np.asarray(values) + np.asarray(errors), nan=0.0)
        return max(1, int(np.searchsorted(np.cumsum(upper), self.left, side="right")))

    def text(self) -> str:
        """``[experiment] max_gpu_hours = 12 (1.2 GPU-hours left: ...)`` for the rules a
        candidate is held to."""
        out = ""
        if self.out:
            out = (
                f" and {amount_text(self.committed)} predicted for the "
                f"{plural(self.out, 'point')} still out"
            )
        return (
            f"[experiment] max_gpu_hours = {self.limit:g} ({amount_text(max(self.left, 0.0))} "
            f"GPU-hours left after {amount_text(self.used)} used{out}; a candidate's predicted "
            f"{DEVICE_HOURS} with their error must fit)"
        )


def gpu_budget(state: State, experiment: Experiment) -> GpuBudget | None:
    """The budget of a campaign with ``max_gpu_hours`` whose results counted GPU-hours;
    None otherwise (no limit, or nothing counted yet: a CPU run is never charged)."""
    limit = experiment.experiment.max_gpu_hours
    used = sum(p.gpu_hours for p in state.points)
    if limit is None or used <= 0:
        return None
    predict = cost_predictor(state, experiment, cost_source(experiment, DEVICE_HOURS))
    out = state.with_status(*READY, *ACTIVE)
    values = predict([p.params for p in out])[0] if out else []
    committed = sum(
        max(float(value) - point.gpu_hours, 0.0)
        for point, value in zip(out, values, strict=True)
        if math.isfinite(value)
    )
    return GpuBudget(limit, used, committed, len(out), predict)
