"""The heartbeat of a point folder is kept by the launch wrapper, for every training command.

Only the built-in trainer beat before: a job running an own command that the
scheduler forgot (LSF and Flux drop ended jobs from their listings, Slurm answers
"Invalid job id") was judged at once, found without a result and retried while
its training still ran, so the point trained twice at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nas.pointdir import heartbeat

#: Writes whether the heartbeat exists while it runs, as a training command would see it.
PROBE = (
    "import os, pathlib; d = pathlib.Path(os.environ['SPLINENAS_POINT_DIR']); "
    "(d / 'seen').write_text(str((d / 'heartbeat').exists())); raise SystemExit(3)"
)


def launch(point: Path, rank: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "nas.trial.launch", "--point-dir", str(point), "--",
            sys.executable, "-c", PROBE]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PMI_RANK": rank, "PMI_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29500"}  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("rank", "beats"), [("0", "True"), ("1", "False")])
def test_rank_0_beats_while_an_own_command_runs_and_removes_it_after(
    tmp_path: Path, rank: str, beats: str
) -> None:
    done = launch(tmp_path, rank)
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "seen").read_text() == beats
    assert heartbeat.age(tmp_path) is None, "the heartbeat outlived the command"
