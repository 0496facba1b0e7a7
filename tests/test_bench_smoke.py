"""Every benchmark at its smallest setting ends with its table (``pytest -m bench_smoke``).

Benchmarks run by hand, so a change to the search or the config can leave one
failing unseen until someone reruns a table: ``status_scale.py`` printed "no fit"
on every row once the default design changed, and ``controller_scale.py`` was
refused once search dimensions had to be model coordinates. This runs each one
as a person would, with the smallest arguments that still reach its table
(about 2 minutes on 2 cores and two workers), so it is left out of the default suite; run it
after a change to the search, the config or the controller.
``tradeoff.py`` runs without its optuna peers (the ``[bench]`` extra).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_benchmark, table_rows

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.bench_smoke

#: (benchmark, smallest arguments that reach its table)
SMALLEST = [
    ("argmax_basins.py", ["--seeds", "2"]),
    ("argmax_gap.py", ["--seeds", "1"]),
    ("calibration.py", ["--problems", "nas5", "--seeds", "1", "--budget", "20"]),
    ("command_latency.py", ["--points", "50", "--repeat", "1"]),
    ("command_overhead.py", ["--points", "3", "--seconds", "0.2"]),
    ("commit_cost.py", ["--points", "100", "--repeat", "1"]),
    ("constrained.py", ["--seeds", "1", "--budget", "20"]),
    ("controller_scale.py", ["--sizes", "10"]),
    ("curve_cost.py", ["--epochs", "1", "--curve-images", "100"]),
    ("data_startup.py", ["--files", "200", "--classes", "10", "--repeats", "1"]),
    (
        "noise_estimate.py",
        ["--problems", "nas5", "--levels", "0.01", "--sizes", "20", "--seeds", "1"],
    ),
    (
        "refill_wall_clock.py",
        ["--problems", "nas5", "--seeds", "1", "--budget", "20", "--workers", "1"],
    ),
    (
        "sample_efficiency.py",
        [
            "--methods",
            "default",
            "--problems",
            "nas5",
            "--noise",
            "exact",
            "--seeds",
            "1",
            "--first-seed",
            "1",
            "--budget",
            "20",
            "--workers",
            "1",
        ],
    ),
    ("spline_speed.py", ["--quick", "--repeat", "1", "--load", "1"]),
    ("status_scale.py", ["--status", "200", "--fit", "60", "--propose", "60", "--positive"]),
    # Branin reaches (a)-(c) within 40; a nas5 run of 20 does not, and the table is then empty
    (
        "stop_statistics.py",
        ["--problems", "branin", "--seeds", "1", "--budget", "40", "--workers", "1"],
    ),
    # its optuna peers need the [bench] extra; the methods here need nothing more
    (
        "tradeoff.py",
        [
            "--problems",
            "nas5",
            "--methods",
            "spline-front",
            "random",
            "--seeds",
            "1",
            "--budget",
            "20",
        ],
    ),
    ("train_throughput.py", ["--suite", "cpu", "--steps", "1", "--images", "8", "--rounds", "1"]),
]


#: The benchmarks that print ``name: value`` lines, not a markdown table: a line their
#: output must hold.
PLAIN = {
    "curve_cost.py": "share of an epoch %",
    "data_startup.py": "speedup:",
    "train_throughput.py": "img/s",
}


def test_every_benchmark_with_a_command_line_is_listed() -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py") if "argparse" in p.read_text()}
    assert scripts == {name for name, _ in SMALLEST}


@pytest.mark.parametrize(("script", "argv"), SMALLEST, ids=[name for name, _ in SMALLEST])
def test_benchmark_reaches_its_table(script: str, argv: list[str], tmp_path: Path) -> None:
    done = run_benchmark(script, *argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    if script in PLAIN:
        assert PLAIN[script] in done.stdout, done.stdout[-2000:]
    else:  # a header, its rule and at least one row
        assert len(table_rows(done.stdout)) >= 3, done.stdout[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
