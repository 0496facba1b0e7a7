"""pytest fixture: the one-node Slurm cluster of ``tests/slurm/cluster.sh``.

Import ``slurm_cluster`` into a test module (or a conftest) that marks its
tests ``slurm``. A cluster that cannot start fails those tests with the
script's output: in CI a missing Slurm is an error, not a skip.

A cluster that was already running is left running afterwards (a developer
may keep one up between runs), unless a test session started it and died
without stopping it: the session that starts the cluster writes its pid to
an owner file beside the configuration, and a later session that finds the
cluster up under a dead owner takes it over and stops it at its end. While
the cluster is up, SIGTERM (what ``timeout`` and a CI runner's cancel send)
ends the session as Ctrl-C does, so the cluster's teardown still runs.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).with_name("cluster.sh")
#: Beside the cluster's slurm.conf: the pid of the test session that started it.
OWNER_FILE = "pytest.owner"


def _cluster(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), action], capture_output=True, text=True, timeout=300
    )


def orphaned(owner: Path) -> bool:
    """True when ``owner`` names a test session that is no longer alive.

    A missing or unreadable file is no owner (a cluster started by hand), so
    False; a pid that cannot be signalled for lack of permission is alive.
    """
    try:
        pid = int(owner.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}: stopping the test session")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """Start the cluster (once per session); yields the SLURM_CONF path."""
    conf = shlex.split(_cluster("env").stdout.split("=", 1)[1])[0]
    os.environ["SLURM_CONF"] = conf
    owner = Path(conf).with_name(OWNER_FILE)
    was_up = _cluster("status").returncode == 0
    if was_up and orphaned(owner):
        print("slurm cluster left up by a test session that died: taking it over")
        was_up = False
    started = time.monotonic()
    up = _cluster("start")
    if up.returncode != 0:
        pytest.fail(
            f"the test Slurm cluster did not start (exit {up.returncode}):\n{up.stdout}{up.stderr}",
            pytrace=False,
        )
    print(f"slurm cluster up in {time.monotonic() - started:.1f} s")
    if was_up:
        yield conf
        return
    owner.write_text(f"{os.getpid()}\n")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield conf
    finally:
        signal.signal(signal.SIGTERM, previous)
        down = _cluster("stop")
        owner.unlink(missing_ok=True)
    assert down.returncode == 0, down.stderr
