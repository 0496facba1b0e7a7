"""`splinenas export --tensorboard DIR`: event files TensorBoard reads, read back record by record."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_support import run
from tensorboardX.proto import event_pb2, plugin_hparams_pb2  # the tensorboard extra
from trained_support import trained_state

from nas.record.store import StateStore

VALUES = {0: 91.5, 1: 93.25, 2: 95.0}


def events(run_dir: Path) -> list[event_pb2.Event]:
    """Every event of the run's files (TFRecord framing: length, its CRC, data, its CRC)."""
    found = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            found.append(event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length]))
            offset += 12 + length + 4
    return found


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    table: dict[str, list[tuple[int, float]]] = {}
    for event in events(run_dir):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                table.setdefault(value.tag, []).append((event.step, value.simple_value))
    return table


def hparams_of(run_dir: Path) -> dict[str, object]:
    """The hyperparameters of the run's session-start record (the HParams tab's input)."""
    for event in events(run_dir):
        for value in event.summary.value:
            if value.tag == "_hparams_/session_start_info":
                data = plugin_hparams_pb2.HParamsPluginData.FromString(
                    value.metadata.plugin_data.content
                )
                found = {}
                for name, hp in data.session_start_info.hparams.items():
                    kind = hp.WhichOneof("kind")
                    found[name] = getattr(hp, kind)
                return found
    return {}


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    return trained_state(tmp_path, VALUES, {i: 0.5 + i for i in VALUES})


def test_one_run_per_point_with_its_curve_final_metrics_costs_and_params(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tb"
    code, _, err = run(capsys, "export", "--state", str(trained), "--tensorboard", str(out))
    assert code == 0, err
    assert f"tensorboard --logdir {out}" in err
    runs = sorted(p.name for p in out.iterdir())
    state = StateStore.read(trained)
    assert runs == [f"point-{p.id:04d}" for p in state.points] + ["search"]
    table = scalars(out / "point-0002")
    assert table["curve/top1"] == [(1, 93.0), (2, 94.0), (3, 95.0)]
    assert [step for step, _ in table["curve/loss"]] == [1, 2, 3]
    assert table["final/top1"] == [(3, 95.0)]
    assert table["cost/device_hours"] == [(3, 2.5)]
    params = hparams_of(out / "point-0002")
    point = state.point(2)
    assert {k: params[k] for k in point.params} == pytest.approx(point.params)
    assert params["status"] == "done" and params["origin"] == point.origin
    pending = scalars(out / "point-0004")  # not measured: no curve, no final value
    assert "curve/top1" not in pending and "final/top1" not in pending


def test_the_search_run_tracks_the_best_so_far(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tb"
    assert run(capsys, "export", "--state", str(trained), "--tensorboard", str(out))[0] == 0
    best = scalars(out / "search")["search/best_top1"]
    assert [v for _, v in best] == [91.5, 93.25, 95.0]


def test_a_second_export_into_the_same_folder_is_refused(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tb"
    assert run(capsys, "export", "--state", str(trained), "--tensorboard", str(out))[0] == 0
    code, _, err = run(capsys, "export", "--state", str(trained), "--tensorboard", str(out))
    assert code == 1 and "already holds TensorBoard runs" in err


def test_without_the_extra_the_command_names_it(trained: Path, tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "tensorboardX"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorboardX'\", name='tensorboardX')\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{shim.parent}{os.pathsep}{root}"}
    argv = [sys.executable, "-m", "nas", "export", "--state", str(trained), "--tensorboard"]
    done = subprocess.run([*argv, str(tmp_path / "tb")], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pip install 'splinenas[tensorboard]'" in done.stderr
