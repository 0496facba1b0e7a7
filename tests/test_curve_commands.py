"""Learning curves in the state file, ``export --json``, ``show``, ``status`` and ``plot``."""

from __future__ import annotations

import json

import h5py
import pytest
from matplotlib.image import imread

from nas.commands.main import main
from nas.config import parse_experiment
from nas.pointdir import layout
from nas.pointdir.curve import append_entry, make_entry
from nas.record import integrity
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

TEXT = """
[experiment]
name = "c"
[[space]]
name = "g1"
type = "int"
low = 8
high = 64
"""


def curve(point_id: int, epochs: int, final: float) -> list[dict]:
    """A rising curve; the first loss of point 1 was not finite."""
    return [
        make_entry(
            epoch=e,
            images=1000 * e,
            loss=float("inf") if (point_id, e) == (1, 1) else 3.0 / e + 0.3 * point_id,
            top1=final * (e / epochs) ** 0.5,
            top5=min(100.0, 2 * final * (e / epochs) ** 0.5),
            lr=0.1 * (1 - e / (epochs + 1)),
            seconds=60.0 * e,
        )
        for e in range(1, epochs + 1)
    ]


@pytest.fixture
def state_path(tmp_path):
    path = tmp_path / "state" / "c.h5"
    with StateStore.create(path, parse_experiment(TEXT)) as store:
        state = store.state
        for i, g1 in enumerate((8, 30, 64)):
            point = state.add_point({"g1": g1}, "initial", 0)
            state.record(point.id, 40.0 + 10 * i)
            state.set_curve(point.id, curve(point.id, 4 + i, 40.0 + 10 * i))
        running = state.add_point({"g1": 20}, "manual", 1)
        state.set_status(running.id, PointStatus.SUBMITTING)
        state.set_status(running.id, PointStatus.SUBMITTED)
        state.update_point(
            running.id,
            extra={"diverged": 1, "guard_saved": {"device_hours": 3.0, "gpu_hours": 2.5}},
        )
        store.commit()
    folder = layout.point_dir(layout.run_dir(path), 3)
    folder.mkdir(parents=True)
    for entry in curve(3, 7, 33.0)[:5]:  # the running point's folder, 5 epochs so far
        append_entry(folder, entry)
    return path


def test_curves_round_trip_through_the_state_file_and_old_files_read_as_none(state_path):
    state = load_state(state_path)
    assert sorted(state.curves) == [0, 1, 2]
    assert state.curves[1] == curve(1, 5, 50.0) and state.curves[1][0]["loss"] is None
    with h5py.File(state_path, "a") as file:  # a file from before curves were stored
        del file["curves"]
    body = state_path.read_bytes()[integrity.USERBLOCK :]
    state_path.write_bytes(integrity.seal(body))  # a genuine file of that kind, not a damaged one
    assert load_state(state_path).curves == {}


def test_export_json_carries_every_curve(state_path, tmp_path, capsys):
    assert main(["export", "--state", str(state_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    state = load_state(state_path)
    by_id = {p["id"]: p for p in document["points"]}
    for point_id, entries in state.curves.items():
        assert by_id[point_id]["curve"] == entries
    assert [e["epoch"] for e in by_id[3]["curve"]] == [1, 2, 3, 4, 5]  # read from its folder
    out = tmp_path / "points.json"
    assert main(["export", "--state", str(state_path), "--json", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == document
    assert main(["export", "--state", str(state_path)]) == 2  # --csv or --json


def test_show_prints_a_compact_curve_table(state_path, capsys):
    assert main(["show", "--state", str(state_path), "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["curve"] == curve(2, 6, 60.0)
    assert main(["show", "--state", str(state_path), "1"]) == 0
    text = capsys.readouterr().out
    assert "learning curve" in text and "non-finite" in text
    header = next(line for line in text.splitlines() if line.startswith("epoch"))
    assert header.split() == ["epoch", "images", "loss", "top-1", "top-5", "lr", "hours"]


def test_status_shows_running_progress_and_the_guard(state_path, capsys):
    assert main(["status", "--state", str(state_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    running = curve(3, 7, 33.0)[4]  # every figure of its last entry, under "figures"
    assert document["running"] == [
        {
            "id": 3,
            "epoch": 5,
            "top1": pytest.approx(33.0 * (5 / 7) ** 0.5),
            "figures": {k: pytest.approx(v) for k, v in running.items() if k != "epoch"},
        }
    ]
    assert document["diverged"]["saved_gpu_hours"] == 2.5
    assert [p["id"] for p in document["diverged"]["points"]] == [3]
    assert main(["status", "--state", str(state_path)]) == 0
    text = capsys.readouterr().out
    assert "running: point 3: epoch 5, subset top-1 27.89 %" in text
    assert "the guard saved 2.50 GPU-hours" in text


def test_plot_draws_the_learning_curves(state_path, tmp_path):
    assert main(["plot", "--state", str(state_path), "--out", str(tmp_path / "plots")]) == 0
    picture = tmp_path / "plots" / "learning-curves.png"
    assert picture.is_file() and picture.stat().st_size > 10_000
    image = imread(picture)
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 100, "the incumbent's curve is drawn in red"
