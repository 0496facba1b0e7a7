"""Decoding real image files beyond 8-bit RGB JPEG: high-bit-depth pictures on both decode
paths, and a JPEG that only the device finds broken, logged by its path."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data.dataset import ResumableSampler, make_loader
from nas.data.device_decode import DeviceDecoder
from nas.data.images import BAD_LABEL, IndexedImages
from nas.data.index import TRAIN, VALIDATION, scan_tree

CPU = torch.device("cpu")
#: A horizontal ramp over the full range: 8 bits of it are its high byte.
RAMP = np.tile(np.linspace(0, 65535, 48).round().astype(np.uint16), (40, 1))


def wide_picture(path: Path, kind: str) -> None:
    """The ramp saved as PIL writes it: 16-bit PNG (I;16), 16-bit PGM (I), float TIFF (F)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "F":
        Image.fromarray((RAMP / 65535.0).astype(np.float32)).save(path)
    else:
        Image.fromarray(RAMP).save(path)


def item(index, relative: str, **options) -> tuple[IndexedImages, int]:
    """The dataset of the split part that holds ``relative``, and its item number there."""
    for part in (TRAIN, VALIDATION):
        dataset = IndexedImages(index, part, **options)
        for k, row in enumerate(dataset.rows):
            if index.relative_path(int(row)) == relative:
                return dataset, k
    raise KeyError(relative)


@pytest.mark.parametrize(("name", "mode"), [("a.png", "I;16"), ("a.pgm", "I"), ("a.tif", "F")])
def test_wide_pictures_are_scaled_to_8_bits_on_both_paths(tmp_path, name, mode):
    root = tmp_path / "tree"
    for label in ("x", "y"):
        wide_picture(root / label / name, mode)
        Image.fromarray((RAMP >> 8).astype(np.uint8)).save(root / label / "b.png")  # 8-bit twin
    with Image.open(root / "x" / name) as image:
        assert image.mode == mode
    index = scan_tree(root, seed=0)
    cpu = {f: item(index, f"x/{f}", train=False, resolution=16) for f in (name, "b.png")}
    wide, narrow = (dataset[k][0] for dataset, k in cpu.values())
    assert (wide - narrow).abs().max() < 0.02  # was all white: clipped at 255
    dataset, k = item(index, f"x/{name}", train=True, resolution=16, decode="gpu")
    pixels, _, label = dataset[(0, k)]  # not a JPEG: the worker decodes it to pixels
    assert label != BAD_LABEL and pixels.dtype == torch.uint8
    assert (pixels.int() - torch.from_numpy(RAMP >> 8).int()).abs().max() <= 1


def test_a_jpeg_only_the_device_cannot_decode_is_logged_by_its_path(tmp_path, caplog):
    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for label in ("x", "y"):
        for i in range(2):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / label / f"{i}.jpg", quality=90)
    encoded = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(encoded, "JPEG")
    cut = root / "x" / "cut.jpg"
    cut.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])  # the header is whole
    index = scan_tree(root, seed=0)
    train = IndexedImages(index, TRAIN, train=True, resolution=16, decode="gpu")
    assert str(cut) in [train.source(i) for i in range(len(train))]  # the seed puts it there
    sampler = ResumableSampler(train, 0, 1, seed=0, with_epoch=True)
    sampler.start(0, 0)
    loader = make_loader(train, sampler, batch_size=len(train), workers=0, pin_memory=False,
                         seed=0, train=True)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="nas.data.device_decode"):
        images, labels = next(iter(DeviceDecoder(loader, CPU, 16)))
    assert (labels == BAD_LABEL).sum() == 1 and images.shape == (len(train), 3, 16, 16)
    assert f"skipping unreadable image {cut}: " in caplog.text
