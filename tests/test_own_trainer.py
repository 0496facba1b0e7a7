"""``[train] command``: a search over any command through ``init`` + ``run`` on the local backend.

The commands are real programs (the shell example, small shell scripts); the
controller, the job scripts and the launch wrapper are the real ones.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.cluster import LocalScheduler
from nas.commands.main import main
from nas.control import policy
from nas.control.cycle import Controller
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.record.store import StateStore

REPO = Path(__file__).resolve().parent.parent
SCORE = REPO / "examples" / "shell" / "score.sh"


def score(lr: float, width: int) -> float:
    """What ``examples/shell/score.sh`` computes."""
    return -((math.log10(lr) + 2) ** 2) - (width - 6) ** 2 / 4


def experiment(command: list[str], *, max_points: int = 7, extra: str = "") -> str:
    """A search of ``command`` over a log-scale learning rate and an integer width."""
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    cluster = {"max_attempts": 3, "max_concurrent_jobs": 5}
    text = command_experiment("own", command, space, cluster=cluster, metric="score",
                              max_points=max_points, batch_size=2)  # fmt: skip
    return text + extra


def status(capsys: pytest.CaptureFixture, state: Path) -> dict:
    capsys.readouterr()
    assert main(["status", "--state", str(state), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def search(tmp_path: Path, capsys: pytest.CaptureFixture, text: str) -> dict:
    """``init`` and ``run`` in ``tmp_path`` until the controller stops; ``status --json``."""
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 0
    state = tmp_path / "state" / "own.h5"
    main(["run", "--state", str(state), "--poll", "0.1"])
    return status(capsys, state)


def test_a_command_is_searched_with_init_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    document = search(tmp_path, capsys, experiment([str(SCORE), "{lr}", "{width}"]))
    points = document["points"]
    assert document["metric"] == "score" and len(points) == 7
    for point in points:
        assert point["status"] == "done", point
        assert point["value"] == pytest.approx(score(**point["params"]), abs=1e-9)
    folder = tmp_path / "state" / "own" / "points" / "0"
    written = json.loads((folder / "point.json").read_text())
    assert written["command"] == [str(SCORE), repr(points[0]["params"]["lr"]), "10"]
    assert "family" not in written and "data" not in written


#: Broken commands: (script body, the reason status shows). Each fails at once, never retried.
BROKEN = {
    "no result": ("exit 0", "the command exited 0 without writing result.json"),
    "no metric": ('echo \'{"metrics": {"loss": 1}}\' >"$SPLINENAS_POINT_DIR/result.json"',
                  "metrics has no 'score'"),
    "not a number": ('echo \'{"metrics": {"score": "high"}}\' >"$SPLINENAS_POINT_DIR/result.json"',
                     "metrics.score: expected a number, got 'high'"),
    "rank 1 wrote it": (
        'echo \'{"metrics": {"score": 1}, "rank": 1}\' >"$SPLINENAS_POINT_DIR/result.json"',
        "written by rank 1; only rank 0 writes result.json",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_contract_fails_the_point_with_a_reason_and_no_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.chdir(tmp_path)
    body, reason = BROKEN[case]
    script = tmp_path / "train.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    document = search(tmp_path, capsys, experiment(["./train.sh", "{lr}"], max_points=5))
    for point in document["points"]:
        assert point["status"] == "failed"
        assert reason in point["reason"] and "attempt" not in point["reason"], point["reason"]
        assert "Traceback" not in point["reason"]
    run = tmp_path / "state" / "own"
    assert len(list((run / "jobs").iterdir())) == 5  # one job per point: none retried


def test_a_result_written_before_a_failing_exit_is_kept_and_the_exit_said(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training that wrote its result and then crashed (a DDP teardown) measured its point."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.sh"
    script.write_text(f'#!/bin/sh\n"{SCORE}" "$@" && exit 7\n')
    script.chmod(0o755)
    document = search(tmp_path, capsys, experiment(["./train.sh", "{lr}", "{width}"], max_points=2))
    assert [p["status"] for p in document["points"]] == ["done", "done"]
    with StateStore.open(tmp_path / "state" / "own.h5") as store:
        ingests = [e.message for e in store.state.events if e.kind == "ingest"]
    assert len(ingests) == 2 and all("ended failed (" in m for m in ingests), ingests
    assert all("7" in m.split("ended failed (", 1)[1] for m in ingests), ingests


def test_a_command_that_cannot_be_found_fails_once(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = tmp_path / "site.env"
    env.write_text("true\n")  # with an env file, init leaves the lookup to the job
    extra = f'env_file = "{env}"\n'
    document = search(tmp_path, capsys, experiment(["no-such-trainer", "{lr}"]) + extra)
    reasons = {point["reason"] for point in document["points"]}
    assert all("command not found: 'no-such-trainer'" in r for r in reasons), reasons
    assert all(p["status"] == "failed" for p in document["points"])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["python3", "--depth={depth}"], r"\[train\] command: argument 1 '--depth=\{depth\}': "
                                         r"\{depth\} names no parameter; the \[\[space\]\] names "
                                         r"and \[model\] fixed keys are lr, width"),
        (["python3", "{lr!r}"], r"\[train\] command: argument 1 .*no conversions"),
        (["python3", "{lr"], r"\[train\] command: argument 1 .*literal braces"),
        (["no-such-program-x", "{lr}"], r"program 'no-such-program-x' is not found on PATH"),
        ([], r"\[train\] command: expected a non-empty list"),
    ],
)  # fmt: skip
def test_init_refuses_a_command_it_cannot_fill(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "own.toml").write_text(experiment(command))
    code = main(["init", "own.toml"])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert "own.toml" in err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("space", "argument", "message"),
    [
        ({"lr": LOG_LR}, "--lr={lr:d}", r"format 'd' does not suit 0\.0001"),
        ({"lr": LOG_LR, "opt": {"type": "categorical", "choices": [4, "auto"]}}, "{opt:03d}",
         r"format '03d' does not suit 'auto'"),
    ],
)  # fmt: skip
def test_init_fills_the_command_with_every_value_not_only_the_first_point(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    space: dict,
    argument: str,
    message: str,
) -> None:
    """A format one value does not suit failed the point that drew it, mid-search (and every
    restart of the controller with it)."""
    monkeypatch.chdir(tmp_path)
    text = command_experiment("own", [str(SCORE), argument], space, metric="score")
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"own\.toml: \[train\] command: argument 1 .*" + message, err), err
    assert "Traceback" not in err and not (tmp_path / "state").exists()


def test_an_empty_choice_is_an_empty_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "echo.sh").write_text(
        '#!/bin/sh\nprintf \'{"metrics": {"score": %s}}\' "$#" >"$SPLINENAS_POINT_DIR/result.json"\n'
    )
    (tmp_path / "echo.sh").chmod(0o755)
    space = {"lr": LOG_LR, "opt": {"type": "categorical", "choices": ["adam", ""]}}
    text = command_experiment("own", ["./echo.sh", "{opt}", "{lr}"], space, metric="score",
                              max_points=4, design="corners")  # fmt: skip
    document = search(tmp_path, capsys, text)
    values = {point["params"]["opt"]: point["value"] for point in document["points"]}
    assert values == {"adam": 2, "": 2}  # two arguments either way: '' is one


def test_expand_refuses_a_box_the_command_cannot_be_filled_with(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{n:c}`` takes code points: past U+10FFFF no argument can be written."""
    monkeypatch.chdir(tmp_path)
    space = {"lr": LOG_LR, "n": {"type": "int", "low": 65, "high": 90}}
    (tmp_path / "own.toml").write_text(
        command_experiment("own", [str(SCORE), "{lr}", "{n:c}"], space, metric="score")
    )
    assert main(["init", "own.toml"]) == 0
    state = str(tmp_path / "state" / "own.h5")
    before = status(capsys, Path(state))["points"]
    assert main(["expand", "--state", state, "--dim", "n", "--high", "2000000"]) == 1
    err = capsys.readouterr().err
    assert "expand refused: argument 2 '{n:c}': format 'c' does not suit 2000000" in err, err
    assert status(capsys, Path(state))["points"] == before
    assert main(["expand", "--state", state, "--dim", "n", "--high", "122"]) == 0  # 'z' fits


def test_a_point_whose_job_cannot_be_written_fails_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state made before ``init`` filled the command with every value: ``run`` refuses it in
    one line; a cycle that meets such a point fails it with the reason and trains the others."""
    monkeypatch.chdir(tmp_path)
    space = {"lr": LOG_LR, "opt": {"type": "categorical", "choices": [4, "auto"]}}
    text = command_experiment("own", [str(SCORE), "{lr}", "{opt}"], space, metric="score",
                              max_points=7, cluster={"max_attempts": 3})  # fmt: skip
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 0
    state = tmp_path / "state" / "own.h5"
    with StateStore.open(state) as store:  # the experiment as an older init accepted it
        store.state.experiment_text = store.state.experiment_text.replace("{opt}", "{opt:03d}")
        store.state.log("note", "[train] command given a format")  # a change to commit
        store.commit()
    capsys.readouterr()
    assert main(["run", "--state", str(state), "--once"]) == 1
    err = capsys.readouterr().err
    assert "[train] command: argument 2 '{opt:03d}': format '03d' does not suit 'auto'" in err
    assert "Traceback" not in err
    with StateStore.open(state) as store:
        experiment = policy.experiment_of(store.state, state)
        run = layout.run_dir(state)
        settings = JobSettings.resolved(experiment, tmp_path)  # without run's start-up check
        Controller(store, settings, LocalScheduler(layout.jobs_dir(run)), run).cycle()
        points = store.state.points
    auto = [p for p in points if p.params["opt"] == "auto"]
    four = [p for p in points if p.params["opt"] == 4]
    assert auto and four
    reasons = {e.point_id: e.message for e in store.state.events if e.point_id is not None}
    for point in auto:
        assert (point.status.value, point.attempts) == ("failed", 0)
        assert "its job cannot be prepared: argument 2 '{opt:03d}': format '03d' does not " \
            "suit 'auto'" in reasons[point.id]  # fmt: skip
    assert all(p.status.value == "submitted" for p in four), four


RULES = '''
def narrow(values):
    """Refuse the wide candidates, with a reason."""
    return f"width {values['width']} does not fit" if values["width"] > 8 else None


def broken(values):
    raise KeyError("depth")
'''


def test_a_feasibility_rule_of_the_user_refuses_candidates_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myrules.py").write_text(RULES)
    extra = '\n[model]\nfeasible = "myrules:narrow"\n'
    document = search(tmp_path, capsys, experiment([str(SCORE), "{lr}", "{width}"]) + extra)
    by_status: dict[str, list[dict]] = {}
    for point in document["points"]:
        by_status.setdefault(point["status"], []).append(point)
    assert by_status["infeasible"] and by_status["done"]
    for point in by_status["infeasible"]:
        assert point["params"]["width"] > 8
        assert f"width {point['params']['width']} does not fit" in point["reason"]
    assert all(point["params"]["width"] <= 8 for point in by_status["done"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodule:rule", r"\[model\] feasible: cannot import 'nosuchmodule': "
                              "ModuleNotFoundError"),
        ("myrules:absent", r"\[model\] feasible: 'myrules' has no function 'absent'"),
        ("myrules:broken", r"\[model\] feasible: myrules:broken raised KeyError for "),
        ("not a path", r"\[model\] feasible: expected 'package.module:function'"),
    ],
)  # fmt: skip
def test_init_names_a_feasibility_rule_it_cannot_use(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myrules.py").write_text(RULES)
    text = experiment([str(SCORE), "{lr}", "{width}"]) + f'\n[model]\nfeasible = "{spec}"\n'
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) in (1, 2)
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


LOSS = """#!/bin/sh
# loss(lr, batch, optimizer): adam is better by 1; rank 0 writes it
case "$3" in adam) offset=0 ;; *) offset=1 ;; esac
awk -v lr="$1" -v b="$2" -v o="$offset" 'BEGIN {
    printf "{\\"metrics\\": {\\"loss\\": %.12g}}\\n", (log(lr) / log(10) + 2) ^ 2 + (b - 64) ^ 2 / 1024 + o
}' >"$SPLINENAS_POINT_DIR/r.tmp" && mv "$SPLINENAS_POINT_DIR/r.tmp" "$SPLINENAS_POINT_DIR/result.json"
"""


def test_a_loss_over_hyperparameters_is_minimised(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "loss.sh"
    script.write_text(LOSS)
    script.chmod(0o755)
    space = {"lr": LOG_LR, "batch": {"type": "int", "low": 16, "high": 256},
             "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}}  # fmt: skip
    text = command_experiment("own", ["./loss.sh", "{lr}", "{batch}", "{optimizer}"],
                              space, metric="loss", goal="minimize", value_range=[0, 1000],
                              max_points=8, design="space-filling")  # fmt: skip
    document = search(tmp_path, capsys, text)
    done = [p for p in document["points"] if p["status"] == "done"]
    assert len(done) == len(document["points"]) >= 3
    for point in done:
        lr, batch, optimizer = (point["params"][k] for k in ("lr", "batch", "optimizer"))
        expected = (math.log10(lr) + 2) ** 2 + (batch - 64) ** 2 / 1024 + (optimizer != "adam")
        assert point["value"] == pytest.approx(expected, abs=1e-9)
    assert document["goal"] == "minimize"
