"""Which candidates can be trained at all: GPU memory of the built-in families, a user's rule.

Two sources, either or both:

* ``[cluster] max_gpu_memory_gib``: the estimated peak memory per GPU of a
  built-in family's candidate must fit (:mod:`nas.models.footprint`);
* ``[model] feasible = "package.module:function"``: the user's function gets
  the candidate's values (``[model] fixed`` overridden by its parameters) and
  returns None (trainable) or the reason it is not.

The user's function is the one piece of user code the controller imports
(training runs in its own processes, :mod:`nas.trial.launch`). The import
looks in the folder ``splinenas`` runs in first; an import that fails and a
call that raises are reported in one line: at ``init``/``run`` start as a
config error, during the search as the reason the candidate is infeasible.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import ConfigError, Experiment
from nas.control.costs import estimator
from nas.control.usercode import code_folder, load_function
from nas.search.space import Params

log = logging.getLogger(__name__)

Rule = Callable[[Params], str | None]


@dataclass(frozen=True)
class Feasibility:
    """A predicate over candidates that also says why one is refused."""

    rule: Rule

    def __call__(self, params: Params) -> bool:
        return self.rule(params) is None

    def reason(self, params: Params) -> str:
        """Why ``params`` cannot be trained ('' when it can)."""
        return self.rule(params) or ""


def feasibility(experiment: Experiment, cwd: Path | None = None) -> Feasibility | None:
    """The experiment's feasibility rules combined; None when it has none.

    ``[model] feasible`` is imported from :func:`~nas.control.usercode.code_folder`.

    Raises:
        ConfigError: the number of classes is unknown (for the memory rule), or
            ``[model] feasible`` cannot be imported.
    """
    rules = [rule for rule in (_memory_rule(experiment), _user_rule(experiment, cwd)) if rule]
    if not rules:
        return None

    @functools.lru_cache(maxsize=4096)
    def combined(key: tuple[tuple[str, Any], ...]) -> str | None:
        params = dict(key)
        return next((reason for rule in rules if (reason := rule(params))), None)

    return Feasibility(lambda params: combined(tuple(sorted(params.items()))))


def commands_rule(experiment: Experiment, cwd: Path | None = None) -> Feasibility | None:
    """The rules the controller applies, for commands that propose outside it (``propose``, ``front``).

    An experiment without ``[model]`` and ``[data]`` trains nothing the
    controller could check, so it has none.
    """
    runnable = experiment.model is not None and experiment.data is not None
    return feasibility(experiment, cwd) if runnable else None


def _memory_rule(experiment: Experiment) -> Rule | None:
    """The memory predicate of ``[cluster] max_gpu_memory_gib`` (built-in families only); a
    candidate that describes no network counts as infeasible."""
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    model = experiment.model
    if limit is None or model is None or model.family is None:
        return None
    if experiment.num_classes() is None:
        raise ConfigError(
            experiment.source, "model", "num_classes", "needed by [cluster] max_gpu_memory_gib"
        )
    estimate = estimator(experiment)
    refused = (
        f"estimated peak memory per GPU exceeds memory_margin {margin:g}"
        f" of max_gpu_memory_gib = {limit:g} GiB"
    )

    def fits_memory(params: Params) -> str | None:
        from nas.models.footprint import fits

        cost = estimate(params)
        if cost is None:
            return "the parameters describe no network of the family"
        return None if fits(cost, limit, margin) else refused

    return fits_memory


def memory_problem(experiment: Experiment) -> ConfigError | None:
    """``[cluster] max_gpu_memory_gib`` that no point of the initial design fits, or None.

    Every design point would be marked infeasible and the search could not
    start. Call after :func:`feasibility` accepted the experiment.
    """
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    model = experiment.model
    if limit is None or model is None or model.family is None:
        return None
    from nas.models.footprint import BYTES_PER_GIB, fits
    from nas.search.optimizer import SplineOptimizer  # scipy.stats: slow to import

    settings = experiment.experiment.search_settings()
    design = SplineOptimizer(experiment.space, settings).initial_design()
    costs = [c for c in map(estimator(experiment), design) if c is not None]
    if not costs or any(fits(cost, limit, margin) for cost in costs):
        return None  # no estimate at all: the coordinates' own problem
    gib = [cost.memory_bytes / BYTES_PER_GIB for cost in costs]
    return ConfigError(
        experiment.source,
        "cluster",
        "max_gpu_memory_gib",
        f"no point of the initial design fits in {limit:g} GiB (memory_margin {margin:g} of "
        f"it): the largest estimate is {max(gib):.3g} GiB, the smallest {min(gib):.3g} GiB",
    )


def _user_rule(experiment: Experiment, cwd: Path | None) -> Rule | None:
    """``[model] feasible`` imported, wrapped so that nothing it does stops the controller."""
    model = experiment.model
    if model is None or model.feasible is None:
        return None
    spec, fixed = model.feasible, dict(model.fixed)
    function = load_function(spec, code_folder(experiment, cwd), experiment.source, "feasible")
    first = {**fixed, **experiment.space.initial_design()[0]}
    try:  # a function that cannot take a candidate at all is a config error, found at init
        function(first)
    except Exception as exc:
        raise ConfigError(experiment.source, "model", "feasible",
                          f"{spec} raised {type(exc).__name__} for {first}: {exc}") from None  # fmt: skip

    def user(params: Params) -> str | None:
        try:
            answer = function({**fixed, **params})
        except Exception as exc:  # the user's code: any failure is this candidate's reason
            return f"{spec} raised {type(exc).__name__}: {exc}"
        return _answer(spec, answer)

    return user


def _answer(spec: str, answer: Any) -> str | None:
    """None for a trainable candidate, else the reason, from what the user's function returned."""
    if answer is None or answer is True:
        return None
    if answer is False:
        return f"refused by {spec}"
    if isinstance(answer, str):
        return answer or f"refused by {spec}"
    return f"{spec} returned {answer!r}; expected None or a reason (a string)"
