"""Training throughput, pipe by pipe: the model step, the data pipeline, the whole trainer.

Three kinds of rows, each naming the device, precision, batch and the
published figure it compares with:

* ``model``: :func:`nas.train.loop.train_step` (SGD, AMP, channels_last,
  torch.compile as in ``[train]``) on synthetic tensors already on the device;
* ``data``: decode + random resized crop + flip + normalise of ImageNet-shaped
  synthetic JPEGs, one CPU thread (images/s per core), with PIL (the loader
  workers' path), ``torchvision.io.decode_jpeg`` on the CPU, and on the GPU
  (``[data] decode = "gpu"``) when there is one;
* ``trainer``: ``python -m nas.train``'s segment on a synthetic ImageNet-shaped
  image folder and on the digits demo, with images/s per rank and the
  data-wait share from ``result.json``.

The summary applies the 1.3x rule: loader cores per rank needed to feed the
measured model step 1.3 times over. Run::

    python benchmarks/train_throughput.py                      # CPU rows, quick
    python benchmarks/train_throughput.py --suite gpu --json   # all GPU rows (benchmarks/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from reporting import print_table
from torch import nn

from nas.config import DataConfig, TrainConfig, parse_params
from nas.data.images import BAD_LABEL, IndexedImages, collate_encoded
from nas.data.index import TRAIN, scan_tree
from nas.models.registry import build_model
from nas.train.launch import DistEnv
from nas.train.loop import Run, make_optimizer, train_step
from nas.train.meter import StepMeter

RESNET50 = "block=bottleneck,c1=64,g1=64,g2=128,g3=256,g4=512,d1=3,d2=4,d3=6,d4=3"
BLRESNEXT50 = (
    "w1=64,w2=128,w3=256,w4=512,d1=3,d2=4,d3=6,d4=3,cardinality=32,basewidth=4,alpha=2,beta=4"
)
SMALL = "block=basic,c1=16,g1=16,g2=32,g3=64,g4=128,d1=1,d2=1,d3=1,d4=1"
TINY = "block=basic,c1=4,g1=4,g2=4,g3=4,g4=4,d1=1,d2=1,d3=1,d4=1"  # the loader's share grows

#: NVIDIA DeepLearningExamples, PyTorch ResNet50 v1.5 README, "Training performance results"
#: (pytorch-21.03 NGC container, batch 256, DALI, real ImageNet), one GPU.
DLE = "NVIDIA DLE RN50 v1.5 (21.03)"
REFERENCE_MODEL = {
    ("resnet50", "amp"): f"{DLE}: A100 80GB 2,470 img/s; V100 16GB 1,200 img/s",
    ("resnet50", "fp32"): f"{DLE}: A100 80GB TF32 938 img/s; V100 16GB FP32 367 img/s",
}
#: Single-thread JPEG decode only (no crop) of ImageNet validation, from memory, 16-vCPU cloud
#: machines: imread-benchmark / Iglovikov & Kosarevsky, arXiv:2605.08731 (2026).
REFERENCE_DECODE = {
    "pil": "decode only, 1 thread: Pillow 537-726 img/s (arXiv:2605.08731)",
    "torchvision-cpu": "decode only, 1 thread: torchvision 621-864 img/s (arXiv:2605.08731)",
    "torchvision-gpu": "none published for decode_jpeg on this card",
    "gpu-worker": "none published",
}
NO_REFERENCE = "none published for this CPU"


# --------------------------------------------------------------------------- rows


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def model_row(
    device: torch.device,
    name: str,
    family: str,
    params: str,
    *,
    batch: int,
    steps: int,
    amp: str = "off",
    channels_last: bool = False,
    compile: bool = False,
) -> dict[str, object]:
    """Images/s of the train step on one synthetic batch that stays on the device."""
    config = TrainConfig(
        epochs=1, batch_per_gpu=batch, amp=amp, channels_last=channels_last, compile=compile
    )
    torch.manual_seed(0)
    module = build_model(family, parse_params(params), 1000).to(device)
    run = Run(
        model=module,
        optimizer=make_optimizer(module, config, device),
        scaler=torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and amp == "fp16"),
        loader=None,
        sampler=None,
        config=config,
        dist_env=DistEnv("single", 0, 1, 0),
        device=device,
        steps_per_epoch=steps + 2,
        max_bad_images=0,
        seed=0,
    )
    if run.memory_format == torch.channels_last:
        module.to(memory_format=torch.channels_last)
    if compile:
        run.model = torch.compile(module)
    images = torch.randn(batch, 3, 224, 224, device=device).to(memory_format=run.memory_format)
    labels = torch.randint(0, 1000, (batch,), device=device)
    criterion = nn.CrossEntropyLoss(ignore_index=BAD_LABEL, reduction="sum")
    started = time.perf_counter()
    for step in range(2):  # warm-up: compilation, cuDNN autotuning, allocations
        train_step(run, criterion, images, labels, step)
    _sync(device)
    warmup = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    meter = StepMeter()
    for step in range(steps):
        loss, correct = train_step(run, criterion, images, labels, 2 + step)
        meter.add(loss, correct, batch)
    window = meter.read()  # the one sync of the timed steps
    precision = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}[
        run.config.amp if run.use_amp else "off"
    ]
    recipe = precision + (" + channels_last" if run.memory_format == torch.channels_last else "")
    recipe += " + compile" if compile else ""
    row = {
        "pipe": "model",
        "what": f"{name}, 224 px, synthetic on device",
        "device": device_name(device),
        "precision": recipe,
        "batch": batch,
        "images_per_second": window.images_per_second,
        "warmup_seconds": warmup,
        "reference": REFERENCE_MODEL.get((name, "fp32" if precision == "fp32" else "amp"))
        if device.type == "cuda"
        else NO_REFERENCE,
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- data


def make_jpeg_tree(root: Path, images: int, classes: int = 4, seed: int = 0) -> None:
    """ImageNet-shaped JPEGs: sizes around 500 x 375, smooth content plus noise, quality 90."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        w, h = int(rng.integers(400, 600)), int(rng.integers(300, 450))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = rng.uniform(0, 6.28, 3)
        base = [
            np.sin(x / rng.uniform(20, 80) + p) * np.cos(y / rng.uniform(20, 80)) for p in phase
        ]
        pixels = np.stack(base, axis=-1) * 90 + 128 + rng.normal(0, 12, (h, w, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(root / f"c{i % classes}" / f"{i:06d}.jpg", quality=90)


def data_rows(root: Path, rounds: int, device: torch.device) -> list[dict[str, object]]:
    """Images/s per CPU core of the decoding paths (one thread, files in the page cache)."""
    index = scan_tree(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [_pil_row(index, rounds)]
        rows += _torchvision_rows(index, rounds, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        rows += _torchvision_rows(index, rounds, device)[1:]
    return rows


class _Clock:
    """Wall and CPU seconds of a block (CPU time: the rate per core, whatever else runs)."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _pil_row(index, rounds: int) -> dict[str, object]:
    dataset = IndexedImages(index, TRAIN, train=True, resolution=224)
    with _Clock() as clock:
        for epoch in range(rounds):
            for i in range(len(dataset)):
                dataset[(epoch, i)]
    what = "read + PIL decode + crop/flip/normalise (loader worker)"
    return _data_row("pil", what, len(dataset) * rounds, clock, None)


def _torchvision_rows(index, rounds: int, device: torch.device) -> list[dict[str, object]]:
    """The worker's share (read, header, crop box) on one core, then the decode on ``device``."""
    from nas.data.device_decode import DeviceDecoder

    dataset = IndexedImages(index, TRAIN, train=True, resolution=224, decode="gpu")
    decoder = DeviceDecoder([], device, 224)
    decoder.decode(*collate_encoded([dataset[(0, i)] for i in range(4)]))  # warm-up
    prepare, decode = _Clock(), _Clock()
    prepare.wall = prepare.cpu = decode.wall = decode.cpu = 0.0
    for epoch in range(rounds):
        with _Clock() as clock:
            batch = collate_encoded([dataset[(epoch, i)] for i in range(len(dataset))])
        prepare.wall, prepare.cpu = prepare.wall + clock.wall, prepare.cpu + clock.cpu
        _sync(device)
        with _Clock() as clock:
            decoder.decode(*batch)
            _sync(device)
        decode.wall, decode.cpu = decode.wall + clock.wall, decode.cpu + clock.cpu
    images = len(dataset) * rounds
    worker = _data_row(
        "gpu-worker", "read + JPEG header + crop box (worker, decode = gpu)", images, prepare, None
    )
    if device.type == "cuda":
        what = "decode_jpeg on the GPU + crop/flip/normalise there (batch of all)"
        return [worker, _data_row("torchvision-gpu", what, images, decode, device_name(device))]
    both = _Clock()
    both.wall, both.cpu = prepare.wall + decode.wall, prepare.cpu + decode.cpu
    what = "read + torchvision decode_jpeg + crop/flip/normalise"
    return [worker, _data_row("torchvision-cpu", what, images, both, None)]


def _data_row(
    decoder: str, what: str, images: int, clock: _Clock, where: str | None
) -> dict[str, object]:
    """Images per CPU-second on one core (per GPU-second of wall time for a GPU decoder)."""
    seconds = clock.wall if where else clock.cpu
    return {
        "pipe": "data",
        "what": what,
        "device": where or f"{_cpu_model()}, 1 core",
        "precision": "uint8 -> fp32",
        "batch": "-",
        "images_per_second": images / seconds,
        "wall_images_per_second": images / clock.wall,
        "clock": "wall" if where else "cpu",
        "decoder": decoder,
        "reference": REFERENCE_DECODE[decoder],
    }


# --------------------------------------------------------------------------- trainer


def trainer_row(
    point_dir: Path, what: str, data: DataConfig, train: TrainConfig, family: str, params: str
) -> dict[str, object]:
    """One real segment of ``python -m nas.train``; figures from its result.json."""
    from nas.pointdir.point import write_point_file
    from nas.train.__main__ import main as train_main

    write_point_file(
        point_dir,
        point_id=1,
        experiment="throughput",
        family=family,
        params=parse_params(params),
        fixed={},
        data=data,
        train=train,
        seed=0,
    )
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # progress lines: stdout stays the table
        code = train_main(["--point-dir", str(point_dir)], environ=dict(os.environ))
    seconds = time.perf_counter() - started
    result = json.loads((point_dir / "result.json").read_text()) if code == 0 else {}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = train.amp if device.type == "cuda" and train.amp != "off" else "fp32"
    return {
        "pipe": "trainer",
        "what": what,
        "device": device_name(device),
        "precision": precision + (" + compile" if train.compile else ""),
        "batch": train.batch_per_gpu,
        "images_per_second": result.get("images_per_second"),
        "data_wait_share": result.get("data_wait_share"),
        "workers": data.workers,
        "decode": data.decode,
        "segment_seconds": seconds,
        "exit_code": code,
        "reference": "model row above (same card, recipe)",
    }


# --------------------------------------------------------------------------- suites


def cpu_suite(args: argparse.Namespace, scratch: Path) -> list[dict[str, object]]:
    cpu = torch.device("cpu")
    rows = []
    if "model" in args.rows:
        rows.append(model_row(cpu, "resnet50", "resnet", RESNET50, batch=8, steps=args.steps))
        rows.append(model_row(cpu, "small resnet", "resnet", SMALL, batch=32, steps=args.steps * 4))
    if "data" in args.rows:
        make_jpeg_tree(scratch / "decode", args.images)
        rows += data_rows(scratch / "decode", args.rounds, cpu)
    if "trainer" not in args.rows:
        return rows
    make_jpeg_tree(scratch / "jpegs", args.trainer_images)
    workers = max(1, (os.cpu_count() or 2) - 1)
    small = dict(family="resnet", params=SMALL)
    image_data = DataConfig(
        kind="imagefolder", root=str(scratch / "jpegs"), resolution=224, workers=workers
    )
    rows.append(
        trainer_row(
            scratch / "p-small",
            "small resnet, synthetic ImageNet-shaped JPEGs",
            image_data,
            TrainConfig(epochs=2, batch_per_gpu=32, log_every=5),
            **small,
        )
    )
    rows.append(
        trainer_row(
            scratch / "p-tiny",
            "tiny resnet (widths 4), synthetic ImageNet-shaped JPEGs",
            image_data,
            TrainConfig(epochs=2, batch_per_gpu=32, log_every=5),
            family="resnet",
            params=TINY,
        )
    )
    digits = DataConfig(kind="digits", resolution=16, workers=0, pin_memory=False)
    demo = "block=basic,stem=conv7,maxpool=false,c1=16,g1=16,g2=32,g3=32,g4=32,d1=2,d2=1,d3=1,d4=1"
    rows.append(
        trainer_row(
            scratch / "p-digits",
            "digits demo centre point (jobs/demo-digits.toml)",
            digits,
            TrainConfig(epochs=8, batch_per_gpu=32, log_every=10),
            family="resnet",
            params=demo,
        )
    )
    return rows


#: The GPU model rows by name: ResNet-50 fp32, bf16 + channels_last, and compiled;
#: bL-ResNeXt-50 eager and compiled.
_BF16_CL = {"amp": "bf16", "channels_last": True}
GPU_MODEL_RECIPES = {
    "resnet50-fp32": (("resnet50", "resnet", RESNET50), {}),
    "resnet50-bf16-cl": (("resnet50", "resnet", RESNET50), _BF16_CL),
    "resnet50-bf16-cl-compile": (("resnet50", "resnet", RESNET50), {**_BF16_CL, "compile": True}),
    "blresnext50-bf16-cl": (("bl-resnext50", "blresnext", BLRESNEXT50), _BF16_CL),
    "blresnext50-bf16-cl-compile": (
        ("bl-resnext50", "blresnext", BLRESNEXT50),
        {**_BF16_CL, "compile": True},
    ),
}


def gpu_row_plan(args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    """Every GPU row by name (``model:<recipe>``, ``data``, ``trainer:cpu``, ``trainer:gpu``),
    each a function returning its rows, so that a caller can run and time them one by one."""
    gpu = torch.device("cuda")
    plan = {
        f"model:{key}": (lambda model=model, recipe=recipe: [
            model_row(gpu, *model, batch=args.gpu_batch, steps=args.steps, **recipe)])
        for key, (model, recipe) in GPU_MODEL_RECIPES.items()
    }  # fmt: skip

    def data() -> list[dict[str, object]]:
        make_jpeg_tree(scratch / "decode", args.images)
        return data_rows(scratch / "decode", args.rounds, gpu)

    def trainer(decode: str) -> list[dict[str, object]]:
        if not (scratch / "jpegs").is_dir():
            make_jpeg_tree(scratch / "jpegs", args.trainer_images)
        data = DataConfig(kind="imagefolder", root=str(scratch / "jpegs"), resolution=224,
                          workers=max(1, (os.cpu_count() or 2) - 2), decode=decode)  # fmt: skip
        train = TrainConfig(
            epochs=4, batch_per_gpu=args.gpu_batch, log_every=4, amp="bf16", channels_last=True
        )
        what = f"resnet50, synthetic ImageNet-shaped JPEGs, decode {decode}"
        return [trainer_row(scratch / f"p-{decode}", what, data, train, "resnet", RESNET50)]

    plan["data"] = data
    plan["trainer:cpu"] = lambda: trainer("cpu")
    plan["trainer:gpu"] = lambda: trainer("gpu")
    return plan


def gpu_suite(args: argparse.Namespace, scratch: Path) -> list[dict[str, object]]:
    """The GPU rows of ``--rows`` (or of ``--only``), each printed as a JSON line when done
    with ``--stream``: a row that completes is never lost to a later one's time limit."""
    plan = gpu_row_plan(args, scratch)
    keys = args.only or [key for key in plan if key.split(":")[0] in args.rows]
    rows = []
    for key in keys:
        for row in plan[key]():
            row["row"] = key
            rows.append(row)
            if args.stream:
                print(json.dumps(row), flush=True)
    return rows


def feed_summary(rows: list[dict[str, object]]) -> list[str]:
    """The 1.3x rule: loader cores per rank needed for each model row on this machine."""
    per_core = {r["decoder"]: r["images_per_second"] for r in rows if r["pipe"] == "data"}
    lines = []
    for row in (r for r in rows if r["pipe"] == "model"):
        need = 1.3 * float(row["images_per_second"])
        for decoder in ("pil", "torchvision-cpu"):
            if decoder in per_core:
                cores = need / per_core[decoder]
                lines.append(
                    f"{row['what'].split(',')[0]} {row['precision']} at {row['images_per_second']:.1f} img/s: "
                    f"1.3x needs {need:.1f} img/s = {math.ceil(cores)} cores per rank with {decoder} "
                    f"({per_core[decoder]:.0f} img/s per core)"
                )
        if "torchvision-gpu" in per_core:
            share = need / per_core["torchvision-gpu"]
            cores = math.ceil(need / per_core["gpu-worker"])
            lines.append(
                f"  with decode = gpu: {100 * share:.0f} % of the GPU's decode rate "
                f"and {cores} worker cores per rank"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--rows", default="model,data,trainer", help="which pipes (default: all three)"
    )
    parser.add_argument("--steps", type=int, default=4, help="timed model steps (default 4)")
    parser.add_argument("--images", type=int, default=96, help="synthetic JPEGs (default 96)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over them per decoder")
    parser.add_argument(
        "--trainer-images", type=int, default=640, help="JPEGs for the trainer rows (half train)"
    )
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--only", help="GPU rows by name, comma-separated (model:<recipe>, data, trainer:cpu|gpu)"
    )
    parser.add_argument(
        "--stream", action="store_true", help="GPU suite: one JSON line per row as it completes"
    )
    args = parser.parse_args(argv)
    args.rows = set(args.rows.split(","))
    known = [f"model:{key}" for key in GPU_MODEL_RECIPES] + ["data", "trainer:cpu", "trainer:gpu"]
    args.only = args.only.split(",") if args.only else None
    if args.only and not set(args.only) <= set(known):
        parser.error(f"--only: expected some of {', '.join(known)}, got {args.only}")
    if not args.rows <= {"model", "data", "trainer"}:
        parser.error(f"--rows: expected model, data or trainer, got {args.rows}")
    if args.suite == "gpu" and not torch.cuda.is_available():
        print("--suite gpu: no CUDA device here", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        suite = gpu_suite if args.suite == "gpu" else cpu_suite
        rows = suite(args, Path(scratch))
    summary = feed_summary(rows)
    if args.stream:
        return 0
    if args.json:
        print(json.dumps({"rows": rows, "feed": summary}))
        return 0
    columns = [
        "pipe",
        "what",
        "device",
        "precision",
        "batch",
        "images_per_second",
        "data_wait_share",
        "reference",
    ]
    print_table(rows, columns, float_format=".3g")
    print()
    for line in summary:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
