"""``checkpoint.pt``: the state to continue a training exactly where it stopped.

Saved by rank 0 after every epoch and at every early stop (temp file, fsync,
rename), loaded by every rank with ``weights_only=True`` so a checkpoint file
can never run code. It is tied to its ``point.json`` by the input hash
(:class:`~nas.pointdir.point.InputHash`): a checkpoint from different inputs
is refused rather than silently continued.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.pointdir.jsonio import atomic_write_bytes
from nas.pointdir.point import InputHash

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that exists but cannot be used to resume."""


@dataclass
class TrainingState:
    """Where a training stands: counters that, with the tensors, make resuming exact."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps done inside the current epoch
    world_size: int = 1
    elapsed_seconds: float = 0.0  # wall time of all segments up to the save
    rank_seconds: float = 0.0  # the same summed over ranks: device time spent
    started: str = ""  # ISO time the first segment started
    # rank 0's steady-state steps (each segment's first step left out), for images/s
    train_images: int = 0
    train_seconds: float = 0.0
    data_wait_seconds: float = 0.0  # of train_seconds, blocked on the loader
    # Fields below are absent from older checkpoints and then take these defaults;
    # None means "not counted then" (read by :meth:`trained_seconds` and
    # :func:`nas.train.loop.complete_epoch`, which fall back to the old figures).
    # The epoch in progress up to ``step``, summed over ranks, so that a resumed
    # epoch's mean loss and bad-image count cover all its steps.
    epoch_loss_sum: float = 0.0  # sum of the ranks' per-step mean losses
    epoch_loss_steps: int = 0  # steps summed over ranks
    epoch_bad_images: int = 0
    images: int | None = None  # readable images trained in the completed epochs, all ranks
    training_seconds: float | None = None  # wall time in the training loops of all segments

    def trained_seconds(self) -> float:
        """Training wall time of the saved segments, start-up left out.

        A checkpoint older than ``training_seconds`` gives its ``elapsed_seconds``,
        the axis its curve entries were written on.
        """
        return self.elapsed_seconds if self.training_seconds is None else self.training_seconds

    def clear_epoch(self) -> None:
        """Forget the sums of a partial epoch (it is done, or it starts over)."""
        self.epoch_loss_sum, self.epoch_loss_steps, self.epoch_bad_images = 0.0, 0, 0


#: Accelerators (torch module names) whose RNG states a checkpoint keeps besides the
#: CPU's; each only where this torch build has it and a device is visible.
ACCELERATOR_RNGS = ("cuda", "xpu")


def _accelerators() -> dict[str, Any]:
    """The accelerator modules of :data:`ACCELERATOR_RNGS` that this torch has and can use."""
    modules = {name: getattr(torch, name, None) for name in ACCELERATOR_RNGS}
    return {name: module for name, module in modules.items() if module and module.is_available()}


def rng_states() -> dict[str, Any]:
    """The torch RNG states of the CPU and every visible GPU (CUDA/ROCm, XPU)."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    for name, module in _accelerators().items():
        states[name] = module.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` saved; a generator it did not save is left as it is."""
    torch.set_rng_state(states["cpu"])
    for name, module in _accelerators().items():
        if name in states:
            module.set_rng_state_all(states[name])


def save_checkpoint(
    path: str | Path,
    *,
    input_hash: InputHash,
    state: TrainingState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> None:
    """Write the checkpoint atomically (call on rank 0 only)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "input_hash": input_hash.value,
        "state": dataclasses.asdict(state),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | Path,
    *,
    input_hash: InputHash,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> TrainingState | None:
    """Restore model, optimizer, scaler and RNG states from ``path`` if it exists.

    Returns:
        The saved counters, or None when there is no checkpoint (a fresh start).

    Raises:
        CheckpointError: unreadable, another format, or written for other inputs.
    """
    payload = _read(Path(path), input_hash)
    if payload is None:
        return None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if payload["scaler"]:  # empty when it was saved without a grad scaler
        scaler.load_state_dict(payload["scaler"])
    set_rng_states(payload["rng"])
    return TrainingState(**payload["state"])


def saved_state(path: str | Path, *, input_hash: InputHash) -> TrainingState | None:
    """The counters of the checkpoint at ``path``, restoring nothing; None without one.

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    payload = _read(Path(path), input_hash)
    return None if payload is None else TrainingState(**payload["state"])


def _read(path: Path, input_hash: InputHash) -> dict[str, Any] | None:
    """The checkpoint's payload, checked to be ours and written for ``input_hash``."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise CheckpointError(f"{path}: cannot load checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a format-{CHECKPOINT_FORMAT} splinenas checkpoint")
    if not input_hash.matches(payload["input_hash"]):
        raise CheckpointError(
            f"{path}: written for a different point.json (input hash "
            f"{payload['input_hash'][:12]} != {input_hash.value[:12]}); move it aside to start over"
        )
    return payload
