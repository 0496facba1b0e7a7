"""A controller state whose points were trained: values, device-hours, pace and curves.

Shared by the tests of what readers make of a finished search (the report,
the TensorBoard export), built through the state's public methods as the
controller's ingest leaves them.
"""

from __future__ import annotations

from pathlib import Path

from controller_support import experiment_text, init_state

from nas.pointdir.curve import make_entry
from nas.record.store import StateStore

#: Epochs of every stand-in curve; its top-1 reaches the point's value at the last one.
EPOCHS = (1, 2, 3)


def trained_state(folder: Path, values: dict[int, float], device_hours: dict[int, float]) -> Path:
    """The controller test experiment with ``values`` measured, each with a curve and a pace
    of ``400 + id`` images/s per rank."""
    state = init_state(folder, experiment_text())
    with StateStore.open(state) as store:
        for point_id, value in values.items():
            point = store.state.point(point_id)
            pace = {"device_hours": device_hours[point_id], "images_per_second": 400.0 + point_id}
            store.state.update_point(point_id, extra={**point.extra, "pace": pace})
            store.state.record(point_id, value)
            curve = [
                make_entry(epoch=e, images=64, loss=1.0 / e, top1=value - (EPOCHS[-1] - e),
                           top5=99.0, lr=0.1 / e, seconds=2.0)
                for e in EPOCHS
            ]  # fmt: skip
            store.state.set_curve(point_id, curve)
        store.commit()
    return state
