"""``/curve_index``: readers find each stored curve's bytes without opening its dataset.

The index is written with the curves; a verified reader takes each curve from
where it says, and a file without it (written before it existed) reads the same
curves through HDF5.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import pytest

from nas.commands.curves import curve_json
from nas.config import parse_experiment
from nas.curvefields import CURVE_FIELDS
from nas.record import hdf5, integrity
from nas.record.state import State
from nas.record.store import load_state

EXPERIMENT = parse_experiment(
    '[experiment]\nname = "c"\n[[space]]\nname = "x"\ntype = "float"\nlow = 0\nhigh = 1\n'
)


def entry(epoch: int, loss: float | None = 1.5) -> dict:
    return {"epoch": epoch, "images": 1000 * epoch, "loss": loss, "top1": 40.0 + epoch,
            "top5": 80.0 + epoch / 3, "lr": 0.1 / epoch, "seconds": 60.0 * epoch}  # fmt: skip


def state_with_curves() -> State:
    """Five points: curves of several lengths, one with a loss not measured, one empty."""
    state = State(EXPERIMENT.text, EXPERIMENT.space)
    for i in range(5):
        state.add_point({"x": i / 5}, "manual", 0)
    state.set_curve(0, [entry(e) for e in range(1, 31)])
    state.set_curve(1, [entry(1), entry(2, loss=None), entry(3)])
    state.set_curve(2, [])
    state.set_curve(4, [entry(1)])
    return state


def write(path: Path, state: State) -> Path:
    path.write_bytes(hdf5.state_image(state))
    return path


def test_the_index_places_every_curve_where_hdf5_keeps_it(tmp_path: Path) -> None:
    path = write(tmp_path / "s.h5", state_with_curves())
    with h5py.File(path, "r") as file:
        index = {row["id"]: row for row in file["curve_index"][()]}
        assert sorted(index) == [0, 1, 2, 4] == sorted(int(name) for name in file["curves"])
        for name, dataset in file["curves"].items():
            row = index[int(name)]
            assert row["rows"] == len(dataset)
            offset = dataset.id.get_offset()
            assert row["offset"] == (-1 if offset is None else offset - file.userblock_size)


def test_curves_read_through_the_index_are_the_curves_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = state_with_curves()
    loaded = load_state(write(tmp_path / "s.h5", written))

    def refused(*args: object) -> None:
        raise AssertionError("a curve the index places was opened as a dataset")

    monkeypatch.setattr(h5py.h5d, "open", refused)
    curves = {point_id: loaded.curves[point_id] for point_id in (0, 1, 4)}
    assert curves == {point_id: written.curves[point_id] for point_id in (0, 1, 4)}
    monkeypatch.undo()
    assert dict(loaded.curves) == dict(written.curves)  # the empty one is found through HDF5


def test_a_file_without_the_index_reads_the_same_curves(tmp_path: Path) -> None:
    written = state_with_curves()
    image = hdf5.state_image(written)[integrity.USERBLOCK :]
    buffer = io.BytesIO(image)
    with h5py.File(buffer, "r+") as file:
        del file["curve_index"]
    older = tmp_path / "older.h5"
    older.write_bytes(integrity.seal(buffer.getvalue()))
    with h5py.File(older, "r") as file:
        assert "curve_index" not in file
    assert dict(load_state(older).curves) == dict(written.curves)


def test_a_state_without_curves_has_no_index(tmp_path: Path) -> None:
    state = State(EXPERIMENT.text, EXPERIMENT.space)
    state.add_point({"x": 0.5}, "manual", 0)
    with h5py.File(write(tmp_path / "s.h5", state), "r") as file:
        assert "curve_index" not in file


def test_a_curve_without_missing_values_is_the_json_of_its_entries() -> None:
    rows = [tuple(entry(e).values()) for e in range(1, 31)]
    rows.append((31, 31000, -0.0, 1e-17, 5e-324, 1.7976931348623157e308, 123456789012.5))
    expected = json.dumps([dict(zip(CURVE_FIELDS, row, strict=True)) for row in rows])
    assert curve_json(rows) == expected
    assert json.loads(curve_json(rows))[-1]["top5"] == 5e-324
