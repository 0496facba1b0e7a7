"""Commands that read a state answer a login node at once: no torch, no scipy, one BLAS thread.

Each command runs in a fresh interpreter, which then reports what it had
imported and how many threads it runs; the state holds a search by hand
with its fit stored by `propose`. The CPU time itself is measured by
benchmarks/command_latency.py (no timed tests).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml

from nas.commands.main import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, tolerance=0.05)
PROBE = (
    "import os, sys\n"
    "from nas.commands.main import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy'))\n"
    "threads = len(os.listdir('/proc/self/task'))\n"
    "left = os.environ.get('OPENBLAS_NUM_THREADS', '-')\n"
    "print('probe', code, ','.join(heavy) or '-', threads, left, file=sys.stderr)\n"
)


def probe(*argv: str, **environ: str) -> list[str]:
    """Exit code, heavy modules, thread count and OPENBLAS_NUM_THREADS after ``splinenas ARGV``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environ}
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        if name not in environ:
            env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env
    )
    report = done.stderr.strip().splitlines()[-1].split()
    assert report[0] == "probe", done.stderr
    return report[1:]


def imports_of(*argv: str) -> tuple[int, str]:
    """Exit code and the torch or scipy modules ``splinenas ARGV`` imported."""
    code, heavy, *_ = probe(*argv)
    return int(code), heavy


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy's design measured by hand, then one proposal (which stores the fit)."""
    folder = tmp_path_factory.mktemp("lazy")
    (folder / "toy.toml").write_text(TOML)
    state = folder / "toy.h5"
    assert main(["init", str(folder / "toy.toml"), "--state", str(state)]) == 0
    for point_id in range(5):
        assert main(["record", "--state", str(state), str(point_id), str(1.0 + point_id)]) == 0
    assert main(["propose", "--state", str(state)]) == 0
    return state


@pytest.mark.parametrize(
    "argv",
    [("status",), ("status", "--json"), ("show", "2"), ("export", "--csv")],
    ids=lambda argv: " ".join(argv),
)
def test_reading_commands_import_neither_torch_nor_scipy(
    searched: Path, argv: tuple[str, ...]
) -> None:
    assert imports_of(argv[0], "--state", str(searched), *argv[1:]) == (0, "-")


def test_cost_reports_a_usage_error_before_importing_torch() -> None:
    demo = str(ROOT / "jobs" / "demo-digits.toml")
    assert imports_of("cost", demo, "--params", "g1") == (2, "-")
    assert imports_of("cost", demo) == (2, "-")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread on one core anyway")
def test_status_runs_one_blas_thread_and_leaves_no_setting_for_processes_it_starts(
    searched: Path,
) -> None:
    assert probe("status", "--state", str(searched)) == ["0", "-", "1", "-"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread on one core anyway")
def test_a_thread_count_the_user_set_is_kept(searched: Path) -> None:
    code, _, threads, left = probe("status", "--state", str(searched), OPENBLAS_NUM_THREADS="2")
    assert (code, int(threads), left) == ("0", 2, "2")


def test_each_command_is_registered_by_the_module_main_imports_for_it() -> None:
    for module in dict.fromkeys(COMMANDS.values()):
        parser = build_parser([module])
        registered = next(
            set(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        )
        assert registered == {c for c, m in COMMANDS.items() if m == module}, module


def test_status_of_a_noisy_search_names_the_stored_smoothed_best_without_fitting(
    tmp_path: Path,
) -> None:
    """With noise the best point is the best smoothed one: the stored fit names it."""
    import json

    from nas.record.store import load_state

    (tmp_path / "toy.toml").write_text(
        experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, tolerance=0.05, noise=0.5)
    )
    state = tmp_path / "toy.h5"
    assert main(["init", str(tmp_path / "toy.toml"), "--state", str(state)]) == 0
    for point_id, value in enumerate([1.0, 2.0, 3.0, 2.0, 5.0]):  # the last: one lucky run
        assert main(["record", "--state", str(state), str(point_id), str(value)]) == 0
    assert main(["propose", "--state", str(state)]) == 0
    stored = load_state(state).fits[-1].best_id
    assert stored >= 0
    assert imports_of("status", "--state", str(state)) == (0, "-")
    out = subprocess.run(
        [sys.executable, "-m", "nas", "status", "--state", str(state), "--json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
    ).stdout  # fmt: skip
    doc = json.loads(out)
    assert doc["best"]["id"] == stored and doc["raw_best"]["id"] == 4
