"""Training throughput of one candidate: images/s (and peak GPU memory) of the real train step.

Runs :func:`nas.train.loop.train_step` (SGD, AMP and channels_last as in
``[train]``) on synthetic images of the given resolution, one process, after a
few warm-up steps. The default candidate is ResNet-50 (torchvision's layout),
the reference line for comparing CPU and GPU numbers::

    python benchmarks/train_throughput.py --batch 8 --steps 10            # this CPU
    python benchmarks/train_throughput.py --batch 128 --amp bf16 --channels-last
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from reporting import print_report
from torch import nn
from torch.utils.data import TensorDataset

from nas.config import TrainConfig, parse_params
from nas.data.dataset import BAD_LABEL, ResumableSampler, make_loader
from nas.models.registry import build_model
from nas.train.launch import DistEnv
from nas.train.loop import Run, make_optimizer, train_step

RESNET50 = "block=bottleneck,c1=64,g1=64,g2=128,g3=256,g4=512,d1=3,d2=4,d3=6,d4=3"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="resnet")
    parser.add_argument("--params", default=RESNET50, help="k=v,... (default: ResNet-50)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser.parse_args(argv)


def synthetic_run(args: argparse.Namespace, device: torch.device) -> Run:
    """A :class:`Run` of the candidate on random images (one rank)."""
    config = TrainConfig(
        epochs=1, batch_per_gpu=args.batch, amp=args.amp, channels_last=args.channels_last
    )
    torch.manual_seed(0)
    module = build_model(args.family, parse_params(args.params), args.classes).to(device)
    if device.type == "cuda" and args.channels_last:
        module = module.to(memory_format=torch.channels_last)
    count = args.batch * (args.steps + args.warmup)
    images = torch.randn(count, 3, args.resolution, args.resolution)
    labels = torch.randint(0, args.classes, (count,))
    data = TensorDataset(images, labels)
    sampler = ResumableSampler(data, 0, 1, seed=0)
    return Run(
        model=module,
        optimizer=make_optimizer(module, config, device),
        scaler=torch.amp.GradScaler(
            device.type, enabled=device.type == "cuda" and args.amp == "fp16"
        ),
        loader=make_loader(
            data, sampler, batch_size=args.batch, workers=0, pin_memory=False, seed=0
        ),
        sampler=sampler,
        config=config,
        dist_env=DistEnv("single", 0, 1, 0),
        device=device,
        steps_per_epoch=args.steps + args.warmup,
        max_bad_images=0,
        seed=0,
    )


def measure(run: Run, args: argparse.Namespace) -> dict[str, float | int | str]:
    criterion = nn.CrossEntropyLoss(ignore_index=BAD_LABEL, reduction="sum")
    run.sampler.start(0, 0)
    batches = iter(run.loader)
    sync = torch.cuda.synchronize if run.device.type == "cuda" else (lambda: None)
    for step in range(args.warmup):
        train_step(run, criterion, *next(batches), step)
    sync()
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for step in range(args.steps):
        train_step(run, criterion, *next(batches), args.warmup + step)
    sync()
    seconds = time.perf_counter() - started
    report: dict[str, float | int | str] = {
        "device": torch.cuda.get_device_name() if run.device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "family": args.family,
        "params": args.params,
        "resolution": args.resolution,
        "batch": args.batch,
        "amp": args.amp if run.use_amp else "off",
        "channels_last": run.memory_format == torch.channels_last,
        "steps": args.steps,
        "images_per_second": args.batch * args.steps / seconds,
        "seconds_per_step": seconds / args.steps,
    }
    if run.device.type == "cuda":
        report["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = measure(synthetic_run(args, device), args)
    print_report(report, as_json=args.json, float_format=".2f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
