"""Experiment files written from Python values, and the CLI run in-process.

Shared by the tests that need a small experiment (state, study, commands)
rather than a particular file's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from nas.commands.main import main

#: A float dimension on [-2, 2]: the toy searches take two of them, ``x`` and ``y``.
FLOAT_BOX = {"type": "float", "low": -2.0, "high": 2.0}


def toml_value(value: object) -> str:
    """``value`` as TOML: JSON's numbers, strings and arrays are TOML's, booleans are lower case."""
    return str(value).lower() if isinstance(value, bool) else json.dumps(value)


def experiment_toml(
    name: str, space: Mapping[str, Mapping[str, object]], **settings: object
) -> str:
    """An ``[experiment]`` table named ``name`` with ``settings``, then one ``[[space]]`` per dim.

    ``space`` maps each dimension's name to its keys, e.g. ``{"x": FLOAT_BOX}``. The
    design is the corner design unless ``settings`` names one: these tests count on its
    2d+3 points (the default, a space-filling design, has its own tests).
    """
    settings = {"design": "corners", **settings}
    lines = ["[experiment]", f"name = {toml_value(name)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    for dim, keys in space.items():
        lines += ["[[space]]", f"name = {toml_value(dim)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``splinenas ARGV`` in this process: exit code, stdout and stderr of that call alone."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def init_state(folder: Path, capsys: pytest.CaptureFixture, text: str) -> Path:
    """``splinenas init`` of the experiment ``text`` (as ``toy.toml``) into ``folder/toy.h5``."""
    (folder / "toy.toml").write_text(text)
    state = folder / "toy.h5"
    code, out, err = run(capsys, "init", str(folder / "toy.toml"), "--state", str(state))
    assert (code, out.strip()) == (0, str(state)), err
    return state


#: A log-scale learning rate: the searched dimension of the ``[train] command`` tests.
LOG_LR = {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}


def command_experiment(
    name: str,
    command: list[str],
    space: Mapping[str, Mapping[str, object]],
    *,
    cluster: Mapping[str, object] | None = None,
    fixed: Mapping[str, object] | None = None,
    **settings: object,
) -> str:
    """An experiment whose points run ``command`` (``[train] command``) on ``cluster``."""
    text = experiment_toml(name, space, **settings)
    if fixed:
        values = ", ".join(f"{key} = {toml_value(value)}" for key, value in fixed.items())
        text += f"[model]\nfixed = {{ {values} }}\n"
    text += f"[train]\ncommand = {toml_value(command)}\n[cluster]\n"
    return text + "".join(f"{key} = {toml_value(v)}\n" for key, v in (cluster or {}).items())
