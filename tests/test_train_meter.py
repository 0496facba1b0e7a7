"""The training loop reads the device only once per progress line, and the meter's figures add up."""

from __future__ import annotations

import contextlib
import time

import pytest
import torch
from torch.utils.data import TensorDataset

from nas.config import TrainConfig
from nas.data.dataset import BAD_LABEL, ResumableSampler, make_loader
from nas.models.registry import build_model
from nas.train.checkpoint import TrainingState
from nas.train.launch import DistEnv
from nas.train.loop import Progress, Run, make_optimizer, train_epoch, train_step
from nas.train.meter import StepMeter, segment_rate
from nas.train.stop import StopControl

TINY = {
    "block": "basic",
    "c1": 4,
    "g1": 4,
    "g2": 4,
    "g3": 4,
    "g4": 4,
    "d1": 1,
    "d2": 1,
    "d3": 1,
    "d4": 1,
    "stem": "basic",
    "maxpool": False,
}
#: Tensor methods that make the host wait for the device when called on a GPU tensor.
SYNCING = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


@contextlib.contextmanager
def counting_syncs():
    """Count Python-level calls of the syncing Tensor methods (on any device)."""
    calls: list[str] = []
    saved = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def wrap(name):
        original = saved[name]

        def counted(self, *args, **kwargs):
            calls.append(name)
            return original(self, *args, **kwargs)

        return counted

    for name in SYNCING:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield calls
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)


def tiny_run(
    steps: int, log_every: int, device: torch.device, amp: str = "off", batch: int = 8
) -> Run:
    config = TrainConfig(epochs=1, batch_per_gpu=batch, log_every=log_every, amp=amp)
    torch.manual_seed(0)
    module = build_model("resnet", TINY, 10).to(device)
    images = torch.randn(batch * steps, 3, 16, 16)
    labels = torch.randint(0, 10, (batch * steps,))
    labels[3] = -1  # one unreadable image: counted, ignored by the loss
    data = TensorDataset(images, labels)
    sampler = ResumableSampler(data, 0, 1, seed=0)
    pin = device.type == "cuda"
    return Run(
        model=module,
        optimizer=make_optimizer(module, config, device),
        scaler=torch.amp.GradScaler(device.type, enabled=pin and amp == "fp16"),
        loader=make_loader(data, sampler, batch_size=batch, workers=0, pin_memory=pin, seed=0),
        sampler=sampler,
        config=config,
        dist_env=DistEnv("single", 0, 1, 0),
        device=device,
        steps_per_epoch=steps,
        max_bad_images=10,
        seed=0,
    )


def syncs_of_an_epoch(steps: int, log_every: int) -> list[str]:
    run = tiny_run(steps, log_every, torch.device("cpu"))
    state = TrainingState()
    run.meter.start_segment()
    timer = Progress(run, state)
    with counting_syncs() as calls:
        assert train_epoch(run, state, StopControl(None, run.device), timer) is None
    assert state.step == steps
    return calls


def test_the_steady_state_step_calls_nothing_that_syncs(capsys):
    short, long = syncs_of_an_epoch(3, 1000), syncs_of_an_epoch(12, 1000)
    assert short == long  # the nine extra steps added no sync point
    logged = syncs_of_an_epoch(12, 2)
    assert len(logged) > len(long)  # the counter sees the reads of progress lines
    out = capsys.readouterr().out
    assert "first step of this segment took" in out and "data wait" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_no_host_sync_in_steady_state_steps_on_cuda(amp):
    """CUDA's sync debug mode raises on any synchronising call inside the steps."""
    steps = 8
    run = tiny_run(steps, 1000, torch.device("cuda"), amp=amp)
    run.sampler.start(0, 0)
    batches = iter(run.loader)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=BAD_LABEL, reduction="sum")

    def step(number: int) -> None:
        images, labels = run.meter.fetch(batches)
        loss, correct = train_step(run, criterion, images, labels, number)
        run.meter.add(loss, correct, labels.shape[0])

    step(0)  # warm-up: allocations, cuDNN choices
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for number in range(1, steps):
            step(number)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    window = run.meter.read()
    assert window.steps == steps and window.images == 8 * steps


def test_meter_window_and_totals_add_up():
    meter = StepMeter()

    class SlowLoader:
        def __next__(self):
            time.sleep(0.05)
            return 0

    for _ in range(2):
        meter.add(torch.tensor(2.0), torch.tensor(3), images=4)
    window = meter.read()
    assert (window.steps, window.images, window.wait_seconds) == (2, 8, 0.0)
    assert window.loss == pytest.approx(2.0) and window.accuracy == pytest.approx(75.0)
    meter.fetch(SlowLoader())
    meter.add(torch.tensor(1.0), torch.tensor(0), images=4)
    window = meter.read()
    assert window.wait_seconds >= 0.05 and window.wait_share > 0.5
    assert meter.totals.images == 12
    assert segment_rate(0, 0.0, 0.0) is None
    rate, share = segment_rate(100, 2.0, 0.5)
    assert (rate, share) == (50.0, 0.25)


def test_compile_true_trains_the_compiled_model_and_records_throughput(
    tmp_path, monkeypatch, capsys
):
    from nas.config import DataConfig
    from nas.pointdir.point import write_point_file
    from nas.pointdir.result import validate_result
    from nas.train import run as run_module
    from nas.train.__main__ import main

    monkeypatch.setattr(run_module, "COMPILE_BACKEND", "eager")  # trace, skip code generation
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    compiled = []
    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda model, **kw: compiled.append(kw) or real_compile(model, **kw)
    )
    params = {"c1": 4, "g1": 4}
    fixed = {k: v for k, v in TINY.items() if k not in params}
    point = tmp_path / "p"
    write_point_file(
        point,
        point_id=1,
        experiment="test",
        family="resnet",
        params=params,
        fixed=fixed,
        data=DataConfig(kind="digits", resolution=16),
        train=TrainConfig(
            epochs=1, batch_per_gpu=16, log_every=2, max_steps_per_epoch=5, compile=True
        ),
        seed=7,
    )
    assert main(["--point-dir", str(point)], environ={}) == 0
    assert compiled == [{"backend": "eager"}]
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(point / "compile-cache")
    out = capsys.readouterr().out
    assert "(torch.compile included)" in out and "per rank" in out
    result = validate_result(point / "result.json", 1, params)
    assert result.images_per_second > 0 and 0.0 <= result.data_wait_share <= 1.0
