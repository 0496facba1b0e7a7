"""A commit copies the stored curves it did not change as their stored tables.

Every commit writes the whole file anew; the stored curves are then neither
decoded into entries nor written through HDF5 one by one, but their bytes are
placed where HDF5 allocated each table. The files stay what readers (and the
checksum) expect.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from nas.curvefields import CURVE_FIELDS
from nas.record import hdf5, integrity
from nas.record.hdf5 import StateFormatError
from nas.record.store import StateStore, load_state
from tests.test_curve_index import EXPERIMENT, entry, state_with_curves


def committed(path: Path) -> dict[int, list[dict]]:
    """A state file of :func:`state_with_curves`, committed by a store; its curves."""
    with StateStore.create(path, EXPERIMENT) as store:
        for point in state_with_curves().points:
            store.state.add_point(point.params, "manual", 0)
        written = state_with_curves().curves
        for point_id in written:
            store.state.set_curve(point_id, written[point_id])
        store.commit()
    return dict(written)


def hdf5_curves(path: Path) -> dict[int, list[dict]]:
    """Every curve as plain h5py reads it from its dataset (no index, no offsets)."""
    with h5py.File(path, "r") as file:
        tables = {int(name): dataset[()] for name, dataset in file["curves"].items()}
    return {
        point_id: [
            {name: None if isinstance(v, float) and math.isnan(v) else v for name, v in row.items()}
            for row in ({n: table[n][i].item() for n in CURVE_FIELDS} for i in range(len(table)))
        ]
        for point_id, table in tables.items()
    }


def test_unchanged_curves_are_committed_without_being_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.h5"
    expected = committed(path)

    def refused(*args: object) -> None:
        raise AssertionError("a commit decoded a stored curve it did not change")

    with StateStore.open(path) as store:
        monkeypatch.setattr(hdf5, "_curve_rows", refused)
        store.state.set_curve(3, [entry(1), entry(2)])
        store.state.record(3, 51.0)
        store.commit()
        monkeypatch.undo()
    expected[3] = [entry(1), entry(2)]
    assert dict(load_state(path).curves) == expected
    assert hdf5_curves(path) == expected  # the bytes lie where HDF5 says each table is


def test_every_generation_reads_back_through_hdf5_and_the_index(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    expected = committed(path)
    for generation in range(3):
        with StateStore.open(path) as store:
            store.state.set_curve(4, [entry(e, loss=None) for e in range(1, generation + 3)])
            store.commit()
        expected[4] = [entry(e, loss=None) for e in range(1, generation + 3)]
        assert dict(load_state(path).curves) == expected
        assert hdf5_curves(path) == expected
    assert load_state(path).generation == 5  # create, the curves, three more


def test_a_curve_stored_in_another_layout_is_encoded_again(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    expected = committed(path)
    image = io.BytesIO(path.read_bytes()[integrity.USERBLOCK :])
    with h5py.File(
        image, "r+"
    ) as file:  # as another writer might store it: float32, fields reversed
        other = np.dtype([(name, "f4") for name in reversed(CURVE_FIELDS)])
        table = np.array([tuple(e[n] for n in reversed(CURVE_FIELDS)) for e in expected[0]], other)
        del file["curves/0"], file["curve_index"]
        file["curves/0"] = table
    path.write_bytes(integrity.seal(image.getvalue()))
    with StateStore.open(path) as store:
        store.state.record(2, 40.0)
        store.commit()
    with h5py.File(path, "r") as file:
        assert file["curves/0"].dtype == file["curves/1"].dtype == hdf5._CURVE_DTYPE
    assert dict(load_state(path).curves)[0] == [
        {n: float(np.float32(v)) if n not in ("epoch", "images") else v for n, v in e.items()}
        for e in expected[0]
    ]


def test_a_flipped_bit_in_a_copied_curve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    committed(path)
    with StateStore.open(path) as store:
        store.state.record(2, 40.0)
        store.commit()
    with h5py.File(path, "r") as file:
        offset = int(file["curve_index"][0]["offset"]) + file.userblock_size
    data = bytearray(path.read_bytes())
    data[offset + 20] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(StateFormatError, match="checksum"):
        load_state(path)
