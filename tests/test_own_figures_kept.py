"""A training command's own curve figures (its metric, a validation loss) survive in the state.

``curve.jsonl`` of a command of ``[train] command`` carries figures of its own
beside ``epoch`` and ``loss``; once the point is measured, readers take its
curve from the state file, so the state stores them as columns of the curve's
table. Figures the table cannot hold are named in an event.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from nas.curvefields import CURVE_FIELDS, MAX_FIGURE_NAME, MAX_OWN_FIGURES
from nas.record import hdf5
from nas.record.state import State
from nas.record.store import StateStore, load_state
from tests.test_curve_index import EXPERIMENT, entry, write

#: Own figures with names a metric logger writes: a slash, a space, a non-ASCII letter.
OWN = [
    {**entry(1), "val/acc": 71.0, "bleu score": 20.5, "Δloss": -0.25},
    {**entry(2), "val/acc": 72.5, "bleu score": 21.0},  # Δloss not reported at epoch 2
    {**entry(3), "val/acc": 73.0, "bleu score": 22.0, "Δloss": 0.0},
]


def own_state() -> State:
    """Point 0 with own figures, point 1 with the built-in fields only."""
    state = State(EXPERIMENT.text, EXPERIMENT.space)
    for i in range(2):
        state.add_point({"x": i / 2}, "manual", 0)
    state.set_curve(0, OWN)
    state.set_curve(1, [entry(1), entry(2)])
    return state


def test_own_figures_are_columns_of_the_stored_table_and_read_back(tmp_path: Path) -> None:
    written = own_state()
    assert written.curves[0][1] == OWN[1], "an entry keeps exactly the figures it reported"
    path = write(tmp_path / "s.h5", written)
    with h5py.File(path, "r") as file:
        table = file["curves/0"][()]
        assert table.dtype.names == (*CURVE_FIELDS, "val/acc", "bleu score", "Δloss")
        assert list(table["val/acc"]) == [71.0, 72.5, 73.0]
        index = {row["id"]: row for row in file["curve_index"][()]}
        assert index[0]["offset"] == -1, "the index's sizes are those of the built-in table"
        assert index[1]["offset"] >= 0
    loaded = load_state(path)
    assert dict(loaded.curves) == dict(written.curves)


def test_a_commit_that_copies_the_stored_table_keeps_them(tmp_path: Path) -> None:
    path = write(tmp_path / "s.h5", own_state())
    with StateStore.open(path) as store:
        store.state.log("note", "a change, so the commit writes the file anew")
        store.commit()  # the curves were never decoded: their tables are copied
    assert load_state(path).curves[0] == own_state().curves[0]


def test_export_reads_a_curve_with_own_figures_as_entries(tmp_path: Path) -> None:
    loaded = load_state(write(tmp_path / "s.h5", own_state()))
    assert loaded.curves.stored_rows(0) is None  # the built-in rows would lose them
    assert loaded.curves.stored_rows(1) == [tuple(entry(e).values()) for e in (1, 2)]
    assert loaded.curves.read(0)[0]["bleu score"] == 20.5


@pytest.mark.parametrize(
    ("name", "why"),
    [("x" * (MAX_FIGURE_NAME + 1), "too long"), ("two\nlines", "not one line"), ("", "empty")],
)
def test_a_figure_the_table_cannot_name_is_left_out_and_said(name: str, why: str) -> None:
    state = State(EXPERIMENT.text, EXPERIMENT.space)
    state.add_point({"x": 0.5}, "manual", 0)
    state.set_curve(0, [{**entry(1), name: 1.0, "val/acc": 70.0}])
    assert state.curves[0][0]["val/acc"] == 70.0 and name not in state.curves[0][0], why
    event = state.events[-1]
    assert (event.kind, event.point_id) == ("curve", 0)
    assert repr(name) in event.message or name in event.message
    assert "curve.jsonl" in event.message


def test_at_most_so_many_figures_are_kept_the_first_ones(tmp_path: Path) -> None:
    state = State(EXPERIMENT.text, EXPERIMENT.space)
    state.add_point({"x": 0.5}, "manual", 0)
    many = {f"layer{i}": float(i) for i in range(MAX_OWN_FIGURES + 3)}
    state.set_curve(0, [{**entry(1), **many}])
    kept = [n for n in state.curves[0][0] if n not in CURVE_FIELDS]
    assert kept == [f"layer{i}" for i in range(MAX_OWN_FIGURES)]
    assert "layer32, layer33, layer34 (at most 32 figures" in state.events[-1].message
    assert load_state(write(tmp_path / "s.h5", state)).curves[0] == state.curves[0]


def test_a_curve_set_again_unchanged_is_no_change() -> None:
    state = own_state()
    revision, events = state.revision, len(state.events)
    state.set_curve(0, OWN)
    assert (state.revision, len(state.events)) == (revision, events)


def test_a_state_written_without_own_figures_reads_as_before(tmp_path: Path) -> None:
    state = own_state()
    state.set_curve(0, [entry(1)])
    with h5py.File(write(tmp_path / "s.h5", state), "r") as file:
        assert file["curves/0"].dtype.names == CURVE_FIELDS
        assert file["curves/0"].dtype == hdf5._CURVE_DTYPE
