"""Datasets and loaders for the trainer: the indexed image tree or the digits.

A corrupt or unreadable image does not crash a run hours in: it is logged with
its path and comes out with label :data:`BAD_LABEL`, which the loss ignores
and the evaluation does not count. Batches keep their size, so every rank
still takes the same number of steps. The trainer counts bad images per epoch
and fails once they exceed ``[data] max_bad_images``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset, TensorDataset

from nas.config import DataConfig
from nas.data.index import (
    TRAIN,
    VALIDATION,
    ImageIndex,
    load_index,
    scan_tree,
    stratified_subset,
)

BAD_LABEL = -1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger(__name__)


class IndexedImages(Dataset):
    """One part (training or validation) of an :class:`ImageIndex`, decoded with PIL."""

    def __init__(self, index: ImageIndex, part: int, transform, resolution: int) -> None:
        self.index = index
        self.rows = index.positions(part)
        self.transform = transform
        self.resolution = resolution

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        row = int(self.rows[i])
        path = self.index.path(row)
        try:
            with Image.open(path) as image:
                picture = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("skipping unreadable image %s: %s", path, exc)
            return torch.zeros(3, self.resolution, self.resolution), BAD_LABEL
        return self.transform(picture), int(self.index.labels[row])


@dataclass(frozen=True)
class DataSplits:
    """Both halves of the data and what the model needs to know about them."""

    train: Dataset
    validation: Dataset
    classes: tuple[str, ...]
    in_memory: bool  # tensors already in memory: loader workers would only add cost


def image_transforms(resolution: int, val_resize: int | None):
    """Training (random resized crop, flip) and validation (resize, centre crop) transforms."""
    from torchvision import transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = transforms.Compose(
        [
            transforms.RandomResizedCrop(resolution),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    validation = transforms.Compose(
        [
            transforms.Resize(val_resize or round(resolution * 256 / 224)),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            normalize,
        ]
    )
    return train, validation


def build_splits(config: DataConfig) -> DataSplits:
    """The training and validation datasets described by a ``[data]`` table.

    ``imagefolder`` loads ``index`` when given (``root`` then overrides the
    stored root); with ``root`` alone every rank scans the tree itself, which is
    fine for small trees only.
    """
    if config.kind == "digits":
        from nas.data.digits import CLASSES, digits_datasets

        train, validation = digits_datasets(
            resolution=config.resolution, imbalance=config.imbalance, seed=config.seed
        )
        return DataSplits(train, validation, CLASSES, in_memory=True)
    if config.index:
        index = load_index(config.index, root=config.root)
    else:
        index = scan_tree(config.root, seed=config.seed)
    train_tf, val_tf = image_transforms(config.resolution, config.val_resize)
    return DataSplits(
        IndexedImages(index, TRAIN, train_tf, config.resolution),
        IndexedImages(index, VALIDATION, val_tf, config.resolution),
        index.classes,
        in_memory=False,
    )


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The label of every item, read from the index or the tensors (no image is decoded)."""
    if isinstance(dataset, IndexedImages):
        return np.asarray(dataset.index.labels[dataset.rows])
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

    def __init__(self, dataset: Dataset, rank: int, world_size: int, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.skip = 0

    def start(self, epoch: int, skip: int) -> None:
        """Begin ``epoch``'s order, leaving out its first ``skip`` items of this rank."""
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def make_loader(
    dataset: Dataset,
    sampler: Sampler[int],
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
    seed: int,
) -> DataLoader:
    """A loader whose worker seeds come from ``seed`` (not from the global RNG)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=generator,
        drop_last=False,
    )
