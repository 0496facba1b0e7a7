"""Datasets and loaders for the trainer: the digits, an indexed image tree, or tar shards.

A corrupt or unreadable image does not crash a run hours in: it comes out
with label :data:`BAD_LABEL` (:mod:`nas.data.images`), which the loss ignores
and the evaluation does not count. Batches keep their size, so every rank
still takes the same number of steps. The trainer counts bad images per epoch
and fails once they exceed ``[data] max_bad_images``. The training loader
leaves out a trailing batch of a single image (:class:`TrainBatches`), which
BatchNorm cannot train on.

Loader workers stay alive across epochs (``persistent_workers``) and keep
``[data] prefetch`` batches each in flight; the augmentation does not depend
on worker state (:mod:`nas.data.augment`), so that changes no crop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
    Subset,
    TensorDataset,
)

from nas.config import DataConfig
from nas.data.images import BAD_LABEL, ImageItems, IndexedImages, collate_encoded
from nas.data.index import TRAIN, VALIDATION, load_index, scan_tree, stratified_subset

__all__ = [
    "BAD_LABEL",
    "DataSplits",
    "build_splits",
    "make_loader",
    "train_batch_count",
    "train_sampler",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSplits:
    """Both halves of the data and what the model needs to know about them."""

    train: Dataset
    validation: Dataset
    classes: tuple[str, ...]
    in_memory: bool  # tensors already in memory: loader workers would only add cost


def build_splits(config: DataConfig) -> DataSplits:
    """The training and validation datasets described by a ``[data]`` table.

    ``imagefolder`` loads ``index`` when given (``root`` then overrides the
    stored root); with ``root`` alone every rank scans the tree itself, which is
    fine for small trees only. ``shards`` reads the shard folder ``root``.
    """
    if config.kind == "digits":
        from nas.data.digits import CLASSES, digits_datasets

        train, validation = digits_datasets(
            resolution=config.resolution, imbalance=config.imbalance, seed=config.seed
        )
        return DataSplits(train, validation, CLASSES, in_memory=True)
    options = {"resolution": config.resolution, "val_resize": config.val_resize}
    options["seed"] = config.seed
    if config.kind == "shards":
        from nas.data.shards import ShardedImages, ShardIndex

        shards = ShardIndex(config.root)
        return DataSplits(
            ShardedImages(shards, TRAIN, train=True, decode=config.decode, **options),
            ShardedImages(shards, VALIDATION, train=False, **options),
            shards.classes,
            in_memory=False,
        )
    if config.index:
        index = load_index(config.index, root=config.root)
    else:
        index = scan_tree(config.root, seed=config.seed)
    return DataSplits(
        IndexedImages(index, TRAIN, train=True, decode=config.decode, **options),
        IndexedImages(index, VALIDATION, train=False, **options),
        index.classes,
        in_memory=False,
    )


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The label of every item, read from the index or the tensors (no image is decoded)."""
    if isinstance(dataset, ImageItems):  # an image folder or shards: labels from the index
        return np.asarray(dataset.labels)
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy()
    raise TypeError(f"no labels known for a {type(dataset).__name__}")


def curve_subset(validation: Dataset, size: int, seed: int) -> Subset:
    """The learning curve's fixed, class-stratified part of the validation split.

    It depends on the split, ``size`` and ``seed`` (the ``[data] seed``) alone,
    so every point and every segment of a search evaluates the same images.
    """
    positions = stratified_subset(dataset_labels(validation), size, seed)
    return Subset(validation, positions.tolist())


def train_sampler(splits: DataSplits, rank: int, world_size: int, seed: int) -> Sampler:
    """Shards in per-rank order for shard folders; a shuffled :class:`ResumableSampler` else."""
    from nas.data.shards import ShardedImages, ShardOrderSampler

    if isinstance(splits.train, ShardedImages):
        return ShardOrderSampler(splits.train, rank, world_size, seed)
    return ResumableSampler(splits.train, rank, world_size, seed, with_epoch=not splits.in_memory)


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``w`` gets items ``r, r + w, r + 2w, ...``: every item exactly once.

    :class:`DistributedSampler` pads the last round with repeated items so that
    all ranks get equally many; fine for training, wrong for an evaluation
    that must count each validation image once.
    """

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(DistributedSampler):
    """A :class:`DistributedSampler` that can start an epoch after its first batches."""

    def __init__(
        self, dataset: Dataset, rank: int, world_size: int, seed: int, *, with_epoch: bool = False
    ) -> None:
        super().__init__(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.skip = 0
        self.with_epoch = with_epoch  # yield (epoch, i): image datasets seed crops with it

    def start(self, epoch: int, skip: int) -> None:
        """Begin ``epoch``'s order, leaving out its first ``skip`` items of this rank."""
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        items = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, i) for i in items] if self.with_epoch else items)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def train_batch_count(items: int, batch_size: int) -> int:
    """Training batches of a rank's ``items``: a trailing batch of one image is left out.

    BatchNorm in training mode normalises each channel over the batch and the
    feature map; one image whose map is 1x1 (the last stage of a 16-32 px
    network) leaves one value per channel, and torch raises. Every rank draws
    equally many items (the samplers pad or wrap), so all ranks leave out the
    same batch and take the same number of steps. With ``batch_size`` 1 no
    batch is left out: every batch is a single image by request.
    """
    full, rest = divmod(items, batch_size)
    return full + (1 if rest > 1 else 0)


class TrainBatches(BatchSampler):
    """The batches of ``sampler`` in order, up to :func:`train_batch_count` of them."""

    def __init__(self, sampler: Sampler, batch_size: int) -> None:
        super().__init__(sampler, batch_size, drop_last=False)

    def __iter__(self) -> Iterator[list]:
        return islice(super().__iter__(), len(self))

    def __len__(self) -> int:
        return train_batch_count(len(self.sampler), self.batch_size)


def make_loader(
    dataset: Dataset,
    sampler: Sampler[int],
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
    seed: int,
    prefetch: int = 2,
    train: bool = False,
) -> DataLoader:
    """A loader whose worker seeds come from ``seed``; workers persist across epochs.

    Datasets that leave decoding to the device (``decode = "gpu"``) get a
    collate function that keeps the variable-size JPEG bytes as a list. A
    ``train`` loader leaves out a trailing batch of one image
    (:func:`train_batch_count`); an evaluation loader keeps every image.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    on_device = getattr(dataset, "on_device", False)
    if train:
        batches = TrainBatches(sampler, batch_size)
    else:
        batches = BatchSampler(sampler, batch_size, drop_last=False)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=pin_memory and not on_device,
        persistent_workers=workers > 0,
        prefetch_factor=prefetch if workers > 0 else None,
        generator=generator,
        collate_fn=collate_encoded if on_device else None,
    )
