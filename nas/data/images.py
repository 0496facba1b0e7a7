"""Image datasets: one part of an image collection, decoded in a loader worker or on the GPU.

An item is addressed by ``(epoch, i)`` during training (the epoch seeds its
augmentation, :mod:`nas.data.augment`) or by ``i`` alone for validation.
With ``decode = "cpu"`` a worker decodes with PIL and returns the
normalised crop. With ``decode = "gpu"`` a training item is the JPEG's bytes
plus its crop box, drawn from the header alone; the device decodes the batch
(:mod:`nas.data.device_decode`). Images in other formats are decoded by the
worker in that mode and travel as pixels.

A corrupt or unreadable image is logged with its name and comes out with
label :data:`BAD_LABEL`, which the loss ignores and the evaluation does not
count. Images of more than 8 bits per pixel are scaled to 8 bits by their
mode's range (:func:`to_rgb`), not clipped.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Crop,
    crop_picture,
    item_generator,
    random_crop,
)

BAD_LABEL = -1
DECODERS = ("cpu", "gpu")
#: The log line of an image that cannot be read or decoded, on the cpu and the gpu path.
UNREADABLE = "skipping unreadable image %s: %s"
#: PIL modes of more than 8 bits per pixel and the value that becomes white. PIL's
#: own conversion clips them at 255, so a 16-bit picture arrives almost all white.
#: The 16-bit modes span 0..65535; "I" (32-bit integers) is how PIL decodes 16-bit
#: PGM and PPM files, so it is read as 16-bit too; "F" (32-bit floats, such as a
#: float TIFF) follows the convention of float images: 0..1.
WHITE_OF_MODE = {**dict.fromkeys(("I;16", "I;16L", "I;16B", "I;16N", "I"), 2.0**16 - 1), "F": 1.0}

log = logging.getLogger(__name__)


def to_rgb(image):
    """A PIL image as 8-bit RGB; wide modes (:data:`WHITE_OF_MODE`) scaled, not clipped."""
    from PIL import Image

    white = WHITE_OF_MODE.get(image.mode)
    if white is None:
        return image.convert("RGB")
    scaled = np.asarray(image, dtype=np.float32) * np.float32(255.0 / white)
    gray = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def validation_transform(resolution: int, val_resize: int | None):
    """Resize the short side, centre-crop ``resolution``, normalise."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(val_resize or round(resolution * 256 / 224)),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class ImageItems(Dataset):
    """Items ``0..n-1`` with labels; subclasses say where item ``i``'s file is."""

    def __init__(
        self,
        labels: np.ndarray,
        *,
        train: bool,
        resolution: int,
        val_resize: int | None = None,
        seed: int = 0,
        decode: str = "cpu",
    ) -> None:
        if decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, got {decode!r}")
        self.labels = labels
        self.train = train
        self.resolution = resolution
        self.seed = seed
        self.on_device = train and decode == "gpu"
        self.transform = None if train else validation_transform(resolution, val_resize)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def source(self, i: int) -> str | io.BytesIO:
        """A path or the bytes of item ``i``'s file."""
        raise NotImplementedError

    def name(self, i: int) -> str:
        """How the logs name item ``i``."""
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, ...]:
        from PIL import Image

        epoch, i = key if isinstance(key, tuple) else (0, key)
        label = int(self.labels[i])
        try:
            source = self.source(i)
            if self.on_device and isinstance(source, str):
                with open(source, "rb") as handle:  # one open: the bytes go to the device
                    source = io.BytesIO(handle.read())
            with Image.open(source) as image:
                if self.on_device:
                    return self._for_device(image, source.getvalue(), epoch, i, label)
                picture = to_rgb(image)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning(UNREADABLE, self.name(i), exc)
            return self._bad(i)
        if self.transform is not None:
            return self.transform(picture), label
        crop = random_crop(*picture.size, item_generator(self.seed, epoch, i))
        return crop_picture(picture, crop, self.resolution), label

    def _for_device(self, image, raw: bytes, epoch: int, i: int, label: int) -> tuple[Any, ...]:
        """JPEG bytes (or, for other formats, decoded pixels) with the crop box."""
        crop = random_crop(*image.size, item_generator(self.seed, epoch, i))
        if image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK"):
            data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        else:
            pixels = np.asarray(to_rgb(image))
            data = torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()
        return data, placement(crop, i), label

    def _bad(self, i: int) -> tuple[Any, ...]:
        if self.on_device:
            empty = torch.zeros(3, 1, 1, dtype=torch.uint8)
            return empty, placement(Crop(0, 0, 1, 1, False), i), BAD_LABEL
        return torch.zeros(3, self.resolution, self.resolution), BAD_LABEL


#: Column of the item number in a :func:`placement` row: after the crop box and the flip.
ITEM_COLUMN = 5


def placement(crop: Crop, i: int) -> torch.Tensor:
    """A device item's crop box and flip, then its item number ``i`` (column
    :data:`ITEM_COLUMN`): the device decodes the JPEG later, and a JPEG it cannot
    decode is logged by the name of that item."""
    return torch.cat((crop.as_tensor(), torch.tensor([i])))


def collate_encoded(
    items: list[tuple[Any, ...]],
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Batch of device-decode items: the variable-size data as a list, the
    :func:`placement` rows and the labels stacked."""
    data = [item[0] for item in items]
    crops = torch.stack([item[1] for item in items])
    labels = torch.tensor([item[2] for item in items], dtype=torch.int64)
    return data, crops, labels


class IndexedImages(ImageItems):
    """One part (training or validation) of an :class:`~nas.data.index.ImageIndex`."""

    def __init__(self, index, part: int, **options: Any) -> None:
        self.index = index
        self.rows = index.positions(part)
        super().__init__(index.labels[self.rows], **options)

    def source(self, i: int) -> str:
        return self.index.path(int(self.rows[i]))

    def name(self, i: int) -> str:
        return self.source(i)
