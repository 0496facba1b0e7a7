"""The trainer contract for Python code, without torch: read the point, report, stop, write.

A training script that splinenas starts (``[train] command``) can do all of
this from the files and variables alone (:mod:`nas.pointdir.contract`); these
functions save writing it. The built-in trainer reads its point folder and
deadline through them too. Standard library only: importing this costs a few
milliseconds and no GPU::

    from nas import trial

    point = trial.point()                    # params and [model] fixed
    trial.watch_signals()                    # SIGUSR2/SIGTERM: stop at the next safe point
    for epoch in range(start, epochs):
        ...train one epoch...
        trial.report(epoch + 1, loss=loss, score=score)   # a learning-curve point (rank 0)
        if trial.should_stop(reserve_seconds=60):
            ...save a checkpoint...
            trial.exit_incomplete(epoch + 1)  # the controller submits the next segment
    trial.write_result({"score": score})      # rank 0, atomically; NaN: exit 5 (diverged)

An epoch longer than one segment checks ``should_stop`` inside the epoch
and reports the step reached there: ``trial.exit_incomplete(epoch, step=step)``.

Every function that writes does so on rank 0 only (``RANK``); other ranks
return without writing, so a script need not guard the calls.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from nas.numbers import as_number, finite_number
from nas.pointdir.contract import CONTRACT_VERSION, DEADLINE_VAR, POINT_DIR_VAR
from nas.pointdir.curve import count_value, last_entry, write_entry
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import (
    CHECKPOINT_FILE,
    EXIT_DIVERGED,
    EXIT_INCOMPLETE,
    POINT_FILE,
    RESULT_FILE,
)
from nas.pointdir.outcome import write_command_divergence, write_progress

__all__ = [
    "CONTRACT_VERSION",
    "EXIT_DIVERGED",
    "EXIT_INCOMPLETE",
    "Point",
    "TrialError",
    "checkpoint_path",
    "deadline",
    "exit_incomplete",
    "point",
    "point_dir",
    "rank",
    "report",
    "should_stop",
    "time_left",
    "watch_signals",
    "write_result",
]

#: The signals a scheduler sends before it stops a job; :func:`watch_signals` notes them.
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
_caught: list[str] = []
_started = time.time()
#: By point folder: ``seconds`` of the curve's last entry when this process first reported.
_earlier_seconds: dict[Path, float] = {}


class TrialError(RuntimeError):
    """The contract's variables or files are missing or unusable; the message names them."""


@dataclass(frozen=True)
class Point:
    """What ``point.json`` tells a training script."""

    point_id: int
    params: dict[str, Any]
    fixed: dict[str, Any]
    metric: str
    seed: int

    @property
    def values(self) -> dict[str, Any]:
        """``[model] fixed`` overridden by the searched ``params``: what ``{name}`` fields see."""
        return {**self.fixed, **self.params}


def point_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The point folder, ``SPLINENAS_POINT_DIR``.

    Raises:
        TrialError: the variable is unset (not started by splinenas).
    """
    text = (os.environ if environ is None else environ).get(POINT_DIR_VAR)
    if not text:
        raise TrialError(f"{POINT_DIR_VAR} is not set: run this command through splinenas")
    return Path(text)


def point(environ: Mapping[str, str] | None = None) -> Point:
    """The point of this training, from ``point.json``.

    Raises:
        TrialError: no point folder, or ``point.json`` is missing or malformed.
    """
    path = point_dir(environ) / POINT_FILE
    try:
        document = read_json_object(path)
        return Point(
            point_id=int(document["point_id"]),
            params=dict(document["params"]),
            fixed=dict(document.get("fixed", {})),
            metric=str(document["metric"]),
            seed=int(document.get("seed", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TrialError(f"{path}: not a point file: {exc}") from None


def deadline(environ: Mapping[str, str] | None = None) -> float | None:
    """``SPLINENAS_DEADLINE`` (UNIX seconds), None when unset (no time limit).

    Raises:
        TrialError: the variable is not a finite number.
    """
    text = (os.environ if environ is None else environ).get(DEADLINE_VAR)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TrialError(f"{DEADLINE_VAR}={text!r}: expected UNIX seconds")
    return value


def time_left(environ: Mapping[str, str] | None = None) -> float:
    """Seconds until the deadline (infinite without one, negative when past)."""
    end = deadline(environ)
    return math.inf if end is None else end - time.time()


def watch_signals() -> None:
    """Note SIGUSR2 and SIGTERM instead of dying of them; :func:`should_stop` reports them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _note)


def _note(signum: int, frame: FrameType | None) -> None:
    _caught.append(signal.Signals(signum).name)


def should_stop(reserve_seconds: float = 0.0) -> bool:
    """Whether to checkpoint and exit now: a noted signal, or the deadline closer than the reserve.

    With several ranks, agree on it (e.g. an all-reduce of the flag) before acting.
    """
    return bool(_caught) or time_left() <= reserve_seconds


def rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's ``RANK`` (0 when unset: one process)."""
    return int((os.environ if environ is None else environ).get("RANK", "0"))


def checkpoint_path() -> Path:
    """Where to keep the checkpoint that a later segment resumes from."""
    return point_dir() / CHECKPOINT_FILE


def report(epoch: int, *, images: int = 0, **figures: float | None) -> None:
    """Add a learning-curve point for ``epoch`` (rank 0; a repeated epoch replaces the old one).

    ``epoch`` (epochs completed) and ``images`` (seen so far) are whole
    numbers >= 0: readers key entries by whole epochs, so 1.2 and 1.7 would
    be one epoch. ``figures`` are numbers by name (``loss``, ``lr``, your
    metric; numpy scalars too); ``seconds`` defaults to the training wall time
    of all segments so far (:func:`_seconds_so_far`). A figure that is NaN,
    infinite or None (a loss that diverged) is written as null: the curve
    says it was not a number, and the training goes on to its own
    divergence handling. The entry is appended to ``curve.jsonl``; only the
    file's last entry is read back, once per process, so a call costs the
    same at epoch 1 and at epoch 10,000.

    Raises:
        TrialError: ``epoch`` or ``images`` is not a whole number >= 0, or a
            figure is not a number; the message names it.
    """
    if rank() != 0:
        return
    entry: dict[str, Any] = {"epoch": _count("epoch", epoch), "images": _count("images", images),
                             "seconds": _seconds_so_far()}  # fmt: skip
    entry.update({name: _curve_figure(name, value) for name, value in figures.items()})
    write_entry(point_dir(), entry)


def _seconds_so_far() -> float:
    """The training wall time of every segment so far: the curve's last ``seconds`` when this
    segment first reported, plus the time since this process started.

    The curve's definition of ``seconds`` (all segments): counted from this process
    alone it went back at every resumed segment. The earlier time is read once per
    process, from the end of ``curve.jsonl`` only (a bounded read, however long the
    curve); a curve without it (the first segment, a null) counts from 0.
    """
    folder = point_dir()
    if folder not in _earlier_seconds:
        entry = last_entry(folder)
        seconds = None if entry is None else entry.get("seconds")
        _earlier_seconds[folder] = seconds if finite_number(seconds) and seconds > 0 else 0.0
    return _earlier_seconds[folder] + time.time() - _started


def _count(name: str, value: Any, where: str = "report") -> int:
    """``value`` as an int, refused by ``name`` unless it is a whole number >= 0 (the curve's
    rule, :func:`nas.pointdir.curve.count_value`).

    Raises:
        TrialError: not one; the message names ``where`` it was given.
    """
    count = count_value(as_number(value))
    if count is None:
        raise TrialError(f"{where}: {name} must be a whole number >= 0, got {value!r}")
    return count


def _curve_figure(name: str, value: Any) -> int | float | None:
    """A curve figure as a plain number; None (null) for NaN, an infinity or None.

    Raises:
        TrialError: ``value`` is no number; the message names the figure.
    """
    number = None if value is None else as_number(value)
    if value is not None and number is None:
        raise TrialError(
            f"report: {name}={value!r}: every figure a number or None "
            f"(not a {type(value).__name__}; a tensor's number is its .item())"
        )
    return number if finite_number(number) else None


def write_result(metrics: Mapping[str, float], **extra: Any) -> Path | None:
    """Write ``result.json`` atomically (rank 0; other ranks write nothing and get None).

    ``metrics`` must hold the experiment's metric; ``extra`` adds optional
    keys (``device_hours``, ``epochs``, ``params``, ...). Numbers of any real
    type (numpy scalars too) are written as plain JSON numbers. Another
    metric or an extra number that is not finite (a validation loss that
    became NaN) is left out with a line on stderr, so that it cannot cost
    the measurement at the end of a training.

    A searched metric that is NaN or infinite is a diverged training, not a
    measurement: rank 0 writes ``error.json`` of kind ``"diverged"`` (as an
    exit 5 gets), every rank says so in one line on stderr and exits 5
    (:data:`EXIT_DIVERGED`), and the controller applies ``[train]
    on_divergence`` (one retry with a new seed) instead of retrying the same
    seed. No result is written.

    Raises:
        SystemExit: 5, the searched metric is NaN or infinite (above).
        TrialError: the searched metric (``point.json``'s ``metric``; every
            metric when no point file can be read) is no number, or is not
            finite without a point file to say which metric is searched, or
            an extra cannot be written as JSON; raised before anything is
            written.
    """
    kept, bad = _finite_metrics(metrics)
    searched = _searched_metric()
    if bad and searched in (None, *bad):
        _refuse_searched(searched, bad)
    extras, unmeasured = _json_extras(extra)
    if rank() != 0:
        return None
    _say_left_out("metrics", bad)
    _say_left_out("figures", unmeasured)
    path = point_dir() / RESULT_FILE
    atomic_write_json(path, {"metrics": kept, **extras, "rank": 0})
    return path


def _refuse_searched(searched: str | None, bad: Mapping[str, Any]) -> NoReturn:
    """Exit 5 for a searched metric that is a number but NaN or infinite (:func:`_diverge`);
    TrialError for one that is no number, or when no point file says which is searched.

    Raises:
        SystemExit: :data:`EXIT_DIVERGED`.
        TrialError: the other cases; the message names the metrics.
    """
    number = None if searched is None else as_number(bad[searched])
    if number is None:
        raise TrialError(f"metrics must be finite numbers, got {dict(bad)}")
    _diverge(f"write_result: the searched metric {searched} is {number!r}, not a finite number")


def _diverge(reason: str) -> NoReturn:
    """Stop a diverged training as an exit 5 does: ``error.json`` of kind "diverged" with the
    curve so far (rank 0; as the launch wrapper writes one), one line on stderr, exit 5.

    An exception here was a traceback and an exit 1, retried with the same seed,
    which diverges again: a whole training paid for nothing.
    """
    if rank() == 0:
        left = time_left()
        write_command_divergence(point_dir(), reason=reason, world_size=_world_size(),
                                 saved_seconds=left if math.isfinite(left) else 0.0)  # fmt: skip
    print(f"splinenas: {reason}: the training diverged; exiting {EXIT_DIVERGED} "
          "([train] on_divergence: one retry with a new seed, or fail)", file=sys.stderr)  # fmt: skip
    sys.stdout.flush()
    sys.exit(EXIT_DIVERGED)


def _world_size() -> int:
    """``WORLD_SIZE`` (the launch wrapper sets it), 1 when unset or unreadable."""
    text = os.environ.get("WORLD_SIZE", "1")
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _finite_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """(the metrics that are finite numbers, as floats; the others, as given)."""
    numbers = {name: as_number(value) for name, value in metrics.items()}
    kept = {name: float(number) for name, number in numbers.items() if finite_number(number)}
    return kept, {name: value for name, value in metrics.items() if name not in kept}


def _json_extras(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the extras to write, numbers as plain ints and floats; the numbers that are not finite).

    Raises:
        TrialError: an extra that is no number and cannot be written as JSON, by name.
    """
    extras: dict[str, Any] = {}
    unmeasured: dict[str, Any] = {}
    for key, value in extra.items():
        number = as_number(value)
        if number is None:
            extras[key] = _json_value(key, value)
        elif finite_number(number):
            extras[key] = number
        else:
            unmeasured[key] = value
    return extras, unmeasured


def _json_value(key: str, value: Any) -> Any:
    """``value`` if JSON can hold it, checked before the result is written.

    Raises:
        TrialError: it cannot; the message names ``key``.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TrialError(f"write_result: {key} cannot be written to result.json: {exc}") from None
    return value


def _say_left_out(what: str, left_out: Mapping[str, Any]) -> None:
    """One line on stderr, in the job's log, naming what ``result.json`` leaves out."""
    if left_out:
        print(f"splinenas: result.json leaves out {what} that are not finite: {dict(left_out)}",
              file=sys.stderr)  # fmt: skip


def _searched_metric() -> str | None:
    """The metric the search optimises, None when ``point.json`` cannot tell."""
    try:
        return point().metric
    except TrialError:
        return None


def exit_incomplete(epoch: int, reason: str = "deadline", *, step: int = 0) -> NoReturn:
    """Record where this segment stopped (rank 0) and exit 3: the controller runs the next one.

    The position (``epoch`` epochs completed, then ``step`` steps into the
    next one; ``progress.json``'s ``epochs_completed`` and ``step_in_epoch``)
    must grow from segment to segment, or the controller fails the point for
    making no progress. An epoch longer than one segment (a large model, a
    short queue limit) grows by its ``step`` alone: pass the step reached.

    Raises:
        TrialError: ``epoch`` or ``step`` is not a whole number >= 0.
    """
    position = _count("epoch", epoch, "exit_incomplete"), _count("step", step, "exit_incomplete")
    if rank() == 0:
        write_progress(point_dir(), point_id=None, epoch=position[0], step=position[1],
                       reason=reason)  # fmt: skip
    sys.stdout.flush()
    sys.exit(EXIT_INCOMPLETE)
