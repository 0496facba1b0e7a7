"""``status`` and ``show`` print the training pace a result records.

The controller stores it in the state when it ingests the result, so readers
open no point folder; points measured before it did are read from their
result.json (old result files without the figures: nothing).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from controller_support import experiment_text, write_fake_trainer
from controller_support import init_state as controller_state
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.pointdir.result import read_pace
from nas.record.store import StateStore, load_state

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX})


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    return init_state(tmp_path, capsys, TOML)


def measured(state: Path, point_id: int, value: float, **fields: float) -> None:
    folder = layout.point_dir(layout.run_dir(state), point_id)
    folder.mkdir(parents=True, exist_ok=True)
    document = {"point_id": point_id, "metrics": {"top1": value}, **fields}
    (folder / "result.json").write_text(json.dumps(document))
    with StateStore.open(state) as store:
        store.state.record(point_id, value)
        store.commit()


def test_status_and_show_print_images_per_second_and_data_wait(toy, capsys):
    measured(toy, 0, 70.0, images_per_second=2480.5, data_wait_share=0.031, device_hours=12.5)
    measured(toy, 1, 60.0, device_hours=3.0)  # an older result: no speed figures
    code, out, err = run(capsys, "status", "--state", str(toy), "--json")
    assert code == 0, err
    pace = json.loads(out)["pace"]
    assert pace["0"] == {
        "images_per_second": 2480.5,
        "data_wait_share": 0.031,
        "device_hours": 12.5,
    }
    assert pace["1"] == {"device_hours": 3.0}
    code, out, _ = run(capsys, "status", "--state", str(toy))
    assert "point 0: 2480.5 img/s per rank, data wait 3.1 %, 12.5 device-h" in out
    code, out, _ = run(capsys, "show", "--state", str(toy), "0")
    assert code == 0 and "training pace (rank 0, steady state): 2480.5 img/s per rank" in out


def test_read_pace_is_lenient(tmp_path):
    assert read_pace(tmp_path) is None
    (tmp_path / "result.json").write_text("{not json")
    assert read_pace(tmp_path) is None
    (tmp_path / "result.json").write_text(json.dumps({"images_per_second": "fast"}))
    assert read_pace(tmp_path) is None


def test_the_controller_stores_the_pace_so_status_opens_no_point_folder(tmp_path, capsys):
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    state = controller_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    outcome = run_controller(
        state, poll=0.05, max_cycles=400, progress=lambda s: None, cwd=tmp_path
    )
    assert outcome.ok, outcome.reason
    stored = {str(p.id): p.extra.get("pace") for p in load_state(state).points}
    assert stored and all(
        pace == {"images_per_second": 1234.5, "device_hours": 0.0} for pace in stored.values()
    ), stored
    shutil.rmtree(layout.run_dir(state) / layout.POINTS)  # nothing left to read there
    code, out, err = run(capsys, "status", "--state", str(state), "--json")
    assert code == 0, err
    assert json.loads(out)["pace"] == stored
