"""``[data] decode = "gpu"``: JPEG decoding and augmentation on the training device.

A CPU core decodes and crops a few hundred ImageNet JPEGs per second; a
rank of a fast GPU needs thousands. With this option the loader workers
only read the files and draw each crop box from the JPEG header; the batch
is decoded by ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA),
cropped, resized (bilinear, antialiased), mirrored and normalised there.
The code runs on any device, so it is tested on the CPU; the trainer
accepts it only with CUDA (:func:`require_cuda`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from nas.data.augment import Crop, crop_pixels, normalizer
from nas.data.images import BAD_LABEL, ITEM_COLUMN, UNREADABLE

log = logging.getLogger(__name__)


class DecodeUnavailable(ValueError):
    """``decode = "gpu"`` on a rank without a CUDA device."""


def require_cuda(device: torch.device) -> None:
    if device.type != "cuda":
        raise DecodeUnavailable(
            f"[data] decode = 'gpu' needs a CUDA device, but this rank trains on {device.type}; "
            "set decode = 'cpu'"
        )


class DeviceDecoder:
    """Wraps a loader of :func:`~nas.data.images.collate_encoded` batches; yields device batches."""

    def __init__(self, loader: DataLoader, device: torch.device, resolution: int) -> None:
        self.loader = loader
        self.device = device
        self.resolution = resolution
        self.mean, self.std = normalizer(device)

    @property
    def generator(self) -> torch.Generator:
        return self.loader.generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for data, crops, labels in self.loader:
            yield self.decode(data, crops, labels)

    def decode(
        self, data: list[torch.Tensor], crops: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised NCHW float images on the device, and the labels (bad ones marked)."""
        labels = labels.clone()
        boxes = crops.tolist()  # host tensor from the workers: no device sync
        pixels: list[torch.Tensor | None] = [None] * len(data)
        jpegs = [k for k, item in enumerate(data) if item.dim() == 1 and labels[k] != BAD_LABEL]
        for k, item in enumerate(data):
            if item.dim() == 3 and labels[k] != BAD_LABEL:
                pixels[k] = item.to(self.device, non_blocking=True)
        if jpegs:
            items = [int(boxes[k][ITEM_COLUMN]) for k in jpegs]
            decoded = self._decode_all([data[k] for k in jpegs], items)
            for k, image in zip(jpegs, decoded, strict=True):
                pixels[k] = image
        out = torch.zeros(len(data), 3, self.resolution, self.resolution, device=self.device)
        for k, image in enumerate(pixels):
            if image is None:
                labels[k] = BAD_LABEL
                continue
            crop = Crop(*boxes[k][:4], flip=bool(boxes[k][4]))
            out[k] = crop_pixels(_rgb(image), crop, self.resolution)
        return (out - self.mean) / self.std, labels

    def _decode_all(
        self, encoded: list[torch.Tensor], items: list[int]
    ) -> list[torch.Tensor | None]:
        """Decode a batch at once; if that fails, one by one so only the broken ones are lost.

        A broken one is logged by its file's name (``items`` are the dataset's item
        numbers), as the workers log an image they cannot read.
        """
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:
            decoded: list[torch.Tensor | None] = []
            for data, item in zip(encoded, items, strict=True):
                try:
                    decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError as exc:
                    log.warning(UNREADABLE, self._name(item), exc)
                    decoded.append(None)
            return decoded

    def _name(self, item: int) -> str:
        """How the log names item ``item`` of the loader's dataset."""
        name = getattr(getattr(self.loader, "dataset", None), "name", None)
        return name(item) if name is not None else f"item {item}"


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image
