"""Segments of ``python -m nas.train``: stops outside the epoch loop, what a resumed epoch
keeps, one time axis for the curve, a point trained before, and data or coordinates
that cannot be trained."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from nas.config import DataConfig, TrainConfig
from nas.data.dataset import BAD_LABEL, ResumableSampler, build_splits, make_loader
from nas.pointdir.curve import read_curve
from nas.pointdir.layout import EXIT_COMPLETE, EXIT_INCOMPLETE, EXIT_USAGE
from nas.pointdir.point import write_point_file
from nas.train import run as run_module
from nas.train.__main__ import main
from nas.train.checkpoint import TrainingState
from nas.train.curve import Curve
from nas.train.launch import DistEnv
from nas.train.loop import Progress, TooManyBadImages, complete_epoch, train_epoch
from nas.train.stop import StopControl

sys.path.insert(0, str(Path(__file__).parent))
from test_curve import write_point  # noqa: E402
from test_train_meter import tiny_run  # noqa: E402
from test_train_run import FIXED, PARAMS, _clean_environment, final_weights  # noqa: E402

CPU = torch.device("cpu")


def train(point: Path, *args: str) -> int:
    return main(["--point-dir", str(point), *args], environ={})


def progress(point: Path) -> tuple[int, int, str]:
    document = json.loads((point / "progress.json").read_text())
    return document["epochs_completed"], document["step_in_epoch"], document["reason"]


def saved(point: Path) -> dict:
    return torch.load(point / "checkpoint.pt", weights_only=True)["state"]


@pytest.fixture
def uncaught():
    """SIGUSR2s that reached the test's own handler: a trainer that does not catch the
    signal would otherwise kill pytest."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGUSR2, previous)


def signal_before(monkeypatch: pytest.MonkeyPatch, name: str, record: list | None = None):
    """Send SIGUSR2 to this process whenever ``nas.train.run.<name>`` is called."""
    real = getattr(run_module, name)

    def signalled(*args, **kwargs):
        if record is not None:
            record.append(signal.getsignal(signal.SIGUSR2))
        os.kill(os.getpid(), signal.SIGUSR2)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, name, signalled)
    return real


# --------------------------------------------------------------------------- stop signals


def test_a_signal_during_start_up_ends_the_segment_where_its_checkpoint_is(
    tmp_path, monkeypatch, uncaught
):
    whole = write_point(tmp_path / "whole", epochs=2, steps=2)
    assert train(whole) == EXIT_COMPLETE
    point = write_point(tmp_path / "p", epochs=2, steps=2)
    real = signal_before(monkeypatch, "build_splits")  # while the data is prepared
    assert train(point) == EXIT_INCOMPLETE
    assert progress(point) == (0, 0, "signal SIGUSR2")
    monkeypatch.setattr(run_module, "build_splits", real)
    assert train(point, "--segment-epochs", "1") == EXIT_INCOMPLETE
    signal_before(monkeypatch, "build_splits")
    assert train(point) == EXIT_INCOMPLETE
    assert progress(point) == (1, 0, "signal SIGUSR2")
    monkeypatch.setattr(run_module, "build_splits", real)
    assert train(point) == EXIT_COMPLETE
    expected, resumed = final_weights(whole), final_weights(point)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    assert uncaught == []


def test_a_signal_during_the_rendezvous_ends_the_segment_at_its_first_check(
    tmp_path, monkeypatch, uncaught
):
    """The handlers are in place before torch's process group is joined (``__main__``)."""
    from nas.train import launch

    point = write_point(tmp_path / "p", epochs=1, steps=1)
    real = launch.init_process_group

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR2)
        return real(*args, **kwargs)

    monkeypatch.setattr(launch, "init_process_group", signalled)
    assert train(point) == EXIT_INCOMPLETE
    assert progress(point) == (0, 0, "signal SIGUSR2")
    assert uncaught == []


def test_a_signal_during_the_final_evaluation_lets_it_finish(
    tmp_path, monkeypatch, uncaught, capsys
):
    point = write_point(tmp_path / "p", epochs=1, steps=1)
    handlers: list = []
    signal_before(monkeypatch, "evaluate", handlers)  # the final evaluation's
    assert train(point) == EXIT_COMPLETE
    assert isinstance(getattr(handlers[0], "__self__", None), StopControl)
    assert (point / "result.json").is_file() and not (point / "progress.json").exists()
    assert "SIGUSR2 came during the final evaluation" in capsys.readouterr().out
    assert uncaught == []


def test_the_final_evaluation_is_timed_from_the_subset_and_kept_before_the_deadline(
    tmp_path, monkeypatch
):
    point = write_point(tmp_path / "p", epochs=1, steps=1)
    splits = build_splits(DataConfig(kind="digits", resolution=16))
    curve = Curve(point_dir=point, validation=splits.validation, data_seed=0,
                  config=TrainConfig(curve_images=120), dist_env=DistEnv("none", 0, 1, 0),
                  make_loader=lambda subset, shard: None)  # fmt: skip
    assert curve.final_seconds() == 0.0  # nothing measured yet
    curve.seconds = 0.6
    assert curve.final_seconds() == pytest.approx(0.6 * len(splits.validation) / 120)
    monkeypatch.setattr(Curve, "final_seconds", lambda self: 10_000.0)
    assert train(point, "--deadline", str(time.time() + 3_600)) == EXIT_INCOMPLETE
    assert progress(point) == (1, 0, "deadline")
    assert [entry["epoch"] for entry in read_curve(point)] == [1]
    assert not (point / "result.json").exists()


# --------------------------------------------------------------------------- a resumed epoch


def test_an_epoch_stopped_inside_keeps_the_loss_of_its_first_steps(tmp_path, monkeypatch):
    whole = write_point(tmp_path / "whole", epochs=2, steps=4)
    assert train(whole) == EXIT_COMPLETE
    point = write_point(tmp_path / "p", epochs=2, steps=4)
    calls = itertools.count(1)
    real = StopControl.local_reason
    stop_at_third = lambda self, reserve: 1 if next(calls) == 3 else real(self, reserve)  # noqa: E731
    monkeypatch.setattr(StopControl, "local_reason", stop_at_third)
    assert train(point) == EXIT_INCOMPLETE
    assert progress(point)[:2] == (0, 2) and saved(point)["epoch_loss_steps"] == 2
    monkeypatch.setattr(StopControl, "local_reason", real)
    assert train(point) == EXIT_COMPLETE
    expected, resumed = read_curve(whole), read_curve(point)
    assert [e["images"] for e in resumed] == [e["images"] for e in expected] == [64, 128]
    assert [e["top1"] for e in resumed] == [e["top1"] for e in expected]
    for a, b in zip(expected, resumed, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=1e-9)


class StopAt:
    """A stop control for one rank that stops at its ``n``-th check."""

    deadline = None

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def check(self, reserve_seconds: float) -> str | None:
        self.calls += 1
        return "test stop" if self.calls == self.n else None


def test_an_epoch_stopped_inside_keeps_its_bad_images(capsys):
    run = tiny_run(steps=4, log_every=1, device=CPU)
    labels = run.loader.dataset.tensors[1]
    labels[labels == BAD_LABEL] = 0
    run.sampler.start(epoch=0, skip=0)
    labels[next(iter(run.sampler))] = BAD_LABEL  # one unreadable image, in the first batch
    run.max_bad_images = 0
    state = TrainingState()
    run.meter.start_segment()
    assert train_epoch(run, state, StopAt(2), Progress(run, state)) == "test stop"
    assert (state.step, state.epoch_bad_images, state.epoch_loss_steps) == (1, 1, 1)
    with pytest.raises(TooManyBadImages, match="^1 unreadable images in epoch 1"):
        train_epoch(run, state, StopAt(0), Progress(run, state))  # the next segment


# --------------------------------------------------------------------------- curve figures


def test_the_seconds_axis_leaves_every_segments_start_up_out(tmp_path, monkeypatch):
    start_up = 1.5
    real = run_module.build_splits
    monkeypatch.setattr(run_module, "build_splits", lambda c: (time.sleep(start_up), real(c))[1])
    point = write_point(tmp_path / "p", epochs=2, steps=2)
    assert train(point, "--segment-epochs", "1") == EXIT_INCOMPLETE
    first_segment = saved(point)
    trained_before = first_segment["elapsed_seconds"] - start_up  # at most
    assert first_segment["training_seconds"] <= trained_before
    started = time.perf_counter()
    assert train(point) == EXIT_COMPLETE
    second_segment = time.perf_counter() - started
    first, second = read_curve(point)
    assert 0 < first["seconds"] <= trained_before
    assert first["seconds"] < second["seconds"] <= trained_before + second_segment - start_up


def test_a_checkpoint_from_before_the_new_counters_still_resumes(tmp_path):
    whole = write_point(tmp_path / "whole", epochs=2, steps=2)
    assert train(whole) == EXIT_COMPLETE
    point = write_point(tmp_path / "p", epochs=2, steps=2)
    assert train(point, "--segment-epochs", "1") == EXIT_INCOMPLETE
    payload = torch.load(point / "checkpoint.pt", weights_only=True)
    for key in ("epoch_loss_sum", "epoch_loss_steps", "epoch_bad_images", "images"):
        payload["state"].pop(key, None)
    payload["state"].pop("training_seconds", None)
    torch.save(payload, point / "checkpoint.pt")
    assert train(point) == EXIT_COMPLETE
    expected, resumed = read_curve(whole), read_curve(point)
    assert [e["images"] for e in resumed] == [e["images"] for e in expected]
    assert [e["top1"] for e in resumed] == [e["top1"] for e in expected]
    assert resumed[0]["seconds"] < resumed[1]["seconds"]


def test_a_resumed_segment_shows_the_last_subset_top1_from_its_start(tmp_path, capsys):
    point = write_point(tmp_path / "p", epochs=2, steps=2)
    assert train(point, "--segment-epochs", "1") == EXIT_INCOMPLETE
    capsys.readouterr()
    assert train(point) == EXIT_COMPLETE
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.startswith("epoch 2/2 step "))
    assert f"subset top-1 {read_curve(point)[0]['top1']:.2f} " in first


def test_the_epoch_counts_the_images_it_trained(capsys):
    run = tiny_run(steps=3, log_every=1, device=CPU)
    labels = torch.randint(0, 10, (20,))
    labels[0] = BAD_LABEL
    data = TensorDataset(torch.randn(20, 3, 16, 16), labels)  # batches of 8, 8 and 4
    run.sampler = ResumableSampler(data, 0, 1, seed=0)
    run.loader = make_loader(data, run.sampler, batch_size=8, workers=0, pin_memory=False,
                             seed=0, train=True)  # fmt: skip
    state = TrainingState()
    run.meter.start_segment()
    timer = Progress(run, state)
    assert train_epoch(run, state, StopControl(None, CPU), timer) is None
    timer.curve_done(50.0, 0.1)
    rate = re.search(r"in 0\.1 s images/s ([\d.]+)", capsys.readouterr().out).group(1)
    assert float(rate) == pytest.approx(20 / timer.epoch_seconds, abs=0.06)
    complete_epoch(run, state)
    assert (state.epoch, state.images) == (1, 19)  # the unreadable image was not trained


@pytest.mark.slow
def test_the_curve_counts_each_epochs_images_at_its_world_size(tmp_path):
    point = write_point(tmp_path / "p", epochs=2, steps=3)  # 3 steps of 16 images per rank
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run(
        [*torchrun, "-m", "nas.train", "--point-dir", str(point), "--segment-epochs", "1"],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert progress(point) == (1, 0, "segment of 1 epoch(s) done"), done.stderr[-3000:]
    assert train(point) == EXIT_COMPLETE  # one rank
    assert [entry["images"] for entry in read_curve(point)] == [2 * 48, 2 * 48 + 48]


# --------------------------------------------------------------------------- nothing to train


def test_a_trained_point_is_left_as_it_is(tmp_path, capsys):
    point = write_point(tmp_path / "p", epochs=1, steps=1)
    assert train(point) == EXIT_COMPLETE
    result = (point / "result.json").read_bytes()
    capsys.readouterr()
    assert train(point) == EXIT_COMPLETE
    assert (point / "result.json").read_bytes() == result
    assert "already trained" in capsys.readouterr().out


def imagefolder_point(directory: Path, root: Path, params: dict) -> Path:
    write_point_file(
        directory,
        point_id=1,
        experiment="test",
        family="resnet",
        params=params,
        fixed=FIXED,
        data=DataConfig(kind="imagefolder", root=str(root), resolution=16, workers=0),
        train=TrainConfig(epochs=1, batch_per_gpu=4),
        seed=7,
    )
    return directory


def error(point: Path) -> dict:
    return json.loads((point / "error.json").read_text())


def test_data_of_one_class_is_refused_as_unusable(tmp_path):
    root = tmp_path / "tree"
    (root / "only").mkdir(parents=True)
    for i in range(12):
        (root / "only" / f"{i}.png").touch()  # the scan reads names; nothing is decoded
    point = imagefolder_point(tmp_path / "p", root, PARAMS)
    assert train(point) == EXIT_USAGE
    found = error(point)
    assert found["exception"] == "PointFileError"
    assert str(root) in found["message"] and "has 1 class(es)" in found["message"]


def test_bad_coordinates_fail_before_the_data_is_read(tmp_path):
    point = imagefolder_point(tmp_path / "p", tmp_path / "no-such-tree", {**PARAMS, "wings": 2})
    assert train(point) != EXIT_COMPLETE
    assert error(point)["exception"] == "ModelConfigError"
