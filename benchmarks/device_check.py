"""The trainer's device rule and communication check on a real GPU node (benchmarks/gpu_check.sh).

    python benchmarks/device_check.py visibility   # one JSON row; exit 1 when no GPU is visible
    torchrun --standalone --nproc-per-node=N benchmarks/device_check.py allreduce

``visibility`` asks :func:`nas.train.device.select_device` for each rank of
the per-GPU layout (each rank sees one GPU, as ``srun --gpus-per-task=1`` and
jsrun ``-g 1`` leave it) and of the all-GPUs layout (every rank sees all and
takes its local rank's), each in a fresh process, and checks that the ranks
drive distinct physical GPUs (by UUID). A node where torch sees no GPU fails
the check: the trainer would refuse to run there, and so does this.

``allreduce`` is the trainer's start-up check (:mod:`nas.train.commcheck`):
one all-reduce of one DDP bucket on all GPUs of the node; with one GPU there
is nothing to all-reduce with and the row says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: Asks the trainer's rule for one rank's device; prints its index and UUID.
_PROBE = """
import json, os, sys, torch
from nas.train.device import Placement, select_device
device = select_device(Placement(int(sys.argv[1]), int(sys.argv[2])), dict(os.environ))
uuid = str(getattr(torch.cuda.get_device_properties(device), "uuid", device.index))
print(json.dumps({"device": str(device), "uuid": uuid}))
"""


def _probe(local_rank: int, ranks: int, environ: dict[str, str]) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(local_rank), str(ranks)],
                          env=environ, capture_output=True, text=True, timeout=120)  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def visibility() -> int:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    base = {**os.environ, "SPLINENAS_ACCELERATOR": "gpu", "SPLINENAS_RANKS_PER_NODE": str(gpus)}
    base.pop("SPLINENAS_DEVICE_ORDER", None)
    row: dict[str, object] = {"pipe": "visibility", "gpus": gpus}
    if gpus == 0:
        probe = _probe(0, 1, base)
        row.update(ok=False, reason=f"no GPU visible: {probe.get('error', probe)}")
        print(json.dumps(row))
        return 1
    per_gpu = [_probe(0, 1, {**base, "CUDA_VISIBLE_DEVICES": str(i)}) for i in range(gpus)]
    all_gpus = [_probe(rank, gpus, base) for rank in range(gpus)]
    problems = [p["error"] for p in per_gpu + all_gpus if "error" in p]
    for name, probes in (("per-GPU", per_gpu), ("all GPUs", all_gpus)):
        uuids = [p.get("uuid") for p in probes]
        if len(set(uuids)) != gpus:
            problems.append(f"{name} layout: ranks share devices {uuids}")
    row.update(
        ok=not problems,
        per_gpu=[p.get("device") for p in per_gpu],
        all_gpus=[p.get("device") for p in all_gpus],
        reason="; ".join(problems) or f"{gpus} ranks, {gpus} distinct GPUs in both layouts",
    )
    print(json.dumps(row))
    return 0 if not problems else 1


def allreduce() -> int:
    import torch.distributed as dist

    from nas.train.commcheck import measure
    from nas.train.device import Placement, local_world_size, select_device
    from nas.train.launch import detect, init_process_group

    environ = {**os.environ, "SPLINENAS_ACCELERATOR": "gpu"}
    dist_env = detect(environ)
    device = select_device(Placement(dist_env.local_rank, local_world_size(environ)), environ)
    row: dict[str, object] = {"pipe": "allreduce", "ranks": dist_env.world_size}
    if not dist_env.distributed:
        row.update(ok=True, reason="one GPU: nothing to all-reduce with (the check needs two)")
        print(json.dumps(row))
        return 0
    init_process_group(dist_env, device, environ)
    check = measure(device, 25 * 2**20, environ)
    if dist_env.is_main and check is not None:
        row.update(ok=True, reason=check.line(), seconds=check.seconds, **check.fields())
        print(json.dumps(row), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    commands = {"visibility": visibility, "allreduce": allreduce}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(f"usage: device_check.py {'|'.join(commands)}", file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())
