"""Readers that go through a state once: curves decoded without being kept, read from the verified file."""

import json
from pathlib import Path

import pytest

from nas.commands.main import main
from nas.config import parse_experiment
from nas.record import integrity
from nas.record.store import StateStore, load_state

EXPERIMENT = """
[experiment]
name = "lean"
[[space]]
name = "a"
type = "float"
low = 0.0
high = 1.0
"""


def _curve(top1: float, loss: float | None = 1.0) -> list[dict]:
    return [
        {"epoch": e, "images": 10 * e, "loss": loss, "top1": top1 * e, "top5": 1.0, "lr": 0.1,
         "seconds": 1.0 * e}
        for e in (1, 2, 3)
    ]  # fmt: skip


@pytest.fixture()
def state_path(tmp_path: Path) -> Path:
    path = tmp_path / "lean.h5"
    with StateStore.create(path, parse_experiment(EXPERIMENT, "lean.toml")) as store:
        for i in range(4):
            point = store.state.add_point({"a": i / 4}, "manual", 0)
            store.state.set_curve(point.id, _curve(i + 1.0, None if i == 2 else 1.0))
            store.state.record(point.id, float(i))
        store.commit()
    return path


def test_asking_whether_a_curve_exists_decodes_nothing(state_path: Path) -> None:
    state = load_state(state_path)
    assert 0 in state.curves and 99 not in state.curves
    assert state.curves._curves[0] is None  # still undecoded
    assert state.curves.read(0) == _curve(1.0)
    assert state.curves._curves[0] is None  # read, not kept
    assert state.curves[2] == _curve(3.0, None)  # a NaN loss reads back as None


def test_export_json_writes_every_point_and_curve(state_path: Path, capsys) -> None:
    assert main(["export", "--state", str(state_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["curve"] for p in doc["points"]] == [
        _curve(i + 1.0, None if i == 2 else 1.0) for i in range(4)
    ]


def test_a_flipped_byte_is_refused_before_parsing(state_path: Path) -> None:
    data = bytearray(state_path.read_bytes())
    data[-100] ^= 0xFF
    state_path.write_bytes(bytes(data))
    handle = None
    with pytest.raises(integrity.IntegrityError, match="does not match its SHA-256"):
        handle, _ = integrity.open_checked(state_path)
    assert handle is None
