"""``--json`` on a failure: the one document on stdout says the error and the exit code.

The line for people stays on stderr; ``best`` and ``fsck`` keep their own
documents, which carry the answer (none) themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, command_experiment, experiment_toml, init_state, run

from nas.commands import main as main_module

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, metric="loss", goal="minimize")


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    return init_state(tmp_path, capsys, TOML)


def _error(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict, str]:
    code, out, err = run(capsys, *argv)
    return code, json.loads(out), err


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["status", "--state", "{missing}"], 1, "no state file at"),
        (["show", "--state", "{toy}", "99"], 1, "no point with id 99"),
        (["show", "--state", "{toy}", "abc"], 2, "argument ID: 'abc' is not a whole number"),
        (["predict", "--state", "{toy}", "--params", "x=0,y=0"], 1, "cannot predict yet"),
        (["front", "--state", "{toy}", "--pool", "0"], 2, "--pool must be from 1"),
        (["export", "--state", "{toy}", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["init", "{bad}", "--state", "{new}"], 1, "[space.0] low"),
        (["init", "{unready}", "--state", "{new}"], 1, "no-such-trainer"),
    ],
)
def test_a_failure_under_json_is_one_document_on_stdout(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], code: int, said: str
) -> None:
    (tmp_path / "bad.toml").write_text(TOML.replace("low = -2.0", 'low = "a"', 1))
    unready = command_experiment("unready", ["no-such-trainer", "{x}"], {"x": FLOAT_BOX})
    (tmp_path / "unready.toml").write_text(unready)
    paths = {"missing": tmp_path / "nope.h5", "toy": toy, "new": tmp_path / "new.h5"}
    paths |= {name: tmp_path / f"{name}.toml" for name in ("bad", "unready")}
    argv = [word.format(**{k: str(v) for k, v in paths.items()}) for word in argv]
    got, document, err = _error(capsys, *argv, "--json")
    assert (got, document["exit_code"]) == (code, code)
    assert said in document["error"] and said in err
    assert list(document) == ["error", "exit_code"]


def test_best_and_fsck_keep_their_documents(toy: Path, capsys: pytest.CaptureFixture) -> None:
    code, document, _ = _error(capsys, "best", "--state", str(toy), "--json")
    assert code == 1 and document == {
        "state": str(toy),
        "where": [],
        "best": None,
        "without_cost": {},
    }
    missing = str(toy.with_name("nope.h5"))
    code, document, _ = _error(capsys, "fsck", "--state", missing, "--json")
    assert code == 1 and document["state"]["status"] == "missing"


def test_without_json_stdout_stays_empty(toy: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "show", "--state", str(toy), "99")
    assert (code, out) == (1, "") and err == "splinenas show: error: no point with id 99\n"


@pytest.mark.parametrize("step", ["single_blas_thread", "build_parser"])
def test_ctrl_c_while_the_modules_load_exits_quietly(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(main_module, step, interrupted)
    try:
        code, out, err = run(capsys, "status", "--state", str(toy), "--json")
    except KeyboardInterrupt:  # caught here: it would end the test session
        pytest.fail("the interrupt escaped main() (a traceback for the user)")
    assert (code, out, err) == (1, "", "interrupted\n")
