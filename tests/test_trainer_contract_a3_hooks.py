"""``[model] feasible`` and ``costs``: the user's functions cannot stop, flood or stall the
controller (a ``sys.exit()``, a numpy bool, prints on stdout, failures and slow calls).

Each rule is a module written into the test's folder under a name of its own: the
controller imports it as a search does, and no test sees another's module.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands import main as main_module
from nas.commands.main import main
from nas.config import parse_experiment
from nas.control import usercode
from nas.control.costs import user_costs
from nas.control.feasible import Feasibility, feasibility

_NUMBERS = itertools.count()
#: Candidates the controller's feasibility cache kept before (an LRU of 4096).
OLD_CACHE = 4096


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a module of rules into ``tmp_path`` (the working folder); returns its name."""
    monkeypatch.chdir(tmp_path)
    names: list[str] = []

    def write(code: str) -> str:
        name = f"a3rules{next(_NUMBERS)}"
        (tmp_path / f"{name}.py").write_text(code)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def experiment_text(model: str) -> str:
    """A command search over a learning rate and a width, with ``[model]`` lines ``model``."""
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment("a3", ["true", "{lr}", "{width}"], space, metric="score")
    return text + f"\n[model]\n{model}\n"


def rule_of(tmp_path: Path, module: str, function: str) -> Feasibility:
    """The controller's feasibility of ``[model] feasible = "module:function"``."""
    experiment = parse_experiment(experiment_text(f'feasible = "{module}:{function}"'))
    found = feasibility(experiment, tmp_path)
    assert found is not None
    return found


ARMED = '''
import sys
ARMED = False


def rule(values):
    """Passes init's call on the first design point, then exits as some rules do."""
    if ARMED:
        sys.exit(EXIT)
    return None
'''


@pytest.mark.parametrize("code", ['"I do not handle this width"', "0"])
def test_a_feasible_rule_that_exits_refuses_the_candidate(
    tmp_path: Path, rules: Callable[[str], str], code: str
) -> None:
    """Finding 6: ``sys.exit()`` in the rule ended the controller (a traceback, or exit 0)."""
    module = rules(ARMED.replace("EXIT", code))
    rule = rule_of(tmp_path, module, "rule")
    sys.modules[module].ARMED = True
    params = {"lr": 0.01, "width": 9}
    assert not rule(params)
    expected = code.strip('"')
    assert rule.reason(params) == f"{module}:rule raised SystemExit: {expected}"


def test_a_costs_function_that_exits_leaves_the_candidate_uncosted(
    tmp_path: Path, rules: Callable[[str], str]
) -> None:
    module = rules(ARMED.replace("EXIT", "0").replace("return None", 'return {"gflops": 1.0}'))
    experiment = parse_experiment(experiment_text(f'costs = "{module}:rule"'))
    costs = user_costs(experiment, tmp_path)
    assert costs is not None
    sys.modules[module].ARMED = True
    assert costs.answer({"lr": 0.01, "width": 9}) is None


@pytest.mark.parametrize(
    ("code", "status", "line"),
    [
        ("boom\nsecond line", 1, "splinenas run: error: boom second line"),
        (3, 3, None),
        (None, 0, None),
    ],
)
def test_a_system_exit_with_a_message_exits_1_with_one_line(
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    code: object,
    status: int,
    line: str | None,
) -> None:
    """``int(exc.code)`` failed on a message: a second traceback ended the command."""

    def leaves(args: argparse.Namespace) -> int:
        raise SystemExit(code)

    namespace = argparse.Namespace(command="run", json=line is not None, func=leaves)
    monkeypatch.setattr(main_module, "_parsed", lambda argv: namespace)
    assert main(["run"]) == status
    out, err = capsys.readouterr()
    if line is not None:
        assert err.splitlines() == [line]
        assert json.loads(out) == {"error": "boom second line", "exit_code": 1}


NUMPY = '''
import numpy as np


def fits(values):
    """Whether it fits, computed with numpy: a numpy bool."""
    return np.prod([values["width"], 4]) <= 32


def half(values):
    return 0.5
'''


def test_a_numpy_bool_is_read_as_the_bool_it_is(
    tmp_path: Path, rules: Callable[[str], str]
) -> None:
    """Finding 7: ``np.True_`` was 'returned np.True_; expected None or a reason'."""
    module = rules(NUMPY)
    rule = rule_of(tmp_path, module, "fits")
    assert rule({"lr": 0.01, "width": 8})
    assert not rule({"lr": 0.01, "width": 9})
    assert rule.reason({"lr": 0.01, "width": 9}) == f"refused by {module}:fits"


def test_init_refuses_a_feasible_rule_that_answers_no_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture, rules: Callable[[str], str]
) -> None:
    """Checked on the first design point, as ``costs`` is: else every point is infeasible."""
    module = rules(NUMPY)
    (tmp_path / "a3.toml").write_text(experiment_text(f'feasible = "{module}:half"'))
    assert main(["init", "a3.toml"]) == 1
    err = capsys.readouterr().err
    assert f"a3.toml: [model] feasible: {module}:half returned 0.5; expected None, True or " \
        "False, or a reason (a string) (for {" in err, err  # fmt: skip
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "state").exists()


BUGGY = '''
def rule(values):
    """A bug that only shows for some candidates (not the first design point)."""
    if values["width"] in (5, 6):
        raise KeyError(values["width"] % 2)
    return None
'''


def test_a_rule_that_raises_is_logged_once_per_failure_and_noted(
    tmp_path: Path, rules: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 7: only ``show ID`` said that the user's function raised."""
    rule = rule_of(tmp_path, rules(BUGGY), "rule")
    assert rule.notes() == []
    with caplog.at_level(logging.WARNING):
        for lr in (0.01, 0.02, 0.03):
            for width in (5, 6):
                assert not rule({"lr": lr, "width": width})
    said = [r.getMessage() for r in caplog.records if "[model] feasible" in r.getMessage()]
    assert len(said) == 2, said  # KeyError: 1 and KeyError: 0
    assert all("raised KeyError" in line and "infeasible" in line for line in said)
    (note,) = rule.notes()
    assert "failed for 6 candidates" in note
    assert "raised KeyError: 1 (3x)" in note and "raised KeyError: 0 (3x)" in note


PRINTS = """
def rule(values):
    print(f"checking {values}")
    return None


def costs(values):
    print("computing costs")
    return {"gflops": float(values["width"])}
"""


def test_what_the_users_functions_print_stays_off_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture, rules: Callable[[str], str]
) -> None:
    """Finding 8: their prints broke the one document of ``--json``."""
    module = rules("print('importing')\n" + PRINTS)
    model = f'feasible = "{module}:rule"\ncosts = "{module}:costs"'
    (tmp_path / "a3.toml").write_text(experiment_text(model))
    assert main(["init", "a3.toml", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["experiment"] == "a3"
    assert "checking" in err and "computing costs" in err and "importing" in err


COUNTED = """
CALLS = []


def rule(values):
    CALLS.append(dict(values))
    return None
"""


def test_the_rules_answers_are_kept_by_params(tmp_path: Path, rules: Callable[[str], str]) -> None:
    """Finding 9: about 7,000 calls a proposal; an answer once given is not asked again
    (the cache of 4096 answers had forgotten it)."""
    module = rules(COUNTED)
    rule = rule_of(tmp_path, module, "rule")
    calls = sys.modules[module].CALLS
    calls.clear()
    candidates = [{"lr": 1e-4 * (1 + i), "width": 2 + i % 9} for i in range(OLD_CACHE + 10)]
    for params in candidates:
        assert rule(params)
    assert len(calls) == len(candidates)
    assert rule(dict(reversed(list(candidates[0].items()))))  # another order: the same key
    assert len(calls) == len(candidates)


def test_slow_calls_are_said_in_the_log_a_few_times(
    tmp_path: Path,
    rules: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Finding 9: nothing was logged while a slow rule stalled the controller for hours."""
    module = rules(COUNTED)
    rule = rule_of(tmp_path, module, "rule")
    clock = itertools.count(step=0.5)  # every call takes half a second
    monkeypatch.setattr(usercode, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with caplog.at_level(logging.WARNING):
        for width in range(100):
            rule({"lr": 0.01, "width": width})
    said = [r.getMessage() for r in caplog.records if "calls took" in r.getMessage()]
    assert len(said) == 3, said  # at 10 s, 20 s and 40 s of calls: not one per call
    assert re.match(rf"\[model\] feasible {module}:rule: \d+ calls took 10 s", said[0]), said
    assert "thousands per proposal" in said[0]
