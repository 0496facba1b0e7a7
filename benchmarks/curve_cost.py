"""What the learning curve costs: measured on the digits, estimated for the paper's configs.

Measured: the real trainer (one process, this CPU) trains a digits candidate
for a few full epochs; its progress lines give each epoch's training time and
each subset evaluation's time. Estimated: for every ``jobs/*.toml`` on an
image folder, the subset's forward passes as a share of a training epoch,
``EVALUATION_COST * curve_images / training images / eval_every`` (a forward
pass costs about 0.4 of a training step per image, :data:`EVALUATION_COST`),
with the image counts of the data sets named in the configs (per-label split:
half of every class trains). Last, the same digits candidate with an absurd
learning rate: where the divergence guard stopped it and the seconds of the
segment it saved::

    python benchmarks/curve_cost.py                  # digits, 3 epochs, then the estimates
    python benchmarks/curve_cost.py --epochs 5 --json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from nas.config import DataConfig, TrainConfig, load_experiment
from nas.pointdir.layout import EXIT_COMPLETE, EXIT_DIVERGED
from nas.pointdir.point import write_point_file

JOBS = Path(__file__).resolve().parent.parent / "jobs"
#: Images of the data sets the job files name (ImageNet-22K fall 2011; ILSVRC-2012 train).
DATASET_IMAGES = {"imagenet22k": 14_197_122, "imagenet1k": 1_281_167}
#: The demo's candidate family on the digits (jobs/demo-digits.toml, a middle point).
DIGITS_PARAMS = {"c1": 16, "g1": 16, "g2": 32}
DIGITS_FIXED = {
    "block": "basic",
    "stem": "conv7",
    "maxpool": False,
    "g3": 32,
    "g4": 32,
    "d1": 1,
    "d2": 1,
    "d3": 1,
    "d4": 1,
}


#: A forward pass costs about this share of a training step per image (an estimate: the
#: digits measurement above gives ~0.19). The trainer itself times its final evaluation
#: from the learning curve's subset (:meth:`nas.train.curve.Curve.final_seconds`).
EVALUATION_COST = 0.4


def train_digits(train: TrainConfig, expected: int) -> tuple[str, dict | None]:
    """Run the trainer on a digits point; its progress lines and its error.json (if any)."""
    from nas.train.__main__ import main

    with tempfile.TemporaryDirectory() as folder:
        write_point_file(
            folder,
            point_id=0,
            experiment="bench",
            family="resnet",
            params=DIGITS_PARAMS,
            fixed=DIGITS_FIXED,
            data=DataConfig(kind="digits", resolution=16, workers=0, pin_memory=False),
            train=train,
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--point-dir", folder], environ={})
        if code != expected:
            raise SystemExit(f"the trainer exited with {code}:\n{out.getvalue()}")
        error = Path(folder) / "error.json"
        return out.getvalue(), json.loads(error.read_text()) if error.exists() else None


def measure_digits(epochs: int, curve_images: int) -> dict[str, object]:
    """Train on the digits and read epoch and subset-evaluation times from the progress lines."""
    train = TrainConfig(epochs=epochs, batch_per_gpu=32, log_every=1000, curve_images=curve_images)
    text, _ = train_digits(train, EXIT_COMPLETE)
    epoch = [float(s) for s in re.findall(r"epoch done in ([\d.]+) s", text)]
    subset = [float(s) for s in re.findall(r"subset top-1 [\d.]+ % in ([\d.]+) s", text)]
    return {
        "digits epochs": len(epoch),
        "digits subset images": min(curve_images, 403),
        "digits epoch s (mean)": sum(epoch) / len(epoch),
        "digits subset eval s (mean)": sum(subset) / len(subset),
        "digits share of an epoch %": 100.0 * sum(subset) / sum(epoch),
    }


def measure_divergence(epochs: int) -> dict[str, object]:
    """An absurd learning rate on the digits: where the guard stopped it and what it saved."""
    train = TrainConfig(epochs=epochs, batch_per_gpu=32, log_every=5, lr=1e6)
    started = time.perf_counter()
    _, error = train_digits(train, EXIT_DIVERGED)
    assert error is not None  # the trainer exited 5, so it wrote error.json
    return {
        "diverged run": error["message"],
        "diverged run seconds used": time.perf_counter() - started,
        "diverged run seconds saved": error["saved_seconds"],
    }


def estimates() -> list[dict[str, object]]:
    """The subset evaluation's share of an epoch for every job file on an image folder."""
    rows = []
    for path in sorted(JOBS.glob("*.toml")):
        experiment = load_experiment(path)
        data, train = experiment.data, experiment.train
        if data is None or data.kind != "imagefolder":
            continue
        name = next((k for k in DATASET_IMAGES if k in f"{data.root} {path.name}"), None)
        if name is None:
            continue
        train_images = DATASET_IMAGES[name] // 2
        subset = min(train.curve_images, DATASET_IMAGES[name] - train_images)
        share = 100.0 * EVALUATION_COST * subset / train_images / train.eval_every
        rows.append(
            {
                "job": path.name,
                "training images": train_images,
                "subset images": subset,
                "eval_every": train.eval_every,
                "share of an epoch %": round(share, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="digits epochs to time")
    parser.add_argument("--curve-images", type=int, default=50_000, help="[train] curve_images")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    measured = measure_digits(args.epochs, args.curve_images)
    measured.update(measure_divergence(args.epochs))
    rows = estimates()
    if args.json:
        print(json.dumps({"digits": measured, "estimates": rows}))
        return 0
    width = max(map(len, measured)) + 1
    for key, value in measured.items():
        shown = f"{value:.3g}" if isinstance(value, float) else value
        print(f"{key:>{width}}: {shown}")
    print()
    header = list(rows[0]) if rows else []
    cells = [header] + [[str(row[k]) for k in header] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
