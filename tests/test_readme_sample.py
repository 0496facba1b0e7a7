"""The README's sample output is what the README's demo command prints, from a real run.

The run is the first Quick start command without its `pip install` (the
environment is this one): `splinenas demo` in an empty folder. Only the
search's duration differs from run to run and from machine to machine; it is
masked on both sides. When the demo's results change on purpose, paste the
new output (the test's failure message holds it) into the README.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- sample output of `splinenas demo`, from a real run (tests/test_readme_sample.py) -->"
DURATION = re.compile(r"\((?:\d+ min )?\d+ s\)")
CYCLE = re.compile(r"cycle \d+:")


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(MARKER)
    fence = text.index("```text\n", start) + len("```text\n")
    return text[fence : text.index("```", fence)].splitlines()


def masked(lines: list[str]) -> list[str]:
    return [DURATION.sub("(duration)", CYCLE.sub("cycle N:", line)).rstrip() for line in lines]


def walkthrough_cycle_line() -> str:
    """The `run` example's sample line in the walk-through (after its `# `)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"^# (cycle \d+: .*)$", text, re.M).group(1)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    folder = tmp_path_factory.mktemp("quickstart")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "nas", "demo"], cwd=folder, env=env, capture_output=True,
        text=True, timeout=3600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the demo prints absolute paths: the README writes the clone's folder as /path/to/splinenas
    return subprocess.CompletedProcess(
        done.args, 0, done.stdout.replace(str(folder), "/path/to/splinenas"), done.stderr
    )


@pytest.mark.slow
def test_the_readme_shows_the_demos_real_output(demo_run: subprocess.CompletedProcess) -> None:
    printed = demo_run.stdout.strip("\n").splitlines()
    assert masked(readme_block()) == masked(printed), "the demo now prints:\n" + demo_run.stdout


@pytest.mark.slow
def test_the_walkthroughs_cycle_line_is_one_the_demo_printed(
    demo_run: subprocess.CompletedProcess,
) -> None:
    cycles = [line for line in demo_run.stderr.splitlines() if CYCLE.match(line)]
    assert masked([walkthrough_cycle_line()])[0] in masked(cycles), "\n".join(cycles)
