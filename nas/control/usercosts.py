"""``[model] costs = "package.module:function"``: the known costs of one's own model.

The built-in families' costs come from the cost model; an own model's come
from the user's function. Called with a candidate's values (``[model] fixed``
overridden by the point's parameters), it returns a mapping of cost names to
numbers, e.g. ``{"gflops": 3.1, "latency_ms": 12.5}``, computed from the
parameters alone. Those names are then known costs like ``gmacs``: bounds in
``[experiment.constraints]``, ``tradeoff``, ``front --cost``, ``best
--where`` and ``splinenas cost`` take them.

Every answer is checked: a mapping whose names are cost names (letters,
digits, ``_``, ``.`` and ``-``: :func:`nas.search.settings.cost_name_problem`,
the rule of every cost name) that nothing else claims
(:func:`nas.control.costs.reserved_names`), each value a finite number. The
function is called on the first point of the initial design when the costs
are first needed, and a failure there is a config error naming file, table
and key (``init`` and ``run`` stop on it). Later a candidate whose call
raises or answers wrongly has no cost (NaN: a bound refuses it, a front
leaves it out), with one log line per candidate.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import ConfigError, Experiment
from nas.control.usercode import Answers, UserFunction, code_folder, load_function
from nas.search.settings import cost_name_problem
from nas.search.space import Params

log = logging.getLogger(__name__)


def checked_answer(answer: Any, reserved: Mapping[str, str]) -> dict[str, float]:
    """The user's answer as ``{name: float}``.

    Raises:
        ValueError: not a non-empty mapping, a name that is no cost name or is
            reserved (``reserved`` says by what), or a value that is no finite number.
    """
    if not isinstance(answer, Mapping):
        raise ValueError(
            f"returned {type(answer).__name__}; expected a mapping of cost names to numbers"
        )
    if not answer:
        raise ValueError("returned no cost; expected a mapping of cost names to numbers")
    costs = {}
    for name, value in answer.items():
        if cost_name_problem(name) is not None:
            raise ValueError(f"cost name {name!r} is not a name (letters, digits, _, . and -)")
        if name in reserved:
            raise ValueError(f"cost name {name!r} is taken by {reserved[name]}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"cost {name!r} is {value!r}; expected a number")
        if not math.isfinite(value):
            raise ValueError(f"cost {name!r} is {value!r}; expected a finite number")
        costs[name] = float(value)
    return costs


@dataclass
class UserCosts:
    """The user's cost function, checked on a first candidate, with its answers cached."""

    spec: str
    function: UserFunction
    fixed: dict[str, Any]
    reserved: Mapping[str, str]
    #: The cost names of the answer for the first design point.
    names: tuple[str, ...] = ()
    _answers: Answers[dict[str, float] | None] = field(default_factory=Answers)

    def answer(self, params: Params) -> dict[str, float] | None:
        """The checked costs of a candidate; None when the call raised or answered wrongly."""
        return self._answers.get(params, lambda: self._costed(params))

    def _costed(self, params: Params) -> dict[str, float] | None:
        """:meth:`check` of a candidate; a failure leaves it uncosted, with a log line."""
        try:
            return self.check({**self.fixed, **params})
        except Exception as exc:  # the user's code and its answer: any failure
            log.warning("%s: no costs for %s: %s", self.spec, dict(params), exc)
            return None

    def check(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Call the function on ``values`` and check the answer.

        Raises:
            ValueError: the call raised (a :class:`~nas.control.usercode.UserCodeError`)
                or the answer breaks :func:`checked_answer`'s rules.
        """
        return checked_answer(self.function(values), self.reserved)

    def cost(self, name: str) -> Callable[[Params], float]:
        """Cost ``name`` of a candidate; NaN where the function gave none."""

        def read(params: Params) -> float:
            found = self.answer(params)
            return math.nan if found is None else found.get(name, math.nan)

        return read


#: Loaded functions, by (experiment text, folder): every reader of a cost asks again.
_LOADED: dict[tuple[str, str], UserCosts] = {}


def load_user_costs(
    experiment: Experiment, cwd: Path | None, reserved: Mapping[str, str]
) -> UserCosts | None:
    """The experiment's ``[model] costs`` imported and checked on its first design point.

    Raises:
        ConfigError: the import fails, or the call on the first design point
            raises or answers wrongly (the message says how).
    """
    model = experiment.model
    if model is None or model.costs is None:
        return None
    folder = code_folder(experiment, cwd)
    key = (experiment.text, str(folder))
    if key not in _LOADED:
        function = load_function(model.costs, folder, experiment.source, "costs")
        users = UserCosts(model.costs, function, dict(model.fixed), dict(reserved))
        first = {**model.fixed, **experiment.space.initial_design()[0]}
        try:
            users.names = tuple(users.check(first))
        except ValueError as exc:
            raise ConfigError(
                experiment.source, "model", "costs", f"{model.costs} for {first}: {exc}"
            ) from None
        _LOADED[key] = users
    return _LOADED[key]
