"""pytest fixture: the one-node Slurm cluster of ``tests/slurm/cluster.sh``.

Import ``slurm_cluster`` into a test module (or a conftest) that marks its
tests ``slurm``. A cluster that cannot start fails those tests with the
script's output: in CI a missing Slurm is an error, not a skip. A cluster that
was already running is left running afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).with_name("cluster.sh")


def _cluster(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), action], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """Start the cluster (once per session); yields the SLURM_CONF path."""
    conf = shlex.split(_cluster("env").stdout.split("=", 1)[1])[0]
    os.environ["SLURM_CONF"] = conf
    was_up = _cluster("status").returncode == 0
    started = time.monotonic()
    up = _cluster("start")
    if up.returncode != 0:
        pytest.fail(
            f"the test Slurm cluster did not start (exit {up.returncode}):\n{up.stdout}{up.stderr}",
            pytrace=False,
        )
    print(f"slurm cluster up in {time.monotonic() - started:.1f} s")
    yield conf
    if not was_up:
        down = _cluster("stop")
        assert down.returncode == 0, down.stderr
