"""Functions of the user's own code that the controller calls: ``package.module:function``.

``[model] feasible`` and ``[model] costs`` name a function the controller
imports in its own process (training runs in separate processes,
:mod:`nas.trial.launch`). The import looks first in the folder the search
runs in (:func:`code_folder`): the one ``init`` and ``run`` ran in, which the
state records, so that ``status`` or ``best`` started in another folder
imports the module the controller imported, never a namesake found where
they happen to run. A module that cannot be imported, for any reason, and a
name that is no function are one line naming the file, table and key.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.config import ConfigError, Experiment
from nas.names import shown


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


def load_function(
    spec: str, folder: Path, source: str, key: str
) -> Callable[[Mapping[str, Any]], Any]:
    """Import ``package.module:function`` (the value of ``[model] key``) with ``folder`` first
    on the path (:func:`code_folder`).

    Raises:
        ConfigError: the import fails (any exception, said in one line, with the
            folder it looked in) or the name is no callable.
    """
    module_name, _, name = spec.partition(":")
    try:
        with _import_path(folder):
            module = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - user code at import: SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ConfigError(source, "model", key,
                          f"cannot import {module_name!r}: {type(exc).__name__}: {exc} "
                          f"(looked first in {shown(folder)})") from None  # fmt: skip
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(source, "model", key, f"{module_name!r} has no function {name!r}")
    return function
