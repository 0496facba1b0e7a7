"""Functions of the user's own code that the controller calls: ``package.module:function``.

``[model] feasible`` and ``[model] costs`` name a function the controller
imports in its own process (training runs in separate processes,
:mod:`nas.trial.launch`). The import looks first in the folder the search
runs in (:func:`code_folder`): the one ``init`` and ``run`` ran in, which the
state records, so that ``status`` or ``best`` started in another folder
imports the module the controller imported, never a namesake found where
they happen to run. A module that cannot be imported, for any reason, and a
name that is no function are one line naming the file, table and key.

Every call into the user's code (the import included) goes through
:class:`UserFunction`: what it prints goes to stderr, since stdout carries the
one document of ``--json``; whatever it raises, ``SystemExit`` included (not a
Ctrl-C), becomes a :class:`UserCodeError` for the caller to refuse or leave
uncosted that one candidate, so no user code stops the controller; and slow
calls are said in the log, since the optimiser asks about thousands of
candidates per proposal. :class:`Answers` keeps the answers by the candidate's
params, so no candidate is asked about twice.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from nas.config import ConfigError, Experiment
from nas.names import shown

log = logging.getLogger(__name__)

#: Answers kept per function (a few hundred bytes each).
MAX_ANSWERS = 100_000
#: Seconds of the user's calls after which the log first says they are slow; each later
#: warning comes after twice the time of the one before (so a slow rule is said a few times,
#: not once per window).
SLOW_SECONDS = 10.0

T = TypeVar("T")


def code_folder(experiment: Experiment, cwd: Path | None = None) -> Path:
    """Where the search's own code is imported from: ``cwd`` when a caller gives it
    (``init`` and ``run``, which record the folder they run in), else the folder
    the state records (:attr:`Experiment.folder`), else the working directory (an
    experiment file, or a state written before the folder was recorded)."""
    if cwd is not None:
        return cwd
    return Path(experiment.folder) if experiment.folder is not None else Path.cwd()


@contextmanager
def _import_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path``, and the working directory off it unless it is ``folder``.

    ``python -m nas`` puts the working directory on the path: a reader started
    in another folder would import a namesake from there where the search's
    folder lacks the module, and compute what the controller never computed.
    """
    here = {"", ".", os.getcwd()} - {str(folder)}
    removed = [(i, entry) for i, entry in enumerate(sys.path) if entry in here]
    for i, _ in reversed(removed):
        del sys.path[i]
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for i, entry in removed:
            sys.path.insert(i, entry)


class UserCodeError(ValueError):
    """The user's function raised: ``kind`` is the exception's type name, ``detail`` its text."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"raised {kind}: {detail}")
        self.kind, self.detail = kind, detail


@contextmanager
def _users_code() -> Iterator[None]:
    """Run the user's code: its prints to stderr, anything it raises but a Ctrl-C as
    :class:`UserCodeError` (``sys.exit()`` in a rule must not end the controller)."""
    try:
        with redirect_stdout(sys.stderr):
            yield
    except BaseException as exc:  # noqa: BLE001 - the user's code: SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserCodeError(type(exc).__name__, str(exc)) from None


@dataclass
class UserFunction:
    """``[model] key = "spec"`` as the controller calls it (:func:`_users_code`), timed."""

    spec: str
    key: str
    function: Callable[[Mapping[str, Any]], Any]
    calls: int = 0
    seconds: float = 0.0
    #: Seconds of calls at which the log next says they are slow.
    _warn_at: float = SLOW_SECONDS

    def __call__(self, values: Mapping[str, Any]) -> Any:
        """The function's answer for ``values``.

        Raises:
            UserCodeError: it raised (anything but KeyboardInterrupt).
        """
        started = time.perf_counter()
        try:
            with _users_code():
                return self.function(values)
        finally:
            self._count(time.perf_counter() - started)

    def _count(self, seconds: float) -> None:
        """Add one call; say in the log when the calls have taken long."""
        self.calls += 1
        self.seconds += seconds
        if self.seconds < self._warn_at:
            return
        self._warn_at = 2 * self.seconds
        log.warning(
            "[model] %s %s: %d calls took %.0f s (%.3g s each); it is asked about every "
            "candidate the optimiser screens, thousands per proposal: make it fast (no model "
            "build, no I/O)", self.key, self.spec, self.calls, self.seconds,
            self.seconds / self.calls,
        )  # fmt: skip


@dataclass
class Answers(Generic[T]):
    """Answers of a user's function kept by the candidate's params, at most
    :data:`MAX_ANSWERS` (then all are forgotten at once)."""

    _kept: dict[tuple[tuple[str, Any], ...], T] = field(default_factory=dict)

    def get(self, params: Mapping[str, Any], compute: Callable[[], T]) -> T:
        """The kept answer for ``params``, else ``compute()``'s, kept."""
        key = tuple(sorted(params.items()))
        if key not in self._kept:
            if len(self._kept) >= MAX_ANSWERS:
                self._kept.clear()
            self._kept[key] = compute()
        return self._kept[key]


def load_function(spec: str, folder: Path, source: str, key: str) -> UserFunction:
    """Import ``package.module:function`` (the value of ``[model] key``) with ``folder`` first
    on the path (:func:`code_folder`).

    Raises:
        ConfigError: the import fails (any exception, said in one line, with the
            folder it looked in) or the name is no callable.
    """
    module_name, _, name = spec.partition(":")
    try:
        with _import_path(folder), _users_code():
            module = importlib.import_module(module_name)
    except UserCodeError as exc:
        raise ConfigError(source, "model", key,
                          f"cannot import {module_name!r}: {exc.kind}: {exc.detail} "
                          f"(looked first in {shown(folder)})") from None  # fmt: skip
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(source, "model", key, f"{module_name!r} has no function {name!r}")
    return UserFunction(spec, key, function)
