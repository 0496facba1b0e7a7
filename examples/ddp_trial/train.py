"""The DDP digits script of examples/ddp_plain, written with splinenas's helper ``nas.trial``.

Beyond the plain script it reads its parameters from ``point.json`` (no
argv to keep in step with the search space), reports a learning-curve point
per epoch (``status`` and ``show`` show them while it runs), and stops
cleanly before the job's time limit: when the deadline is near or the
scheduler's warning signal arrived (or after ``--segment-epochs`` epochs),
rank 0 saves a checkpoint and every rank exits "incomplete"; the controller
submits the next segment, which resumes from the checkpoint. ``nas.trial``
needs no torch and no GPU: only this script does.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn

from nas import trial

#: Seconds to keep before the deadline: one epoch here takes well under one.
RESERVE_SECONDS = 20.0


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two thirds of the 1,797 digits to train on, the rest to validate, the same on every rank."""
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = 2 * len(y) // 3
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def agree(stop: bool) -> bool:
    """Whether any rank wants to stop: every rank must leave at the same epoch."""
    flag = torch.tensor([1.0 if stop else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--segment-epochs", type=int, default=0, help="stop after N epochs (0: off)"
    )
    args = parser.parse_args()
    values = trial.point().values  # [model] fixed overridden by the searched parameters
    trial.watch_signals()
    dist.init_process_group("gloo")  # env:// as splinenas set it; CPU-sized example
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(trial.point().seed)
    x_train, y_train, x_val, y_val = digits()
    hidden, epochs = int(values["hidden"]), int(values.get("epochs", 8))
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(float(values.get("dropout", 0))),
                          nn.Linear(hidden, 10))  # fmt: skip
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=float(values["lr"]), momentum=0.9)
    start = 0
    checkpoint = trial.checkpoint_path()
    if checkpoint.exists():  # a later segment: resume where the last one stopped
        saved = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start = int(saved["epoch"])
    mine = torch.arange(rank, len(y_train), world)
    accuracy = 0.0
    for epoch in range(start, epochs):
        order = mine[torch.randperm(len(mine), generator=torch.Generator().manual_seed(epoch))]
        ddp.train()
        for first in range(0, len(order), 32):
            batch = order[first : first + 32]
            loss = nn.functional.cross_entropy(ddp(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        ddp.eval()
        with torch.no_grad():
            logits = model(x_val)
            accuracy = 100.0 * (logits.argmax(1) == y_val).float().mean().item()
        trial.report(epoch + 1, loss=loss.item(), top1=accuracy, accuracy=accuracy,
                     lr=optimizer.param_groups[0]["lr"])  # fmt: skip
        done = epoch + 1
        segment_over = args.segment_epochs and done - start >= args.segment_epochs
        if done < epochs and agree(trial.should_stop(RESERVE_SECONDS) or bool(segment_over)):
            if rank == 0:
                tmp = checkpoint.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": done}, tmp)  # fmt: skip
                os.replace(tmp, checkpoint)
            dist.barrier()
            dist.destroy_process_group()
            trial.exit_incomplete(done)
    trial.write_result({"accuracy": accuracy}, epochs=epochs, world_size=world)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
