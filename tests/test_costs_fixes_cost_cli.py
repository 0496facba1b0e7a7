"""Finding 15: ``cost`` exits 2 (usage) for a built-in family's unknown or missing coordinate."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_support import run

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "resnet18-imagenet22k.toml")
WIDTHS = "c1=64,g1=64,g2=128,g3=256"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        (f"{WIDTHS}", "--params: missing coordinate(s) ['g4']; family 'resnet': valid names"),
        (
            f"{WIDTHS},g4=512,g5=3",
            "--params: unknown coordinate(s) ['g5']; family 'resnet': valid names",
        ),
    ],
    ids=["missing", "unknown"],
)
def test_a_bad_coordinate_of_a_built_in_family_is_a_usage_error(
    capsys: pytest.CaptureFixture, params: str, said: str
) -> None:
    code, _, err = run(capsys, "cost", JOB, "--params", params)
    assert code == 2 and said in err and "Traceback" not in err


def test_a_full_candidate_is_still_priced(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "cost", JOB, "--params", f"{WIDTHS},g4=512")
    assert code == 0 and "GMACs" in out, err
