"""Warm starts and honest inputs: import, and what add, record and predict refuse or report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from experiment_support import experiment_toml, init_state, run

from nas.record.state import PointStatus
from nas.record.store import load_state

SPACE = {
    "g1": {"type": "int", "low": 4, "high": 32},
    "g2": {"type": "float", "low": 0.0, "high": 1.0},
}
TOML = experiment_toml("warm", SPACE, max_points=40)  # metric top1: percentages


def accuracy(g1: float, g2: float) -> float:
    return 70.0 + 0.5 * g1 - 0.02 * (g1 - 20) ** 2 - 8.0 * (g2 - 0.6) ** 2


@pytest.fixture
def warm(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    return init_state(tmp_path, capsys, TOML)


def write_csv(path: Path, rows: list[tuple]) -> Path:
    lines = ["g1,g2,value"] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def earlier_campaign(n: int = 20) -> list[tuple]:
    rng = np.random.default_rng(1)
    g1 = rng.integers(4, 33, n)
    g2 = np.round(rng.random(n), 4)
    return [(int(a), float(b), round(accuracy(a, b), 4)) for a, b in zip(g1, g2, strict=True)]


def test_a_csv_import_of_20_points_proposes_without_any_design_run(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = earlier_campaign()
    source = write_csv(tmp_path / "earlier.csv", rows)
    code, _, err = run(capsys, "import", "--state", str(warm), str(source), "--note", "2023 runs")
    assert code == 0, err
    state = load_state(warm)
    imported = [p for p in state.points if p.origin == "import"]
    assert len(imported) == len({(r[0], r[1]) for r in rows}) and all(
        p.status is PointStatus.DONE for p in imported
    )
    assert imported[0].extra["import"] == {"source": str(source), "row": 1, "note": "2023 runs"}
    code, out, err = run(capsys, "propose", "--state", str(warm), "--dry-run", "--json")
    assert code == 0, err
    (proposal,) = json.loads(out)
    assert proposal["predicted"] is not None  # a spline proposal: no design point was measured
    design = [p for p in load_state(warm).points if p.origin == "initial"]
    assert design and all(p.status is PointStatus.CANCELLED for p in design)  # withdrawn
    status = json.loads(run(capsys, "status", "--state", str(warm), "--json")[1])
    assert status["best"]["value"] == max(r[2] for r in rows)  # the best measured point
    assert status["fit"]["predicted_max"] >= status["best"]["value"]  # and the spline's maximum
    shown = json.loads(run(capsys, "show", "--state", str(warm), "0", "--json")[1])
    assert shown["spline_maximum"]["params"] == status["fit"]["argmax"]


def test_export_then_import_round_trips(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for point in load_state(warm).points[:4]:
        value = str(accuracy(point.params["g1"], point.params["g2"]))
        assert run(capsys, "record", "--state", str(warm), str(point.id), value)[0] == 0
    exported = tmp_path / "points.csv"
    assert run(capsys, "export", "--state", str(warm), "--csv", "--out", str(exported))[0] == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    copy = init_state(fresh, capsys, TOML)
    code, _, err = run(capsys, "import", "--state", str(copy), str(exported))
    assert code == 0, err
    measured = {
        (json.dumps(p.params), p.value)
        for p in load_state(warm).points
        if p.status is PointStatus.DONE
    }
    again = {
        (json.dumps(p.params), p.value)
        for p in load_state(copy).points
        if p.status is PointStatus.DONE
    }
    assert again == measured and len(measured) == 4
    # the same file twice: merged, nothing new
    assert run(capsys, "import", "--state", str(copy), str(exported))[0] == 0
    assert len(load_state(copy).points) == len(load_state(warm).points)


def test_a_json_list_of_points_imports(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    points = [{"params": {"g1": a, "g2": b}, "value": v} for a, b, v in earlier_campaign(6)]
    source = tmp_path / "points.json"
    source.write_text(json.dumps({"points": points}), encoding="utf-8")
    assert run(capsys, "import", "--state", str(warm), str(source))[0] == 0
    assert sum(p.origin == "import" for p in load_state(warm).points) == 6


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [(2, 0.5, 70.0)],
            "row 2: g1=2 outside the box; with --snap it would be stored as 4, the lower bound",
        ),
        ([(8, 0.5, 170.0)], "row 2: top1 = 170 is outside its valid range [0, 100]"),
        ([(8, 0.5, -5)], "row 2: top1 = -5 is outside its valid range"),
        ([(8, 0.5, 70.0), (8, 0.5, 71.0)], "row 3: the same architecture as row 2"),
        ([(8, 0.5, 70.0), (8, "wide", 71.0)], "row 3: parameter 'g2' must be a number"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_imported(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, rows: list, message: str
) -> None:
    source = write_csv(tmp_path / "bad.csv", [(10, 0.25, 75.0), *rows])
    before = load_state(warm)
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 1 and "nothing imported" in err
    assert f"{source} {message}" in err, err
    assert "Traceback" not in err
    after = load_state(warm)
    assert after.generation == before.generation and len(after.points) == len(before.points)


def test_snap_is_reported_and_outside_values_need_snap(
    warm: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "add", "--state", str(warm), "--params", "g1=2,g2=0.5")
    assert code == 1 and "g1=2 outside the box" in err and "--snap" in err
    assert len(load_state(warm).points) == 5
    code, _, err = run(capsys, "add", "--state", str(warm), "--params", "g1=2,g2=0.5", "--snap")
    assert code == 0 and "note: g1=2 stored as 4, the lower bound" in err
    code, _, err = run(capsys, "add", "--state", str(warm), "--params", "g1=9.4,g2=0.5")
    assert code == 0 and "note: g1=9.4 stored as 9, the nearest integer" in err


def test_values_outside_the_metric_range_are_refused(
    warm: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "record", "--state", str(warm), "0", "170")
    assert code == 1 and "point 0: top1 = 170 is outside its valid range [0, 100]" in err
    code, _, err = run(
        capsys, "add", "--state", str(warm), "--params", "g1=9,g2=0.5", "--value", "-5"
    )
    assert code == 1 and "--value: top1 = -5 is outside" in err
    assert load_state(warm).point(0).value is None and len(load_state(warm).points) == 5


def test_predict_outside_the_box_needs_extrapolate(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = write_csv(tmp_path / "earlier.csv", earlier_campaign(8))
    assert run(capsys, "import", "--state", str(warm), str(source))[0] == 0
    code, _, err = run(capsys, "predict", "--state", str(warm), "--params", "g1=200,g2=0.5")
    assert code == 1 and "g1=200 outside the box" in err and "--extrapolate" in err
    argv = ["predict", "--state", str(warm), "--params", "g1=200,g2=0.5", "--extrapolate"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    at_bound = run(capsys, "predict", "--state", str(warm), "--params", "g1=32,g2=0.5")[1]
    assert float(out) != float(at_bound)  # evaluated at 200, not at the clipped 32


def test_propose_past_the_spline_support_limit_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nas.search.spline import MAX_SUPPORT

    space = {"a": {"type": "float", "low": 0.0, "high": 1.0}, "b": SPACE["g2"]}
    state = init_state(tmp_path, capsys, experiment_toml("big", space, max_points=10**6))
    xy = np.random.default_rng(0).random((MAX_SUPPORT + 1, 2))
    rows = [(float(a), float(b), round(accuracy(4 + 28 * a, b), 6)) for a, b in xy]
    source = tmp_path / "many.csv"
    source.write_text("a,b,value\n" + "".join(f"{a!r},{b!r},{v}\n" for a, b, v in rows))
    code, _, err = run(capsys, "import", "--state", str(state), str(source))
    assert code == 0, err
    code, out, err = run(capsys, "propose", "--state", str(state), "--dry-run")
    assert code == 1 and out == ""
    assert f"{MAX_SUPPORT + 1:,} support points exceed the {MAX_SUPPORT:,}" in err
    assert "narrower box" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
