"""The learning curve of a training and the divergence guard that reads it.

Every ``[train] eval_every`` epochs (and after the last) the network is
evaluated on a fixed, class-stratified subset of the validation split
(:func:`nas.data.dataset.curve_subset`, ``[train] curve_images`` images),
sharded over the ranks exactly like the final evaluation. Rank 0 adds the
entry to ``curve.jsonl`` (:mod:`nas.pointdir.curve`).

The guard stops a run that cannot recover, within one evaluation: a
non-finite training loss (checked where the loop reads the loss anyway,
every ``log_every`` steps, and for the epoch's mean), or a subset top-1 at
chance level for ``diverge_patience`` consecutive evaluations after the
learning-rate warm-up (``warmup_epochs`` rounded up, at least the first
epoch). "Chance" is the share of the subset's largest class,
the best a network that always answers one class can score. Every check is
agreed across ranks, so all of them stop at the same point.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.config import TrainConfig
from nas.data.dataset import ShardSampler, curve_subset, dataset_labels
from nas.pointdir.curve import Entry, append_entry, keep_until, make_entry, read_curve
from nas.train.evaluate import evaluate
from nas.train.launch import DistEnv, all_reduce


class Diverged(RuntimeError):
    """The guard stopped the run; ``saved_seconds`` is the segment time it did not spend."""

    def __init__(self, reason: str, epoch: int) -> None:
        super().__init__(reason)
        self.reason, self.epoch = reason, epoch
        self.saved_seconds = 0.0


def chance_level(labels: np.ndarray) -> float:
    """Top-1 in percent of always answering the most frequent label."""
    counts = np.unique(labels, return_counts=True)[1]
    return 100.0 * float(counts.max()) / max(int(counts.sum()), 1)


def loss_is_finite(loss: torch.Tensor, device: torch.device) -> bool:
    """Whether every rank's loss is finite (a collective: all ranks call it at the same step)."""
    local = 0.0 if math.isfinite(float(loss)) else 1.0
    return all_reduce([local], device, "max")[0] == 0.0


def chance_streak(entries: list[Entry], chance: float, after_epoch: int) -> int:
    """How many of the latest evaluations after ``after_epoch`` are at or below ``chance``."""
    streak = 0
    for entry in reversed(entries):
        if entry["epoch"] <= after_epoch or entry["top1"] > chance:
            break
        streak += 1
    return streak


class Curve:
    """Subset evaluations of one segment, their file, and the guard's verdicts."""

    def __init__(
        self,
        *,
        point_dir: Path,
        validation: torch.utils.data.Dataset,
        data_seed: int,
        config: TrainConfig,
        dist_env: DistEnv,
        make_loader,
    ) -> None:
        subset = curve_subset(validation, config.curve_images, data_seed)
        self.indices = subset.indices
        self.validation_images = len(validation)
        self.chance = chance_level(dataset_labels(validation)[self.indices])
        shard = ShardSampler(len(subset), dist_env.rank, dist_env.world_size)
        self.loader = make_loader(subset, shard)
        self.point_dir, self.config, self.dist_env = point_dir, config, dist_env
        self.warmup_epochs = max(1, math.ceil(config.warmup_epochs))  # at least one epoch
        self.entries: list[Entry] = []
        self.seconds = 0.0  # wall time of the last subset evaluation

    def resume(self, epoch: int) -> None:
        """Continue the file's curve after ``epoch`` completed epochs (rank 0 drops later ones)."""
        self.entries = [e for e in read_curve(self.point_dir) if e["epoch"] <= epoch]
        if self.dist_env.is_main:
            keep_until(self.point_dir, epoch)

    def final_seconds(self) -> float:
        """Estimated wall time of the final evaluation on the whole validation split.

        The last subset evaluation's time per image (both are sharded over the
        ranks alike) times the split's images; 0 before this segment measured
        one. The deadline keeps this much for the evaluation after the last
        epoch, whatever ``max_steps_per_epoch`` made of the epoch's length.
        """
        return self.seconds * self.validation_images / max(1, len(self.indices))

    def check_loss(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """Raise :class:`Diverged` when a rank's loss is not finite (call every ``log_every``)."""
        if not loss_is_finite(loss, loss.device):
            raise Diverged(f"training loss is not finite at epoch {epoch + 1}, step {step}", epoch)

    def due(self, epoch: int) -> bool:
        """Evaluate after ``epoch`` completed epochs?"""
        return epoch % self.config.eval_every == 0 or epoch == self.config.epochs

    def evaluate(
        self,
        module: nn.Module,
        *,
        epoch: int,
        images: int,
        loss: float,
        lr: float,
        seconds: float,
        memory_format: torch.memory_format,
    ) -> Entry:
        """Measure the subset after ``epoch`` epochs, record the entry, apply the guard.

        ``loss`` is the epoch's mean training loss over all ranks, ``seconds``
        the training wall time before this evaluation.

        Raises:
            Diverged: the epoch's loss is not finite, or the accuracy stayed at chance.
        """
        started = time.perf_counter()
        device = next(module.parameters()).device
        accuracy = evaluate(module, self.loader, device, memory_format=memory_format)
        self.seconds = time.perf_counter() - started
        entry = make_entry(
            epoch=epoch,
            images=images,
            loss=loss,
            top1=accuracy.top1,
            top5=accuracy.top5,
            lr=lr,
            seconds=seconds + self.seconds,
        )
        self.entries = [e for e in self.entries if e["epoch"] != epoch] + [entry]
        if self.dist_env.is_main:
            append_entry(self.point_dir, entry)
        reason = self._verdict(entry)
        if all_reduce([0.0 if reason is None else 1.0], device, "max")[0]:
            raise Diverged(reason or "another rank's guard stopped the run", epoch)
        return entry

    def _verdict(self, entry: Entry) -> str | None:
        """Why the run diverged after this entry, or None."""
        epoch = entry["epoch"]
        if entry["loss"] is None:
            return f"mean training loss of epoch {epoch} is not finite"
        patience = self.config.diverge_patience
        if patience and chance_streak(self.entries, self.chance, self.warmup_epochs) >= patience:
            return (
                f"subset top-1 at chance level (<= {self.chance:.2f} %) for {patience} "
                f"evaluations in a row, the last after epoch {epoch}"
            )
        return None
