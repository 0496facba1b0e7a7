"""Running a benchmark script as a person does: a fresh interpreter with this checkout on its path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The smallest settings finish in seconds to minutes; a hang fails instead of stalling CI.
TIMEOUT_S = 600


def run_benchmark(script: str, *argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python benchmarks/<script> argv...`` in ``cwd``, its output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def table_rows(stdout: str) -> list[list[str]]:
    """The cells of every Markdown table line in ``stdout``, headers and rules included."""
    rows = [line.strip("|").split("|") for line in stdout.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows]
