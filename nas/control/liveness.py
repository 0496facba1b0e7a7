"""Is a controller alive on this state? The heartbeat it leaves and how `status` reads it.

The state's lock names its holder (host, pid, since) but not whether that
process still works: a controller on another host cannot be checked by pid,
and a hung one still holds its lock. So the controller also writes
``<run dir>/controller/heartbeat.json`` after every cycle (atomically: who,
when the last cycle ended, its poll interval) and, when it stops in order,
when and why. :func:`liveness` combines the lock, the heartbeat, the pid file
of ``run --detach`` and the marker of a keep-alive job into one answer:

- a controller holds the state: host, pid, since, last cycle, and whether it
  runs in the foreground, detached, or as keep-alive job N;
- it holds the lock but its heartbeat is older than :func:`stale_after`
  (``stale``): hung, or gone on a host that cannot be checked from here;
- none does, and since when (its orderly stop, or its last heartbeat when it
  stopped without a word: killed, or ended by an error it could not write
  down), and what frees a lock it left: on this host the next command that
  writes the state takes it over; from another host only a person can tell
  it is gone (``unlock --force``).

:func:`controller_holder` answers the question of an operator command
(:func:`nas.control.inbox.open_or_queue`): is the lock's holder a controller
that will read the inbox, at its next cycle or as it stops? Only then is a request queued;
any other holder (``record``, ``add``, a ``run --once`` in its only cycle)
never reads it. Requests still waiting in the inbox are counted in the answer
of :func:`liveness`, so ``status`` shows a request nobody has applied yet.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nas.cluster.keepalive import LOG, MARKER, PID, Incarnation, controller_dir
from nas.pointdir import layout
from nas.pointdir.jsonio import atomic_write_json, read_json_object
from nas.record.lock import Holder, holder_alive, hostname, lock_path, read_holder
from nas.record.store import real_path

HEARTBEAT = "heartbeat.json"
#: Slack on top of the poll interval before a heartbeat counts as stale: a cycle
#: that submits many jobs or proposes a batch may take minutes on a busy login node.
STALE_SLACK_SECONDS = 600.0
#: What frees a lock left on this host by a process that is gone: the next command that
#: writes the state takes it over (:meth:`nas.record.lock.FileLock.acquire`), no ``unlock``.
_TAKES_OVER = (
    "`splinenas run --state {}` takes its lock over by itself, "
    "as every command that writes the state does"
)


def stale_after(poll: float) -> float:
    """Seconds without a heartbeat after which a controller is presumed hung or gone."""
    return 3.0 * poll + STALE_SLACK_SECONDS


@dataclass(frozen=True)
class Heartbeat:
    """What the controller last wrote about itself."""

    host: str
    pid: int
    started: float
    poll: float
    cycles: int = 0
    last_cycle: float | None = None
    stopped: float | None = None
    reason: str = ""
    #: The cycles it runs at most (``run --once``: 1); None: until a stop. One that ends
    #: after a set number of cycles may end before it reads a request posted now.
    max_cycles: int | None = None

    @classmethod
    def read(cls, path: Path) -> Heartbeat | None:
        try:
            raw = read_json_object(path)
            return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key in raw})
        except (ValueError, TypeError):
            return None


def heartbeat_path(state_path: str | os.PathLike) -> Path:
    return controller_dir(state_path) / HEARTBEAT


def beat(state_path: str | os.PathLike, heartbeat: Heartbeat) -> None:
    """Record ``heartbeat``; a full disk must not stop the controller, so errors are ignored."""
    path = heartbeat_path(state_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, asdict(heartbeat))
    except OSError:
        pass


class Pulse:
    """The heartbeat of the controller in this process: started, after each cycle, stopped."""

    def __init__(
        self, state_path: str | os.PathLike, poll: float, max_cycles: int | None = None
    ) -> None:
        self.state_path = state_path
        self.last = Heartbeat(hostname(), os.getpid(), time.time(), poll, max_cycles=max_cycles)
        beat(state_path, self.last)

    def cycled(self, cycles: int) -> None:
        self._write(cycles=cycles, last_cycle=time.time())

    def stopped(self, reason: str) -> None:
        self._write(stopped=time.time(), reason=reason)

    def _write(self, **changes: Any) -> None:
        self.last = replace(self.last, **changes)
        beat(self.state_path, self.last)


def _written_by(beat_: Heartbeat | None, holder: Holder) -> bool:
    """Whether ``beat_`` is the lock holder's own heartbeat.

    A controller writes it after taking the lock, so a heartbeat older than
    the lock is an earlier process's, whose pid a later command may have got.
    """
    if beat_ is None or (beat_.host, beat_.pid) != (holder.host, holder.pid):
        return False
    return beat_.started >= holder.started


def controller_holder(state_path: str | os.PathLike) -> Holder | None:
    """The lock's holder if it is a live controller that reads the inbox at its next cycle.

    None for any other holder: a short command (``record``, ``add``,
    ``propose``), a controller that has stopped or is stopping, one that runs a
    set number of cycles (``run --once``), or a lock left by a dead process.
    A holder on another host is judged by its heartbeat alone.
    """
    holder = read_holder(lock_path(real_path(state_path)))
    beat_ = Heartbeat.read(heartbeat_path(state_path))
    if holder is None or beat_ is None or not _written_by(beat_, holder):
        return None
    if beat_.stopped is not None or beat_.max_cycles is not None:
        return None
    if holder.host == hostname() and not holder_alive(holder):
        return None
    return holder


def waiting_requests(state_path: str | os.PathLike) -> int:
    """How many requests of operator commands wait in the inbox, not applied yet."""
    return len(list(layout.inbox_dir(layout.run_dir(state_path)).glob("*.json")))


def _mode(state_path: str | os.PathLike, holder: Holder) -> tuple[str, str | None]:
    """How the holder runs: ``foreground``, ``detached`` or ``keep-alive`` (with its job id)."""
    folder = controller_dir(state_path)
    marker = Incarnation.read(folder / MARKER)
    if marker is not None and (marker.host, marker.pid) == (holder.host, holder.pid):
        return "keep-alive", marker.job_id
    try:
        detached = int((folder / PID).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        detached = None
    return ("detached" if detached == holder.pid else "foreground"), None


def liveness(state_path: str | os.PathLike, now: float | None = None) -> dict[str, Any]:
    """Whether a controller holds ``state_path`` now, as one JSON-able document."""
    now = time.time() if now is None else now
    return {**_holding(state_path, now), "requests_waiting": waiting_requests(state_path)}


def _holding(state_path: str | os.PathLike, now: float) -> dict[str, Any]:
    """:func:`liveness` without the inbox: who holds the lock and how it runs."""
    holder = read_holder(lock_path(real_path(state_path)))
    beat_ = Heartbeat.read(heartbeat_path(state_path))
    if holder is None:
        return _none(state_path, beat_, lock_left=False)
    ours = _written_by(beat_, holder)
    here = holder.host == hostname()
    if here and not holder_alive(holder):
        return _none(state_path, beat_ if ours else None, lock_left=True, holder=holder)
    mode, job_id = _mode(state_path, holder)
    last = beat_.last_cycle if ours and beat_ else None
    poll = beat_.poll if ours and beat_ else None
    seen = last if last is not None else holder.started
    stale = ours and poll is not None and now - seen > stale_after(poll)
    return {
        "running": True,
        "command": "run" if ours else "other",  # a short command (import, rerun) holds it briefly
        "host": holder.host,
        "pid": holder.pid,
        "since": holder.started,
        "mode": mode,
        "job_id": job_id,
        "last_cycle": last,
        "cycles": beat_.cycles if ours and beat_ else None,
        "poll": poll,
        "checked_by": "pid" if here else "heartbeat",
        "stale": bool(stale),
    }


def _none(
    state_path: str | os.PathLike,
    beat_: Heartbeat | None,
    *,
    lock_left: bool,
    holder: Holder | None = None,
) -> dict:
    """No live controller: since when (its orderly stop, else its last sign of life).

    ``killed``: it stopped without writing why, which a kill does and so does
    an error it could not write down (a full disk, a folder made read-only);
    ``log`` is where it wrote what it could (None: the output of the shell it ran in).
    """
    doc: dict[str, Any] = {"running": False, "lock_left_by": None, "last": None, "log": None}
    if lock_left and holder is not None:
        doc["lock_left_by"] = {"host": holder.host, "pid": holder.pid, "since": holder.started}
    if beat_ is not None:
        doc["last"] = asdict(beat_)
        doc["since"] = beat_.stopped or beat_.last_cycle or beat_.started
        doc["killed"] = beat_.stopped is None
        doc["log"] = _log_of(state_path, beat_)
    else:
        doc["since"] = None
        doc["killed"] = None
    return doc


def _log_of(state_path: str | os.PathLike, beat_: Heartbeat) -> str | None:
    """The log of the controller that wrote ``beat_``: detached or keep-alive, else None."""
    mode, _ = _mode(state_path, Holder(beat_.host, beat_.pid, beat_.started))
    return None if mode == "foreground" else str(controller_dir(state_path) / LOG)


def _when(timestamp: float, now: float) -> str:
    clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    return f"{clock} ({age_text(now - timestamp)} ago)"


def age_text(seconds: float) -> str:
    """``seconds`` as people say it: 45 s, 12 min, 3.5 h, 2.0 d."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400.0), ("h", 3600.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def liveness_line(doc: dict[str, Any], state_path: str | os.PathLike, now: float) -> str:
    """``doc`` as the one line ``status`` prints."""
    return _holder_line(doc, state_path, now) + _waiting_text(doc, state_path)


def _waiting_text(doc: dict[str, Any], state_path: str | os.PathLike) -> str:
    """The requests waiting in the inbox, and who applies them (nothing when none waits)."""
    count = doc.get("requests_waiting", 0)
    if not count:
        return ""
    what, them = ("1 request waits", "it") if count == 1 else (f"{count} requests wait", "them")
    if doc["running"] and doc["command"] == "run":
        return f"; {what} in the inbox for its next cycle"
    folder = layout.inbox_dir(layout.run_dir(state_path))
    apply = f"the next `splinenas run`, `rerun`, `cancel` or `expand` applies {them}"
    return f"; {what} in {folder}: {apply}"


def _holder_line(doc: dict[str, Any], state_path: str | os.PathLike, now: float) -> str:
    if not doc["running"]:
        return _none_line(doc, state_path, now)
    who = f"pid {doc['pid']} on {doc['host']}"
    if doc["command"] != "run":
        return f"controller: none; a splinenas command ({who}) holds the state right now"
    how = {
        "foreground": "in the foreground (run, no --detach)",
        "detached": "detached (run --detach)",
    }.get(doc["mode"])
    how = how or f"as keep-alive job {doc['job_id']}"
    line = f"controller: running, {who}, {how}, since {_when(doc['since'], now)}"
    if doc["last_cycle"] is None:
        line += "; no cycle finished yet"
    else:
        line += f"; last cycle {_when(doc['last_cycle'], now)}"
    if doc["stale"]:
        line += (
            f"; STALE heartbeat: nothing for over {age_text(stale_after(doc['poll']))} with "
            f"--poll {doc['poll']:g} s: {_stale_advice(doc, state_path)}"
        )
    return line


def _stale_advice(doc: dict[str, Any], state_path: str | os.PathLike) -> str:
    """What a stale holder may be and what frees its lock, as :mod:`nas.record.lock` decides.

    A holder on this host is checked by its pid: it still runs, and once it is
    stopped any command that writes the state takes its lock over by itself.
    One on another host cannot be checked from here: only a person can say it
    is gone, and ``unlock --force`` then removes its lock.
    """
    if doc["checked_by"] == "pid":
        return f"hung, its process still runs: once it is stopped, {_TAKES_OVER.format(state_path)}"
    return (
        "hung, or gone without releasing its lock: if it is gone, "
        f"`splinenas unlock --force --state {state_path}` removes the lock"
    )


def _none_line(doc: dict[str, Any], state_path: str | os.PathLike, now: float) -> str:
    last = doc["last"]
    if doc["lock_left_by"] is not None:
        left = doc["lock_left_by"]
        line = (
            f"controller: none; pid {left['pid']} on {left['host']} is gone but left its lock "
            f"({_TAKES_OVER.format(state_path)})"
        )
    else:
        line = "controller: none"
    if last is None:
        return line + ("" if doc["lock_left_by"] else "; none has run on this state")
    who = f"pid {last['pid']} on {last['host']}"
    if doc["killed"]:
        return line + f" since {_when(doc['since'], now)} (last heartbeat of {who}; {_unsaid(doc)})"
    return line + f" since {_when(doc['since'], now)} ({who} stopped: {last['reason']})"


def _unsaid(doc: dict[str, Any]) -> str:
    """A controller that stopped without writing why: what may have stopped it, where to look."""
    where = (
        f"its log {doc['log']}"
        if doc["log"]
        else "the output of the shell it ran in (a terminal, or where nohup sent it)"
    )
    return (
        "it stopped without writing why: it was killed, or it ended by an error it could "
        f"not record; see {where}"
    )
