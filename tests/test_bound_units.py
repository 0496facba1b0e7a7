"""A bound on a known cost written in another unit (MACs for GMACs) is named at ``init``.

``gmacs = 1.8e9`` (a network's MAC count) lies 1e11 times above every candidate of a
small box: it rules nothing out, ``status`` says "does not bind" and ``best --where``
returns the unbounded best, with no word that the number is off by a unit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cost_support import resnet_experiment
from experiment_support import run


def init(tmp_path: Path, capsys: pytest.CaptureFixture, constraints: str) -> tuple[int, str]:
    (tmp_path / "u.toml").write_text(resnet_experiment(constraints=constraints))
    code, _, err = run(capsys, "init", str(tmp_path / "u.toml"), "--state", str(tmp_path / "u.h5"))
    return code, err


def test_a_bound_in_macs_is_named_as_another_unit(tmp_path, capsys) -> None:
    code, err = init(tmp_path, capsys, "gmacs = 1.8e9")
    assert code == 0
    assert "[experiment.constraints] gmacs = 1.8e+09 is" in err
    assert "rules nothing out: is it in another unit? gmacs (multiply-accumulates" in err


def test_a_bound_within_reach_of_the_box_is_not_named(tmp_path, capsys) -> None:
    code, err = init(tmp_path, capsys, "gmacs = 0.01\nparams_m = 5")  # both above the box
    assert code == 0
    assert "another unit" not in err


def test_a_memory_bound_in_bytes_is_named(tmp_path, capsys) -> None:
    code, err = init(tmp_path, capsys, "memory_gib = 16e9")
    assert code == 0
    assert "memory_gib = 1.6e+10 is" in err and "another unit" in err
