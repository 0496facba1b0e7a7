"""``checkpoint.pt``: the state to continue a training exactly where it stopped.

Saved by rank 0 after every epoch and at every early stop (temp file, fsync,
rename), loaded by every rank with ``weights_only=True`` so a checkpoint file
can never run code. It is tied to its ``point.json`` by the input hash: a
checkpoint from different inputs is refused rather than silently continued.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.pointdir.jsonio import atomic_write_bytes

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


def rng_states() -> dict[str, Any]:
    """The torch RNG states of the CPU and every visible GPU."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    input_hash: str,
    state: TrainingState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> None:
    """Write the checkpoint atomically (call on rank 0 only)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "input_hash": input_hash,
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
    input_hash: str,
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
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise CheckpointError(f"{path}: cannot load checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a format-{CHECKPOINT_FORMAT} splinenas checkpoint")
    if payload["input_hash"] != input_hash:
        raise CheckpointError(
            f"{path}: written for a different point.json (input hash "
            f"{payload['input_hash'][:12]} != {input_hash[:12]}); move it aside to start over"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if payload["scaler"]:  # empty when it was saved without a grad scaler
        scaler.load_state_dict(payload["scaler"])
    set_rng_states(payload["rng"])
    return TrainingState(**payload["state"])
