"""Experiments, state files and a stand-in trainer for the controller tests.

The stand-in is a real executable named as ``[cluster] python``: the job
script runs it exactly as it would run the interpreter (``<python> -m
nas.train --point-dir DIR --deadline T``), and it leaves the files a real
trainer leaves. What it does on its n-th run in a point folder is read from
``behaviour.json`` next to it, so a test can make a point fail, run out of
memory or write a bad result file on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from experiment_support import toml_value

from nas.config import parse_experiment
from nas.control import policy
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import StateStore

_TABLES = {
    # the corner design: its 5 points in 2 dims are what the controller tests count on
    "experiment": {
        "name": "ctl",
        "tolerance": 0.0,
        "max_points": 7,
        "batch_size": 2,
        "design": "corners",
    },
    "model": {"family": "resnet"},
    "data": {"kind": "digits", "resolution": 16, "workers": 0, "pin_memory": False},
    "train": {"epochs": 1, "batch_per_gpu": 16, "log_every": 1},
    "cluster": {
        "backend": "local",
        "ranks_per_node": 1,
        "cores_per_node": 1,
        "max_attempts": 2,
        "max_concurrent_jobs": 3,
    },
}
_SPACE = """
[[space]]
name = "g1"
type = "int"
low = 4
high = 16

[[space]]
name = "g2"
type = "int"
low = 4
high = 16
"""
#: A network small enough to train on digits in seconds; g1 and g2 are searched.
FIXED = "{ block = 'basic', stem = 'conv7', maxpool = false, c1 = 8, g3 = 8, g4 = 8, d1 = 1, d2 = 1, d3 = 1, d4 = 1 }"


def experiment_text(**tables: dict) -> str:
    """The test experiment; ``tables`` update its tables key by key."""
    lines = []
    for name, defaults in _TABLES.items():
        lines.append(f"[{name}]")
        for key, value in {**defaults, **tables.get(name, {})}.items():
            lines.append(f"{key} = {toml_value(value)}")
        if name == "model":
            lines.append(f"fixed = {FIXED}")
        lines.append("")
    return "\n".join(lines) + _SPACE


def init_state(folder: Path, text: str) -> Path:
    """A state file with the pending initial design, as ``splinenas init`` makes it."""
    path = folder / "state" / "ctl.h5"
    experiment = parse_experiment(text, "test.toml")
    with StateStore.create(path, experiment) as store:
        policy.Study(store.state, experiment).initial_batch()
        store.commit()
    return path


def objective(params: dict) -> float:
    """The stand-in's accuracy: a smooth hill inside the box."""
    return 60.0 + 2.0 * params["g1"] - 0.2 * (params["g2"] - 11) ** 2


FAKE_TRAINER = r"""
import fcntl, json, os, signal, sys, time
from pathlib import Path

from nas.pointdir.point import point_hash, read_point_file
from nas.pointdir.curve import append_entry, make_entry
from nas.pointdir.result import (
    Result, now_iso, write_divergence, write_error, write_progress, write_result,
)

from controller_support import objective

here = Path(__file__).resolve().parent
behaviour = json.loads((here / "behaviour.json").read_text())
folder = Path(sys.argv[sys.argv.index("--point-dir") + 1])
point = read_point_file(folder)
runs = folder / "fake-runs.txt"
n = len(runs.read_text().splitlines()) if runs.exists() else 0
with open(runs, "a") as handle:
    handle.write(f"{os.getpid()} seed {point.seed}\n")
modes = behaviour.get("modes", {}).get(str(point.point_id), [])
mode = modes[n] if n < len(modes) else "good"
journal = behaviour.get("journal")


def note(what):
    if journal:
        with open(journal, "a") as handle:
            handle.write(f"{what} {point.point_id} {os.getpid()} {time.time():.6f}\n")


note("start")
# Stands for the GPUs of the point: a second training at the same time is written down.
gpus = open(folder / "training.lock", "a")
try:
    fcntl.flock(gpus, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    with open(folder / "overlaps.txt", "a") as handle:
        handle.write(f"{os.getpid()} trained while an earlier run of the point still did\n")
if mode == "orphan" and os.fork() == 0:  # a child that trains on after the trainer exits
    time.sleep(20)
    os._exit(0)
if mode == "lose-wrapper":  # the job's wrapper is killed; the trainer trains on
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(1.5)
    mode = "good"
if mode == "slow":  # trains for a while, then leaves a good result
    time.sleep(behaviour.get("slow_seconds", 8.0))
    mode = "good"
time.sleep(behaviour.get("sleep", 0.0))
value = objective(point.params)
document = Result(
    point_id=point.point_id, params=dict(point.params), metrics={"top1": value, "top5": 99.0},
    val_images=10, bad_images=0, epochs=1, world_size=1, device="cpu", device_hours=0.0,
    wall_seconds=1.0, started=now_iso(), finished=now_iso(), package_version="test",
    input_hash=point_hash(folder), images_per_second=1234.5,
).to_dict()
code = 0
if mode in ("good", "diverged"):
    top1 = value if mode == "good" else 10.0
    curve = append_entry(folder, make_entry(
        epoch=1, images=100, loss=1.5, top1=top1, top5=99.0, lr=0.1, seconds=2.0))
if mode == "good":
    write_result(folder, Result(**{k: v for k, v in document.items() if k != "format"}))
elif mode == "diverged":  # an hour of a 2-GPU segment left when the guard stopped it
    write_divergence(folder, reason="training loss is not finite (stand-in)", epoch=1,
                     curve=curve, saved_seconds=3600.0, world_size=2, device="cuda")
    code = 5
elif mode in ("exit1", "orphan"):
    print("stand-in trainer: failing on purpose")
    code = 1
elif mode == "oom":
    write_error(folder, rank=0, exc=RuntimeError("CUDA out of memory (stand-in)"), oom=True)
    code = 4
elif mode == "progress":
    (folder / "checkpoint.pt").write_bytes(b"stand-in weights")  # as the trainer leaves it
    write_progress(folder, point_id=point.point_id, epoch=n + 1, step=0, reason="deadline")
    code = 3
else:
    bad = {"corrupt": "{not json", "wrong-point": json.dumps({**document, "point_id": 999}),
           "nan": json.dumps({**document, "metrics": {"top1": float("nan"), "top5": 1.0}})}[mode]
    (folder / "result.json").write_text(bad)
note("end")
sys.exit(code)
"""


def write_fake_trainer(folder: Path, behaviour: dict) -> Path:
    """Install the stand-in trainer with ``behaviour`` in ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "fake-python"
    path_line = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})"
    script.write_text(f"#!{sys.executable}\n{path_line}\n{FAKE_TRAINER}")
    script.chmod(0o755)
    (folder / "behaviour.json").write_text(json.dumps(behaviour))
    return script


def job_names(run: Path) -> list[str]:
    """Names of every job the local backend started for this run (one per submission)."""
    jobs = run / "jobs"
    return sorted(
        (folder / "name").read_text().strip()
        for folder in jobs.iterdir()
        if (folder / "name").is_file()
    )


def leave_submitting(state_path: Path, cwd: Path, job_id: str | None = None) -> Path:
    """Point 0 as a killed controller leaves it; its folder.

    Attempt 1 is committed as submitting under the name ``ctl-p0-r0a1s0``
    (then as submitted to ``job_id`` when one is given), and its job folder is
    prepared as a submission prepares it.
    """
    name = "ctl-p0-r0a1s0"
    run = layout.run_dir(state_path)
    with StateStore.open(state_path) as store:
        state = store.state
        state.update_point(0, attempts=1, job_name=name, **({"job_id": job_id} if job_id else {}))
        state.set_status(0, PointStatus.SUBMITTING, f"as {name}")
        if job_id:
            state.set_status(0, PointStatus.SUBMITTED, f"job {job_id}")
        experiment = policy.experiment_of(state, "test")
        JobSettings.from_experiment(experiment, cwd, state_path).prepare(run, state.point(0))
        store.commit()
    return layout.point_dir(run, 0)


def wait_for(check: Callable[[], object], seconds: float = 120.0) -> None:
    """Poll ``check`` every 0.1 s until it is true; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def kill_group(pid_file: Path) -> None:
    """SIGKILL the process group of the pid in ``pid_file`` (a detached controller's)."""
    try:
        os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError):
        pass
