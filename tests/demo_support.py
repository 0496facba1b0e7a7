"""One real run of ``splinenas demo`` shared by the tests that need one (16 trainings: minutes).

The first Quick start command without its ``pip install``: ``splinenas demo``
in an empty folder, interrupted with Ctrl-C (SIGINT) once a point is measured
and run again to its end. ``test_readme_sample.py`` compares the resumed run's
report with the README's sample output (the search is deterministic and the
interrupted job is re-attached, so the report is the one an uninterrupted run
prints), ``test_demo.py`` checks the pause, the resume, the report and the
state. Both run it through the session fixture ``demo_run`` of ``conftest.py``,
so the suite trains the demo once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nas.commands.demo import POLL_SECONDS
from nas.record.state import PointStatus
from nas.record.store import StateStore

ROOT = Path(__file__).resolve().parents[1]
#: Generous: a loaded 2-core machine trains the first point in well under a minute.
FIRST_MEASUREMENT_S = 900
RUN_S = 3600
#: The copy of the state file the pause left, in the demo's folder.
PAUSED = "paused.h5"


def demo_argv(*extra: str) -> list[str]:
    """The Quick start command (``splinenas demo``) as this checkout runs it."""
    return [sys.executable, "-m", "nas", "demo", *extra]


def demo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class DemoRun:
    """The folder the demo ran in, its two runs and a copy of the state as the pause left it."""

    folder: Path
    paused: subprocess.CompletedProcess
    resumed: subprocess.CompletedProcess

    @property
    def state(self) -> Path:
        return demo_state(self.folder)

    @property
    def paused_state(self) -> Path:
        return self.folder / PAUSED


def demo_state(folder: Path) -> Path:
    """Where ``splinenas demo`` started in ``folder`` keeps its state (``--out state/demo``)."""
    return folder / "state" / "demo" / "demo-digits.h5"


def run_demo(folder: Path) -> DemoRun:
    """``splinenas demo`` in ``folder``: paused after its first measurement, then resumed."""
    state = demo_state(folder)
    first = subprocess.Popen(
        demo_argv(), cwd=folder, env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    _wait_for_a_measurement(state, first, FIRST_MEASUREMENT_S)
    time.sleep(3 * POLL_SECONDS)  # the cycle that took it in prints its line (README quotes it)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=120)
    paused = subprocess.CompletedProcess(first.args, first.returncode, stdout, stderr)
    assert paused.returncode == 0, stderr[-3000:]
    shutil.copyfile(state, folder / PAUSED)
    run = DemoRun(folder, paused, subprocess.run(
        demo_argv(), cwd=folder, env=demo_env(), capture_output=True, text=True, timeout=RUN_S
    ))  # fmt: skip
    assert run.resumed.returncode == 0, run.resumed.stderr[-3000:]
    return run


def _wait_for_a_measurement(state: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if state.exists() and StateStore.read(state).with_status(PointStatus.DONE):
            return
        time.sleep(0.5)
    raise AssertionError(f"no point of {state} was measured within {timeout} s")
