"""Device selection on every launcher layout, with mocked ``torch.cuda``/``torch.xpu``.

This machine has no GPU: each test models a node (its physical GPUs and how
the CUDA, ROCm or Level Zero runtime reads the visibility variables), sets
each rank's environment as the launcher would, lets the real
:func:`nas.train.device.select_device` pick, and checks that every rank of
the node ends on a distinct physical device, or that every rank refuses with
the ``environment`` error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from nas.pointdir.layout import ENVIRONMENT_FAILURE
from nas.train import device as dev
from nas.train.device import DeviceError, Placement


def _ids(text: str | None) -> list[str] | None:
    return None if text is None else [item for item in text.split(",") if item]


@dataclass
class Node:
    """A node's GPUs as one runtime sees them through the visibility variables."""

    gpus: int
    runtime: str  # "cuda", "rocm" or "level-zero"

    def visible(self, environ: dict[str, str]) -> list[str]:
        """Physical ids this process sees, in device-index order."""
        everything = [str(i) for i in range(self.gpus)]
        if self.runtime == "cuda":
            return _select(everything, _ids(environ.get("CUDA_VISIBLE_DEVICES")))
        if self.runtime == "level-zero":
            mask = _ids(environ.get("ZE_AFFINITY_MASK"))
            return everything if mask is None else [m for m in mask if m in everything]
        # ROCm: ROCr filters first; HIP (HIP_, else CUDA_VISIBLE_DEVICES) indexes what is left.
        rocr = _ids(environ.get("ROCR_VISIBLE_DEVICES"))
        after_rocr = everything if rocr is None else [r for r in rocr if r in everything]
        hip = _ids(environ.get("HIP_VISIBLE_DEVICES") or environ.get("CUDA_VISIBLE_DEVICES"))
        if hip is None:
            return after_rocr
        return [after_rocr[int(i)] for i in hip if i.isdigit() and int(i) < len(after_rocr)]


def _select(everything: list[str], wanted: list[str] | None) -> list[str]:
    """CUDA: the listed ids, up to the first that does not exist."""
    if wanted is None:
        return everything
    chosen = []
    for item in wanted:
        if item not in everything:
            break
        chosen.append(item)
    return chosen


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Callable[[Node], list[str]]:
    """Install a node behind torch.cuda/torch.xpu; returns the list of current physical ids."""
    current: list[str] = []

    def install(node: Node) -> list[str]:
        kind = "xpu" if node.runtime == "level-zero" else "cuda"
        other = "cuda" if kind == "xpu" else "xpu"
        module, absent = getattr(torch, kind), getattr(torch, other)

        def count() -> int:
            return len(node.visible(dict(os.environ)))

        def set_device(index: int) -> None:
            current.append(node.visible(dict(os.environ))[index])

        monkeypatch.setattr(module, "is_available", lambda: count() > 0)
        monkeypatch.setattr(module, "device_count", count)
        monkeypatch.setattr(module, "set_device", set_device)
        monkeypatch.setattr(absent, "is_available", lambda: False)
        monkeypatch.setattr(torch.version, "hip", "6.2" if node.runtime == "rocm" else None)
        return current

    return install


def _rank(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], local_rank: int, ranks: int
) -> torch.device:
    """Run select_device as one rank would, with exactly ``environ`` as its environment."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", dict(environ))
        return dev.select_device(Placement(local_rank, ranks), os.environ)


#: (name, runtime, GPUs, ranks per node, environment of local rank r, expected physical ids)
LAYOUTS = [
    ("jsrun -g 1", "cuda", 6, 6, lambda r: {"CUDA_VISIBLE_DEVICES": str(r)}, "012345"),
    ("jsrun -g 6", "cuda", 6, 6, lambda r: {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5"}, "012345"),
    # Perlmutter: srun --gpus-per-task=1 --gpu-bind=closest sets one CUDA id per task.
    ("srun closest (NVIDIA)", "cuda", 4, 4, lambda r: {"CUDA_VISIBLE_DEVICES": "3210"[r]}, "3210"),
    # Frontier: Slurm binds by ROCR_VISIBLE_DEVICES; closest puts rank 0 on GCD 4.
    (
        "srun closest (AMD)",
        "rocm",
        8,
        8,
        lambda r: {"ROCR_VISIBLE_DEVICES": "45236701"[r]},
        "45236701",
    ),  # fmt: skip
    ("PALS, all GPUs", "cuda", 4, 4, lambda r: {}, "0123"),
    ("PALS, ALCF rule", "cuda", 4, 4, lambda r: {"SPLINENAS_DEVICE_ORDER": "reversed"}, "3210"),
    ("PALS, ALCF script", "cuda", 4, 4, lambda r: {"CUDA_VISIBLE_DEVICES": str(3 - r)}, "3210"),
    # Flux gpu-affinity=per-task writes node ids into CUDA_VISIBLE_DEVICES beside a
    # ROCR_VISIBLE_DEVICES from the environment file.
    (
        "Flux per-task, ROCR all",
        "rocm",
        4,
        4,
        lambda r: {"ROCR_VISIBLE_DEVICES": "0,1,2,3", "CUDA_VISIBLE_DEVICES": str(r)},
        "0123",
    ),  # fmt: skip
    (
        "Flux per-task, ROCR half",
        "rocm",
        4,
        2,
        lambda r: {"ROCR_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": str(2 + r)},
        "23",
    ),  # fmt: skip
    (
        "Flux per-task, HIP ids",
        "rocm",
        4,
        4,
        lambda r: {"ROCR_VISIBLE_DEVICES": "0,1,2,3", "HIP_VISIBLE_DEVICES": str(r)},
        "0123",
    ),  # fmt: skip
    # Aurora: 6 GPUs x 2 tiles, FLAT mode: 12 devices, or one tile per rank by mask.
    (
        "Aurora, all tiles",
        "level-zero",
        12,
        12,
        lambda r: {"SPLINENAS_ACCELERATOR": "xpu"},
        [str(i) for i in range(12)],
    ),  # fmt: skip
    (
        "Aurora, one tile each",
        "level-zero",
        12,
        12,
        lambda r: {"ZE_AFFINITY_MASK": str(r), "SPLINENAS_ACCELERATOR": "xpu"},
        [str(i) for i in range(12)],
    ),  # fmt: skip
]


@pytest.mark.parametrize(("name", "runtime", "gpus", "ranks", "environ", "expected"), LAYOUTS,
                         ids=[layout[0] for layout in LAYOUTS])  # fmt: skip
def test_every_rank_of_a_layout_drives_a_distinct_device(
    monkeypatch: pytest.MonkeyPatch,
    mocked: Callable[[Node], list[str]],
    name: str,
    runtime: str,
    gpus: int,
    ranks: int,
    environ: Callable[[int], dict[str, str]],
    expected: str | list[str],
) -> None:
    current = mocked(Node(gpus, runtime))
    kinds = set()
    for local_rank in range(ranks):
        env = {"SPLINENAS_ACCELERATOR": "gpu", **environ(local_rank)}
        kinds.add(_rank(monkeypatch, env, local_rank, ranks).type)
    assert current == list(expected)
    assert len(set(current)) == ranks
    assert kinds == {"xpu" if runtime == "level-zero" else "cuda"}


def test_flux_per_task_beside_rocr_would_leave_ranks_without_a_gpu_unrewritten() -> None:
    """The model reproduces the trap: HIP reads CUDA_VISIBLE_DEVICES as indices into ROCr's list."""
    node = Node(4, "rocm")
    env = {"ROCR_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "3"}
    assert node.visible(env) == []
    changes = dev.rocm_visibility(env)
    assert changes == {"ROCR_VISIBLE_DEVICES": "3", "CUDA_VISIBLE_DEVICES": None}
    assert node.visible({"ROCR_VISIBLE_DEVICES": "3"}) == ["3"]


def test_hip_indices_into_the_rocr_list_are_left_alone() -> None:
    assert dev.rocm_visibility({"ROCR_VISIBLE_DEVICES": "4,5", "HIP_VISIBLE_DEVICES": "1"}) == {}


def test_visibility_lists_that_cannot_be_read_together_are_refused() -> None:
    with pytest.raises(DeviceError, match=r"CUDA_VISIBLE_DEVICES='7'.*ROCR_VISIBLE_DEVICES='2,3'"):
        dev.rocm_visibility({"ROCR_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "7"})


@pytest.mark.parametrize(
    ("runtime", "gpus", "ranks", "environ"),
    [
        ("cuda", 0, 4, {}),  # a CPU node, or a CPU build of torch
        ("cuda", 4, 4, {"CUDA_VISIBLE_DEVICES": ""}),  # visibility emptied by mistake
        ("cuda", 2, 4, {}),  # four ranks, two GPUs: two ranks would share or go without
        ("rocm", 4, 4, {"ROCR_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}),
        ("level-zero", 12, 12, {"SPLINENAS_ACCELERATOR": "cuda"}),  # asked for the wrong kind
    ],
)
def test_a_gpu_job_whose_ranks_see_too_few_devices_fails_on_every_rank(
    monkeypatch: pytest.MonkeyPatch,
    mocked: Callable[[Node], list[str]],
    runtime: str,
    gpus: int,
    ranks: int,
    environ: dict[str, str],
) -> None:
    current = mocked(Node(gpus, runtime))
    for local_rank in range(ranks):
        env = {"SPLINENAS_ACCELERATOR": "gpu", "SPLINENAS_RANKS_PER_NODE": str(ranks), **environ}
        with pytest.raises(DeviceError) as info:
            _rank(monkeypatch, env, local_rank, ranks)
        message = str(info.value)
        assert f"local rank {local_rank} of {ranks}" in message
        for name in dev.VISIBILITY_VARIABLES:
            assert name in message
        assert info.value.kind == ENVIRONMENT_FAILURE
    assert current == []


def test_without_a_request_a_cpu_node_trains_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, mocked: Callable[[Node], list[str]]
) -> None:
    mocked(Node(0, "cuda"))
    for request in ({}, {"SPLINENAS_ACCELERATOR": "auto"}):
        assert _rank(monkeypatch, request, 0, 1) == torch.device("cpu")


def test_an_unknown_request_is_refused_naming_the_variable() -> None:
    with pytest.raises(DeviceError, match="SPLINENAS_ACCELERATOR='tpu'"):
        dev.requested({"SPLINENAS_ACCELERATOR": "tpu"})
    with pytest.raises(DeviceError, match="SPLINENAS_DEVICE_ORDER='backwards'"):
        dev.requested({"SPLINENAS_DEVICE_ORDER": "backwards"})


def test_the_local_world_size_comes_from_torchrun_or_the_job_script() -> None:
    assert dev.local_world_size({"LOCAL_WORLD_SIZE": "8", "SPLINENAS_RANKS_PER_NODE": "4"}) == 8
    assert dev.local_world_size({"SPLINENAS_RANKS_PER_NODE": "4"}) == 4
    assert dev.local_world_size({}) is None


def test_xpu_without_xccl_is_an_environment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_xccl_available", lambda: False, raising=False)
    with pytest.raises(DeviceError, match="no 'xccl'"):
        dev.backend_for(torch.device("xpu", 0))
    monkeypatch.setattr(dist, "is_xccl_available", lambda: True, raising=False)
    assert dev.backend_for(torch.device("xpu", 0)) == "xccl"
    assert dev.backend_for(torch.device("cuda", 0)) == "nccl"
    assert dev.backend_for(torch.device("cpu")) == "gloo"


def test_bf16_autocast_runs_on_an_xpu_rank() -> None:
    """The loop's autocast context for a rank on an Intel GPU tile (constructed, not entered:
    entering needs the device)."""
    from nas.config import TrainConfig
    from nas.train.launch import DistEnv
    from nas.train.loop import Run, autocast

    run = Run(model=None, optimizer=None, scaler=None, loader=None, sampler=None,
              config=TrainConfig(amp="bf16"), dist_env=DistEnv("single", 0, 1, 0),
              device=torch.device("xpu", 0), steps_per_epoch=1, max_bad_images=0, seed=0)  # fmt: skip
    assert run.use_amp
    context = autocast(run)
    assert (context.device, context.fast_dtype) == ("xpu", torch.bfloat16)
