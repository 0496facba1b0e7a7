"""One name rule, one line rule and one user-error base class, read alike everywhere.

Every check of a job name (the job script, the keep-alive job, a submission)
says what :func:`nas.names.name_problem` says; every check of a one-line value
what :func:`nas.names.line_problem` says. Every layer's error type is a
:class:`nas.errors.UserError`, which each command reports as one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import pytest

from nas.cluster import LocalScheduler, keepalive
from nas.cluster.render import ScriptError, check_line, check_name
from nas.commands.common import EXIT_FAILURE, reported
from nas.config import ControllerConfig
from nas.errors import UserError
from nas.names import line_problem, name_problem

BAD_NAMES = ["a b", "x;y", "", "é", "a\nb", "$(id)"]
#: Control characters, and the separators at which ``str.splitlines`` breaks a line too.
BAD_LINES = ["a\nb", "a\rb", "a\0b", "a\x1bb", "a\tb", "a\x7fb", "a\u2028b", "a\u2029b", "a\x85b"]


@pytest.mark.parametrize("name", ["toy", "exp-1.p0_r2", "A9"])
def test_names_pass(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 3])
def test_every_bad_name_gets_the_one_message(name: object) -> None:
    assert name_problem(name) == f"expected letters, digits, '_', '.' or '-', got {name!r}"


@pytest.mark.parametrize("text", ["", "/a b/c", "x'; echo y", "ümlaut $HOME"])
def test_lines_pass(text: str) -> None:
    assert line_problem(text) is None
    assert line_problem(Path(text or ".")) is None


@pytest.mark.parametrize("text", BAD_LINES)
def test_every_control_character_breaks_a_line(text: str) -> None:
    assert line_problem(text) == f"expected one line without control characters, got {text!r}"


def _job(tmp_path: Path, **changes: object) -> keepalive.KeepAliveJob:
    fields: dict[str, object] = {
        "backend": "slurm",
        "state_path": tmp_path / "s.h5",
        "script_path": tmp_path / "k.sh",
        "log_path": tmp_path / "c.log",
        "workdir": tmp_path,
        "job_name": "toy-controller",
        "python": "python3",
        "walltime_minutes": 60,
        "margin_seconds": 60,
        "poll": 5.0,
        "controller": ControllerConfig(),
    }
    return keepalive.KeepAliveJob(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_each_job_name_check_says_the_rule(tmp_path: Path, name: str) -> None:
    message = name_problem(name)
    assert message is not None
    with pytest.raises(ScriptError) as script:
        check_name(name, "job_name")
    with pytest.raises(keepalive.KeepAliveError) as keep:
        keepalive.render(_job(tmp_path, job_name=name))
    (tmp_path / "x.sh").write_text("#!/bin/bash\n")
    with pytest.raises(ValueError) as submit:
        LocalScheduler(tmp_path / "jobs").submit(tmp_path / "x.sh", job_name=name, cwd=tmp_path)
    for raised in (script, keep, submit):
        assert str(raised.value).endswith(message)


@pytest.mark.parametrize("text", BAD_LINES)
def test_each_line_check_says_the_rule(tmp_path: Path, text: str) -> None:
    message = line_problem(text)
    assert message is not None
    with pytest.raises(ScriptError) as script:
        check_line(text, "point_dir")
    bad_path = tmp_path / f"c{text}.log"
    with pytest.raises(keepalive.KeepAliveError) as keep:
        keepalive.render(dataclasses.replace(_job(tmp_path), log_path=bad_path))
    assert str(script.value) == f"point_dir: {message}"
    assert str(keep.value) == f"path: {line_problem(bad_path)}"


#: Every error type that a command reports as one line: (module, class name).
USER_ERRORS = [
    ("nas.config", "ConfigError"),
    ("nas.record.state", "StateError"),
    ("nas.record.lock", "LockError"),
    ("nas.cluster.base", "SchedulerError"),
    ("nas.cluster.base", "SubmissionInFlight"),
    ("nas.cluster.base", "KeepAliveError"),
    ("nas.cluster.render", "ScriptError"),
    ("nas.control.policy", "StudyError"),
    ("nas.control.inbox", "RequestError"),
    ("nas.control.imports", "RowsError"),
    ("nas.data.index", "ImageIndexError"),
    ("nas.models", "ModelConfigError"),
    ("nas.report.plots", "PlotError"),
    ("nas.search.propose", "SearchError"),
    ("nas.search.space", "SpaceError"),
    ("nas.search.spline", "SplineError"),
]


@pytest.mark.parametrize(("module", "name"), USER_ERRORS)
def test_every_layer_error_is_a_user_error(module: str, name: str) -> None:
    assert issubclass(getattr(importlib.import_module(module), name), UserError)


def test_reported_turns_a_user_error_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.search.spline import SplineError

    @reported
    def handler(args: argparse.Namespace) -> int:
        raise SplineError("need at least 3 points")

    assert handler(argparse.Namespace(command="predict")) == EXIT_FAILURE
    assert capsys.readouterr().err == "splinenas predict: error: need at least 3 points\n"


def test_reported_keeps_the_traceback_of_a_bug() -> None:
    @reported
    def handler(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        handler(argparse.Namespace(command="status"))
