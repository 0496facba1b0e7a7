"""The demo data: scikit-learn's handwritten digits, long-tailed on purpose.

``sklearn.datasets.load_digits`` ships 1,797 real 8x8 grey-scale scans of the
digits 0-9 (about 180 per class) inside the package, so no download is needed.
To resemble the skewed class sizes of ImageNet-22K, class ``k`` keeps only the
first ``round(n_k * imbalance**k)`` of its images (at least two, so both halves
of the split get one): with the default ``imbalance = 0.8`` the digit 0 keeps
all ~178 images and the digit 9 about 24, ~800 images in all. The per-label
split of :func:`nas.data.index.per_label_split` then gives half of every class
to training and half (plus the odd image) to validation.

Images are scaled to [0, 1], upscaled bilinearly to ``resolution`` pixels,
repeated to three channels and normalised to mean 0.5 / std 0.5, all once in
memory: training a tiny network on them takes seconds on one CPU core.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from nas.data.index import TRAIN, VALIDATION, per_label_split

NUM_CLASSES = 10
CLASSES = tuple(str(k) for k in range(NUM_CLASSES))


def long_tailed_digits(imbalance: float) -> tuple[np.ndarray, np.ndarray]:
    """The digits with class ``k`` cut to ``imbalance**k`` of its images.

    Returns
    -------
    images : (n, 8, 8) float32 array in [0, 1]
    labels : (n,) int64 array
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep: list[np.ndarray] = []
    for k in range(NUM_CLASSES):
        members = np.flatnonzero(digits.target == k)
        count = max(2, round(members.size * imbalance**k))
        keep.append(members[:count])
    chosen = np.concatenate(keep)
    images = (digits.images[chosen] / 16.0).astype(np.float32)
    return images, digits.target[chosen].astype(np.int64)


def digits_datasets(
    *, resolution: int, imbalance: float, seed: int
) -> tuple[TensorDataset, TensorDataset]:
    """Training and validation sets of the long-tailed digits at ``resolution`` pixels."""
    images, labels = long_tailed_digits(imbalance)
    split = per_label_split(labels, seed)
    pixels = torch.from_numpy(images).unsqueeze(1)
    pixels = F.interpolate(
        pixels, size=(resolution, resolution), mode="bilinear", align_corners=False
    )
    pixels = ((pixels.clamp(0.0, 1.0) - 0.5) / 0.5).expand(-1, 3, -1, -1).contiguous()
    targets = torch.from_numpy(labels)
    parts = []
    for part in (TRAIN, VALIDATION):
        rows = torch.from_numpy(np.flatnonzero(split == part))
        parts.append(TensorDataset(pixels[rows], targets[rows]))
    return parts[0], parts[1]
