"""Top-1 / top-5 accuracy over the whole validation split, every image counted once.

Each rank evaluates the items ``rank, rank + w, ...`` (:class:`ShardSampler`,
no padding), counts correct predictions, and the counts are summed across
ranks: the result is exact for any validation size and world size. Before
that, rank 0's BatchNorm statistics are broadcast so that every rank
evaluates the same network, the one the checkpoint holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.data.dataset import BAD_LABEL
from nas.train.launch import all_reduce


@dataclass(frozen=True)
class Accuracy:
    """Counts over all ranks and the percentages the result file reports."""

    top1_correct: int
    top5_correct: int
    images: int  # readable validation images, each counted once
    bad_images: int

    @property
    def top1(self) -> float:
        return 100.0 * self.top1_correct / self.images

    @property
    def top5(self) -> float:
        return 100.0 * self.top5_correct / self.images


def broadcast_buffers(module: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


@torch.no_grad()
def evaluate(
    module: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    *,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Accuracy:
    """Count top-1 and top-5 hits of ``module`` on this rank's shard, summed over ranks.

    Raises:
        RuntimeError: no readable validation image at all.
    """
    broadcast_buffers(module)
    module.eval()
    counts = torch.zeros(4, dtype=torch.int64)  # top1, top5, images, bad
    for images, labels in loader:
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        logits = module(images).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top == labels.unsqueeze(1)
        valid = labels != BAD_LABEL
        counts += torch.stack(
            [
                (hits[:, 0] & valid).sum(),
                (hits.any(dim=1) & valid).sum(),
                valid.sum(),
                (~valid).sum(),
            ]
        ).cpu()
    top1, top5, images, bad = (int(v) for v in all_reduce(counts.double().tolist(), device))
    if images == 0:
        raise RuntimeError("no readable validation image: nothing to evaluate")
    return Accuracy(top1, top5, images, bad)
