"""Which candidates can be trained at all: GPU memory of the built-in families, a user's rule.

Two sources, either or both:

* ``[cluster] max_gpu_memory_gib``: the estimated peak memory per GPU of a
  candidate must fit: a built-in family's from the cost model
  (:mod:`nas.models.footprint`), an own model's from the ``memory_gib`` its
  ``[model] costs`` function returns (without either, ``init`` warns that
  the limit has no effect);
* ``[model] feasible = "package.module:function"``: the user's function gets
  the candidate's values (``[model] fixed`` overridden by its parameters) and
  returns None (trainable) or the reason it is not.

The user's function is the one piece of user code the controller imports
(training runs in its own processes, :mod:`nas.trial.launch`). The import
looks in the folder ``splinenas`` runs in first; an import that fails, and a
call on the first design point that raises or answers what is no answer, are
one config error at ``init``/``run`` start. During the search a call that
raises (``sys.exit()`` included) makes that candidate infeasible with the
reason; each distinct failure is also logged once, and :meth:`Feasibility.notes`
counts them, since a rule that fails for many candidates quietly empties the
search. The optimiser screens thousands of candidates per proposal: answers
are kept by params, and slow calls are logged (:class:`~nas.control.usercode.UserFunction`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.config import ConfigError, Experiment
from nas.control.costs import estimator, has_cost_model, user_costs
from nas.control.usercode import Answers, UserCodeError, UserFunction, code_folder, load_function
from nas.search.space import Params

log = logging.getLogger(__name__)

Rule = Callable[[Params], str | None]

#: Distinct failures of the user's rule said one by one (in the log and the notes); the rest
#: are counted only.
MAX_FAILURES_SAID = 5


@dataclass(frozen=True)
class Feasibility:
    """A predicate over candidates that also says why one is refused."""

    rule: Rule
    #: The user's ``[model] feasible`` among the rules, for :meth:`notes`.
    user: UserRule | None = None

    def __call__(self, params: Params) -> bool:
        return self.rule(params) is None

    def reason(self, params: Params) -> str:
        """Why ``params`` cannot be trained ('' when it can)."""
        return self.rule(params) or ""

    def notes(self) -> list[str]:
        """What a person should know of the rules so far: the user's rule failing for
        candidates, which made them infeasible (a status or stop reason can show it)."""
        note = None if self.user is None else self.user.note()
        return [] if note is None else [note]


def feasibility(experiment: Experiment, cwd: Path | None = None) -> Feasibility | None:
    """The experiment's feasibility rules combined; None when it has none.

    ``[model] feasible`` is imported from :func:`~nas.control.usercode.code_folder`.

    Raises:
        ConfigError: the number of classes is unknown (for the memory rule), or
            ``[model] feasible`` cannot be imported or fails on the first design point.
    """
    return _combined(_memory_rule(experiment, cwd), _user_rule(experiment, cwd))


def _combined(memory: Rule | None, user: UserRule | None) -> Feasibility | None:
    """The given rules as one :class:`Feasibility` (the first refusal wins) whose answers are
    kept by params (:class:`~nas.control.usercode.Answers`); None when none is given."""
    given = [rule for rule in (memory, user) if rule]
    if not given:
        return None
    answers: Answers[str | None] = Answers()

    def combined(params: Params) -> str | None:
        return next((reason for rule in given if (reason := rule(params))), None)

    return Feasibility(lambda params: answers.get(params, lambda: combined(params)), user)


def commands_rule(experiment: Experiment, cwd: Path | None = None) -> Feasibility | None:
    """The rules the controller applies, for commands that propose outside it (``propose``, ``front``).

    An experiment ``run`` can train (its own ``[train] command``, or the
    built-in trainer's ``[model]`` and ``[data]``) gets every rule the
    controller applies. One searched by hand still gets ``[model] feasible``:
    the user's rule says which candidates can be trained at all, whoever
    trains them; the memory rule needs what only a runnable experiment gives
    (the number of classes of its data).
    """
    if not experiment.missing_run_sections():
        return feasibility(experiment, cwd)
    return _combined(None, _user_rule(experiment, cwd))


#: What an own model's ``[model] costs`` function must return for ``max_gpu_memory_gib``.
MEMORY_COST = "memory_gib"


def _memory_rule(experiment: Experiment, cwd: Path | None = None) -> Rule | None:
    """The memory predicate of ``[cluster] max_gpu_memory_gib``; None without a limit or an
    estimate (:func:`memory_bytes`). A candidate without an estimate counts as infeasible."""
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    estimate = memory_bytes(experiment, cwd) if limit is not None else None
    if estimate is None:
        return None
    from nas.models.footprint import usable_bytes

    usable = usable_bytes(limit, margin)
    refused = (
        f"estimated peak memory per GPU exceeds memory_margin {margin:g}"
        f" of max_gpu_memory_gib = {limit:g} GiB"
    )

    unknown = (
        "the parameters describe no network of the family"
        if has_cost_model(experiment)
        else f"[model] costs gives no {MEMORY_COST} for it"
    )

    def fits_memory(params: Params) -> str | None:
        found = estimate(params)
        if found is None:
            return unknown
        return None if found <= usable else refused

    return fits_memory


def memory_bytes(
    experiment: Experiment, cwd: Path | None = None
) -> Callable[[Params], float | None] | None:
    """A candidate's estimated peak memory per GPU in bytes (None: no estimate for it).

    A built-in family's from the cost model; an own model's from the
    ``memory_gib`` its ``[model] costs`` function returns. None when neither
    gives one: ``max_gpu_memory_gib`` then cannot be applied
    (:func:`memory_warnings`).

    Raises:
        ConfigError: the number of classes is unknown (the cost model needs it),
            or the ``[model] costs`` function cannot be loaded.
    """
    if has_cost_model(experiment):
        if experiment.num_classes() is None:
            raise ConfigError(
                experiment.source, "model", "num_classes", "needed by [cluster] max_gpu_memory_gib"
            )
        estimate = estimator(experiment)

        def built_in(params: Params) -> float | None:
            cost = estimate(params)
            return None if cost is None else float(cost.memory_bytes)

        return built_in
    users = user_costs(experiment, cwd)
    if users is None or MEMORY_COST not in users.names:
        return None
    gib = users.cost(MEMORY_COST)

    def own(params: Params) -> float | None:
        from nas.models.footprint import BYTES_PER_GIB

        value = gib(params)
        return value * BYTES_PER_GIB if math.isfinite(value) else None

    return own


def memory_warnings(experiment: Experiment, cwd: Path | None = None) -> list[str]:
    """``[cluster] max_gpu_memory_gib`` that nothing can apply: an own model whose ``[model]
    costs`` gives no ``memory_gib`` (a failing function is :func:`cost_problems`' to report).

    Without an estimate the limit would refuse nothing and say nothing.
    """
    if experiment.cluster.max_gpu_memory_gib is None:
        return []
    try:
        if memory_bytes(experiment, cwd) is not None:
            return []
    except ConfigError:
        return []
    return [
        f"{experiment.source}: [cluster] max_gpu_memory_gib has no effect: it needs a "
        f"built-in [model] family or a [model] costs function that returns {MEMORY_COST} "
        "(the estimated peak memory per GPU in GiB)"
    ]


def memory_problem(experiment: Experiment) -> ConfigError | None:
    """``[cluster] max_gpu_memory_gib`` that no point of the initial design fits, or None.

    Every design point would be marked infeasible and the search could not
    start. Call after :func:`feasibility` accepted the experiment.
    """
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    estimate = memory_bytes(experiment) if limit is not None else None
    if estimate is None:
        return None
    from nas.models.footprint import BYTES_PER_GIB, usable_bytes
    from nas.search.optimizer import SplineOptimizer  # scipy.stats: slow to import

    settings = experiment.experiment.search_settings()
    design = SplineOptimizer(experiment.space, settings).initial_design()
    found = [b for b in map(estimate, design) if b is not None]
    if not found or min(found) <= usable_bytes(limit, margin):
        return None  # no estimate at all: the coordinates' own problem
    gib = [b / BYTES_PER_GIB for b in found]
    return ConfigError(
        experiment.source,
        "cluster",
        "max_gpu_memory_gib",
        f"no point of the initial design fits in {limit:g} GiB (memory_margin {margin:g} of "
        f"it): the largest estimate is {max(gib):.3g} GiB, the smallest {min(gib):.3g} GiB",
    )


@dataclass
class UserRule:
    """``[model] feasible``: the user's function called on candidates, its failures counted.

    Whatever the function raises, or an answer that is none, refuses that
    candidate with the reason; each distinct failure is logged once (up to
    :data:`MAX_FAILURES_SAID`), so a rule that breaks for many candidates is
    seen beyond ``show``.
    """

    function: UserFunction
    fixed: dict[str, Any]
    #: Candidates refused because the function failed, by the failure (the first few).
    failures: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def __call__(self, params: Params) -> str | None:
        spec = self.function.spec
        try:
            return _answer(spec, self.function({**self.fixed, **params}))
        except ValueError as exc:  # UserCodeError: what the function raised; else its answer
            return self._failed(f"{spec} {exc}", params)

    def _failed(self, reason: str, params: Params) -> str:
        """Count a failure; log it when it is a new one of the first few."""
        self.failed += 1
        if reason in self.failures:
            self.failures[reason] += 1
        elif len(self.failures) < MAX_FAILURES_SAID:
            self.failures[reason] = 1
            log.warning("[model] feasible: %s (for %s); such candidates are infeasible: fix "
                        "the function (each distinct failure is logged once)", reason,
                        dict(params))  # fmt: skip
        return reason

    def note(self) -> str | None:
        """How often the function failed, with the failures; None when it never did."""
        if not self.failed:
            return None
        said = "; ".join(f"{reason} ({count}x)" for reason, count in self.failures.items())
        return (f"[model] feasible {self.function.spec} failed for {self.failed} candidates, "
                f"which count as infeasible: {said}")  # fmt: skip


def _user_rule(experiment: Experiment, cwd: Path | None) -> UserRule | None:
    """``[model] feasible`` imported and called on the first design point, wrapped so that
    nothing it does stops the controller.

    Raises:
        ConfigError: the import fails, or the call on the first design point
            raises or answers what is no answer (every candidate would fail alike).
    """
    model = experiment.model
    if model is None or model.feasible is None:
        return None
    spec, fixed = model.feasible, dict(model.fixed)
    function = load_function(spec, code_folder(experiment, cwd), experiment.source, "feasible")
    first = {**fixed, **experiment.space.initial_design()[0]}
    try:
        _answer(spec, function(first))
    except UserCodeError as exc:
        raise ConfigError(experiment.source, "model", "feasible",
                          f"{spec} raised {exc.kind} for {first}: {exc.detail}") from None  # fmt: skip
    except ValueError as exc:
        raise ConfigError(experiment.source, "model", "feasible",
                          f"{spec} {exc} (for {first})") from None  # fmt: skip
    return UserRule(function, fixed)


def _answer(spec: str, answer: Any) -> str | None:
    """None for a trainable candidate, else the reason, from what the user's function returned.

    A numpy bool (``np.prod(...) <= 256``) is the bool it holds.

    Raises:
        ValueError: the answer is neither None, a bool nor a string.
    """
    if _numpy_bool(answer):
        answer = bool(answer)
    if answer is None or answer is True:
        return None
    if answer is False:
        return f"refused by {spec}"
    if isinstance(answer, str):
        return answer or f"refused by {spec}"
    raise ValueError(f"returned {answer!r}; expected None, True or False, or a reason (a string)")


def _numpy_bool(answer: Any) -> bool:
    """Whether ``answer`` is one numpy boolean (``np.True_``, a 0-d bool array), without
    importing numpy."""
    return (
        type(answer).__module__ == "numpy"
        and getattr(answer, "shape", None) == ()
        and getattr(getattr(answer, "dtype", None), "kind", None) == "b"
    )
