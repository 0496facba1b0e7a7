"""The trainer contract (version 1): what every rank's command gets, and its ``{name}`` fields.

Any command can train a candidate (README, "Search your own model"). Every
rank runs ``[train] command`` (an argv list, never a shell line) through the
launch wrapper :mod:`nas.trial.launch`, which sets in its environment:

* ``SPLINENAS_POINT_DIR``: the point folder, holding ``point.json`` (``params``
  and ``fixed``) and receiving ``result.json`` from rank 0;
* ``SPLINENAS_DEADLINE``: UNIX seconds by which to checkpoint and exit
  "incomplete" (exit code 3); the scheduler's warning signal (SIGUSR2) and
  SIGTERM are passed on to the command as well;
* ``SPLINENAS_CONTRACT``: this contract's version;
* ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
  ``MASTER_ADDR``, ``MASTER_PORT``: the ``torch.distributed`` env://
  rendezvous, derived once from the launcher (:mod:`nas.pointdir.rendezvous`).

Exit codes are those of :mod:`nas.pointdir.layout` (0 complete, 3 incomplete,
4 out of memory, 5 diverged, anything else failed). The built-in trainer is
one command among others: ``<python> -m nas.train``.

A ``{name}`` field in an argument is filled from the point's ``params`` and
``[model] fixed`` (params win); ``{seed}`` is the point's training seed, the
``seed`` of ``point.json`` (``[train] seed``, plus one on the retry after a
divergence, so a trainer that takes its seed on the command line gets the new
one too); ``{name:spec}`` formats a number with a Python format spec
(``{lr:.2e}``), ``{{`` and ``}}`` are literal braces. Numbers are written as
Python prints them (``0.001``, ``1e-05``), booleans as ``true``/``false``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

CONTRACT_VERSION = 1
CONTRACT_VAR = "SPLINENAS_CONTRACT"
POINT_DIR_VAR = "SPLINENAS_POINT_DIR"
DEADLINE_VAR = "SPLINENAS_DEADLINE"
#: The env:// rendezvous every rank's command finds set.
RENDEZVOUS_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                   "MASTER_PORT")  # fmt: skip
#: The module every rank runs in front of the command: ``python -m nas.trial.launch``.
LAUNCH_MODULE = "nas.trial.launch"
#: The built-in trainer's command after the interpreter.
BUILTIN_COMMAND = ("-m", "nas.train")

Scalar = bool | int | float | str

#: The field every command may name besides the parameters: the point's training seed.
SEED_FIELD = "seed"


def command_values(
    params: Mapping[str, Scalar], fixed: Mapping[str, Scalar], seed: int
) -> dict[str, Scalar]:
    """What a point's ``{name}`` fields are filled from: ``fixed`` overridden by ``params``,
    and :data:`SEED_FIELD` (``init`` refuses a parameter of that name where the command
    names the field)."""
    return {**fixed, **params, SEED_FIELD: seed}


class TemplateError(ValueError):
    """A ``[train] command`` argument whose ``{...}`` cannot be filled; names the argument."""

    def __init__(self, index: int, argument: str, message: str) -> None:
        super().__init__(f"argument {index} {argument!r}: {message}")
        self.index, self.argument, self.detail = index, argument, message


def template_fields(argv: Sequence[str]) -> list[tuple[int, str]]:
    """(argument index, field name) of every ``{name}`` in ``argv``, in order.

    Raises:
        TemplateError: unbalanced braces, an empty ``{}``, a conversion
            (``{x!r}``) or an attribute/index (``{x.y}``, ``{x[0]}``).
    """
    return [(index, name) for index, name, _ in formatted_fields(argv)]


def formatted_fields(argv: Sequence[str]) -> list[tuple[int, str, str]]:
    """(argument index, field name, format spec or '') of every ``{name}`` in ``argv``.

    Raises:
        TemplateError: what :func:`template_fields` refuses.
    """
    found = []
    for index, argument in enumerate(argv):
        found += [(index, name, spec) for name, spec in _fields(index, argument)]
    return found


def _fields(index: int, argument: str) -> list[tuple[str, str]]:
    try:
        parsed = list(string.Formatter().parse(argument))
    except ValueError as exc:
        raise TemplateError(
            index, argument, f"{exc} (write {{{{ and }}}} for literal braces)"
        ) from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise TemplateError(index, argument, f"{{{name}}} is not a field; use {{name}}")
        if conversion is not None:
            raise TemplateError(index, argument, f"{{{name}!{conversion}}}: no conversions")
        if "{" in (spec or ""):
            raise TemplateError(index, argument, f"{{{name}:{spec}}}: no nested fields")
        fields.append((name, spec or ""))
    return fields


def fill_command(argv: Sequence[str], values: Mapping[str, Scalar]) -> list[str]:
    """``argv`` with every ``{name}`` replaced by ``values[name]``.

    Raises:
        TemplateError: a field that names no value, or a format spec that does
            not suit the value.
    """
    filled = []
    for index, argument in enumerate(argv):
        parts = []
        for literal, name, spec, _ in string.Formatter().parse(argument):
            parts.append(literal)
            if name is None:
                continue
            _fields(index, argument)  # the checks of template_fields
            if name not in values:
                known = ", ".join(sorted(values)) or "none"
                raise TemplateError(
                    index, argument, f"{{{name}}} names no parameter; known: {known}"
                )
            parts.append(format_value(values[name], spec or "", index, argument))
        filled.append("".join(parts))
    return filled


def format_value(value: Scalar, spec: str, index: int = 0, argument: str = "") -> str:
    """One value as the command gets it (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not spec:
        return repr(value) if isinstance(value, float) else str(value)
    try:
        return format(value, spec)
    except (ValueError, OverflowError) as exc:  # {n:c} past U+10FFFF overflows
        raise TemplateError(
            index, argument, f"format {spec!r} does not suit {value!r}: {exc}"
        ) from None
