"""A plain PyTorch DDP training script that splinenas can search: it imports nothing of splinenas.

It reads its hyperparameters from the command line, joins the rendezvous
with a plain ``init_process_group`` (env://: RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT, which splinenas sets on every launcher), trains a small
network on scikit-learn's handwritten digits (the data the demo uses,
shipped inside scikit-learn) and lets rank 0 write ``result.json`` into
``$SPLINENAS_POINT_DIR``: the whole contract. Run it by hand with
``torchrun --nproc-per-node=2 train.py --lr 0.05 --hidden 64`` and a
``SPLINENAS_POINT_DIR`` of your choice.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--hidden", type=int, required=True)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    return parser.parse_args()


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two thirds of the 1,797 digits to train on, the rest to validate, the same on every rank."""
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = 2 * len(y) // 3
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def main() -> None:
    args = arguments()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    x_train, y_train, x_val, y_val = digits()
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Dropout(args.dropout),
                          nn.Linear(args.hidden, 10)).to(device)  # fmt: skip
    ddp = nn.parallel.DistributedDataParallel(model)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    else:
        optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    mine = torch.arange(rank, len(y_train), world)  # this rank's shard
    for epoch in range(args.epochs):
        order = mine[torch.randperm(len(mine), generator=torch.Generator().manual_seed(epoch))]
        ddp.train()
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            loss = nn.functional.cross_entropy(ddp(x_train[batch].to(device)),
                                               y_train[batch].to(device))  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    ddp.eval()
    with torch.no_grad():
        logits = model(x_val.to(device))
        accuracy = 100.0 * (logits.argmax(1).cpu() == y_val).float().mean().item()
        val_loss = nn.functional.cross_entropy(logits.cpu(), y_val).item()
    if rank == 0:
        folder = os.environ["SPLINENAS_POINT_DIR"]
        document = {"metrics": {"accuracy": accuracy, "val_loss": val_loss}, "world_size": world,
                    "rendezvous": [os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]]}  # fmt: skip
        with open(os.path.join(folder, "result.json.tmp"), "w") as handle:
            json.dump(document, handle)
        os.replace(os.path.join(folder, "result.json.tmp"), os.path.join(folder, "result.json"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
