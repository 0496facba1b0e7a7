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
    trial.write_result({"score": score})      # rank 0, atomically

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
from nas.pointdir.curve import write_entry
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.pointdir.layout import (
    CHECKPOINT_FILE,
    EXIT_DIVERGED,
    EXIT_INCOMPLETE,
    POINT_FILE,
    RESULT_FILE,
)
from nas.pointdir.outcome import write_progress

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
    numbers >= 0: readers count epochs in integers, so 1.2 and 1.7 would
    both be read as epoch 1. ``figures`` are numbers by name (``loss``,
    ``lr``, your metric; numpy scalars too); ``seconds`` defaults to the
    time since this process started. A figure that is NaN, infinite or None
    (a loss that diverged) is written as null: the curve says it was not a
    number, and the training goes on to its own divergence handling. The
    entry is appended to ``curve.jsonl``; nothing is read back, so a call
    costs the same at epoch 1 and at epoch 10,000.

    Raises:
        TrialError: ``epoch`` or ``images`` is not a whole number >= 0, or a
            figure is not a number; the message names it.
    """
    if rank() != 0:
        return
    entry: dict[str, Any] = {"epoch": _count("epoch", epoch), "images": _count("images", images),
                             "seconds": time.time() - _started}  # fmt: skip
    entry.update({name: _curve_figure(name, value) for name, value in figures.items()})
    write_entry(point_dir(), entry)


def _count(name: str, value: Any) -> int:
    """``value`` as an int, refused by ``name`` unless it is a whole number >= 0.

    Raises:
        TrialError: not one.
    """
    number = as_number(value)
    if number is None or not finite_number(number) or number < 0 or number != int(number):
        raise TrialError(f"report: {name} must be a whole number >= 0, got {value!r}")
    return int(number)


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
    keys (``device_hours``, ``epochs``, ...). Numbers of any real type
    (numpy scalars too) are written as plain JSON numbers. Another metric
    or an extra number that is not finite (a validation loss that became
    NaN) is left out with a line on stderr, so that it cannot cost the
    measurement at the end of a training.

    Raises:
        TrialError: the searched metric (``point.json``'s ``metric``; every
            metric when no point file can be read) is not a finite number,
            or an extra cannot be written as JSON; raised before anything
            is written.
    """
    kept, bad = _finite_metrics(metrics)
    if bad and _searched_metric() in (None, *bad):
        raise TrialError(f"metrics must be finite numbers, got {bad}")
    extras, unmeasured = _json_extras(extra)
    if rank() != 0:
        return None
    _say_left_out("metrics", bad)
    _say_left_out("figures", unmeasured)
    path = point_dir() / RESULT_FILE
    atomic_write_json(path, {"metrics": kept, **extras, "rank": 0})
    return path


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


def exit_incomplete(epoch: int, reason: str = "deadline") -> NoReturn:
    """Record where this segment stopped (rank 0) and exit 3: the controller runs the next one.

    ``epoch`` (epochs completed) must grow from segment to segment, or the
    controller fails the point for making no progress.
    """
    if rank() == 0:
        write_progress(point_dir(), point_id=None, epoch=epoch, step=0, reason=reason)
    sys.stdout.flush()
    sys.exit(EXIT_INCOMPLETE)
