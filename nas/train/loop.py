"""The training loop: SGD with polynomial decay, AMP on GPUs, progress lines, safe stops."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nas.config import TrainConfig
from nas.data.dataset import BAD_LABEL, ResumableSampler, train_batch_count
from nas.pointdir.result import GPU_DEVICE_TYPES
from nas.train.checkpoint import TrainingState
from nas.train.curve import Curve, Diverged
from nas.train.launch import DistEnv, all_reduce
from nas.train.meter import StepMeter, Window
from nas.train.stop import StopControl


class TooManyBadImages(RuntimeError):
    """More unreadable images in one epoch than ``[data] max_bad_images`` allows."""


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` (counted from 0 over the whole training).

    Linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_epochs``,
    then polynomial decay

    .. math:: \\eta_t = \\eta_0 \\, (1 - t / T)^p

    with :math:`t` the step after warm-up, :math:`T` the steps after warm-up
    and :math:`p` = ``lr_power`` (1: linear decay to zero).
    """
    total = config.epochs * steps_per_epoch
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * max(0.0, 1.0 - progress) ** config.lr_power


def fused_sgd(device: torch.device) -> bool:
    """Whether SGD runs fused on ``device``: GPUs (CUDA/ROCm, XPU) where this torch has the kernel.

    The fused kernel makes one launch for all parameters and reads the AMP
    scale on the device. Torch has it on the CPU too, but there the foreach
    kernel is kept: CPU runs stay bit-identical to those of earlier versions.
    """
    if device.type not in GPU_DEVICE_TYPES:
        return False
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a private helper: without it, only CUDA is known to have the kernel
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def channels_last(device: torch.device, config: TrainConfig) -> bool:
    """Whether ``[train] channels_last`` applies: on GPUs (CUDA/ROCm, XPU), not on the CPU."""
    return config.channels_last and device.type in GPU_DEVICE_TYPES


def make_optimizer(module: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.SGD:
    """SGD, fused where :func:`fused_sgd` says so, else with the foreach kernel."""
    fused = fused_sgd(device)
    return torch.optim.SGD(
        module.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        fused=fused or None,
        foreach=None if fused else True,
    )


@dataclass
class Run:
    """Everything one segment of training works with."""

    model: nn.Module  # the DDP wrapper, or the module itself with one rank
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: torch.utils.data.DataLoader
    sampler: ResumableSampler
    config: TrainConfig
    dist_env: DistEnv
    device: torch.device
    steps_per_epoch: int
    max_bad_images: int
    seed: int
    meter: StepMeter = field(default_factory=StepMeter)
    training_started: float | None = None  # perf_counter() when this segment's loop began

    @property
    def use_amp(self) -> bool:
        """bf16/fp16 autocast on CUDA, ROCm and Intel XPU devices; never on the CPU."""
        return self.device.type in GPU_DEVICE_TYPES and self.config.amp != "off"

    @property
    def memory_format(self) -> torch.memory_format:
        if channels_last(self.device, self.config):
            return torch.channels_last
        return torch.contiguous_format

    @property
    def images_per_epoch(self) -> int:
        """Images in the batches of one epoch's steps, all ranks (bad ones included)."""
        per_rank = min(self.steps_per_epoch * self.config.batch_per_gpu, self.sampler.num_samples)
        return per_rank * self.dist_env.world_size


def steps_per_epoch(sampler: ResumableSampler, config: TrainConfig) -> int:
    """Optimizer steps in a full epoch: every rank's share in batches, optionally capped.

    The batches are those of the training loader, without a trailing batch of
    one image (:func:`~nas.data.dataset.train_batch_count`).
    """
    steps = train_batch_count(sampler.num_samples, config.batch_per_gpu)
    return min(steps, config.max_steps_per_epoch or steps)


def training_seconds(run: Run, state: TrainingState) -> float:
    """Training wall time of all segments so far: the curve's ``seconds`` axis.

    The saved segments' (:meth:`TrainingState.trained_seconds`) plus this
    segment's since its loop began: curve evaluations and checkpoints inside
    the loop count, every segment's start-up (data, network, rendezvous) does not.
    """
    if run.training_started is None:
        return state.trained_seconds()
    return state.trained_seconds() + time.perf_counter() - run.training_started


class EpochTally:
    """This rank's sums over the epoch in progress, kept where they arise (no sync per step).

    The steps' mean losses stay on the device, the unreadable images on the
    host. :meth:`gather` sums them over the ranks into the ``epoch_*`` counters
    of the :class:`TrainingState`, which the checkpoint keeps; a resumed epoch
    starts rank 0 from those counters and the other ranks from zero, so the
    epoch's mean loss and bad-image count cover every step across a stop.
    """

    def __init__(self, state: TrainingState, is_main: bool) -> None:
        saved = (state.epoch_loss_sum, state.epoch_loss_steps, state.epoch_bad_images)
        self.base = saved if is_main else (0.0, 0, 0)
        self.loss: torch.Tensor | None = None
        self.steps = 0
        self.bad = torch.zeros((), dtype=torch.int64)  # labels arrive on the CPU: no device sync

    def add(self, loss: torch.Tensor, labels: torch.Tensor) -> None:
        """Count one step's mean loss (on its device) and its unreadable images."""
        loss = loss.detach().float()
        self.loss = loss if self.loss is None else self.loss + loss
        self.steps += 1
        self.bad += (labels == BAD_LABEL).sum()

    def bad_images(self, device: torch.device) -> int:
        """The epoch's unreadable images so far, summed over all ranks (a collective)."""
        return int(all_reduce([float(self.base[2] + int(self.bad))], device)[0])

    def gather(self, state: TrainingState, device: torch.device) -> None:
        """Set ``state``'s epoch counters to the sums over all ranks (a collective)."""
        loss = 0.0 if self.loss is None else float(self.loss)
        local = [self.base[0] + loss, self.base[1] + self.steps, self.base[2] + int(self.bad)]
        totals = all_reduce(local, device)
        state.epoch_loss_sum = totals[0]
        state.epoch_loss_steps, state.epoch_bad_images = int(totals[1]), int(totals[2])


def complete_epoch(run: Run, state: TrainingState) -> float:
    """Count the epoch just trained as done; returns its mean training loss over all ranks.

    Its readable images join ``state.images``; a checkpoint older than that
    count starts it at the completed epochs times the images of an epoch.
    """
    done = state.epoch * run.images_per_epoch if state.images is None else state.images
    state.images = done + run.images_per_epoch - state.epoch_bad_images
    loss = state.epoch_loss_sum / max(state.epoch_loss_steps, 1)
    state.clear_epoch()
    state.epoch, state.step = state.epoch + 1, 0
    return loss


def train(
    run: Run,
    state: TrainingState,
    stop: StopControl,
    save: Callable[[], None],
    *,
    segment_epochs: int | None = None,
    curve: Curve | None = None,
) -> str | None:
    """Train from ``state`` until all epochs are done or a stop is agreed.

    ``save`` writes the checkpoint of ``state``; it is called after every epoch,
    after the learning-curve evaluation of ``curve`` when one is due.

    Returns:
        None when all epochs are done and the evaluation fits before the
        deadline, else the reason to stop (the caller saves).

    Raises:
        Diverged: the guard of ``curve`` stopped the run; its ``saved_seconds``
            is the rest of the segment.
    """
    first_epoch = state.epoch
    run.meter.start_segment()
    run.training_started = time.perf_counter()
    top1 = curve.entries[-1]["top1"] if curve is not None and curve.entries else None
    timer = Progress(run, state, stop.deadline, segment_epochs, top1=top1)
    try:
        return _train_epochs(run, state, stop, save, timer, first_epoch, segment_epochs, curve)
    except Diverged as exc:
        exc.saved_seconds = timer.segment_seconds_left()
        raise


def _train_epochs(
    run: Run,
    state: TrainingState,
    stop: StopControl,
    save: Callable[[], None],
    timer: Progress,
    first_epoch: int,
    segment_epochs: int | None,
    curve: Curve | None,
) -> str | None:
    while state.epoch < run.config.epochs:
        reason = train_epoch(run, state, stop, timer, curve)
        if reason:
            return reason
        loss = complete_epoch(run, state)
        if curve is not None and curve.due(state.epoch):
            timer.curve_done(curve_point(run, state, curve, loss), curve.seconds)
        started = time.perf_counter()
        save()
        timer.checkpoint_seconds = time.perf_counter() - started
        run.meter.skip_pause()
        if segment_epochs is not None and state.epoch - first_epoch >= segment_epochs:
            if state.epoch < run.config.epochs:
                return f"segment of {segment_epochs} epoch(s) done"
    evaluation = 0.0 if curve is None else curve.final_seconds()
    return stop.check(timer.reserve_seconds() + evaluation)


def curve_point(run: Run, state: TrainingState, curve: Curve, loss: float) -> float:
    """Evaluate the curve's subset after the epoch just done (mean loss ``loss``); its top-1."""
    module = getattr(run.model, "module", run.model)  # the network inside DDP
    entry = curve.evaluate(
        module,
        epoch=state.epoch,
        images=state.images,
        loss=loss,
        lr=run.optimizer.param_groups[0]["lr"],
        seconds=training_seconds(run, state),
        memory_format=run.memory_format,
    )
    return entry["top1"]


def train_epoch(
    run: Run, state: TrainingState, stop: StopControl, timer: Progress, curve: Curve | None = None
) -> str | None:
    """Run the rest of epoch ``state.epoch`` from step ``state.step``; see :func:`train`.

    The first stop check comes before the loader starts, so a signal caught
    during the segment's start-up stops it without touching the data.
    Returns the reason to stop, with the epoch's sums so far in ``state``, or
    None with the whole epoch's sums there.
    """
    tally = EpochTally(state, run.dist_env.is_main)
    reason = agreed_stop(run, state, stop, timer, tally)
    if reason:
        return reason
    run.model.train()
    run.sampler.start(state.epoch, state.step * run.config.batch_per_gpu)
    run.loader.generator.manual_seed(run.seed * 1_000_003 + state.epoch * 1_009 + state.step)
    criterion = nn.CrossEntropyLoss(ignore_index=BAD_LABEL, reduction="sum")
    batches = iter(run.loader)
    first = state.step
    while state.step < run.steps_per_epoch:
        if state.step != first and state.step % run.config.log_every == 0:
            reason = agreed_stop(run, state, stop, timer, tally)
            if reason:
                return reason
            check_bad_images(run, state, tally.bad_images(run.device))
        images, labels = run.meter.fetch(batches)
        loss, correct = train_step(
            run, criterion, images, labels, state.epoch * run.steps_per_epoch + state.step
        )
        run.meter.add(loss, correct, labels.shape[0])
        tally.add(loss, labels)
        state.step += 1
        timer.step_done(labels.shape[0])
        if curve is not None and state.step % run.config.log_every == 0:
            curve.check_loss(loss, state.epoch, state.step)  # the meter reads the device here
    timer.epoch_done()
    tally.gather(state, run.device)
    check_bad_images(run, state, state.epoch_bad_images)
    return None


def check_bad_images(run: Run, state: TrainingState, bad: int) -> None:
    """Fail once the epoch's unreadable images (``bad``, all ranks) exceed ``max_bad_images``.

    Checked at every progress step, where the ranks meet anyway, not only when the
    epoch ends: a tree that is not mounted, or an index of another tree, would
    otherwise run a whole epoch of empty steps before it fails.

    Raises:
        TooManyBadImages: more than ``run.max_bad_images``.
    """
    if bad > run.max_bad_images:
        raise TooManyBadImages(
            f"{bad} unreadable images in epoch {state.epoch + 1} by step {state.step} of "
            f"{run.steps_per_epoch} (max_bad_images = {run.max_bad_images}); their paths are "
            "in the log"
        )


def agreed_stop(
    run: Run, state: TrainingState, stop: StopControl, timer: Progress, tally: EpochTally
) -> str | None:
    """The reason all ranks agree to stop on (a collective: a sync point), else None.

    On a stop the epoch's sums so far go into ``state``, for the checkpoint.
    """
    reason = stop.check(timer.reserve_seconds())
    if reason:
        tally.gather(state, run.device)
    return reason


def train_step(
    run: Run, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor, global_step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step; returns this rank's mean loss and its count of correct predictions.

    Both stay on the device and nothing here waits for it: the host queues
    the next step while the device still computes this one.
    """
    lr = learning_rate(run.config, global_step, run.steps_per_epoch)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    images = images.to(run.device, non_blocking=True, memory_format=run.memory_format)
    labels = labels.to(run.device, non_blocking=True)
    valid = (labels != BAD_LABEL).sum().clamp(min=1)
    with autocast(run):
        logits = run.model(images)
        loss = criterion(logits, labels) / valid
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    correct = (logits.detach().argmax(dim=1) == labels).sum()
    return loss.detach(), correct


def autocast(run: Run) -> contextlib.AbstractContextManager:
    """bf16 or fp16 autocast on GPUs; nothing on the CPU (where it would only slow down)."""
    if not run.use_amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if run.config.amp == "bf16" else torch.float16
    return torch.autocast(device_type=run.device.type, dtype=dtype)


class Progress:
    """Rank-0 progress lines and the step-time estimate behind deadline stops.

    Step times come from the meter's windows, which are exact at each read;
    between reads nothing here waits for the device.
    """

    def __init__(
        self,
        run: Run,
        state: TrainingState,
        deadline: float | None = None,
        segment_epochs: int | None = None,
        *,
        top1: float | None = None,
    ) -> None:
        self.run, self.state, self.deadline = run, state, deadline
        self.steps_left = (run.config.epochs - state.epoch) * run.steps_per_epoch - state.step
        last_epoch = run.config.epochs
        if segment_epochs is not None:
            last_epoch = min(last_epoch, state.epoch + segment_epochs)
        self.segment_steps_left = (last_epoch - state.epoch) * run.steps_per_epoch - state.step
        self.epoch_start = time.perf_counter()
        self.epoch_images = 0  # this rank's, in the epoch's steps of this segment
        self.epoch_seconds = 0.0
        self.epoch_rate = 0.0  # images/s of all ranks over the last epoch's steps
        self.slowest_step = 0.0
        self.mean_step = 0.0
        self.timed = False  # a steady-state window has been read
        self.checkpoint_seconds = 5.0  # until the first checkpoint has been timed
        self.curve_seconds = 0.0  # the last learning-curve evaluation
        self.top1 = top1  # its subset top-1 (a resumed segment starts from the curve's last)

    def reserve_seconds(self) -> float:
        """Time to keep before a deadline: the steps to the next stop check, two more, a
        checkpoint and a learning-curve evaluation."""
        to_next_check = self.run.config.log_every * self.mean_step
        return (
            to_next_check
            + 2.0 * self.slowest_step
            + 2.0 * self.checkpoint_seconds
            + self.curve_seconds
        )

    def segment_seconds_left(self) -> float:
        """Estimated wall time to the end of this segment: its steps left, capped by the deadline."""
        left = self.segment_steps_left * self.mean_step
        if self.deadline is not None:
            left = min(left, max(0.0, self.deadline - time.time()))
        return left

    def curve_done(self, top1: float, seconds: float) -> None:
        """``epoch e/E subset top-1 <%> in <s> images/s <epoch's rate> eta ...`` after an evaluation."""
        self.top1, self.curve_seconds = top1, seconds
        self._print(
            f"epoch {self.state.epoch}/{self.run.config.epochs} subset top-1 {top1:.2f} % "
            f"in {seconds:.1f} s images/s {self.epoch_rate:.1f} {self._eta()}"
        )

    def step_done(self, images: int) -> None:
        """Count a step of ``images`` images (this rank's batch) and print when a line is due."""
        self.steps_left -= 1
        self.segment_steps_left -= 1
        self.epoch_images += images
        meter = self.run.meter
        if meter.warmup_seconds is None:
            seconds = meter.end_warmup()
            self.slowest_step = max(self.slowest_step, seconds)
            what = " (torch.compile included)" if self.run.config.compile else ""
            self._print(f"first step of this segment took {seconds:.1f} s{what}")
        elif self.state.step % self.run.config.log_every == 0:
            self._line(meter.read())

    def epoch_done(self) -> None:
        """Print the epoch's last line; its rate counts the images its steps trained."""
        now = time.perf_counter()
        self.epoch_seconds = now - self.epoch_start
        images = self.epoch_images * self.run.dist_env.world_size  # every rank's batches are alike
        self.epoch_rate = images / max(self.epoch_seconds, 1e-9)
        window = self.run.meter.read()
        self._line(window, f"epoch done in {self.epoch_seconds:.1f} s")
        self.epoch_start = now
        self.epoch_images = 0

    def _line(self, window: Window, detail: str = "") -> None:
        """``epoch e/E step s/S loss L acc A % lr x images/s R per rank (G all) data wait W % eta``."""
        where = f"epoch {self.state.epoch + 1}/{self.run.config.epochs} "
        where += f"step {self.state.step}/{self.run.steps_per_epoch}"
        if not window.steps:
            self._print(f"{where} {detail}".rstrip())
            return
        step = window.seconds / window.steps
        # the warm-up step (compile) stops counting as the slowest once a window is timed
        self.mean_step = 0.5 * (self.mean_step + step) if self.timed else step
        self.slowest_step = max(self.slowest_step, step) if self.timed else step
        self.timed = True
        rate = window.images_per_second
        lr = self.run.optimizer.param_groups[0]["lr"]
        detail = f" {detail}" if detail else ""
        top1 = "-" if self.top1 is None else f"{self.top1:.2f}"
        self._print(
            f"{where}{detail} loss {window.loss:.4f} acc {window.accuracy:.1f} % lr {lr:.5f} "
            f"images/s {rate:.1f} per rank ({rate * self.run.dist_env.world_size:.1f} all) "
            f"data wait {100.0 * window.wait_share:.0f} % subset top-1 {top1} {self._eta()}"
        )

    def _eta(self) -> str:
        segment, point = self.segment_seconds_left(), self.steps_left * self.mean_step
        return f"eta segment {_clock(segment)} point {_clock(point)}"

    def _print(self, text: str) -> None:
        if self.run.dist_env.is_main:
            print(text, file=sys.stdout, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
