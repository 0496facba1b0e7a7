"""Functions of the user's own code that the controller calls: ``package.module:function``.

``[model] feasible`` and ``[model] costs`` name a function the controller
imports in its own process (training runs in separate processes,
:mod:`nas.trial.launch`). The import looks in the folder ``splinenas`` runs
in first; a module that cannot be imported, for any reason, and a name that
is no function are one line naming the file, table and key.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nas.config import ConfigError


def load_function(
    spec: str, cwd: Path, source: str, key: str
) -> Callable[[Mapping[str, Any]], Any]:
    """Import ``package.module:function`` (the value of ``[model] key``) with ``cwd`` first on the path.

    Raises:
        ConfigError: the import fails (any exception, said in one line) or the
            name is no callable.
    """
    module_name, _, name = spec.partition(":")
    sys.path.insert(0, str(cwd))
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - user code at import: SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ConfigError(source, "model", key,
                          f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None  # fmt: skip
    finally:
        sys.path.remove(str(cwd))
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(source, "model", key, f"{module_name!r} has no function {name!r}")
    return function
