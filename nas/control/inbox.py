"""Requests from people to a controller that holds the state's lock.

Only the lock holder writes the state file, so an operator command that
finds the lock held by a running controller posts its request as a JSON file
into the run folder's ``inbox/`` (:mod:`nas.pointdir.layout`) instead
(:func:`open_or_queue`). Any other holder (``record``, ``add``, ``run --once``)
never reads the inbox: the command waits for it as writers wait for each
other, and applies the request itself. The controller, at the start of each cycle,
:func:`drain`\\ s the folder, :func:`apply`\\ s each request to its state, commits,
and only then deletes the file (:func:`process` does all of it). A crash
between the commit and the deletion applies the request again, which is
harmless because every operation is idempotent (:mod:`nas.control.operations`).
It looks once more as it stops, after its heartbeat says so and before it
lets the lock go (:func:`nas.control.loop.run_controller`): a request posted
during its last cycle is applied then, and a command that finds it stopping
queues nothing (:func:`open_or_queue`).

A request that cannot be read or is malformed is moved to
``inbox/rejected/`` next to a ``.reason.txt``; one that its command took back
because the controller stopped before reading it, to ``inbox/withdrawn/``
(:func:`withdraw`); a well-formed request that
the state refuses (an unknown point, a done point to rerun) is applied as
far as it goes and its refusals are logged as events. Neither stops a
controller.

Request documents::

    {"action": "rerun",  "ids": [3, 7]}
    {"action": "cancel", "ids": [5]}
    {"action": "expand", "bounds": {"w1": [null, 256], "w2": [null, 512]}}  # widen the box
    {"action": "refine", "box": {"width": [64, 128], "depth": [2, 4]}}
    {"action": "budget", "max_points": 80}                  # run --max-points 80

``expand`` and ``refine`` take an optional ``max_points``: the point budget to
raise ``[experiment] max_points`` to when their design would exceed it; ``budget``
sets it alone, through the same :func:`nas.control.policy.raise_budget`.

plus ``by`` (who asked) and ``posted`` (epoch seconds), filled in by :func:`post`.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.cluster.base import Scheduler
from nas.control import liveness, operations, policy
from nas.control.operations import OperationResult
from nas.errors import UserError
from nas.numbers import finite_number
from nas.pointdir import layout
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.record.lock import LOCK_POLL_SECONDS, Holder, LockError
from nas.record.state import State, StateError
from nas.record.store import StateStore
from nas.search.space import SpaceError

log = logging.getLogger(__name__)

ACTIONS = ("rerun", "cancel", "expand", "refine", "budget")
_KEYS = {
    "rerun": "ids",
    "cancel": "ids",
    "expand": "bounds",
    "refine": "box",
    "budget": "max_points",
}
_COMMON = {"action", "by", "posted"}


class RequestError(UserError, ValueError):
    """A request document that is not one of the known forms; the message says why."""


def requester() -> str:
    """``user@host``: who posted a request, for the event log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


# ---------------------------------------------------------------------------- validation


def validate(request: Any) -> dict[str, Any]:
    """The request in canonical form.

    Raises:
        RequestError: not a mapping, an unknown action, missing or unknown
            keys, or a malformed value; the message names the key.
    """
    if not isinstance(request, Mapping):
        raise RequestError(f"a request is a JSON object, got {type(request).__name__}")
    action = request.get("action")
    if action not in ACTIONS:
        raise RequestError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    key = _KEYS[action]
    optional = {"max_points"} if key in ("bounds", "box") else set()
    unknown = sorted(set(request) - _COMMON - {key} - optional)
    if unknown:
        raise RequestError(f"{action}: unknown keys {unknown}; expected {key!r}")
    if key not in request:
        raise RequestError(f"{action}: missing key {key!r}")
    by = request.get("by", "unknown")
    posted = request.get("posted", 0.0)
    if not isinstance(by, str) or not finite_number(posted):
        raise RequestError(f"{action}: 'by' must be a string and 'posted' a number")
    canonical: dict[str, Any] = {"action": action, "by": by, "posted": float(posted)}
    if key == "ids":
        canonical["ids"] = _ids(request["ids"], action)
    elif key != "max_points":
        canonical[key] = _bounds(request[key], action, key, both=action == "refine")
    if "max_points" in request:
        canonical["max_points"] = _points(request["max_points"], action)
    return canonical


def _points(points: Any, action: str) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise RequestError(f"{action}: max_points must be a positive integer, got {points!r}")
    return points


def _ids(ids: Any, action: str) -> list[int]:
    if not isinstance(ids, list) or not ids:
        raise RequestError(f"{action}: 'ids' must be a non-empty list of point ids")
    for point_id in ids:
        if isinstance(point_id, bool) or not isinstance(point_id, int) or point_id < 0:
            raise RequestError(f"{action}: point id {point_id!r} is not a non-negative integer")
    return list(dict.fromkeys(ids))


def _bounds(raw: Any, action: str, key: str, *, both: bool) -> dict[str, list[float | None]]:
    if not isinstance(raw, Mapping) or not raw:
        raise RequestError(f"{action}: {key!r} must map dimension names to [low, high]")
    bounds = {}
    for name, pair in raw.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise RequestError(f"{action}: {key}.{name} must be [low, high], got {pair!r}")
        for value in pair:
            if not (finite_number(value) or (value is None and not both)):
                need = "a number" if both else "a number or null"
                raise RequestError(f"{action}: {key}.{name}: {value!r} is not {need}")
        if pair == [None, None]:
            raise RequestError(f"{action}: {key}.{name} changes neither bound")
        bounds[str(name)] = [None if v is None else float(v) for v in pair]
    return bounds


# ---------------------------------------------------------------------------- applying


def execute(
    state: State, request: Mapping[str, Any], scheduler: Scheduler | None = None
) -> list[OperationResult]:
    """Apply a request to ``state`` in memory; one outcome per point it concerns.

    A change the state or space refuses becomes a refused outcome, never an
    exception, so a queued request cannot stop a controller.

    Raises:
        RequestError: the request itself is malformed.
    """
    request = validate(request)
    action, by = request["action"], request["by"]
    if action == "rerun":
        return operations.rerun(state, request["ids"], by)
    if action == "cancel":
        return operations.cancel(state, request["ids"], scheduler, by)
    experiment = policy.experiment_of(state, "the state")
    if action == "budget":
        return [operations.set_budget(state, experiment, request["max_points"], by)]
    limit = request.get("max_points", policy.max_points(state, experiment))
    budget = operations.Budget(limit, policy.Study(state, experiment).spent_points())
    grow = operations.expand if action == "expand" else operations.refine
    bounds = {name: tuple(pair) for name, pair in request[_KEYS[action]].items()}
    try:
        outcomes = grow(
            state, bounds, min_distance=experiment.experiment.min_distance, budget=budget
        )
    except (SpaceError, StateError) as exc:
        return [OperationResult(None, ok=False, changed=False, message=f"{action} refused: {exc}")]
    if all(o.ok for o in outcomes) and "max_points" in request:
        policy.raise_budget(state, experiment, request["max_points"], by)
    return outcomes


def apply(state: State, request: Mapping[str, Any], scheduler: Scheduler | None = None) -> str:
    """Apply a request to ``state`` (see :func:`execute`) and describe what happened."""
    outcomes = execute(state, request, scheduler)
    return "; ".join(o.message for o in outcomes) or "nothing to do"


# ---------------------------------------------------------------------------- the folder


def post(run_dir: str | os.PathLike, request: Mapping[str, Any]) -> Path:
    """Validate ``request`` and write it atomically into the inbox; return its path.

    File names start with the time in nanoseconds, so requests are applied in
    the order they were posted.

    Raises:
        RequestError: the request is malformed (nothing is written).
    """
    document = validate({"by": requester(), "posted": time.time(), **request})
    folder = layout.inbox_dir(Path(run_dir))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
    atomic_write_json(path, document)
    return path


def drain(run_dir: str | os.PathLike) -> list[tuple[Path, dict[str, Any]]]:
    """The well-formed requests waiting in the inbox, oldest first.

    Unreadable or malformed files are set aside with :func:`reject`. The
    returned files stay in place until the caller has committed their effect
    and calls :func:`done`.
    """
    folder = layout.inbox_dir(Path(run_dir))
    if not folder.is_dir():
        return []
    requests = []
    for path in sorted(folder.glob("*.json")):
        try:
            requests.append((path, validate(read_json_object(path))))
        except (ValueError, RequestError) as exc:
            reject(path, str(exc))
    return requests


def reject(path: Path, reason: str) -> Path:
    """Move a request to ``inbox/rejected/`` with ``<name>.reason.txt``; return the new path."""
    target = _set_aside(path, "rejected", reason)
    log.warning("inbox: set aside %s: %s", path.name, reason)
    return target


def withdraw(path: Path, reason: str) -> Path:
    """Move a request its command took back to ``inbox/withdrawn/``; return the new path.

    Deleted as an applied one is, it would read as done in the folder that
    :func:`done` empties; set aside with its reason, it says it was never applied there.
    """
    target = _set_aside(path, "withdrawn", reason)
    log.info("inbox: withdrew %s: %s", path.name, reason)
    return target


def _set_aside(path: Path, folder: str, reason: str) -> Path:
    """Move a request into ``inbox/<folder>/`` next to ``<name>.reason.txt`` saying why."""
    aside = path.parent / folder
    aside.mkdir(exist_ok=True)
    target = aside / path.name
    (aside / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    os.replace(path, target)
    return target


def done(path: Path) -> None:
    """Delete an applied request (after its effect has been committed)."""
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the holder


@dataclass(frozen=True)
class Queued:
    """A request posted for the running controller that holds the state."""

    path: Path
    holder: Holder
    #: The controller stopped as the request was posted and applied it as it stopped.
    applied: bool = False

    def text(self) -> str:
        """What the command tells its user: who applies the request, when, and where it waits."""
        who = f"pid {self.holder.pid} on {self.holder.host}"
        if self.applied:
            return (
                f"the controller ({who}) stopped as the request was posted and applied it as "
                f"it stopped; its log says what it did (request file {self.path})"
            )
        return (
            f"queued for the running controller ({who}): it applies the request at the start "
            "of its next cycle, or as it stops should it stop first, and logs what it did "
            f"(request file {self.path})"
        )


def open_or_queue(
    state_path: str | os.PathLike,
    request: Mapping[str, Any],
    wait: float,
    before_queue: Callable[[], None] = lambda: None,
) -> StateStore | Queued:
    """The state under its lock, or ``request`` posted for the running controller holding it.

    Only a controller that cycles until a stop reads the inbox
    (:func:`nas.control.liveness.controller_holder`). Any other holder
    (``record``, ``add``, ``run --once``) would leave the request to some
    unrelated later run, weeks on perhaps; it is waited for, up to ``wait``
    seconds, as writers wait for each other. A controller still running after
    the post reads the request, at its next cycle or as it stops. One that
    stops between the look and the post may or may not have read it as it
    stopped; which, only the lock tells: once it is ours, a request still in
    the inbox was not applied and is taken back (:func:`withdraw`) for the
    caller to apply, and one that is gone was applied by that controller.

    Args:
        state_path: the state file.
        request: posted as :func:`post` posts it.
        wait: seconds to wait for a holder that is no running controller.
        before_queue: called before posting; raises to refuse what the
            controller is bound to refuse.

    Raises:
        LockError: a holder that is no running controller kept the lock for
            ``wait`` seconds; nothing was queued, or the request waits in the
            inbox for the next command that applies it (the message says which).
    """
    deadline = time.monotonic() + wait
    posted: Queued | None = None
    while True:
        try:
            store = StateStore.open(state_path)
        except LockError as exc:
            refused = exc
        else:
            return store if posted is None else _settle(store, posted)
        holder = liveness.controller_holder(state_path)
        if holder is not None and posted is None:
            before_queue()
            posted = Queued(post(layout.run_dir(state_path), request), holder)
            holder = liveness.controller_holder(state_path)
        if posted is not None:
            if not posted.path.exists():  # looked at after the holder: gone means applied
                return replace(posted, applied=True)  # by the stopping controller's last look
            if holder is not None:
                return Queued(posted.path, holder)
        if time.monotonic() >= deadline:
            raise LockError(_not_queued(refused, wait, posted))
        time.sleep(LOCK_POLL_SECONDS)


def _settle(store: StateStore, posted: Queued) -> StateStore | Queued:
    """Under the lock, after the controller stopped as ``posted`` was posted: who applies it.

    Only a lock holder applies or moves a request, so what the folder shows
    now is final: still there, the controller stopped without reading it and
    the caller applies it; gone, the controller applied it as it stopped.
    """
    if not posted.path.exists():
        store.close()
        return replace(posted, applied=True)
    who = f"pid {posted.holder.pid} on {posted.holder.host}"
    withdraw(
        posted.path,
        f"the controller ({who}) stopped as it was posted, without reading it; "
        "applied by the command that posted it instead",
    )
    return store


def _not_queued(refused: LockError, wait: float, posted: Queued | None) -> str:
    """Why ``open_or_queue`` gave up, and where the request is."""
    if posted is None:
        return (
            f"{refused}; waited {wait:g} s for it. It is no running controller, which "
            "would apply the request at its next cycle, so nothing was queued: try again "
            "once it has finished"
        )
    return (
        f"{refused}; waited {wait:g} s for it. The controller (pid {posted.holder.pid} on "
        f"{posted.holder.host}) stopped as the request was posted: it applies the request "
        f"as it stops if it saw it; if not, the request waits in the inbox ({posted.path}) "
        "for the next `splinenas run`, `rerun`, `cancel` or `expand`"
    )


def process(
    run_dir: str | os.PathLike,
    state: State,
    commit: Callable[[], None],
    scheduler: Scheduler | None = None,
) -> list[str]:
    """Apply every waiting request in order: apply, log, commit, delete; return the messages.

    Args:
        run_dir: the run folder holding ``inbox/``.
        state: the state held under the writer's lock.
        commit: makes the state durable (e.g. ``StateStore.commit``).
        scheduler: needed to cancel jobs that still run.
    """
    messages = []
    for path, request in drain(run_dir):
        message = apply(state, request, scheduler)
        state.log("request", f"{request['action']} from {request['by']} ({path.name}): {message}")
        commit()
        done(path)
        messages.append(message)
    return messages
