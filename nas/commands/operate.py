"""Operator commands: rerun, cancel, show, unlock, fsck and expand.

Commands that change the state take the writer's lock and commit at once.
When a running controller holds it they post the request into the run
folder's inbox (:mod:`nas.control.inbox`) instead; the controller applies it at
the start of its next cycle, or as it stops, and the command says so. Any other holder is
waited for (:data:`~nas.commands.common.LOCK_WAIT_SECONDS`), as ``record`` waits.
"""

from __future__ import annotations

import argparse
import io
import json
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nas.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    LOCK_WAIT_SECONDS,
    Handler,
    UsageError,
    emit_json,
    json_number,
    json_option,
    number_arg,
    number_text,
    point_doc,
    reported,
    state_option,
    whole_number_arg,
)
from nas.commands.curves import point_curve, write_curve_table
from nas.control import frontier, policy
from nas.names import printable, shown
from nas.numbers import finite_number
from nas.pointdir import layout
from nas.record.lock import break_lock, lock_path
from nas.record.state import INGEST_BY_HAND, PointStatus, State, StateError
from nas.record.store import StateStore

if TYPE_CHECKING:
    from nas.cluster import Scheduler
    from nas.control.inbox import Queued
    from nas.control.operations import OperationResult


#: Lines of each log that ``show`` prints.
LOG_LINES = 20


def _scheduler(state: State, state_path: Path) -> Scheduler:
    return policy.scheduler_of(policy.experiment_of(state, state_path), state_path)


# ---------------------------------------------------------------------------- changes


def _change(args: argparse.Namespace, request: dict[str, Any]) -> int:
    """Apply ``request`` under the lock, or queue it for the running controller that holds it."""
    from nas.control import inbox

    request = {"by": inbox.requester(), **request}  # applied here or queued: the same person
    committed = StateStore.read(args.state)
    preview = inbox.execute(committed, request) if request["action"] in ("expand", "refine") else []
    unknown = [i for i in request.get("ids", []) if i not in {p.id for p in committed.points}]
    problems = [o.message for o in preview if not o.ok] + [f"no point with id {i}" for i in unknown]
    if problems:
        raise StateError("; ".join(problems))
    target = inbox.open_or_queue(
        args.state, request, LOCK_WAIT_SECONDS, lambda: _refuse_settled(committed, request)
    )
    if isinstance(target, inbox.Queued):
        return _report(args, [], queued=target)
    with target as store:
        scheduler = _scheduler(store.state, args.state)
        inbox.process(layout.run_dir(args.state), store.state, store.commit, scheduler)
        outcomes = inbox.execute(store.state, request, scheduler)
        summary = "; ".join(o.message for o in outcomes) or "nothing to do"
        store.state.log("request", f"{request['action']} by {request['by']}: {summary}")
        store.commit()
    return _report(args, outcomes)


def _refuse_settled(state: State, request: dict[str, Any]) -> None:
    """Refuse a request for the controller that it is bound to refuse, before queueing it.

    Rerunning or cancelling a measured point is refused whenever it is
    applied: DONE has no status to go to. Queued, such a request returned
    "queued" (exit 0) and was refused later in the controller's log, where
    nobody reads it; refused here, nothing is queued and the command exits 1.
    Points of any other status may change before the controller reads the
    request, so their outcome is left to it. Applied at once (no controller),
    each point gets its own outcome instead.
    """
    from nas.control import inbox

    settled = [i for i in request.get("ids", []) if _measured(state, i)]
    if settled:
        refusals = inbox.execute(state, {**request, "ids": settled})
        problems = "; ".join(o.message for o in refusals if not o.ok)
        raise StateError(f"{problems} (nothing was queued for the running controller)")


def _measured(state: State, point_id: int) -> bool:
    point = next((p for p in state.points if p.id == point_id), None)
    return point is not None and point.status is PointStatus.DONE


def _report(
    args: argparse.Namespace, outcomes: list[OperationResult], *, queued: Queued | None = None
) -> int:
    if args.json:
        emit_json(
            {
                "state": str(args.state),
                "applied": queued is None or queued.applied,
                "queued": None if queued is None else str(queued.path),
                "outcomes": [o.to_dict() for o in outcomes],
            }
        )
    if queued is not None:
        print(queued.text(), file=sys.stderr)
        return EXIT_OK
    for outcome in outcomes:
        print(("" if outcome.ok else "refused: ") + outcome.message, file=sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILURE


@reported
def _rerun(args: argparse.Namespace) -> int:
    return _change(args, {"action": "rerun", "ids": args.ids})


@reported
def _cancel(args: argparse.Namespace) -> int:
    return _change(args, {"action": "cancel", "ids": args.ids})


@reported
def _expand(args: argparse.Namespace) -> int:
    budget = {} if args.max_points is None else {"max_points": args.max_points}
    if args.refine is not None:
        if args.bounds:
            raise UsageError("--refine cannot be combined with --dim/--low/--high")
        return _change(args, {"action": "refine", "box": _parse_box(args.refine), **budget})
    if not args.bounds:
        raise UsageError("give --dim NAME with --low and/or --high (repeatable), or --refine")
    bounds: dict[str, list[float | None]] = {}
    for name, low, high in args.bounds:
        if low is None and high is None:
            raise UsageError(f"--dim {name}: give --low and/or --high")
        if name in bounds:
            raise UsageError(f"--dim {name} is given twice")
        bounds[name] = [low, high]
    return _change(args, {"action": "expand", "bounds": bounds, **budget})


class _DimAction(argparse.Action):
    """``--dim NAME`` starts a dimension; the ``--low``/``--high`` after it belong to it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        bounds = list(getattr(namespace, "bounds", None) or [])
        if option_string == "--dim":
            bounds.append([values, None, None])
        elif not bounds:
            parser.error(f"{option_string} must follow the --dim it belongs to")
        else:
            which = 1 if option_string == "--low" else 2
            if bounds[-1][which] is not None:
                parser.error(f"--dim {bounds[-1][0]}: {option_string} is given twice")
            bounds[-1][which] = values
        namespace.bounds = bounds


def _parse_box(text: str) -> dict[str, list[float]]:
    """``NAME=LOW:HIGH,...`` -> ``{NAME: [LOW, HIGH]}`` (usage errors name the item).

    Each bound is read as :func:`~nas.commands.common.number_arg` reads ``--low``;
    a name given twice is refused, as ``--dim`` given twice is: keeping either
    range would drop the other without a word.
    """
    box: dict[str, list[float]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, span = item.partition("=")
        low, colon, high = span.partition(":")
        name = name.strip()
        if name in box:
            raise UsageError(f"--refine: {name} is given twice")
        try:
            if not (sep and colon and name):
                raise ValueError
            box[name] = [number_arg(low), number_arg(high)]
        except ValueError:
            raise UsageError(f"--refine: expected NAME=LOW:HIGH, got {item!r}") from None
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--refine: {item!r}: {exc}") from None
    if not box:
        raise UsageError("--refine: expected NAME=LOW:HIGH,...")
    return box


# ---------------------------------------------------------------------------- show


def _show_doc(state: State, state_path: Path, point_id: int, lines: int) -> dict[str, Any]:
    from nas.commands.summary import point_pace
    from nas.control.ingest import RESULT_METRICS, log_tail  # reads files only

    point = state.point(point_id)
    folder = layout.point_dir(layout.run_dir(state_path), point_id)
    events = [e for e in state.events if e.point_id == point_id]
    logs = _log_files(folder)
    return {
        **point_doc(point),
        "attempts": point.attempts,
        "segment": point.segment,
        "gpu_hours": point.gpu_hours,
        "reason": point.reason,
        "job_id": point.job_id,
        "job_name": point.job_name,
        "folder": str(folder),
        "folder_exists": folder.is_dir(),
        "events": [{"time": e.time, "kind": e.kind, "message": e.message} for e in events],
        "logs": {log.name: log_tail(log, lines).splitlines() for log in logs},
        "metrics": _recorded_metrics(point.extra.get(RESULT_METRICS)),
        "result": _json_file(folder / layout.RESULT_FILE, constants=True),
        "pace": point_pace(point, folder),
        "error": _json_file(folder / "error.json"),
        "rejected": sorted(p.name for p in folder.glob("result.rejected-*.json")),
        "by_hand": any(e.kind == INGEST_BY_HAND for e in events),
        "curve": point_curve(state, point, layout.run_dir(state_path)),
        "spline_maximum": _spline_maximum(state, state_path),
        "constraints": frontier.point_constraints(policy.Study.of(state, state_path), point),
    }


def _log_files(folder: Path) -> list[Path]:
    """The point's logs, oldest first: the regular files of ``logs/`` (by ``lstat``).

    The folder is the job's to write: a dangling symlink (which ``stat`` cannot
    sort), a FIFO or a folder named like a log is left out, not read, and the
    rest is shown.
    """
    found = []
    for path in (folder / layout.LOGS).glob("*.log"):
        try:
            info = path.lstat()
        except OSError:  # removed meanwhile
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((info.st_mtime, path))
    return [path for _, path in sorted(found)]


def _spline_maximum(state: State, state_path: Path) -> dict[str, Any] | None:
    """Where the spline fitted to every measured point predicts its maximum (None: no fit yet)."""
    from nas.commands.summary import fit_doc

    study = policy.Study.of(state, state_path)
    fit, _ = fit_doc(study)
    if fit is None:
        return None
    goal = study.experiment.experiment.goal
    return {"params": fit["argmax"], "predicted": fit["predicted_max"], "goal": goal}


def _json_file(path: Path, *, constants: bool = False) -> dict[str, Any] | None:
    """A point folder's JSON file as its reader in the controller reads it (``constants``:
    NaN and Infinity allowed, as in ``result.json``); what it cannot read says why."""
    from nas.pointdir.jsonio import read_json_object

    try:
        return read_json_object(path, constants=constants) if path.exists() else None
    except ValueError as exc:
        return {"unreadable": str(exc)}


def _recorded_metrics(metrics: object) -> dict[str, float] | None:
    """Every metric the controller kept of the point's result (the searched one and the
    others), from the state: the result file may be gone or hold more than was kept."""
    if not isinstance(metrics, dict):
        return None
    return {str(name): float(v) for name, v in metrics.items() if finite_number(v)}


def _finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinity as null: ``--json`` is strict JSON, a result
    file need not be (the people's output prints it as the file has it)."""
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_json(item) for item in value]
    return json_number(value) if isinstance(value, float) else value


def _first_line(message: str, logs_shown: bool) -> str:
    """A message without the log tail it may carry, when the logs are printed anyway."""
    first, *more = message.splitlines() or [""]
    return first + (" (log below)" if more and logs_shown else "") if logs_shown else message


def _print_show(doc: dict[str, Any]) -> None:
    """Print ``doc`` for people, each character a terminal does not show as itself escaped.

    Reasons, events and log tails carry text from files jobs write: an escape
    sequence in an error's message must not recolour or retitle the terminal,
    nor a bidirectional override turn a line around (:func:`nas.names.printable`).
    """
    text = io.StringIO()
    _write_show(doc, text)
    sys.stdout.write(printable(text.getvalue()))


def _write_show(doc: dict[str, Any], out: TextIO) -> None:
    params = ", ".join(f"{k}={v}" for k, v in doc["params"].items())
    out.write(f"point {doc['id']}: {params}\n")
    reason = _first_line(doc["reason"], bool(doc["logs"]))
    out.write(f"status {doc['status']}" + (f" ({reason})" if reason else "") + "\n")
    measured, predicted = number_text(doc["value"]), number_text(doc["predicted"])
    out.write(f"measured {measured}, predicted {predicted}, origin {doc['origin']}, ")
    out.write(f"batch {doc['batch']}, attempts {doc['attempts']}, segment {doc['segment']}\n")
    if doc["metrics"]:
        kept = ", ".join(f"{name} {number_text(v)}" for name, v in doc["metrics"].items())
        out.write(f"metrics recorded: {kept}\n")
    out.write(f"job {doc['job_id'] or '-'} ({doc['job_name'] or 'never submitted'})\n")
    out.write(f"folder {_folder_text(doc)}\n\nhistory:\n")
    for event in doc["events"]:  # a failure's log tail is printed once, with the logs below
        first = _first_line(event["message"], bool(doc["logs"]))
        out.write(f"  {_iso(event['time'])}  {event['kind']:<8} {first}\n")
    for name, tail in doc["logs"].items():
        out.write(f"\nlog {name} (last lines):\n" + "".join(f"  {line}\n" for line in tail))
    if doc["curve"]:  # the built-in trainer's accuracies are on a subset; a command's own: its own
        subset = any(e.get("top1") is not None or e.get("top5") is not None for e in doc["curve"])
        out.write(f"\nlearning curve{' (subset of the validation split)' if subset else ''}:\n")
        write_curve_table(doc["curve"], out)
    if doc["pace"]:
        from nas.pointdir.result import pace_text

        out.write(f"\ntraining pace (rank 0, steady state): {pace_text(doc['pace'])}\n")
    if doc["result"] is not None:
        note = " (from a job started by hand)" if doc["by_hand"] else ""
        out.write(f"\nresult.json{note}:\n{json.dumps(doc['result'], indent=2)}\n")
    if doc["error"] is not None:
        out.write(f"\nerror.json:\n{json.dumps(doc['error'], indent=2)}\n")
    if doc["rejected"]:
        out.write(f"\nresult files set aside: {', '.join(doc['rejected'])}\n")
    if doc["constraints"]:
        out.write("\nconstraints:\n")
        out.write(
            "".join(f"  {line}\n" for line in frontier.point_constraint_lines(doc["constraints"]))
        )
    top = doc["spline_maximum"]
    if top is not None:
        where = ", ".join(f"{k}={v}" for k, v in top["params"].items())
        predicted = number_text(top["predicted"])  # '-': the fit is not finite (huge values)
        from nas.commands.summary import optimum_word

        word = optimum_word(top.get("goal", "maximize"))
        out.write(f"\nthe spline's predicted {word}: {predicted} at {where}\n")


def _folder_text(doc: dict[str, Any]) -> str:
    """The point folder, and that it is gone when a job was prepared in it and it no longer
    exists: deleted by hand, its logs and result files cannot be shown, nor read again."""
    gone = doc["job_name"] and not doc["folder_exists"]
    note = " (no longer exists: its logs and result files are gone)" if gone else ""
    return f"{shown(doc['folder'])}{note}"


def _iso(timestamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


@reported
def _show(args: argparse.Namespace) -> int:
    if args.lines < 1:
        raise UsageError(f"--lines must be at least 1, got {args.lines}")
    doc = _show_doc(StateStore.read(args.state), args.state, args.id, args.lines)
    if args.json:
        emit_json({**doc, "result": _finite_json(doc["result"])})
    else:
        _print_show(doc)
    return EXIT_OK


# ---------------------------------------------------------------------------- unlock


@reported
def _unlock(args: argparse.Namespace) -> int:
    locked = lock_path(args.state).exists()
    if not locked:
        StateStore.read(args.state)  # a mistyped --state says so instead of "not locked"
    holder = break_lock(args.state, force=args.force)
    if args.json:
        who = None if holder is None else vars(holder)
        emit_json({"state": str(args.state), "removed": locked, "holder": who})
    if not locked:
        print(f"{args.state} is not locked", file=sys.stderr)
    else:
        who = "an unreadable holder" if holder is None else holder.describe()
        print(f"removed the lock of {who}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------- fsck


@reported
def _fsck(args: argparse.Namespace) -> int:
    from nas.record import fsck

    action = fsck.repair(args.state) if args.repair else None
    current, prev = fsck.check_both(args.state)
    if args.json:
        emit_json({"state": current.to_dict(), "prev": prev.to_dict(), "repair": action})
    else:
        print(f"{current.line()}\n{prev.line()}")
    if action:
        print(f"splinenas fsck: {action}", file=sys.stderr)
    elif current.status in fsck.OTHER_VERSION:
        print(f"splinenas fsck: {current.detail}", file=sys.stderr)
    elif not current.good and prev.good:
        print("splinenas fsck: run again with --repair to put .prev back", file=sys.stderr)
    return EXIT_OK if current.good else EXIT_FAILURE


# ---------------------------------------------------------------------------- parsers


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add rerun, cancel, show, unlock, fsck and expand to the ``splinenas`` parser."""
    as_json, state = json_option(), state_option()

    def add(name: str, handler: Handler, summary: str, parents: list | None = None):
        parser = subparsers.add_parser(
            name, parents=[as_json, state] + (parents or []), help=summary, description=summary
        )
        parser.set_defaults(func=handler)
        return parser

    rerun = add("rerun", _rerun, "reset failed, infeasible or cancelled points to pending")
    rerun.add_argument("ids", nargs="+", type=whole_number_arg, metavar="ID")
    cancel = add("cancel", _cancel, "cancel the jobs of points and mark them cancelled")
    cancel.add_argument("ids", nargs="+", type=whole_number_arg, metavar="ID")
    show = add("show", _show, "a point's params, history, jobs, log tails and result")
    show.add_argument("id", type=whole_number_arg, metavar="ID")
    show.add_argument(
        "--lines",
        type=whole_number_arg,
        default=LOG_LINES,
        help="log lines per file (default: %(default)s)",
    )
    unlock = add("unlock", _unlock, "remove a stale lock after checking its holder is gone")
    unlock.add_argument(
        "--force", action="store_true", help="also a lock from another host (check it has stopped)"
    )
    check = add("fsck", _fsck, "verify the state and .prev; --repair puts back the newest good")
    check.add_argument("--repair", action="store_true", help="restore .prev over a corrupt state")
    expand = add(
        "expand",
        _expand,
        "widen the box (any number of dims) or refine a sub-box; adds the final box's 2d+3 design",
    )
    expand.set_defaults(bounds=[])
    expand.add_argument(
        "--dim", action=_DimAction, metavar="NAME", help="a dimension to widen (repeatable)"
    )
    expand.add_argument(
        "--low",
        action=_DimAction,
        type=number_arg,
        metavar="V",
        help="new lower bound of that --dim",
    )
    expand.add_argument(
        "--high",
        action=_DimAction,
        type=number_arg,
        metavar="V",
        help="new upper bound of that --dim",
    )
    expand.add_argument("--refine", metavar="NAME=LOW:HIGH,...", help="a sub-box to refine")
    expand.add_argument(
        "--max-points",
        type=whole_number_arg,
        metavar="N",
        help="raise the point budget to N when the new design would exceed it",
    )
