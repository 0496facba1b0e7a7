"""Job scripts: directives, launch layouts, and quoting proven by running them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tool_support import debian_tool

from nas.cluster import BACKENDS
from nas.cluster.render import (
    ScriptError,
    deadline_seconds,
    render_job_script,
    write_job_script,
)
from nas.config import ClusterConfig
from nas.train.launch import detect, port_for_job

FAKES = Path(__file__).parent / "fakes"
WEIRD = ["a 0", "a'; echo foo", "$(touch pwned)", 'q"`id`\\', "semi;colon & amp"]

#: Stands in for python: records its argv (NUL-separated) and MASTER_* in $RECORD.
FAKE_PYTHON = """#!/bin/bash
printf '%s\\0' "$@" >"$RECORD"
printf '%s\\n' "$MASTER_ADDR" "$MASTER_PORT" "${OMP_NUM_THREADS-unset}" >"$RECORD.env"
"""
#: Stands in for srun: drops its options and runs the command.
FAKE_SRUN = """#!/bin/bash
while [[ $1 == --* ]]; do shift; done
exec "$@"
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _cluster(**overrides) -> ClusterConfig:
    return ClusterConfig(**{"cores_per_node": 4, "walltime_minutes": 10, "signal_seconds": 60,
                            **overrides})  # fmt: skip


def _render(backend: str, cluster: ClusterConfig, point: Path, **kwargs) -> str:
    return render_job_script(
        backend,
        cluster=cluster,
        point_dir=point,
        job_name="e1-p7.a1",
        stdout_path=kwargs.pop("stdout_path", "job.out"),
        **kwargs,
    )


def _bash_n(text: str, tmp_path: Path) -> None:
    script = write_job_script(tmp_path / "syntax-check.sh", text)
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.fixture()
def bin_dir(tmp_path: Path) -> Path:
    """srun, jsrun, PALS mpiexec and flux doubles first on PATH."""
    folder = tmp_path / "bin"
    _executable(folder / "srun", FAKE_SRUN)
    for name in ("jsrun", "mpiexec", "flux"):
        os.symlink(FAKES / name, folder / name)
    return folder


def _run(
    script_text: str, point: Path, bin_dir: Path, record: Path, **extra_env: str
) -> subprocess.CompletedProcess:
    script = write_job_script(point / "job.sh", script_text)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record),
               MASTER_ADDR="127.0.0.1", MASTER_PORT="29999", **extra_env)  # fmt: skip
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(["bash", str(script)], cwd=point.parent, env=env, timeout=30,
                          capture_output=True, text=True)  # fmt: skip


# --------------------------------------------------------------------------- content


def test_slurm_directives_and_srun_layout(tmp_path: Path) -> None:
    cluster = _cluster(nodes=2, gpus_per_node=4, cores_per_node=32, account="proj1",
                       queue="gpu", qos="high", constraint="a100&ib",
                       extra_directives=["--exclusive"])  # fmt: skip
    text = _render("slurm", cluster, tmp_path / "p 1")
    for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=10", "#SBATCH --account=proj1",
                 "#SBATCH --partition=gpu", "#SBATCH --qos=high", '#SBATCH --constraint="a100&ib"',
                 "#SBATCH --job-name=e1-p7.a1", "#SBATCH --output=job.out",
                 "#SBATCH --signal=B:USR2@60", "#SBATCH --exclusive",
                 f'#SBATCH --chdir="{tmp_path / "p 1"}"',
                 "srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8"]:  # fmt: skip
        assert line in text
    assert "deadline=$(($(date +%s) + 540))" in text
    _bash_n(text, tmp_path)


@pytest.mark.parametrize(
    ("resource_sets", "jsrun"),
    [
        ("node", "jsrun -n 3 -r 1 -a 6 -g 6 -c 42 -b packed:7"),
        ("gpu", "jsrun -n 18 -r 6 -a 1 -g 1 -c 7 -b packed:7"),
    ],  # fmt: skip
)
def test_lsf_directives_and_jsrun_layouts(tmp_path: Path, resource_sets: str, jsrun: str) -> None:
    cluster = _cluster(nodes=3, gpus_per_node=6, cores_per_node=42, walltime_minutes=125,
                       signal_seconds=90, account="ABC123", queue="batch",
                       alloc_flags="gpumps smt4", resource_sets=resource_sets)  # fmt: skip
    text = _render("lsf", cluster, tmp_path, stdout_path="seg.%J.out")
    for line in ["#BSUB -nnodes 3", "#BSUB -W 2:05", "#BSUB -P ABC123", "#BSUB -q batch",
                 '#BSUB -alloc_flags "gpumps smt4"', "#BSUB -J e1-p7.a1",
                 "#BSUB -o seg.%J.out", "#BSUB -wa USR2", "#BSUB -wt 2", jsrun]:  # fmt: skip
        assert line in text
    _bash_n(text, tmp_path)


def test_local_uses_torchrun_for_several_ranks(tmp_path: Path) -> None:
    single = _render("local", _cluster(), tmp_path)
    assert "exec python3 -m nas.trial.launch --point-dir" in single
    assert '--deadline "$deadline" -- python3 -m nas.train' in single
    several = _render("local", _cluster(ranks_per_node=2), tmp_path)
    assert "python3 -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 " in several
    assert "--nproc-per-node=2 -m nas.trial.launch --point-dir" in several
    _bash_n(several, tmp_path)


def test_optional_directives_left_out(tmp_path: Path) -> None:
    text = _render("slurm", _cluster(signal_seconds=0), tmp_path)
    for absent in ("--account", "--partition", "--qos", "--constraint", "--gpus", "--signal"):
        assert absent not in text
    lsf = _render("lsf", _cluster(signal_seconds=0), tmp_path)
    for absent in ("-P ", "-q ", "-alloc_flags", "-wa", "-wt"):
        assert f"#BSUB {absent}" not in lsf


# --------------------------------------------------------------------------- execution


def _directive_safe(backend: str, weird: str) -> bool:
    """Scheduler directives take double-quoted values only: some characters are refused."""
    return backend == "local" or not set('"$`\\').intersection(weird)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weird", WEIRD)
def test_weird_values_reach_the_trainer_verbatim(
    tmp_path: Path, bin_dir: Path, backend: str, weird: str
) -> None:
    in_directives = weird if _directive_safe(backend, weird) else "plain"
    point = tmp_path / in_directives / "point"
    point.mkdir(parents=True)
    python = _executable(tmp_path / f"{weird} bin" / "python", FAKE_PYTHON)
    env_file = tmp_path / f"{weird}.env"
    env_file.write_text("export SOURCED=1\n")
    cluster = _cluster(python=str(python), env_file=str(env_file))
    text = _render(backend, cluster, point, stdout_path=f"{in_directives}.log",
                   train_args=["--note", weird])  # fmt: skip
    _bash_n(text, tmp_path)
    record = tmp_path / "argv"
    before = int(time.time())
    done = _run(text, point, bin_dir, record)
    assert done.returncode == 0, done.stderr
    argv = record.read_bytes().split(b"\0")[:-1]
    words = [a.decode() for a in argv]
    assert words[:7] + words[8:] == [
        "-m", "nas.trial.launch", "--point-dir", str(point), "--workdir", str(point),
        "--deadline", "--", str(python), "-m", "nas.train", "--note", weird,
    ]  # fmt: skip
    assert before + 540 <= int(words[7]) <= time.time() + 540
    for folder in (tmp_path, point, point.parent, Path.cwd()):
        assert not (folder / "pwned").exists()
    assert "foo" not in done.stdout
    if backend == "local":
        assert (point / f"{weird}.log").exists()


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
@pytest.mark.parametrize("weird", [w for w in WEIRD if not _directive_safe("slurm", w)])
def test_directive_values_the_scheduler_cannot_read_are_refused(
    tmp_path: Path, backend: str, weird: str
) -> None:
    flag = "--chdir" if backend == "slurm" else "-cwd"
    with pytest.raises(ScriptError, match=f"{flag}: .* cannot go into a directive"):
        _render(backend, _cluster(), tmp_path / weird)


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
def test_scripts_leave_the_rendezvous_to_the_trainer(
    tmp_path: Path, bin_dir: Path, backend: str
) -> None:
    python = _executable(tmp_path / "bin2" / "python", FAKE_PYTHON)
    text = _render(backend, _cluster(python=str(python)), tmp_path)
    assert "MASTER_PORT" not in text and "MASTER_ADDR" not in text
    hostfile = tmp_path / "hosts"
    hostfile.write_text("batch5\n" + "h41n01\n" * 42 + "h41n02\n" * 42)
    script = write_job_script(tmp_path / "job.sh", text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASTER_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", RECORD=str(tmp_path / "argv"),
               LSB_DJOB_HOSTFILE=str(hostfile), LSB_JOBID="123")  # fmt: skip
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    assert (tmp_path / "argv.env").read_text().split("\n")[:2] == ["", ""]  # nothing exported
    rank1 = detect({**env, "JSM_NAMESPACE_RANK": "1", "JSM_NAMESPACE_SIZE": "12"})
    assert (rank1.master_addr, rank1.master_port) == ("h41n01", port_for_job("123"))
    assert 15000 <= rank1.master_port < 32768  # below Linux's ephemeral range


#: Stands in for python under jsrun: asks the trainer's own rule for this rank's device.
DEVICE_PYTHON = f"""#!/bin/bash
exec {sys.executable} -c '
import os
from nas.train.device import Placement, choose, local_world_size
from nas.train.launch import detect
env = detect(os.environ)
visible = os.environ["CUDA_VISIBLE_DEVICES"]
placement = Placement(env.local_rank, local_world_size(os.environ))
index = choose(placement, os.environ, {{"cuda": len(visible.split(","))}})[1]
with open(f"rank-{{env.rank}}", "w") as out:
    out.write(f"{{env.local_rank}} {{visible}} {{index}}")
'
"""


@pytest.mark.parametrize(
    ("resource_sets", "expected"),
    [
        ("gpu", ["0 0 0", "1 1 0"]),  # -g 1: each rank sees its own GPU as cuda:0
        ("node", ["0 0,1 0", "1 0,1 1"]),  # -g 2: both see both, each takes its local rank's
    ],
)
def test_each_jsrun_rank_trains_on_a_gpu_of_its_own(
    tmp_path: Path, bin_dir: Path, resource_sets: str, expected: list[str]
) -> None:
    point = tmp_path / "point"
    point.mkdir()
    python = _executable(tmp_path / "bin-python" / "python", DEVICE_PYTHON)
    cluster = _cluster(python=str(python), gpus_per_node=2, ranks_per_node=2,
                       resource_sets=resource_sets)  # fmt: skip
    text = _render("lsf", cluster, point)
    done = _run(text, point, bin_dir, tmp_path / "argv",
                PYTHONPATH=str(Path(__file__).resolve().parent.parent))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [(point / f"rank-{r}").read_text() for r in (0, 1)] == expected


@pytest.mark.parametrize("backend", ["slurm", "lsf"])
def test_usr2_is_forwarded_to_the_step(tmp_path: Path, bin_dir: Path, backend: str) -> None:
    marker, ready = tmp_path / "got-usr2", tmp_path / "step-ready"
    python = _executable(
        tmp_path / "bin2" / "python",
        f"#!/bin/bash\ntrap 'echo usr2 >{marker}; exit 0' USR2\ntouch {ready}\n"
        "while :; do sleep 0.05; done\n",
    )
    text = _render(backend, _cluster(python=str(python)), tmp_path)
    script = write_job_script(tmp_path / "job.sh", text)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", MASTER_ADDR="x", MASTER_PORT="1")
    job = subprocess.Popen(["bash", str(script)], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():  # the step has started and set its trap
            assert time.monotonic() < deadline and job.poll() is None, "the step never started"
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR2)
        assert job.wait(timeout=300) == 0
    finally:  # the whole job, its looping step included, even when an assertion failed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    assert marker.read_text().strip() == "usr2"


@pytest.mark.parametrize(
    ("backend", "ranks", "preset", "threads"),
    [
        ("local", 1, None, "4"),
        ("slurm", 2, None, "2"),
        ("lsf", 4, None, "1"),
        ("slurm", 2, "3", "3"),
    ],
)
def test_each_rank_gets_its_share_of_the_cores_unless_the_environment_chose(
    tmp_path: Path, bin_dir: Path, backend: str, ranks: int, preset: str | None, threads: str
) -> None:
    point = tmp_path / "point"
    point.mkdir()
    python = _executable(tmp_path / "bin-python" / "python", FAKE_PYTHON)
    cluster = _cluster(python=str(python), ranks_per_node=ranks)
    record = tmp_path / "argv"
    done = _run(_render(backend, cluster, point), point, bin_dir, record, OMP_NUM_THREADS=preset)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "argv.env").read_text().splitlines()[2] == threads


def test_write_job_script_is_atomic_and_executable(tmp_path: Path) -> None:
    path = write_job_script(tmp_path / "job.sh", "#!/bin/bash\ntrue\n")
    assert os.access(path, os.X_OK)
    assert [p.name for p in tmp_path.iterdir()] == ["job.sh"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"point_dir": "/a\nb"}, "point_dir: expected one line without control characters"),
        ({"point_dir": "relative/p"}, "point_dir: expected an absolute path"),
        ({"stdout_path": "x\r.log"}, "stdout_path: expected one line without control characters"),
        ({"job_name": "a b"}, "job_name: expected letters"),
        ({"job_name": "$(x)"}, "job_name: expected letters"),
        ({"train_args": ["ok", "x\ny"]}, "trainer argument"),
        (
            {"backend": "sge"},
            "unknown backend 'sge'; valid backends are local, slurm, lsf, pbs, flux",
        ),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    args = {"backend": "slurm", "cluster": _cluster(), "point_dir": str(tmp_path),
            "job_name": "ok", "stdout_path": "job.out", **change}  # fmt: skip
    backend = args.pop("backend")
    with pytest.raises(ScriptError, match=message.replace("(", r"\(")):
        render_job_script(backend, **args)


@pytest.mark.parametrize(
    ("backend", "change", "message"),
    [
        ("slurm", {"python": "py\nthon"}, "cluster.python"),
        ("slurm", {"env_file": "/e\0nv"}, "cluster.env_file"),
        ("slurm", {"constraint": 'a"b'}, "--constraint: 'a\"b' cannot go into a directive"),
        ("lsf", {"alloc_flags": "smt4 $(x)"}, "-alloc_flags: .* cannot go into a directive"),
        ("slurm", {"signal_seconds": 600}, r"cluster.signal_seconds \(600\) leaves no time"),
        ("slurm", {"walltime_minutes": 2000, "signal_seconds": 70000}, "exceeds 65535"),
        ("slurm", {"ranks_per_node": 8}, r"cluster.cores_per_node \(4\) is less than"),
        ("lsf", {"resource_sets": "gpu"}, "needs cluster.gpus_per_node >= 1"),
        (
            "lsf",
            {"resource_sets": "gpu", "gpus_per_node": 2, "ranks_per_node": 1},
            "one rank per GPU",
        ),  # fmt: skip
        ("local", {"nodes": 2}, "the local backend runs on one node"),
    ],
)
def test_bad_cluster_values_are_refused(
    tmp_path: Path, backend: str, change: dict, message: str
) -> None:
    with pytest.raises(ScriptError, match=message):
        _render(backend, _cluster(**change), tmp_path)


def test_deadline_seconds() -> None:
    assert deadline_seconds(_cluster(walltime_minutes=120, signal_seconds=300)) == 6900
    cluster = dataclasses.replace(_cluster(), walltime_minutes=1, signal_seconds=59)
    assert deadline_seconds(cluster) == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ending", ["return 3", "exit 3", "false; true; (exit 3)"])
def test_a_failing_environment_stops_the_job_with_its_code_and_an_error_file(
    tmp_path: Path, bin_dir: Path, backend: str, ending: str
) -> None:
    point = tmp_path / "point"
    point.mkdir()
    env_file = tmp_path / "it's env.sh"
    env_file.write_text(f"echo loading\n{ending}\n")
    python = _executable(tmp_path / "bin-python" / "python", FAKE_PYTHON)
    text = _render(backend, _cluster(python=str(python), env_file=str(env_file)), point)
    done = _run(text, point, bin_dir, tmp_path / "argv")
    assert done.returncode == 3
    assert not (tmp_path / "argv").exists()  # no rank started
    error = json.loads((point / "error.json").read_text())
    assert (error["kind"], error["exit_code"], error["env_file"]) == (
        "environment",
        3,
        str(env_file),
    )
    assert [p.name for p in point.iterdir()] == ["error.json", "job.sh"] or backend == "local"


def test_slurm_binds_one_gpu_per_task_and_asks_for_memory_when_configured(tmp_path: Path) -> None:
    cluster = _cluster(nodes=2, gpus_per_node=4, cores_per_node=32, gpu_bind="closest", mem="200G")
    text = _render("slurm", cluster, tmp_path)
    for line in ["#SBATCH --gpus-per-task=1", "#SBATCH --gpu-bind=closest", "#SBATCH --mem=200G",
                 "#SBATCH --ntasks=8",
                 "srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8 --gpus-per-task=1 "
                 "--gpu-bind=closest --ntasks=8 --kill-on-bad-exit=1"]:  # fmt: skip
        assert line in text
    assert "--gpus-per-node" not in text
    with pytest.raises(ScriptError, match="gpu_bind gives each rank one GPU"):
        _render("slurm", dataclasses.replace(cluster, ranks_per_node=1), tmp_path)
    plain = _render("slurm", _cluster(gpus_per_node=4, cores_per_node=32), tmp_path)
    assert "#SBATCH --gpus-per-node=4" in plain and "gpu-bind" not in plain and "--mem" not in plain
    assert "--ntasks=" not in plain and "--cpu-bind" not in plain
    bound = _render("slurm", dataclasses.replace(cluster, cpu_bind="cores"), tmp_path)
    assert "--ntasks=8 --cpu-bind=cores --kill-on-bad-exit=1" in bound


def test_jsrun_turns_spectrum_mpi_hooks_off_for_the_trainer_unless_told(tmp_path: Path) -> None:
    cluster = _cluster(nodes=1, gpus_per_node=6, cores_per_node=42)
    assert "-b packed:7 --smpiargs=off " in _render("lsf", cluster, tmp_path)
    text = _render("lsf", dataclasses.replace(cluster, jsrun_smpiargs=""), tmp_path)
    assert "smpiargs" not in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_rendered_scripts_pass_shellcheck(tmp_path: Path, backend: str) -> None:
    """Debian's shellcheck (installed when missing) on a 34-node script of each backend."""
    shellcheck = debian_tool("shellcheck", "shellcheck")
    env_file = Path(__file__).resolve().parent.parent / "envs" / "slurm.sh"
    nodes = 1 if backend == "local" else 34
    cluster = _cluster(nodes=nodes, gpus_per_node=4, cores_per_node=32, env_file=str(env_file),
                       account="proj", queue="batch")  # fmt: skip
    script = write_job_script(tmp_path / "job.sh", _render(backend, cluster, tmp_path / "p 7"))
    done = subprocess.run([shellcheck, "-x", "-s", "bash", str(script)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout
