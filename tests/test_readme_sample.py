"""The README's sample output is what the README's demo command prints, from a real run.

The run is the first Quick start command without its `pip install` (the
environment is this one): `splinenas demo` in an empty folder, paused once with
Ctrl-C and resumed (the session's one demo run, `demo_support.py`; the resumed
run reports the whole search). Only the search's duration differs from run to
run and from machine to machine; it is masked on both sides. When the demo's
results change on purpose, paste the new output (the test's failure message
holds it) into the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from demo_support import DemoRun

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


def readme_paths(text: str, run: DemoRun) -> str:
    """``text`` with the demo's folder written as the README writes the clone's folder."""
    return text.replace(str(run.folder), "/path/to/splinenas")


@pytest.mark.slow
def test_the_readme_shows_the_demos_real_output(demo_run: DemoRun) -> None:
    stdout = readme_paths(demo_run.resumed.stdout, demo_run)
    printed = stdout.strip("\n").splitlines()
    assert masked(readme_block()) == masked(printed), "the demo now prints:\n" + stdout


@pytest.mark.slow
def test_the_walkthroughs_cycle_line_is_one_the_demo_printed(demo_run: DemoRun) -> None:
    stderr = demo_run.paused.stderr + demo_run.resumed.stderr
    cycles = [line for line in stderr.splitlines() if CYCLE.match(line)]
    assert masked([walkthrough_cycle_line()])[0] in masked(cycles), "\n".join(cycles)
