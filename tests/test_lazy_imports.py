"""Commands that read a state answer a login node at once: no torch, no scipy.stats.

Each command runs in a fresh interpreter, which then reports what it had
imported; the state holds a search by hand with its fit stored by `propose`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml

from nas.commands.main import main

ROOT = Path(__file__).resolve().parents[1]
TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, tolerance=0.05)
PROBE = (
    "import sys\n"
    "from nas.commands.main import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted({'torch', 'scipy.stats'} & set(sys.modules))\n"
    "print('probe', code, ','.join(heavy) or '-', file=sys.stderr)\n"
)


def imports_of(*argv: str) -> tuple[int, str]:
    """Exit code and the heavy modules ``splinenas ARGV`` imported, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env
    )
    probe = done.stderr.strip().splitlines()[-1].split()
    assert probe[0] == "probe", done.stderr
    return int(probe[1]), probe[2]


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
def test_reading_commands_import_neither_torch_nor_scipy_stats(
    searched: Path, argv: tuple[str, ...]
) -> None:
    assert imports_of(argv[0], "--state", str(searched), *argv[1:]) == (0, "-")


def test_cost_reports_a_usage_error_before_importing_torch() -> None:
    demo = str(ROOT / "jobs" / "demo-digits.toml")
    assert imports_of("cost", demo, "--params", "g1") == (2, "-")
    assert imports_of("cost", demo) == (2, "-")
