"""The long-tailed digits demo data and the exact evaluation sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.config import DataConfig
from nas.data.dataset import ResumableSampler, ShardSampler, build_splits
from nas.data.digits import long_tailed_digits


def test_class_k_keeps_imbalance_to_the_k():
    _, labels = long_tailed_digits(0.5)
    sizes = np.bincount(labels, minlength=10)
    full = np.bincount(long_tailed_digits(1.0)[1], minlength=10)
    assert full.sum() == 1797
    expected = [max(2, round(n * 0.5**k)) for k, n in enumerate(full)]
    assert sizes.tolist() == expected
    assert sizes[0] > 20 * sizes[9] / 2  # long-tailed: head far larger than tail


def test_digits_splits_are_per_label_and_upscaled():
    splits = build_splits(DataConfig(kind="digits", resolution=12, imbalance=0.8, seed=1))
    images, labels = splits.train.tensors
    val_labels = splits.validation.tensors[1]
    assert images.shape[1:] == (3, 12, 12) and images.dtype == torch.float32
    assert -1.0 <= float(images.min()) and float(images.max()) <= 1.0
    train_sizes = torch.bincount(labels, minlength=10)
    val_sizes = torch.bincount(val_labels, minlength=10)
    total = train_sizes + val_sizes
    assert torch.equal(train_sizes, total // 2)  # the odd image goes to validation
    assert splits.classes == tuple("0123456789") and splits.in_memory


@pytest.mark.parametrize(("size", "world"), [(403, 2), (10, 3), (2, 4), (0, 2)])
def test_shards_cover_every_item_exactly_once(size, world):
    shards = [list(ShardSampler(size, rank, world)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert sum(len(ShardSampler(size, rank, world)) for rank in range(world)) == size


def test_resumable_sampler_skips_the_start_of_the_same_order():
    data = list(range(37))
    sampler = ResumableSampler(data, rank=1, world_size=2, seed=4)
    sampler.start(epoch=3, skip=0)
    full = list(sampler)
    sampler.start(epoch=3, skip=5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5
    sampler.start(epoch=4, skip=0)
    assert list(sampler) != full
