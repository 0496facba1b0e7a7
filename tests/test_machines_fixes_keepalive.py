"""The Flux and PBS keep-alive jobs on today's machines (review of the first run, findings 1, 6).

Flux 0.51 and later forward ``--signal``'s USR2 to the jobs inside a ``flux batch``
instance, not to its batch script (flux-core ``src/broker/broker.c: signal_cb``), so
the Flux keep-alive raises its own warning like PBS's; where an older Flux still
signals the script, the warning comes twice and must stop the controller once.
ALCF's qsub refuses a job without ``-l filesystems`` (argonne-lcf/user-guides
``docs/running-jobs/index.md``): the PBS keep-alive carries ``[cluster] filesystems``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nas.cluster import keepalive
from nas.cluster.pbs import PbsScheduler
from nas.config import ClusterConfig, ControllerConfig

#: Stands in for the interpreter: counts the TERMs it gets and ends a second after the first,
#: as the controller finishes its cycle (a second TERM would stop it mid-cycle).
COUNTING_PYTHON = """#!/bin/bash
trap 'echo term >>"$STUB_DIR/terms"' TERM
echo started >"$STUB_DIR/started"
while [ ! -e "$STUB_DIR/terms" ]; do sleep 0.1; done
sleep 1
exit 0
"""
#: Stands in for flux and qsub: answers what the script asks, records the rest.
STUB_SCHEDULER = """#!/bin/bash
case "$(basename "$0") $1 $2" in
    "flux getattr parent-uri") echo local:///run/flux/parent ;;
    "flux job id") echo 99 ;;
    *) printf '%s\\n' "$(basename "$0")" "$@" >>"$STUB_DIR/called" ;;
esac
"""


def make_job(root: Path, backend: str, **changes: object) -> keepalive.KeepAliveJob:
    fields = {
        "backend": backend,
        "state_path": root / "toy.h5",
        "script_path": root / f"keepalive.{backend}.sh",
        "log_path": root / "controller.log",
        "workdir": root,
        "job_name": "toy-controller",
        "python": str(root / "python"),
        "walltime_minutes": 60,
        "margin_seconds": 300,
        "poll": 5.0,
        "controller": ControllerConfig(),
        **changes,
    }
    return keepalive.KeepAliveJob(**fields)


def end(shell: subprocess.Popen) -> None:
    """Kill the script's whole session: a stub controller left waiting must not outlive a
    failed test."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(shell.pid, signal.SIGKILL)
    shell.wait()


def start(tmp_path: Path, job: keepalive.KeepAliveJob) -> tuple[subprocess.Popen, Path]:
    """Run the rendered script with the stubs on PATH; return it and the stub folder."""
    bin_dir, stub_dir = tmp_path / "bin", tmp_path / "stub"
    bin_dir.mkdir()
    stub_dir.mkdir()
    for name in ("flux", "qsub"):
        (bin_dir / name).write_text(STUB_SCHEDULER)
        (bin_dir / name).chmod(0o755)
    Path(job.python).write_text(COUNTING_PYTHON)
    Path(job.python).chmod(0o755)
    job.script_path.write_text(keepalive.render(job))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir),
           "FLUX_ENCLOSING_ID": "ƒ2Xs", "PBS_JOBID": "77.pbs01"}  # fmt: skip
    shell = subprocess.Popen(["bash", str(job.script_path)], env=env, cwd=tmp_path,
                             stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (stub_dir / "started").exists():
        assert time.monotonic() < deadline, "the controller did not start"
        time.sleep(0.05)
    return shell, stub_dir


def test_the_flux_keepalive_raises_its_own_warning_and_submits_itself_again(
    tmp_path: Path,
) -> None:
    """Nothing signals the script from outside (Flux 0.51+): its alarm alone renews it."""
    job = make_job(tmp_path, "flux", walltime_minutes=1, margin_seconds=58)
    shell, stub_dir = start(tmp_path, job)
    try:
        assert shell.wait(timeout=60) == 0
    finally:
        end(shell)
    assert (stub_dir / "terms").read_text() == "term\n"
    called = (stub_dir / "called").read_text().splitlines()
    assert called == ["flux", "batch", str(job.script_path)]


def test_a_second_warning_does_not_stop_the_controller_twice(tmp_path: Path) -> None:
    """Older Flux signals the script through --signal and the alarm fires too: the
    controller gets one SIGTERM (a second one would end it in the middle of a cycle)."""
    job = make_job(tmp_path, "flux")
    shell, stub_dir = start(tmp_path, job)
    try:
        os.kill(shell.pid, signal.SIGUSR2)
        time.sleep(0.3)
        os.kill(shell.pid, signal.SIGUSR2)
        assert shell.wait(timeout=60) == 0
    finally:
        end(shell)
    assert (stub_dir / "terms").read_text() == "term\n"
    assert (stub_dir / "called").read_text().splitlines() == ["flux", "batch",
                                                              str(job.script_path)]  # fmt: skip


def test_the_flux_alarm_ends_with_the_script(tmp_path: Path) -> None:
    """The alarm's sleep (walltime - margin = 3300 s here) must not outlive the job."""
    job = make_job(tmp_path, "flux")
    shell, _ = start(tmp_path, job)
    try:
        os.kill(shell.pid, signal.SIGUSR2)
        assert shell.wait(timeout=60) == 0
        time.sleep(0.2)
        left = subprocess.run(["pgrep", "-s", str(shell.pid), "-fx", "sleep 3300"],
                              capture_output=True, text=True)  # fmt: skip
        assert left.stdout == "", "the keep-alive's alarm outlived it"
    finally:
        end(shell)


# ---------------------------------------------------------------------------- PBS filesystems


def pbs_directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#PBS")]


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (ClusterConfig(backend="pbs", filesystems="home:eagle"), "home:eagle"),
        (ClusterConfig(backend="pbs", extra_directives=["-l filesystems=home:flare"]),
         "home:flare"),
    ],
)  # fmt: skip
def test_the_pbs_keepalive_names_the_file_systems_of_the_training_jobs(
    tmp_path: Path, cluster: ClusterConfig, expected: str
) -> None:
    scheduler = PbsScheduler.create(cluster=cluster, local_root=tmp_path, timeout=5)
    text = keepalive.render(make_job(tmp_path, "pbs"), scheduler)
    assert f"#PBS -l filesystems={expected}" in pbs_directives(text)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_a_controller_directive_for_the_file_systems_is_not_doubled(tmp_path: Path) -> None:
    cluster = ClusterConfig(backend="pbs", filesystems="home:eagle")
    controller = ControllerConfig(extra_directives=["-l filesystems=home"])
    scheduler = PbsScheduler.create(cluster=cluster, local_root=tmp_path, timeout=5)
    text = keepalive.render(make_job(tmp_path, "pbs", controller=controller), scheduler)
    assert [d for d in pbs_directives(text) if "filesystems" in d] == ["#PBS -l filesystems=home"]


def test_a_pbs_keepalive_without_file_systems_says_alcf_refuses_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = PbsScheduler.create(cluster=ClusterConfig(backend="pbs"), local_root=tmp_path,
                                    timeout=5)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        text = keepalive.render(make_job(tmp_path, "pbs"), scheduler)
    assert not any("filesystems" in d for d in pbs_directives(text))
    assert "[cluster] filesystems" in caplog.text and "qsub" in caplog.text
