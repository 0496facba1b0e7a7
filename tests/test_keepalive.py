"""Keeping the controller alive: detach, the Slurm/LSF keep-alive scripts, lock takeover."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Backend

from nas.cluster import JobState, LsfScheduler, keepalive
from nas.cluster.render import ScriptError
from nas.commands.main import main
from nas.config import ControllerConfig
from nas.pointdir import layout
from nas.record.lock import LockError, lock_path

#: Directives (#SBATCH, #BSUB) cannot hold "$"; shell words can: see the state path.
WEIRD = "a 'b' c"

#: Stands in for the interpreter: records argv and environment, stops on TERM only.
STUB_PYTHON = """#!/bin/bash
printf '%s\\n' "$@" >"$STUB_DIR/argv"
env >"$STUB_DIR/env"
sleep 60 &
child=$!
trap 'kill "$child"; echo term >"$STUB_DIR/stopped"; exit 0' TERM
echo started >"$STUB_DIR/started"
wait "$child"
"""
#: Stands in for scontrol/bsub: records argv and stdin.
STUB_COMMAND = """#!/bin/bash
printf '%s\\n' "$(basename "$0")" "$@" >"$STUB_DIR/called"
cat >"$STUB_DIR/stdin"
"""


def wait_for(condition, what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def make_job(root: Path, backend: str, **changes: object) -> keepalive.KeepAliveJob:
    folder = root / WEIRD
    folder.mkdir(exist_ok=True)
    fields = {
        "backend": backend,
        "state_path": folder / "toy $(touch pwned).h5",
        "script_path": folder / f"keepalive.{backend}.sh",
        "log_path": folder / "controller.log",
        "workdir": folder,
        "job_name": "toy-controller",
        "python": str(folder / "python"),
        "walltime_minutes": 60,
        "margin_seconds": 290,
        "poll": 5.0,
        "controller": ControllerConfig(account="proj1", queue="batch"),
        **changes,
    }
    return keepalive.KeepAliveJob(**fields)


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
def test_scripts_pass_bash_n_and_carry_the_directives(tmp_path: Path, backend: str) -> None:
    text = keepalive.render(make_job(tmp_path, backend))
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    if backend == "slurm":
        expected = ["#SBATCH --signal=B:USR2@290", "#SBATCH --requeue", "#SBATCH --time=60",
                    "#SBATCH --open-mode=append", "#SBATCH --account=proj1", "scontrol requeue"]  # fmt: skip
    else:
        expected = ["#BSUB -W 1:00", "#BSUB -wa USR2", "#BSUB -wt 5", "#BSUB -P proj1",
                    "#BSUB -J toy-controller", "bsub <"]  # fmt: skip
    for line in expected:
        assert line in text


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
def test_the_controller_job_asks_only_for_what_the_controller_needs(
    tmp_path: Path, backend: str
) -> None:
    controller = ControllerConfig(account="ctl1", queue="service",
                                  cores=2, extra_directives=["--mail-type=FAIL"])  # fmt: skip
    text = keepalive.render(make_job(tmp_path, backend, controller=controller))
    directives = [line for line in text.splitlines() if line.startswith(("#SBATCH", "#BSUB"))]
    if backend == "slurm":
        for line in ["#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=2",
                     "#SBATCH --gpus=0", "#SBATCH --account=ctl1", "#SBATCH --partition=service",
                     "#SBATCH --mail-type=FAIL"]:  # fmt: skip
            assert line in directives
        assert not any("exclusive" in line or "gpus-per" in line for line in directives)
    else:
        for line in ["#BSUB -nnodes 1", "#BSUB -P ctl1", "#BSUB -q service", "#BSUB -W 1:00",
                     "#BSUB --mail-type=FAIL"]:  # fmt: skip
            assert line in directives
        assert not any("-gpu" in line or "alloc_flags" in line for line in directives)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"margin_seconds": 3600}, "shorter than the walltime"),
        ({"margin_seconds": 70000, "walltime_minutes": 2000}, r"exceeds 65535 s"),
        ({"walltime_minutes": 99999999}, r"must be from 1 to 525600 min"),
        ({"job_name": "a b"}, "job name"),
        ({"backend": "local"}, "no keep-alive job"),
        ({"poll": 0.0}, "poll"),
        ({"state_path": Path("relative.h5")}, "expected an absolute path"),
        ({"log_path": Path("/a\nb.log")}, "path: expected one line without control characters"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, changes: dict, match: str) -> None:
    job = dataclasses.replace(make_job(tmp_path, "slurm"), **changes)
    with pytest.raises(keepalive.KeepAliveError, match=match):
        keepalive.render(job)


def test_a_log_path_the_directive_parser_cannot_read_is_refused(tmp_path: Path) -> None:
    job = make_job(tmp_path, "slurm", log_path=tmp_path / 'say "hi".log')
    with pytest.raises(ScriptError, match="cannot go into a directive"):
        keepalive.render(job)


def stubbed(tmp_path: Path, job: keepalive.KeepAliveJob) -> tuple[Path, dict[str, str]]:
    """Stub interpreter and scheduler commands; return the stub folder and environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("scontrol", "bsub"):
        (bin_dir / name).write_text(STUB_COMMAND)
        (bin_dir / name).chmod(0o755)
    Path(job.python).write_text(STUB_PYTHON)
    Path(job.python).chmod(0o755)
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir)}
    env.update(SLURM_JOB_ID="77", SLURM_NTASKS="1", LSB_JOBID="88")
    return stub_dir, env


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
def test_the_warning_signal_stops_the_controller_then_renews_the_job(
    tmp_path: Path, backend: str
) -> None:
    job = make_job(tmp_path, backend)
    job.script_path.write_text(keepalive.render(job))
    stub_dir, env = stubbed(tmp_path, job)
    shell = subprocess.Popen(["bash", str(job.script_path)], env=env, cwd=tmp_path,
                             start_new_session=True)  # fmt: skip
    wait_for((stub_dir / "started").exists, "the controller to start")
    os.killpg(shell.pid, signal.SIGUSR2)  # as LSF does: every process of the job
    assert shell.wait(timeout=120) == 0
    assert (stub_dir / "stopped").read_text() == "term\n"  # TERM from the shell, USR2 ignored
    argv = (stub_dir / "argv").read_text().splitlines()
    job_id = "77" if backend == "slurm" else "88"
    assert argv == ["-m", "nas", "controller", "job", "--state", str(job.state_path),
                    "--poll", "5", "--job-id", job_id]  # fmt: skip
    called = (stub_dir / "called").read_text().splitlines()
    if backend == "slurm":
        assert called == ["scontrol", "requeue", "77"]
        assert "SLURM_NTASKS" not in (stub_dir / "env").read_text()
    else:
        assert called == ["bsub"]
        assert (stub_dir / "stdin").read_text() == job.script_path.read_text()
    assert not list(tmp_path.rglob("pwned"))


def test_a_controller_that_ends_by_itself_is_not_renewed(tmp_path: Path) -> None:
    job = make_job(tmp_path, "slurm")
    job.script_path.write_text(keepalive.render(job))
    stub_dir, env = stubbed(tmp_path, job)
    Path(job.python).write_text("#!/bin/bash\nexit 1\n")
    done = subprocess.run(["bash", str(job.script_path)], env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and not (stub_dir / "called").exists()


def test_detach_writes_a_pid_file_and_refuses_a_second_start(tmp_path: Path) -> None:
    log, pid_file = tmp_path / "c" / "controller.log", tmp_path / "c" / "controller.pid"
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    pid = keepalive.detach(argv, log, pid_file)
    try:
        assert keepalive.running_pid(pid_file) == pid
        assert os.getsid(pid) == pid  # its own session: no terminal to hang up on
        wait_for(lambda: log.read_text() == "up\n", "the detached process's output")
        with pytest.raises(keepalive.KeepAliveError, match=f"process {pid}, which still runs"):
            keepalive.detach(argv, log, pid_file)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # it is this test's child; a CLI's child is reaped by init
    assert keepalive.running_pid(pid_file) is None


# ---------------------------------------------------------------------------- takeover


def leave_lock(state: Path, job_id: str, host: str = "node-7", pid: int = 4242) -> None:
    """A lock and marker as a keep-alive run on another host leaves them when it dies."""
    lock_path(state).write_text(json.dumps({"host": host, "pid": pid, "started": time.time()}))
    marker = keepalive.controller_dir(state) / keepalive.MARKER
    keepalive.Incarnation(job_id, "node-7", 4242, time.time() - 5).write(marker)


#: The tests that need the LSF double: the one backend fixture, on its LSF row.
ON_LSF = pytest.mark.parametrize("backend", ["lsf"], indirect=True)


@pytest.fixture
def lsf(backend: Backend) -> LsfScheduler:
    scheduler = backend.scheduler()
    assert isinstance(scheduler, LsfScheduler)
    return scheduler


def fake_job(lsf: LsfScheduler, tmp_path: Path, body: str) -> str:
    script = tmp_path / f"job-{time.monotonic_ns()}.sh"
    script.write_text(f"#!/bin/bash\n{body}\n")
    return lsf.submit(script, job_name="toy-controller", cwd=tmp_path)


@ON_LSF
def test_a_requeued_job_takes_over_its_own_lock(tmp_path: Path, lsf: LsfScheduler) -> None:
    state = tmp_path / "toy.h5"
    leave_lock(state, "77")
    note = keepalive.take_over(state, "77", lsf)
    assert note is not None and "job 77" in note and "node-7" in note
    assert not lock_path(state).exists()


@ON_LSF
def test_a_successor_takes_over_once_the_earlier_job_has_ended(
    tmp_path: Path, lsf: LsfScheduler
) -> None:
    state = tmp_path / "toy.h5"
    running = fake_job(lsf, tmp_path, "sleep 60")
    leave_lock(state, running)
    with pytest.raises(LockError, match=f"job {running}, which is still running"):
        keepalive.take_over(state, "999", lsf, wait_seconds=0.0)
    assert lock_path(state).exists()
    lsf.cancel(running)
    ended = fake_job(lsf, tmp_path, "exit 0")
    wait_for(lambda: lsf.status([ended])[ended] is JobState.COMPLETED, "the fake job to end")
    leave_lock(state, ended)
    assert keepalive.take_over(state, "999", lsf, wait_seconds=0.0) is not None
    assert not lock_path(state).exists()


@ON_LSF
def test_locks_of_anyone_else_are_left_alone(tmp_path: Path, lsf: LsfScheduler) -> None:
    state = tmp_path / "toy.h5"
    leave_lock(state, "77", pid=5555)  # another process on that host holds it
    assert keepalive.take_over(state, "77", lsf) is None
    leave_lock(state, "77", host=socket.gethostname())  # this host: the lock handles it
    assert keepalive.take_over(state, "77", lsf) is None
    assert lock_path(state).exists()


@ON_LSF
def test_controller_submit_on_fake_lsf_runs_the_chain(
    tmp_path: Path, lsf: LsfScheduler, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    toml = tmp_path / "toy.toml"
    toml.write_text(
        '[experiment]\nname = "toy"\n[[space]]\nname = "x"\ntype = "int"\nlow = 1\nhigh = 4\n'
        '[cluster]\nbackend = "lsf"\nwalltime_minutes = 30\n'
    )
    state = tmp_path / "toy.h5"
    assert main(["init", str(toml), "--state", str(state)]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["controller", "submit", "--state", str(state), "--json", "--poll", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == "lsf" and doc["script"].endswith("keepalive.lsf.sh")
    job_id = doc["job_id"]
    wait_for(lambda: lsf.status([job_id])[job_id].is_finished(), "the keep-alive job", 60)
    log = Path(doc["log"]).read_text()
    marker = json.loads((keepalive.controller_dir(state) / keepalive.MARKER).read_text())
    assert marker["job_id"] == job_id
    # `controller job` handed over to `splinenas run`, which needs [model] and [data].
    assert "splinenas run: error" in log and "[model]" in log
    assert layout.run_dir(state) / "controller" == Path(doc["log"]).parent


# ---------------------------------------------------------------------------- PBS and Flux

#: Stands in for qsub and flux: answers what the keep-alive script asks, records the rest.
STUB_PBS_FLUX = """#!/bin/bash
case "$(basename "$0") $1 $2" in
    "flux getattr parent-uri") echo local:///run/flux/parent ;;
    "flux job id") echo 99 ;;
    *) printf '%s\\n' "$(basename "$0")" "$@" >>"$STUB_DIR/called" ;;
esac
"""


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("pbs", ["#PBS -N toy-controller", "#PBS -l select=1:ncpus=2", "#PBS -l walltime=01:00:00",
                 "#PBS -A ctl1", "#PBS -q service", "#PBS --mail-type=FAIL",
                 "sleep 3310 & nap=$!; wait \"$nap\" && kill -USR2 $$) &", "    qsub "]),
        ("flux", ["#flux: --job-name=toy-controller", "#flux: -N 1", "#flux: -n 1", "#flux: -c 2",
                  "#flux: -t 60m", "#flux: -o output.mode=append", "#flux: --signal=USR2@290s",
                  "#flux: --queue=service", "#flux: --bank=ctl1", "#flux: --mail-type=FAIL",
                  "sleep 3310 & nap=$!; wait \"$nap\" && kill -USR2 $$) &", "    flux batch "]),
    ],
)  # fmt: skip
def test_pbs_and_flux_controller_jobs_ask_for_the_controller_table(
    tmp_path: Path, backend: str, expected: list[str]
) -> None:
    controller = ControllerConfig(account="ctl1", queue="service", cores=2,
                                  extra_directives=["--mail-type=FAIL"])  # fmt: skip
    text = keepalive.render(make_job(tmp_path, backend, controller=controller))
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    for line in expected:
        assert line in text
    assert "gpu" not in text.lower().replace("gpu-affinity", "")


@pytest.mark.parametrize("backend", ["pbs", "flux"])
def test_pbs_and_flux_keepalive_stop_the_controller_then_submit_the_script_again(
    tmp_path: Path, backend: str
) -> None:
    """The script's own alarm (USR2) stops the controller, whose flux commands go to the
    enclosing instance, and the same script is submitted again. Nothing signals the script
    from outside, as on the machines: PBS sends no warning, and Flux 0.51+ forwards
    --signal's USR2 to the jobs inside the batch instance (broker.c: signal_cb), of which
    the keep-alive instance has none; at the limit only SIGTERM would come."""
    job = make_job(tmp_path, backend, walltime_minutes=1, margin_seconds=58)
    job.script_path.write_text(keepalive.render(job))
    stub_dir, env = stubbed(tmp_path, job)
    for name in ("qsub", "flux"):
        (tmp_path / "bin" / name).write_text(STUB_PBS_FLUX)
        (tmp_path / "bin" / name).chmod(0o755)
    env.update(PBS_JOBID="77.pbs01", FLUX_ENCLOSING_ID="ƒ2Xs", FLUX_URI="local:///mine")
    shell = subprocess.Popen(["bash", str(job.script_path)], env=env, cwd=tmp_path,
                             stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    wait_for((stub_dir / "started").exists, "the controller to start")
    assert shell.wait(timeout=120) == 0  # the script's alarm fired after 2 s
    assert (stub_dir / "stopped").read_text() == "term\n"
    argv = (stub_dir / "argv").read_text().splitlines()
    assert argv[-1] == ("77.pbs01" if backend == "pbs" else "99")
    called = (stub_dir / "called").read_text().splitlines()
    assert called == (["qsub"] if backend == "pbs" else ["flux", "batch"]) + [str(job.script_path)]
    if backend == "flux":
        assert "FLUX_URI=local:///run/flux/parent" in (stub_dir / "env").read_text()
    else:  # the script appends its own output to the log (PBS would overwrite -o)
        assert (
            "job 77.pbs01 stopped the controller and hands over" in Path(job.log_path).read_text()
        )
    assert not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize("backend", ["pbs", "flux"], indirect=True)
def test_controller_submit_on_fake_pbs_and_flux_runs_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch, backend: Backend
) -> None:
    name = backend.name
    toml = tmp_path / "toy.toml"
    toml.write_text(
        '[experiment]\nname = "toy"\n[[space]]\nname = "x"\ntype = "int"\nlow = 1\nhigh = 4\n'
        f'[cluster]\nbackend = "{name}"\nwalltime_minutes = 30\n'
    )
    state = tmp_path / "toy.h5"
    assert main(["init", str(toml), "--state", str(state)]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["controller", "submit", "--state", str(state), "--json", "--poll", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == name and doc["script"].endswith(f"keepalive.{name}.sh")
    scheduler = backend.scheduler()
    job_id = doc["job_id"]
    wait_for(lambda: scheduler.status([job_id])[job_id].is_finished(), "the keep-alive job", 60)
    marker = json.loads((keepalive.controller_dir(state) / keepalive.MARKER).read_text())
    assert marker["job_id"] == job_id  # the id the script worked out is the scheduler's
    log = Path(doc["log"]).read_text()
    assert "splinenas run: error" in log and "[model]" in log
    if name == "pbs":  # the alarm (1440 min - 300 s) ends with the script, its sleep included
        alarm = subprocess.run(["pgrep", "-fx", "sleep 86100"], capture_output=True, text=True)
        assert alarm.stdout == "", "the keep-alive's alarm outlived it"
