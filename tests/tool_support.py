"""Debian programs some tests need, installed when missing (``tests/tools/debian-tool.sh``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "tools" / "debian-tool.sh"


def debian_tool(package: str, *commands: str) -> str:
    """Path of the first of ``commands`` on PATH, installing ``package`` first when none is.

    Fails (never skips) when it cannot be had: the suite needs root and apt,
    as it does for its Slurm cluster.
    """
    done = subprocess.run(
        ["bash", str(SCRIPT), package, *commands], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
