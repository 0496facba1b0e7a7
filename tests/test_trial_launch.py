"""The trainer contract's pieces: ``{name}`` fields, the launch wrapper, ``nas.trial``, ranks per node.

The wrapper runs as every rank runs it, ``python -m nas.trial.launch ... -- COMMAND``,
with real shell commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import trial
from nas.pointdir.contract import TemplateError, fill_command, template_fields
from nas.pointdir.rendezvous import detect, torch_environment

# --------------------------------------------------------------------------- {name} fields


def test_fields_are_filled_from_the_values() -> None:
    values = {"lr": 0.001, "width": 64, "opt": "adam", "amp": True, "tiny": 1e-05}
    argv = ["train", "--lr={lr}", "{width}x{width}", "--opt", "{opt}", "{amp}", "{tiny}",
            "{lr:.1e}", "{{literal}}"]  # fmt: skip
    assert fill_command(argv, values) == [
        "train", "--lr=0.001", "64x64", "--opt", "adam", "true", "1e-05", "1.0e-03", "{literal}"
    ]  # fmt: skip
    assert template_fields(argv) == [(1, "lr"), (2, "width"), (2, "width"), (4, "opt"),
                                     (5, "amp"), (6, "tiny"), (7, "lr")]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x", "{depth}"], r"argument 1 '\{depth\}': \{depth\} names no parameter; known: lr"),
        (["x", "{lr.real}"], "is not a field"),
        (["x", "{0}"], "is not a field"),
        (["x", "{}"], "is not a field"),
        (["x", "{lr:{w}}"], "no nested fields"),
        (["x", "{lr:d}"], "format 'd' does not suit 0.5"),
    ],
)
def test_a_field_that_cannot_be_filled_is_named(argv: list[str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        fill_command(argv, {"lr": 0.5})


# --------------------------------------------------------------------------- ranks per node


@pytest.mark.parametrize(
    ("environ", "local"),
    [
        ({"SLURM_PROCID": "3", "SLURM_NTASKS": "5", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
          "SLURM_STEP_TASKS_PER_NODE": "3,2", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 2),
        ({"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_NODEID": "0",
          "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 2),
        ({"FLUX_TASK_RANK": "5", "FLUX_JOB_SIZE": "8", "FLUX_TASK_LOCAL_ID": "1",
          "FLUX_JOB_NNODES": "2", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 4),
        ({"PMI_RANK": "1", "PMI_SIZE": "6", "PMI_LOCAL_RANK": "1", "PMI_LOCAL_SIZE": "3",
          "PALS_RANKID": "1", "PALS_LOCAL_RANKID": "1", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 3),
        ({"SLURM_PROCID": "1", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
          "SPLINENAS_RANKS_PER_NODE": "4", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 4),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "2"}, 2),
    ],
)  # fmt: skip
def test_the_local_world_size_comes_from_the_launcher(environ: dict, local: int) -> None:
    env = torch_environment(detect(environ))
    assert env["LOCAL_WORLD_SIZE"] == str(local)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("h", "2")


def test_one_rank_gets_a_rendezvous_of_its_own() -> None:
    env = torch_environment(detect({}))
    assert (env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"]) == ("0", "1", "127.0.0.1")
    assert 0 < int(env["MASTER_PORT"]) < 65536


# --------------------------------------------------------------------------- the launch wrapper


def launch(point: Path, *command: str, env: dict | None = None, deadline: str = "2000000000"):
    """Run the wrapper as a job script's rank does; the finished process."""
    argv = [sys.executable, "-m", "nas.trial.launch", "--point-dir", str(point),
            "--deadline", deadline, "--", *command]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK"))}
    return subprocess.run(argv, env={**environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def error_of(point: Path) -> dict:
    return json.loads((point / "error.json").read_text())


def test_the_command_sees_the_contract(tmp_path: Path) -> None:
    script = "import json, os; print(json.dumps(dict(os.environ), sort_keys=True))"
    done = launch(tmp_path, sys.executable, "-c", script,
                  env={"PMI_RANK": "0", "PMI_SIZE": "1"}, deadline="1234.5")  # fmt: skip
    assert done.returncode == 1  # exited 0 without a result
    seen = json.loads(done.stdout)
    assert seen["SPLINENAS_POINT_DIR"] == str(tmp_path)
    assert (seen["SPLINENAS_DEADLINE"], seen["SPLINENAS_CONTRACT"]) == ("1234.5", "1")
    assert (seen["RANK"], seen["WORLD_SIZE"], seen["LOCAL_RANK"]) == ("0", "1", "0")
    report = error_of(tmp_path)
    assert report["kind"] == "contract"
    assert report["message"] == "the command exited 0 without writing result.json"


def test_a_missing_program_is_named_and_exits_127(tmp_path: Path) -> None:
    done = launch(tmp_path, "no-such-trainer-x", "--lr=1")
    assert done.returncode == 127
    assert "command not found: 'no-such-trainer-x'" in done.stderr
    assert "Traceback" not in done.stderr
    assert error_of(tmp_path)["kind"] == "contract"


@pytest.mark.parametrize(
    ("code", "check"),
    [
        (3, lambda p: json.loads((p / "progress.json").read_text())["epochs_completed"] == 2),
        (4, lambda p: error_of(p)["oom"] is True),
        (5, lambda p: error_of(p)["kind"] == "diverged"),
        (1, lambda p: not (p / "error.json").exists()),
    ],
)
def test_an_exit_code_leaves_the_file_the_controller_reads(
    tmp_path: Path, code: int, check
) -> None:
    curve = '{"epoch": 1, "loss": 2.0}\n{"epoch": 2, "loss": 1.0}\n'
    (tmp_path / "curve.jsonl").write_text(curve)
    done = launch(tmp_path, "sh", "-c", f"exit {code}")
    assert done.returncode == code
    assert check(tmp_path)


def test_the_stop_signal_reaches_the_command(tmp_path: Path) -> None:
    command = ["sh", "-c", 'trap "echo usr2 >$SPLINENAS_POINT_DIR/got; exit 3" USR2; '
               'touch $SPLINENAS_POINT_DIR/ready; while :; do sleep 0.1; done']  # fmt: skip
    argv = [sys.executable, "-m", "nas.trial.launch", "--point-dir", str(tmp_path), "--", *command]
    wrapper = subprocess.Popen(argv)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and wrapper.poll() is None
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGUSR2)
    assert wrapper.wait(timeout=60) == 3
    assert (tmp_path / "got").read_text().strip() == "usr2"


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "nas.trial.launch", "--point-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("splinenas: no '--' before the command")


# --------------------------------------------------------------------------- nas.trial


def test_trial_reads_the_point_and_writes_on_rank_0_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"format": 1, "point_id": 3, "experiment": "e", "params": {"lr": 0.1},
                "fixed": {"lr": 1.0, "epochs": 4}, "seed": 2, "metric": "score"}  # fmt: skip
    (tmp_path / "point.json").write_text(json.dumps(document))
    monkeypatch.setenv("SPLINENAS_POINT_DIR", str(tmp_path))
    monkeypatch.setenv("SPLINENAS_DEADLINE", str(time.time() + 3600))
    monkeypatch.setenv("RANK", "1")
    point = trial.point()
    assert point.values == {"lr": 0.1, "epochs": 4} and point.metric == "score"
    assert trial.write_result({"score": 1.0}) is None
    trial.report(1, loss=0.5)
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "curve.jsonl").exists()
    monkeypatch.setenv("RANK", "0")
    trial.report(1, loss=0.5, score=0.25)
    trial.write_result({"score": 0.75}, epochs=4)
    assert json.loads((tmp_path / "result.json").read_text()) == {
        "metrics": {"score": 0.75}, "epochs": 4, "rank": 0
    }  # fmt: skip
    entry = json.loads((tmp_path / "curve.jsonl").read_text())
    assert (entry["epoch"], entry["loss"], entry["score"]) == (1, 0.5, 0.25)
    trial.report(2, loss=float("inf"), score=float("nan"))  # diverged: null, not an exception
    entry = json.loads((tmp_path / "curve.jsonl").read_text().splitlines()[-1])
    assert (entry["epoch"], entry["loss"], entry.get("score")) == (2, None, None)
    with pytest.raises(trial.TrialError, match="every figure a number"):
        trial.report(3, loss="high")  # type: ignore[arg-type]
    assert not trial.should_stop(reserve_seconds=60)
    assert trial.should_stop(reserve_seconds=7200)
    with pytest.raises(SystemExit) as diverged:  # the searched metric NaN: a diverged run
        trial.write_result({"score": float("nan"), "loss": 0.5})
    assert diverged.value.code == 5
    (tmp_path / "error.json").unlink()
    capsys.readouterr()
    trial.write_result({"score": 0.5, "loss": float("nan")})  # another metric: left out, said
    assert json.loads((tmp_path / "result.json").read_text())["metrics"] == {"score": 0.5}
    assert "leaves out metrics that are not finite: {'loss': nan}" in capsys.readouterr().err


def test_trial_outside_splinenas_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLINENAS_POINT_DIR", raising=False)
    with pytest.raises(trial.TrialError, match="SPLINENAS_POINT_DIR is not set"):
        trial.point()


def test_trial_imports_no_torch_or_numpy() -> None:
    code = "import sys, nas.trial, nas.trial.launch; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"
