"""Flip single bits of a small state file: every flip must load identically or fail clearly.

Each flipped copy is read by a worker process as every command reads it
(:func:`nas.record.store.load_state`); a worker that does not answer within a
few seconds counts as a hang and is replaced, one that dies counts as a
crash. Outcomes: ``same`` (the flip hit bytes that carry no content),
``error`` (a one-line StateError), ``silent`` (loaded but different),
``traceback`` (any other exception), ``hang``, ``died``. The default suite
samples a few dozen flips (tests/test_state.py); the full report:

    python tests/flip_sweep.py --flips 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys
from nas.record.store import load_state
from nas.record.state import StateError

def fingerprint(state):
    fits = [(f.number, f.time, f.support_ids, f.coefficients.tolist(), f.loo_rmse, f.argmax,
             f.predicted_max) for f in state.fits]
    return repr((state.generation, state.created, state.experiment_text, state.space.to_dict(),
                 state.meta, state.points, state.coords().tolist(), fits, state.events))

expected = None
for line in sys.stdin:
    path = line.strip()
    try:
        got = fingerprint(load_state(path))
        if expected is None:
            expected = got
        answer = {"outcome": "same" if got == expected else "silent"}
    except StateError as exc:
        text = str(exc)
        answer = {"outcome": "error" if "\n" not in text else "traceback", "detail": text}
    except BaseException as exc:
        answer = {"outcome": "traceback", "detail": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
"""


def small_state(folder: Path) -> Path:
    """A state of a few points, a fit, events and meta (~30 kB)."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from experiment_support import experiment_toml

    from nas.config import parse_experiment
    from nas.record.state import PointStatus
    from nas.record.store import StateStore

    space = {"width": {"type": "int", "low": 8, "high": 64},
             "block": {"type": "categorical", "choices": ["basic", "bottleneck"]}}  # fmt: skip
    experiment = parse_experiment(experiment_toml("flip", space), "flip.toml")
    path = folder / "s.h5"
    with StateStore.create(path, experiment) as store:
        state = store.state
        for i, width in enumerate((8, 24, 40, 64)):
            state.add_point({"width": width, "block": "basic"}, "initial", 0, predicted=70.0 + i)
        state.record(0, 61.5)
        state.set_status(1, PointStatus.SUBMITTING)
        state.update_point(1, job_name="flip-p1-r0a1s0", extra={"note": "x"})
        state.add_fit([0, 1], [0.5, -1.0, 2.0], 0.75, {"width": 32, "block": "basic"}, 82.0)
        state.meta["cycle"] = 3
        store.commit()
    return path


class Worker:
    """A reader process answering one JSON line per path."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=env)  # fmt: skip

    def ask(self, path: Path, timeout: float) -> dict:
        assert self.process.stdin and self.process.stdout
        try:
            self.process.stdin.write(f"{path}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return {"outcome": "died"}
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return {"outcome": "hang"}
        line = self.process.stdout.readline()
        return json.loads(line) if line else {"outcome": "died"}

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def sweep(flips: int | None, seed: int = 5, timeout: float = 10.0) -> Counter:
    """Outcome counts of ``flips`` sampled single-bit flips (all bits when None)."""
    with tempfile.TemporaryDirectory() as tmp:
        original = small_state(Path(tmp))
        data = original.read_bytes()
        bits = range(len(data) * 8)
        chosen = bits if flips is None else random.Random(seed).sample(bits, flips)
        target = Path(tmp) / "flipped.h5"
        worker = Worker()
        counts: Counter = Counter()
        examples: dict[str, str] = {}
        try:
            assert worker.ask(original, 60)["outcome"] == "same"
            for bit in chosen:
                flipped = bytearray(data)
                flipped[bit // 8] ^= 1 << (bit % 8)
                target.write_bytes(flipped)
                answer = worker.ask(target, timeout)
                counts[answer["outcome"]] += 1
                examples.setdefault(answer["outcome"], f"bit {bit}: {answer.get('detail', '')}")
                if answer["outcome"] in ("hang", "died"):
                    worker.close()
                    worker = Worker()
                    worker.ask(original, 60)
        finally:
            worker.close()
    counts["file_bytes"] = len(data)
    sweep.examples = examples  # type: ignore[attr-defined]
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=5000, help="sampled flips (0: every bit)")
    args = parser.parse_args()
    counts = sweep(args.flips or None)
    print(dict(counts))
    for outcome, example in sweep.examples.items():  # type: ignore[attr-defined]
        print(f"  e.g. {outcome}: {example[:300]}")
    bad = counts["silent"] + counts["traceback"] + counts["hang"] + counts["died"]
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
