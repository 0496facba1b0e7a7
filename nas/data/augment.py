"""Training augmentation with per-image randomness: random resized crop, flip, normalise.

The crop box and the flip of an image are drawn from a generator seeded by
``(seed, epoch, item)``, not from a worker's random state. So the
augmentation does not depend on which worker loads an image, loader workers
can stay alive across epochs (``persistent_workers``), a resumed training
sees the same crops as an uninterrupted one, and the box can be drawn in a
worker from the JPEG header alone while the pixels are decoded on the GPU
(:mod:`nas.data.device_decode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCALE = (0.08, 1.0)  # RandomResizedCrop's defaults
RATIO = (3.0 / 4.0, 4.0 / 3.0)


@dataclass(frozen=True)
class Crop:
    """Where to crop an image and whether to mirror it."""

    top: int
    left: int
    height: int
    width: int
    flip: bool

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.top, self.left, self.height, self.width, int(self.flip)])


def item_generator(seed: int, epoch: int, item: int) -> torch.Generator:
    """A generator that depends on the seed, the epoch and the item only."""
    generator = torch.Generator()
    generator.manual_seed(((seed * 1_000_003 + epoch) * 4_294_967_311 + item) % 2**63)
    return generator


def random_crop(width: int, height: int, generator: torch.Generator) -> Crop:
    """torchvision's RandomResizedCrop box (same scale, ratio and fallback) plus a coin flip."""
    area = width * height
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    draws = torch.rand(10, 4, generator=generator).tolist()
    flip = bool(torch.rand(1, generator=generator).item() < 0.5)
    for u_scale, u_ratio, u_top, u_left in draws:
        target = area * (SCALE[0] + u_scale * (SCALE[1] - SCALE[0]))
        aspect = math.exp(log_ratio[0] + u_ratio * (log_ratio[1] - log_ratio[0]))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = min(height - h, int(u_top * (height - h + 1)))
            left = min(width - w, int(u_left * (width - w + 1)))
            return Crop(top, left, h, w, flip)
    # fallback: the central crop with the aspect ratio clamped into RATIO
    aspect = width / height
    if aspect < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif aspect > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    return Crop((height - h) // 2, (width - w) // 2, h, w, flip)


def crop_picture(picture, crop: Crop, resolution: int) -> torch.Tensor:
    """A PIL image cropped, resized to ``resolution``², mirrored and normalised (CHW float)."""
    from torchvision.transforms import functional as TF

    patch = TF.resized_crop(
        picture, crop.top, crop.left, crop.height, crop.width, [resolution, resolution]
    )
    if crop.flip:
        patch = TF.hflip(patch)
    return TF.normalize(TF.to_tensor(patch), IMAGENET_MEAN, IMAGENET_STD)


def crop_pixels(pixels: torch.Tensor, crop: Crop, resolution: int) -> torch.Tensor:
    """The same on a decoded CHW uint8 tensor on any device (bilinear with antialiasing)."""
    patch = pixels[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
    patch = torch.nn.functional.interpolate(
        patch.unsqueeze(0).float(),
        size=(resolution, resolution),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    if crop.flip:
        patch = patch.flip(-1)
    return patch


def normalizer(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation on the 0..255 scale as (1, 3, 1, 1) tensors on ``device``."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
    return mean.to(device), std.to(device)
