"""Tar shards, per-item augmentation and device-side decoding on a tiny synthetic JPEG tree."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from nas.commands.main import main
from nas.data.augment import crop_picture, item_generator, random_crop
from nas.data.device_decode import DecodeUnavailable, DeviceDecoder, require_cuda
from nas.data.images import BAD_LABEL, IndexedImages, collate_encoded
from nas.data.index import TRAIN, VALIDATION, ImageIndexError, scan_tree, write_index
from nas.data.shards import ShardedImages, ShardIndex, ShardOrderSampler

CLASSES = ("ant", "bee", "cow")
PER_CLASS = 8


@pytest.fixture
def tree(tmp_path):
    """24 small JPEGs (3 classes, varied sizes and content) and one PNG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            h, w = 20 + 3 * i, 28 + 2 * k
            pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=90)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "cow" / "x.png")
    return root


@pytest.fixture
def shard_dir(tree, tmp_path):
    index_file, out = tmp_path / "index.h5", tmp_path / "shards"
    write_index(scan_tree(tree, seed=3), index_file)
    assert (
        main(["data", "shards", str(index_file), "--out", str(out), "--images-per-shard", "4"]) == 0
    )
    return out


def test_shards_are_plain_tars_holding_every_image_once(tree, shard_dir):
    shards = ShardIndex(shard_dir)
    assert shards.classes == CLASSES and len(shards.labels) == 3 * PER_CLASS + 1
    members = {}
    for name in shards.shard_names:
        with tarfile.open(shard_dir / name) as tar:
            for info in tar.getmembers():
                members[f"{name}/{info.name}"] = tar.extractfile(info).read()
    assert len(members) == len(shards.labels)
    originals = sorted(p.read_bytes() for p in tree.rglob("*.*"))
    assert sorted(members.values()) == originals
    # the index's offsets point at those members
    for part in (TRAIN, VALIDATION):
        dataset = ShardedImages(shards, part, train=False, resolution=16)
        for i in range(len(dataset)):
            assert dataset.source(i).getvalue() in originals


def test_shard_index_refuses_tampering(shard_dir):
    import h5py

    with h5py.File(shard_dir / "shards.h5", "a") as f:
        f["offset"][0] = f["offset"][0] + 512
    dataset = ShardedImages(ShardIndex(shard_dir), TRAIN, train=True, resolution=16)
    row = int(np.flatnonzero(dataset.rows == 0)[0]) if 0 in dataset.rows else None
    if row is not None:
        image, label = dataset[(0, row)]
        assert label == BAD_LABEL  # logged and skipped, not decoded from the wrong bytes
    with h5py.File(shard_dir / "shards.h5", "a") as f:
        names = f["shard_names"][()]
        del f["shard_names"]
        f["shard_names"] = np.array([b"../evil.tar", *names[1:]], dtype=h5py.string_dtype())
    with pytest.raises(ImageIndexError, match="invalid shard name '../evil.tar'"):
        ShardIndex(shard_dir)


def test_shards_into_a_used_folder_are_refused(tmp_path, shard_dir, capsys):
    assert main(["data", "shards", str(tmp_path / "index.h5"), "--out", str(shard_dir)]) == 1
    assert "already holds shards.h5" in capsys.readouterr().err


def test_shard_sampler_gives_ranks_whole_shards_in_equal_numbers(shard_dir):
    dataset = ShardedImages(ShardIndex(shard_dir), TRAIN, train=True, resolution=16)
    samplers = [ShardOrderSampler(dataset, rank, 2, seed=5) for rank in range(2)]
    orders = []
    for sampler in samplers:
        sampler.start(epoch=1, skip=0)
        orders.append([i for _, i in sampler])
        assert len(orders[-1]) == sampler.num_samples == -(-len(dataset) // 2)
    assert sorted(orders[0] + orders[1]) == list(range(len(dataset)))  # each image once
    shards_of = [{dataset.shard_of(i) for i in order} for order in orders]
    assert len(shards_of[0] & shards_of[1]) <= 1  # ranks share at most the boundary shard
    for order in orders:  # a shard's images come one after another
        runs = [dataset.shard_of(i) for i in order]
        changes = sum(a != b for a, b in zip(runs, runs[1:], strict=False))
        assert changes == len(set(runs)) - 1
    samplers[0].start(epoch=1, skip=3)
    assert [i for _, i in samplers[0]] == orders[0][3:]
    samplers[0].start(epoch=2, skip=0)
    assert [i for _, i in samplers[0]] != orders[0]


def test_crops_depend_on_seed_epoch_and_item_only(tree):
    index = scan_tree(tree, seed=0)
    dataset = IndexedImages(index, TRAIN, train=True, resolution=16, seed=4)
    first, again = dataset[(2, 5)], dataset[(2, 5)]
    assert torch.equal(first[0], again[0]) and first[0].shape == (3, 16, 16)
    assert not torch.equal(first[0], dataset[(3, 5)][0])
    for size in ((30, 20), (500, 375), (10, 300)):
        crop = random_crop(*size, item_generator(1, 2, 3))
        assert 0 <= crop.left and crop.left + crop.width <= size[0]
        assert 0 <= crop.top and crop.top + crop.height <= size[1]


def test_device_decoding_matches_the_worker_pipeline_on_the_cpu(tree):
    index = scan_tree(tree, seed=0)
    cpu = IndexedImages(index, TRAIN, train=True, resolution=16, seed=4)
    device = IndexedImages(index, TRAIN, train=True, resolution=16, seed=4, decode="gpu")
    keys = [(0, i) for i in range(len(device))]
    data, crops, labels = collate_encoded([device[key] for key in keys])
    assert any(item.dim() == 3 for item in data)  # the PNG travels decoded
    loader = [(data, crops, labels)]
    images, out_labels = next(iter(DeviceDecoder(loader, torch.device("cpu"), 16)))
    expected = torch.stack([cpu[key][0] for key in keys])
    assert images.shape == expected.shape and torch.equal(out_labels, labels)
    # same crop box; PIL's and torch's antialiased resize differ by rounding only
    assert (images - expected).abs().mean() < 0.05


def test_device_decoding_marks_a_broken_jpeg_bad(tree):
    index = scan_tree(tree, seed=0)
    dataset = IndexedImages(index, TRAIN, train=True, resolution=16, decode="gpu")
    items = [dataset[(0, i)] for i in range(3)]
    broken = items[1][0][: items[1][0].numel() // 3].clone()
    items[1] = (broken, items[1][1], items[1][2])
    images, labels = DeviceDecoder([], torch.device("cpu"), 16).decode(*collate_encoded(items))
    assert labels[1] == BAD_LABEL and labels[0] != BAD_LABEL and labels[2] != BAD_LABEL
    assert torch.equal(images[1], images[1][:, :1, :1].expand_as(images[1]))  # blank


def test_gpu_decode_is_refused_without_cuda():
    with pytest.raises(DecodeUnavailable, match="decode = 'gpu' needs a CUDA device"):
        require_cuda(torch.device("cpu"))


def test_crop_picture_flips(tree):
    picture = Image.open(next(tree.rglob("*.jpg"))).convert("RGB")
    crop = random_crop(*picture.size, item_generator(0, 0, 0))
    plain = crop_picture(
        picture, type(crop)(crop.top, crop.left, crop.height, crop.width, False), 8
    )
    flipped = crop_picture(
        picture, type(crop)(crop.top, crop.left, crop.height, crop.width, True), 8
    )
    assert torch.allclose(plain.flip(-1), flipped)


def test_the_trainer_reads_shards_with_persistent_workers(shard_dir, tmp_path, capsys):
    from nas.config import DataConfig, TrainConfig
    from nas.pointdir.point import write_point_file
    from nas.pointdir.result import validate_result
    from nas.train.__main__ import main as train_main

    params = {"c1": 4, "g1": 4}
    fixed = {"block": "basic", "g2": 4, "g3": 4, "g4": 4, "d1": 1, "d2": 1, "d3": 1, "d4": 1}
    point = tmp_path / "p"
    write_point_file(
        point,
        point_id=3,
        experiment="test",
        family="resnet",
        params=params,
        fixed={**fixed, "stem": "basic", "maxpool": False},
        data=DataConfig(kind="shards", root=str(shard_dir), resolution=16, workers=1),
        train=TrainConfig(epochs=2, batch_per_gpu=4, log_every=1),
        seed=1,
    )
    assert train_main(["--point-dir", str(point)], environ={}) == 0
    result = validate_result(point / "result.json", 3, params)
    assert result.val_images + result.bad_images == 13  # 25 images, the odd one to validation
    assert 0.0 <= result.data_wait_share <= 1.0
    assert "epoch 2/2 step 3/3" in capsys.readouterr().out
