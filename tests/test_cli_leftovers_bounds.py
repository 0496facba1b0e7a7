"""Box bounds taken as written: int bounds the search holds exactly, edges relative to the box."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.search.space import Dim, SpaceError


@pytest.mark.parametrize("high", ["99999999999999999999", "9007199254740993"])
def test_init_refuses_an_int_bound_beyond_2_53_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, high: str
) -> None:
    text = experiment_toml("big", {"x": FLOAT_BOX, "w": {"type": "int", "low": 2, "high": 3}})
    (tmp_path / "big.toml").write_text(text.replace("high = 3", f"high = {high}"))
    code, _, err = run(
        capsys, "init", str(tmp_path / "big.toml"), "--state", str(tmp_path / "b.h5")
    )
    assert code == 1 and f"[space.w] high: int dimension 'w': high = {high} is beyond ±2**53" in err
    assert not (tmp_path / "b.h5").exists()


def test_an_int_bound_of_2_53_is_kept_exactly() -> None:
    assert Dim("w", "int", -(2**53), 2**53).high == 2**53
    with pytest.raises(SpaceError, match=r"low = -9007199254740993 is beyond"):
        Dim("w", "int", -(2**53) - 1, 0)


def test_a_tiny_box_puts_the_best_point_on_one_edge_only(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny = {"type": "float", "low": -1e-300, "high": 1e-300}
    state = init_state(tmp_path, capsys, experiment_toml("toy", {"x": tiny, "y": FLOAT_BOX}))
    points = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])["points"]
    top = next(p for p in points if p["params"] == {"x": 1e-300, "y": 2.0})
    for point in points:
        value = "5" if point["id"] == top["id"] else "1"
        assert run(capsys, "record", "--state", str(state), str(point["id"]), value)[0] == 0
    best = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])["best"]
    assert best["id"] == top["id"] and best["on_edge"] == ["x = 1e-300 (high)", "y = 2.0 (high)"]
