"""Images per second and data-wait share of the training loop, with no host sync per step.

A GPU runs kernels asynchronously: the host queues step k+1 while the device
still computes step k. Reading a loss with ``.item()``, ``float()`` or
``.cpu()`` makes the host wait until the queue is empty, and the device idles
while the host then fetches and copies the next batch. The meter therefore
keeps its sums (loss, correct predictions) as tensors on the device, adds to
them with device operations only, and reads them once per progress line:
one synchronisation every ``log_every`` steps.

Two clocks: the wall time of a window (exact at the read, which waits for the
device) and the *data wait*, the time the loop blocks in ``next(loader)``.
With an asynchronous device the data wait is an upper bound of the time the
GPU starves (while the host waits, the device may still work off its queue);
on a CPU it is exact. Figures are those of the rank that prints them (rank 0).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    """What the loop did between two reads of the meter (on this rank)."""

    steps: int
    images: int
    seconds: float
    wait_seconds: float
    loss: float  # mean of the steps' mean losses
    accuracy: float  # training top-1 in percent over the window's images

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_share(self) -> float:
        """Share of the wall time spent waiting for the loader, in [0, 1]."""
        return min(1.0, self.wait_seconds / self.seconds) if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Totals:
    """Steady-state figures of one segment: steps after the first, summed over windows."""

    images: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0


class StepMeter:
    """Device-side sums of one window plus host-side clocks; :meth:`read` is the only sync."""

    def __init__(self) -> None:
        self.totals = Totals()
        self.warmup_seconds: float | None = None  # first step of the segment, compile included
        self._loss: torch.Tensor | None = None
        self._correct: torch.Tensor | None = None
        self.start_segment()

    def start_segment(self) -> None:
        """Mark the start of a segment: its first step is the warm-up."""
        self._segment_start = time.perf_counter()
        self.warmup_seconds = None
        self._restart(self._segment_start)

    def _restart(self, now: float) -> None:
        self._start = now
        self._steps = self._images = 0
        self._wait = 0.0
        if self._loss is not None:
            self._loss.zero_()
            self._correct.zero_()

    def fetch(self, batches: Iterator):
        """``next(batches)``, with the time it blocks counted as data wait."""
        started = time.perf_counter()
        batch = next(batches)
        self._wait += time.perf_counter() - started
        return batch

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        """Count one step: ``loss`` and ``correct`` stay on their device (no sync)."""
        if self._loss is None:
            self._loss = torch.zeros((), dtype=torch.float32, device=loss.device)
            self._correct = torch.zeros((), dtype=torch.int64, device=loss.device)
        self._loss.add_(loss.detach())
        self._correct.add_(correct)
        self._steps += 1
        self._images += images

    def skip_pause(self) -> None:
        """Leave the time since the last read (a checkpoint save) out of the next window."""
        if self._steps == 0:
            self._start = time.perf_counter()

    def end_warmup(self) -> float:
        """Close the segment's first step (compile, autotuning, loader start-up) apart.

        Waits for the device once, so that the warm-up does not count into
        the steady-state rate. Returns its seconds.
        """
        self.read()
        self.warmup_seconds = time.perf_counter() - self._segment_start
        self.totals = Totals()
        return self.warmup_seconds

    def read(self) -> Window:
        """The window since the last read; waits for the device (the one sync point)."""
        values = [0.0, 0.0]
        if self._loss is not None:
            values = torch.stack([self._loss.double(), self._correct.double()]).tolist()
        now = time.perf_counter()
        window = Window(
            steps=self._steps,
            images=self._images,
            seconds=now - self._start,
            wait_seconds=self._wait,
            loss=values[0] / max(1, self._steps),
            accuracy=100.0 * values[1] / max(1, self._images),
        )
        self.totals = Totals(
            images=self.totals.images + window.images,
            seconds=self.totals.seconds + window.seconds,
            wait_seconds=self.totals.wait_seconds + window.wait_seconds,
        )
        self._restart(now)
        return window


def segment_rate(images: int, seconds: float, wait_seconds: float) -> tuple[float, float] | None:
    """``(images per second, data-wait share)`` of accumulated totals, None before any step."""
    if images <= 0 or seconds <= 0:
        return None
    return images / seconds, min(1.0, wait_seconds / seconds)
