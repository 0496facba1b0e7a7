"""One segment of one candidate's training, from ``point.json`` to ``result.json``."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from nas import __version__
from nas.config import ModelConfig, TrainConfig
from nas.data.dataset import (
    DataSplits,
    ResumableSampler,
    ShardSampler,
    build_splits,
    make_loader,
    train_sampler,
)
from nas.pointdir.layout import (
    CHECKPOINT_FILE,
    COMPILE_CACHE,
    ERROR_FILE,
    EXIT_COMPLETE,
    EXIT_DIVERGED,
    EXIT_INCOMPLETE,
    POINT_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
)
from nas.pointdir.point import InputHash, PointFile, PointFileError, read_point_inputs
from nas.pointdir.result import (
    GPU_DEVICE_TYPES,
    Result,
    ResultError,
    now_iso,
    validate_result,
    write_divergence,
    write_progress,
    write_result,
)
from nas.train.checkpoint import TrainingState, load_checkpoint, save_checkpoint, saved_state
from nas.train.commcheck import CommCheck, measure
from nas.train.curve import Curve, Diverged
from nas.train.evaluate import evaluate
from nas.train.launch import DistEnv
from nas.train.loop import (
    Run,
    channels_last,
    make_optimizer,
    steps_per_epoch,
    train,
    training_seconds,
)
from nas.train.meter import segment_rate
from nas.train.stop import StopControl

if TYPE_CHECKING:
    from nas.models.specs import ModelSpec

log = logging.getLogger(__name__)

#: DDP all-reduces gradients in buckets of this many MiB while the backward pass
#: still runs (torch's default): ResNet-50's 98 MiB of fp32 gradients make four
#: buckets, the first launched after the last layers' gradients exist. Larger
#: buckets mean fewer NCCL calls but a later start; smaller ones more latency.
DDP_BUCKET_MB = 25

#: torch.compile's backend; tests switch to "eager" to trace without code generation.
COMPILE_BACKEND = "inductor"


class DataMismatch(PointFileError):
    """A ``point.json`` setting the data cannot train with: ``num_classes`` below the
    data's classes, or a batch size that leaves a rank no training batch.

    A usage error like any :class:`PointFileError` (exit 2, ``error.json`` of kind
    "usage"): the same data gives it on every attempt, so the controller must not
    retry it.
    """


@dataclass(frozen=True)
class Segment:
    """One run of the trainer on a point folder, up to the end or to an early stop."""

    point_dir: Path
    dist_env: DistEnv
    device: torch.device
    deadline: float | None = None
    segment_epochs: int | None = None
    stop: StopControl | None = None  # handlers the caller installed before its own start-up


@dataclass
class Job:
    """The objects a segment trains, and where its checkpoint goes."""

    point: PointFile
    input_hash: InputHash
    splits: DataSplits
    module: nn.Module
    run: Run
    checkpoint: Path
    state: TrainingState
    curve: Curve
    started_at: float  # time.time() at the start of this segment
    saved_at: tuple[int, int] | None = None  # (epoch, step) of the last checkpoint written
    comm: CommCheck | None = None  # the start-up all-reduce, with several ranks

    def totals(self) -> TrainingState:
        """The state with this segment's time added, as saved and reported."""
        seconds = time.time() - self.started_at
        steady = self.run.meter.totals
        return dataclasses.replace(
            self.state,
            elapsed_seconds=self.state.elapsed_seconds + seconds,
            training_seconds=training_seconds(self.run, self.state),
            rank_seconds=self.state.rank_seconds + seconds * self.run.dist_env.world_size,
            train_images=self.state.train_images + steady.images,
            train_seconds=self.state.train_seconds + steady.seconds,
            data_wait_seconds=self.state.data_wait_seconds + steady.wait_seconds,
        )

    def save(self) -> None:
        """Checkpoint the current state (rank 0), unless that exact state is already saved."""
        position = (self.state.epoch, self.state.step)
        if self.saved_at == position:
            return
        self.saved_at = position
        if self.run.dist_env.is_main:
            save_checkpoint(
                self.checkpoint,
                input_hash=self.input_hash,
                state=self.totals(),
                model=self.module,
                optimizer=self.run.optimizer,
                scaler=self.run.scaler,
            )


def model_spec(point: PointFile) -> ModelSpec:
    """The network the point's coordinates describe, checked before any data is read.

    Raises:
        ModelConfigError: an unknown, missing or out-of-range coordinate.
    """
    from nas.models.specs import spec_for

    return spec_for(point.family, point.model_params())


def build_network(
    spec: ModelSpec, seed: int, num_classes: int, device: torch.device, config: TrainConfig
) -> nn.Module:
    """The candidate network, initialised identically on every rank from the point's seed."""
    from nas.models.registry import build_from_spec

    torch.manual_seed(seed)
    module = build_from_spec(spec, num_classes).to(device)
    if channels_last(device, config):
        module = module.to(memory_format=torch.channels_last)
    return module


def wrap_network(
    module: nn.Module,
    dist_env: DistEnv,
    device: torch.device,
    config: TrainConfig,
    compile_cache: Path,
) -> nn.Module:
    """The module as the loop calls it: under DDP with several ranks, compiled if asked.

    DDP hands out gradients as views of its buckets (no copy per step);
    :data:`DDP_BUCKET_MB` sets the bucket size. ``torch.compile`` wraps the
    DDP model so that it splits graphs at bucket boundaries and the
    all-reduce still overlaps the backward pass. Compilation happens in the
    first step; inductor's FX-graph and AOT-autograd caches (on by default)
    go to ``compile_cache`` in the point folder, so the next segment of the
    same candidate loads compiled kernels instead of generating them
    (Dynamo's tracing itself is redone; it takes seconds). A
    ``TORCHINDUCTOR_CACHE_DIR`` set by the user wins.
    """
    model = module
    if dist_env.distributed:
        ids = None if device.type == "cpu" else [device.index]
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=ids, bucket_cap_mb=DDP_BUCKET_MB, gradient_as_bucket_view=True
        )
    if config.compile:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache))
        model = torch.compile(model, backend=COMPILE_BACKEND)
    return model


def fewest_classes() -> int:
    """The least ``num_classes`` that ``[model]`` declares: a classifier needs two."""
    declared = next(f for f in dataclasses.fields(ModelConfig) if f.name == "num_classes")
    return int(declared.metadata["minimum"])


def data_source(point: PointFile) -> str:
    """How the trainer's messages name the point's data: its index, root or kind."""
    return point.data.index or point.data.root or point.data.kind


def class_count(point: PointFile, splits: DataSplits, point_dir: Path, is_main: bool = True) -> int:
    """``num_classes`` of the point, or the data's when it is null.

    More classes than the data has is allowed (a subset of a larger label set),
    but rank 0 says so in the log: it is also what a root one folder too high
    gives (``imagenet/`` makes ``train`` and ``val`` the only two classes).

    Raises:
        PointFileError: null, and the data has fewer classes than a classifier
            needs (it would score 100 % on one class and learn nothing).
        DataMismatch: fewer classes given than the data has.
    """
    found = len(splits.classes)
    if point.num_classes is None:
        if found < fewest_classes():
            raise PointFileError(
                point_dir / POINT_FILE,
                "num_classes",
                f"null takes the class count from the data, but {data_source(point)} has "
                f"{found} class(es); a classifier needs at least {fewest_classes()}",
            )
        return found
    if point.num_classes < found:
        raise DataMismatch(
            point_dir / POINT_FILE,
            "num_classes",
            f"{point.num_classes}, but the data has {found} classes",
        )
    if point.num_classes > found and is_main:
        log.warning(
            "[model] num_classes = %d, but %s has %d classes: %d outputs of the classifier "
            "never get a training image (fine for a subset of a larger label set; otherwise "
            "check [data] root and index)",
            point.num_classes,
            data_source(point),
            found,
            point.num_classes - found,
        )
    return point.num_classes


def require_batches(
    point: PointFile,
    splits: DataSplits,
    sampler: ResumableSampler,
    dist_env: DistEnv,
    point_dir: Path,
) -> None:
    """Refuse a training in which no rank would take a step.

    A rank's images that make only a trailing batch of one image, which the
    training loader leaves out (:func:`~nas.data.dataset.train_batch_count`),
    give no batch at all: the network would stay as initialised and its
    evaluation would be reported as the point's result.

    Raises:
        DataMismatch: ``[train] batch_per_gpu`` and the ranks leave each rank no batch.
    """
    if steps_per_epoch(sampler, point.train) > 0:
        return
    images, ranks, batch = len(splits.train), dist_env.world_size, point.train.batch_per_gpu
    raise DataMismatch(
        point_dir / POINT_FILE,
        "[train] batch_per_gpu",
        f"{batch}, but {images} training image(s) over {ranks} rank(s) leave each rank "
        f"{sampler.num_samples} image(s) and no training batch (a batch of one image is left "
        "out); give the data more training images, or run on fewer ranks",
    )


def read_inputs(point_dir: Path) -> tuple[PointFile, InputHash]:
    """The point the built-in trainer trains, and the input hash of its ``point.json``."""
    point, input_hash = read_point_inputs(point_dir)
    return point.builtin(point_dir / POINT_FILE), input_hash


def prepare(segment: Segment, point: PointFile, input_hash: InputHash) -> Job:
    """Build data, network and optimizer for ``point``, and resume from a checkpoint."""
    started_at = time.time()
    dist_env, device, config = segment.dist_env, segment.device, point.train
    spec = model_spec(point)  # a bad coordinate fails before the data is scanned
    splits = build_splits(point.data)
    num_classes = class_count(point, splits, segment.point_dir, dist_env.is_main)
    sampler = train_sampler(splits, dist_env.rank, dist_env.world_size, point.seed)
    require_batches(point, splits, sampler, dist_env, segment.point_dir)
    module = build_network(spec, point.seed, num_classes, device, config)
    model = wrap_network(module, dist_env, device, config, segment.point_dir / COMPILE_CACHE)
    optimizer = make_optimizer(module, config, device)
    scaler = torch.amp.GradScaler(
        device.type, enabled=device.type in GPU_DEVICE_TYPES and config.amp == "fp16"
    )
    checkpoint = segment.point_dir / CHECKPOINT_FILE
    saved = load_checkpoint(
        checkpoint, input_hash=input_hash, model=module, optimizer=optimizer, scaler=scaler
    )
    run = Run(
        model=model,
        optimizer=optimizer,
        scaler=scaler,
        loader=loader_for(point, splits, splits.train, sampler, device, train=True),
        sampler=sampler,
        config=config,
        dist_env=dist_env,
        device=device,
        steps_per_epoch=steps_per_epoch(sampler, config),
        max_bad_images=point.data.max_bad_images,
        seed=point.seed,
    )
    state = resumed_state(saved, dist_env, started_at)
    curve = Curve(
        point_dir=segment.point_dir,
        validation=splits.validation,
        data_seed=point.data.seed,
        config=config,
        dist_env=dist_env,
        make_loader=lambda subset, shard: loader_for(point, splits, subset, shard, device),
    )
    curve.resume(state.epoch)
    return Job(point, input_hash, splits, module, run, checkpoint, state, curve, started_at)


def loader_for(
    point: PointFile,
    splits: DataSplits,
    dataset,
    sampler,
    device: torch.device,
    *,
    train: bool = False,
):
    """A loader with the point's batch size; in-memory data needs no worker processes.

    With ``decode = "gpu"`` the training loader yields JPEG bytes that a
    :class:`~nas.data.device_decode.DeviceDecoder` turns into device batches.
    Batches are pinned for GPUs (CUDA/ROCm, XPU); ``train`` leaves out a
    trailing batch of one image (:func:`~nas.data.dataset.train_batch_count`).
    """
    loader = make_loader(
        dataset,
        sampler,
        batch_size=point.train.batch_per_gpu,
        workers=0 if splits.in_memory else point.data.workers,
        pin_memory=point.data.pin_memory and device.type in GPU_DEVICE_TYPES,
        seed=point.seed,
        prefetch=point.data.prefetch,
        train=train,
    )
    if not getattr(dataset, "on_device", False):
        return loader
    from nas.data.device_decode import DeviceDecoder, require_cuda

    require_cuda(device)
    return DeviceDecoder(loader, device, point.data.resolution)


def resumed_state(
    saved: TrainingState | None, dist_env: DistEnv, started_at: float
) -> TrainingState:
    """The counters to continue from; a mid-epoch stop under another world size restarts that epoch."""
    if saved is None:
        return TrainingState(world_size=dist_env.world_size, started=now_iso(started_at))
    if saved.step and saved.world_size != dist_env.world_size:
        log.warning(
            "checkpoint stopped inside epoch %d with %d ranks, now %d: repeating that epoch",
            saved.epoch + 1,
            saved.world_size,
            dist_env.world_size,
        )
        saved.step = 0
        saved.clear_epoch()
    if dist_env.is_main:
        print(f"resuming after epoch {saved.epoch}, step {saved.step}", flush=True)
    return dataclasses.replace(saved, world_size=dist_env.world_size)


def run_segment(segment: Segment) -> int:
    """Train (or continue training) the point in ``segment.point_dir``.

    The heartbeat of the point folder is kept by :mod:`nas.trial.launch`, which
    runs this trainer as it runs any training command. SIGUSR2 and SIGTERM are
    caught from before the start-up to the result file: one that arrives
    during the start-up stops the segment at its first check, before any step
    (exit 3, ``progress.json`` at the checkpoint's position); one during the
    final evaluation lets that evaluation finish and the result be written.

    Returns:
        :data:`EXIT_COMPLETE` with ``result.json`` written (or kept, for a point
        trained before), or :data:`EXIT_INCOMPLETE` with ``checkpoint.pt`` and
        ``progress.json``, or :data:`EXIT_DIVERGED` with ``error.json`` of kind "diverged".
    """
    stop = segment.stop or StopControl(segment.deadline)
    stop.device = segment.device
    stop.install()
    try:
        return _run_segment(segment, stop)
    finally:
        stop.restore()


def _run_segment(segment: Segment, stop: StopControl) -> int:
    """:func:`run_segment` with the stop handlers installed."""
    started_at = time.time()
    point, input_hash = read_inputs(segment.point_dir)
    if already_trained(segment.point_dir, point, input_hash):
        if segment.dist_env.is_main:
            clear_earlier_reports(segment.point_dir, started_at)
            print(f"{segment.point_dir}: already trained; {RESULT_FILE} kept as it is", flush=True)
        return EXIT_COMPLETE
    job = prepare(segment, point, input_hash)
    job.comm = check_communication(segment)
    try:
        reason = train(
            job.run,
            job.state,
            stop,
            job.save,
            segment_epochs=segment.segment_epochs,
            curve=job.curve,
        )
    except Diverged as exc:
        return stop_diverged(job, segment, exc)
    if reason:
        return stop_early(job, segment, reason)
    finish(job, segment)
    if stop.signal_name and segment.dist_env.is_main:
        print(f"{stop.signal_name} came during the final evaluation, which finished", flush=True)
    barrier()
    return EXIT_COMPLETE


def already_trained(point_dir: Path, point: PointFile, input_hash: InputHash) -> bool:
    """Whether the point is done: a ``result.json`` of this very ``point.json`` and a
    checkpoint after the last epoch.

    Training on would only evaluate the same weights again and rewrite the
    result with a later end and a longer wall time.
    """
    try:
        result = validate_result(point_dir / RESULT_FILE, point.point_id, point.params)
    except (ResultError, OSError):  # none, torn or another point's: train as usual
        return False
    if not input_hash.matches(result.input_hash):
        return False
    saved = saved_state(point_dir / CHECKPOINT_FILE, input_hash=input_hash)
    return saved is not None and saved.epoch >= point.train.epochs


def stop_early(job: Job, segment: Segment, reason: str) -> int:
    """Checkpoint, leave ``progress.json`` (rank 0) and say to resubmit."""
    job.save()
    if segment.dist_env.is_main:
        write_progress(
            segment.point_dir,
            point_id=job.point.point_id,
            epoch=job.state.epoch,
            step=job.state.step,
            reason=reason,
            figures=job.comm.fields() if job.comm else None,
        )
        print(f"stopped early ({reason}); resubmit to continue", flush=True)
    barrier()
    return EXIT_INCOMPLETE


def check_communication(segment: Segment) -> CommCheck | None:
    """Time one all-reduce of a gradient bucket on all ranks and say it in the log (rank 0)."""
    check = measure(segment.device, DDP_BUCKET_MB * 2**20, os.environ)
    if segment.dist_env.is_main:
        if check is None:
            print(f"splinenas: communication: one rank on {segment.device}, none", flush=True)
        else:
            print(check.line(), flush=True)
    return check


def stop_diverged(job: Job, segment: Segment, exc: Diverged) -> int:
    """Leave ``error.json`` (kind "diverged", the curve so far) instead of training on."""
    if segment.dist_env.is_main:
        write_divergence(
            segment.point_dir,
            reason=exc.reason,
            epoch=exc.epoch,
            curve=job.curve.entries,
            saved_seconds=exc.saved_seconds,
            world_size=segment.dist_env.world_size,
            device=segment.device.type,
        )
        print(
            f"point {job.point.point_id} diverged: {exc.reason}; stopped with "
            f"{exc.saved_seconds:.0f} s of the segment left",
            flush=True,
        )
    barrier()
    return EXIT_DIVERGED


def finish(job: Job, segment: Segment) -> None:
    """Evaluate on the whole validation split and write ``result.json`` (rank 0), which
    supersedes the reports of earlier segments (:func:`clear_earlier_reports`)."""
    dist_env, device = segment.dist_env, segment.device
    shard = ShardSampler(len(job.splits.validation), dist_env.rank, dist_env.world_size)
    loader = loader_for(job.point, job.splits, job.splits.validation, shard, device)
    accuracy = evaluate(job.module, loader, device, memory_format=job.run.memory_format)
    if not dist_env.is_main:
        return
    totals = job.totals()
    write_result(
        segment.point_dir,
        Result(
            point_id=job.point.point_id,
            params=dict(job.point.params),
            rank=dist_env.rank,
            metrics={"top1": accuracy.top1, "top5": accuracy.top5},
            val_images=accuracy.images,
            bad_images=accuracy.bad_images,
            epochs=job.point.train.epochs,
            world_size=dist_env.world_size,
            device=device.type,
            device_hours=totals.rank_seconds / 3600.0,
            wall_seconds=totals.elapsed_seconds,
            **throughput_fields(totals),
            **(job.comm.fields() if job.comm else {}),
            started=totals.started,
            finished=now_iso(),
            package_version=__version__,
            input_hash=job.input_hash.value,
        ),
    )
    clear_earlier_reports(segment.point_dir, job.started_at)
    print(
        f"point {job.point.point_id}: top-1 {accuracy.top1:.2f} %, top-5 {accuracy.top5:.2f} % "
        f"on {accuracy.images} validation images",
        flush=True,
    )


def clear_earlier_reports(point_dir: Path, started_at: float) -> None:
    """Remove earlier segments' ``progress.json`` and ``error.json`` (rank 0, with the result).

    The result supersedes them: a folder trained by hand otherwise shows an
    old stop or failure beside the final ``result.json``, and a controller
    told no exit status takes a result beside a progress file for a
    segment's interim one (:func:`nas.control.ingest.set_aside_interim`).
    Under the controller there are none: it renames both before each
    submission (:func:`nas.control.ingest.archive_outcome_files`). Only files
    older than this segment (``started_at``, ``time.time()``) go: an
    ``error.json`` another rank writes meanwhile is this segment's report. One
    that cannot be removed stays; tidying must not fail a finished training.
    """
    for name in (PROGRESS_FILE, ERROR_FILE):
        path = point_dir / name
        try:
            if path.lstat().st_mtime < started_at:
                path.unlink()
        except OSError:  # gone already, or not ours to remove (a folder, no permission)
            continue


def throughput_fields(totals: TrainingState) -> dict[str, float]:
    """``images_per_second`` (per rank) and ``data_wait_share`` of rank 0's steady-state steps."""
    rate = segment_rate(totals.train_images, totals.train_seconds, totals.data_wait_seconds)
    if rate is None:
        return {}
    return {"images_per_second": rate[0], "data_wait_share": rate[1]}


def barrier() -> None:
    """Wait for all ranks, so that no launcher kills rank 0 while it still writes files."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
