"""Edges of the training loader and of the device settings: a trailing batch of one
image, and Intel GPUs (XPU) treated like CUDA for channels_last, pinning, fused SGD
and the checkpoint's RNG states."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nas.config import DataConfig, TrainConfig
from nas.data.dataset import ResumableSampler, build_splits, make_loader, train_batch_count
from nas.pointdir.curve import read_curve
from nas.pointdir.layout import EXIT_COMPLETE
from nas.pointdir.point import read_point_file, write_point_file
from nas.train.__main__ import main
from nas.train.checkpoint import rng_states, set_rng_states
from nas.train.launch import DistEnv
from nas.train.loop import Run, fused_sgd, steps_per_epoch
from nas.train.run import loader_for

sys.path.insert(0, str(Path(__file__).parent))
from test_train_run import FIXED, PARAMS, two_ranks  # noqa: E402

#: The demo's stem: stride 2 at 16 px leaves a 1x1 map in the last stage, where
#: BatchNorm cannot train on a batch of one image.
ONE_BY_ONE = {**FIXED, "stem": "conv7"}
#: Training images of the default long-tailed digits (imbalance 0.8).
TRAIN_IMAGES = 400


def write_point(directory: Path, batch: int) -> Path:
    write_point_file(
        directory,
        point_id=1,
        experiment="test",
        family="resnet",
        params=PARAMS,
        fixed=ONE_BY_ONE,
        data=DataConfig(kind="digits", resolution=16, workers=0),
        train=TrainConfig(epochs=1, batch_per_gpu=batch, log_every=1, curve_images=60),
        seed=7,
    )
    return directory


@pytest.mark.parametrize(
    ("items", "batch", "batches"),
    [(609, 32, 19), (608, 32, 19), (610, 32, 20), (129, 32, 4), (400, 133, 3), (5, 1, 5)],
)
def test_only_a_trailing_batch_of_one_image_is_left_out(items, batch, batches):
    assert train_batch_count(items, batch) == batches


@pytest.mark.parametrize(("size", "batch"), [(37, 4), (38, 4), (40, 4), (18, 8)])
def test_the_training_loader_yields_a_plain_loaders_batches_but_a_single_tail(size, batch):
    data = TensorDataset(torch.arange(size), torch.zeros(size, dtype=torch.int64))
    for rank in range(2):
        sampler = ResumableSampler(data, rank, 2, seed=3)
        for skip in (0, batch):
            sampler.start(epoch=1, skip=skip)
            plain = [images.tolist() for images, _ in DataLoader(data, batch, sampler=sampler)]
            loader = make_loader(data, sampler, batch_size=batch, workers=0, pin_memory=False,
                                 seed=0, train=True)  # fmt: skip
            trained = [images.tolist() for images, _ in loader]
            expected = plain[:-1] if len(plain[-1]) == 1 else plain
            assert trained == expected and len(loader) == len(expected)
        evaluation = make_loader(data, sampler, batch_size=batch, workers=0, pin_memory=False,
                                 seed=0)  # fmt: skip
        assert [images.tolist() for images, _ in evaluation] == plain  # every image evaluated
        sampler.start(epoch=1, skip=0)
        config = TrainConfig(batch_per_gpu=batch)
        assert steps_per_epoch(sampler, config) == len(loader)


def test_a_last_batch_of_one_image_is_left_out_and_the_run_completes(tmp_path, capsys):
    point = write_point(tmp_path / "p", batch=133)  # 400 = 3 x 133 + 1
    assert main(["--point-dir", str(point)], environ={}) == EXIT_COMPLETE
    assert "epoch 1/1 step 3/3 epoch done" in capsys.readouterr().out
    assert [entry["images"] for entry in read_curve(point)] == [TRAIN_IMAGES - 1]


@pytest.mark.slow
def test_two_ranks_leave_out_the_same_batch_of_one_image(tmp_path):
    point = write_point(tmp_path / "p", batch=199)  # 200 images per rank = 199 + 1
    done = two_ranks(point)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1/1 step 1/1 epoch done" in done.stdout
    assert [entry["images"] for entry in read_curve(point)] == [2 * 199]


# --------------------------------------------------------------------------- Intel GPUs


XPU, CUDA, CPU = torch.device("xpu", 0), torch.device("cuda", 0), torch.device("cpu")


def test_fused_sgd_on_every_gpu_kind_that_has_it_and_foreach_on_the_cpu():
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    assert "xpu" in _get_fused_kernels_supported_devices()  # this torch has the XPU kernel
    assert fused_sgd(XPU) and fused_sgd(CUDA) and not fused_sgd(CPU)


@pytest.mark.parametrize("device", [XPU, CUDA])
def test_channels_last_and_pinned_batches_apply_to_xpu_as_to_cuda(tmp_path, device):
    config = TrainConfig(channels_last=True)
    run = Run(model=None, optimizer=None, scaler=None, loader=None, sampler=None, config=config,
              dist_env=DistEnv("single", 0, 1, 0), device=device, steps_per_epoch=1,
              max_bad_images=0, seed=0)  # fmt: skip
    assert run.memory_format == torch.channels_last
    point = read_point_file(write_point(tmp_path / "p", batch=16))
    splits = build_splits(point.data)
    sampler = ResumableSampler(splits.train, 0, 1, seed=0)
    assert loader_for(point, splits, splits.train, sampler, device, train=True).pin_memory
    assert not loader_for(point, splits, splits.train, sampler, CPU, train=True).pin_memory


def test_the_checkpoint_keeps_the_xpu_generators_where_there_are_some(monkeypatch):
    saved = [torch.tensor([1, 2, 3], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.xpu, "is_available", lambda: True)
    monkeypatch.setattr(torch.xpu, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.xpu, "set_rng_state_all", restored.append)
    states = rng_states()
    assert states["xpu"] is saved
    set_rng_states(states)
    assert restored == [saved]
    set_rng_states({"cpu": states["cpu"]})  # a checkpoint written without an XPU
    assert restored == [saved]
