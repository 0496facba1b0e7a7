"""``splinenas run`` and ``splinenas controller``: the controller that trains candidates
until the search is done, in the foreground, detached, or as a self-renewing batch job.

It holds the state's lock while it runs; operator commands reach it through
the run folder's inbox. torch is never imported here: the controller only
renders job scripts and reads result files.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from nas.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    LOCK_WAIT_SECONDS,
    UsageError,
    emit_json,
    json_option,
    path_arg,
    reported,
    seconds_arg,
    state_option,
    whole_number_arg,
)
from nas.names import printable
from nas.record.lock import LockError

if TYPE_CHECKING:
    from nas.config import Experiment
    from nas.control.inbox import Queued


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``controller`` to the ``splinenas`` parser."""
    parser = subparsers.add_parser(
        "run",
        help="train proposed candidates until the search converges or its budget is spent",
        description=(
            "Poll jobs, ingest results, retry failures, refit and propose, render job scripts "
            "and submit, every --poll seconds, until convergence or a budget stops it. "
            "SIGINT/SIGTERM end it after the current cycle. Relative paths in the experiment "
            "([cluster] env_file, [data] root/index) are taken from the working directory."
        ),
    )
    parser.add_argument("--state", required=True, type=path_arg, metavar="PATH", help="state file")
    parser.add_argument("--once", action="store_true", help="run one cycle, then exit")
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (new session, no terminal): pid and log in "
        "<run dir>/controller/; stop it with kill -TERM <pid>",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what the next cycle would submit and propose, its job scripts on stdout; "
        "write, submit and change nothing",
    )
    parser.add_argument(
        "--out",
        type=path_arg,
        metavar="DIR",
        help="with --dry-run: write the job scripts to DIR/<job name>.sh instead of stdout",
    )
    parser.add_argument(
        "--poll",
        type=seconds_arg(zero=True),
        default=60.0,
        metavar="SECONDS",
        help="seconds between cycles (default: %(default)g)",
    )
    parser.add_argument(
        "--max-points",
        type=whole_number_arg,
        metavar="N",
        help="set the budget of trainings to N before running (stored in the state; "
        "imported points do not count)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(func=_run)
    _register_controller(subparsers, json_option(), state_option())


@reported
def _run(args: argparse.Namespace) -> int:
    if args.out is not None and not args.dry_run:
        raise UsageError("--out goes with --dry-run only")
    if args.detach and (args.once or args.dry_run):
        raise UsageError("--detach runs the whole search; it cannot go with --once or --dry-run")
    if args.max_points is not None and args.max_points < 1:
        raise UsageError(f"--max-points must be at least 1, got {args.max_points}")
    from nas.control import loop, plan  # scipy and h5py: only once the command line is known good

    if args.dry_run:
        return _dry_run(
            plan.dry_run(args.state, out=args.out, max_points=args.max_points), args.json
        )
    if args.max_points is not None:
        queued = _set_budget(args.state, args.max_points)
        if queued is not None:
            return _budget_queued(args, queued)
    if args.detach:
        return _detach(args)
    outcome = loop.run_controller(args.state, poll=args.poll, max_cycles=1 if args.once else None)
    if args.json:
        summary = None if outcome.summary is None else outcome.summary.to_dict()
        document = {"state": str(args.state), "reason": outcome.reason, "ok": outcome.ok}
        emit_json({**document, "cycles": outcome.cycles, "summary": summary})
    print(f"stopped: {outcome.reason}", file=sys.stderr)
    if outcome.signal == "SIGINT":
        print(still_running(args.state), file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.ok else EXIT_FAILURE


def _set_budget(state_path: Path, points: int) -> Queued | None:
    """Store ``run --max-points``, or queue it for the controller that runs already.

    The controller (and every later command) reads the budget from the state,
    so a running search is given more points without stopping it: the README
    and a spent budget's message send people here. Returns the queued request,
    or None when the budget was stored here.
    """
    from nas.control import inbox

    by = f"{inbox.requester()} (run --max-points)"
    request = {"action": "budget", "max_points": points, "by": by}
    target = inbox.open_or_queue(state_path, request, LOCK_WAIT_SECONDS)
    if isinstance(target, inbox.Queued):
        return target
    with target as store:
        inbox.execute(store.state, request)
        store.commit()
    return None


def _budget_queued(args: argparse.Namespace, queued: Queued) -> int:
    """``run --max-points`` while a controller runs: it takes the budget; no second one starts."""
    if args.json:
        emit_json({"state": str(args.state), "queued": str(queued.path), "ok": True})
    print(queued.text(), file=sys.stderr)
    return EXIT_OK


#: The exit status of a controller stopped by Ctrl-C, as a shell reports a SIGINT death.
EXIT_INTERRUPTED = 130


def still_running(state_path: Path) -> str:
    """What a Ctrl-C leaves running (jobs are not the controller's children) and how to stop it."""
    from nas.record.state import ACTIVE
    from nas.record.store import StateStore

    active = [p for p in StateStore.read(state_path).points if p.status in ACTIVE]
    if not active:
        return "no job of this search is running; `splinenas run` continues the search"
    jobs = ", ".join(f"point {p.id} (job {p.job_id or p.job_name})" for p in active)
    ids = " ".join(str(p.id) for p in active)
    return (
        f"{len(active)} job(s) keep running: {jobs}. `splinenas run --state {state_path}` "
        f"picks them up again; `splinenas cancel --state {state_path} {ids}` stops them"
    )


def _detach(args: argparse.Namespace) -> int:
    from nas.control import policy
    from nas.record.store import StateStore

    experiment = policy.experiment_of(StateStore.read(args.state), args.state)
    pid, argv, log_path = _start_detached(experiment, args.state, args.poll)
    if args.json:
        emit_json({"state": str(args.state), "pid": pid, "log": str(log_path), "argv": argv})
    print(f"controller runs as pid {pid}; log: {log_path}", file=sys.stderr)
    return EXIT_OK


def _start_detached(
    experiment: Experiment, state_path: Path, poll: float
) -> tuple[int, list[str], Path]:
    """Start ``splinenas run`` detached, once it is known not to fail at once.

    A detached controller that cannot run dies in its log, which nobody reads,
    while the command that started it said it runs. So what it would fail on
    first is checked here: the sections ``run`` needs, the job settings, and a
    live lock holder. ``run --detach`` and a local ``controller submit`` both
    start it here.

    Returns:
        The pid, command line and log of the controller.
    """
    from nas.cluster import keepalive
    from nas.control.prepare import JobSettings
    from nas.record.lock import holder_alive, hostname, lock_path, read_holder
    from nas.record.store import real_path

    experiment.require_run_sections()
    JobSettings.from_experiment(experiment, Path.cwd(), Path(state_path))
    holder = read_holder(lock_path(real_path(state_path)))
    if holder is not None and (holder.host != hostname() or holder_alive(holder)):
        raise LockError(f"{state_path} is in use by {holder.describe()}")
    return keepalive.detach_controller(state_path, poll)


def _dry_run(plan: dict, as_json: bool) -> int:
    for problem in plan["unchecked"]:
        _say(
            f"unchecked: {problem}; the scripts use it as given (`run` here would refuse it)",
            sys.stderr,
        )
    if as_json:
        emit_json(plan)
        return EXIT_OK
    for entry in plan["infeasible"]:
        _say(f"would mark point {entry['id']} infeasible: {entry['reason']}")
    for entry in plan["fail"]:
        _say(f"would fail point {entry['id']}: {entry['reason']}")
    for entry in plan["submit"]:
        where = entry["script"] or "its script follows"
        _say(f"would submit point {entry['id']} as {entry['job_name']}: {where}")
        if entry["script"] is None:
            _say(entry["text"])
    for entry in plan["propose"]:
        _say(f"would propose {entry['params']} (predicted {entry['predicted']})")
    if plan["stop"] is not None:
        _say(f"would stop: {plan['stop']['reason']}")
    if not any(plan[key] for key in ("infeasible", "fail", "submit", "propose", "stop")):
        _say("nothing to do until running jobs end", sys.stderr)
    return EXIT_OK


def _say(text: str, out: TextIO | None = None) -> None:
    """A line of the dry run for people: values from the experiment (a choice, an argument
    of the command, a path) may hold a bidirectional override or a line separator, which
    a terminal would act on; they are shown escaped, while the scripts keep them."""
    print(printable(text), file=out or sys.stdout)


# ---------------------------------------------------------------------------- controller


@reported
def _controller_submit(args: argparse.Namespace) -> int:
    from nas.cluster import keepalive
    from nas.control import policy
    from nas.record.store import StateStore

    state = StateStore.read(args.state)
    experiment = policy.experiment_of(state, args.state)
    cluster = experiment.cluster
    folder = keepalive.controller_dir(args.state)
    log_path = folder / keepalive.LOG
    state_path = args.state.absolute()
    if cluster.backend == "local":
        pid, argv, log_path = _start_detached(experiment, args.state, args.poll)
        document = {"backend": "local", "pid": pid, "job_id": None, "script": None}
        print(f"controller runs as pid {pid}: {shlex.join(argv)}", file=sys.stderr)
    else:
        job = keepalive.KeepAliveJob(
            backend=cluster.backend,
            state_path=state_path,
            script_path=folder / f"keepalive.{cluster.backend}.sh",
            log_path=log_path,
            workdir=Path.cwd(),
            job_name=f"{experiment.experiment.name}-controller",
            python=sys.executable,
            walltime_minutes=args.walltime or experiment.controller.walltime_minutes,
            margin_seconds=args.margin,
            poll=args.poll,
            controller=experiment.controller,
        )
        job_id = keepalive.submit(job, policy.scheduler_of(experiment, args.state))
        document = {"backend": cluster.backend, "pid": None, "job_id": job_id}
        document["script"] = str(job.script_path)
        print(f"controller submitted as {cluster.backend} job {job_id}", file=sys.stderr)
    document["log"] = str(log_path)
    if args.json:
        emit_json({"state": str(args.state), **document})
    print(f"log: {log_path}", file=sys.stderr)
    return EXIT_OK


@reported
def _controller_job(args: argparse.Namespace) -> int:
    from nas.cluster import keepalive
    from nas.control import policy
    from nas.record.store import StateStore

    state = StateStore.read(args.state)
    note = keepalive.take_over(
        args.state,
        args.job_id,
        policy.scheduler_of(policy.experiment_of(state, args.state), args.state),
    )
    if note:
        print(f"splinenas controller job: {note}", file=sys.stderr)
    keepalive.record_incarnation(args.state, args.job_id)
    keepalive.exec_controller(args.state, args.poll)
    return EXIT_FAILURE  # exec_controller does not return


def _register_controller(
    subparsers: argparse._SubParsersAction,
    as_json: argparse.ArgumentParser,
    state: argparse.ArgumentParser,
) -> None:
    summary = "keep the controller alive: detached, or as a self-renewing batch job"
    group = subparsers.add_parser("controller", help=summary, description=summary)
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    poll = argparse.ArgumentParser(add_help=False)
    poll.add_argument(
        "--poll",
        type=seconds_arg(zero=False),
        default=60.0,
        metavar="SECONDS",
        help="seconds between the controller's cycles (default: %(default)g)",
    )
    submit = actions.add_parser(
        "submit",
        parents=[as_json, state, poll],
        help="start the controller: local: detached; slurm: requeues itself; lsf: resubmits",
    )
    submit.add_argument(
        "--walltime",
        type=whole_number_arg,
        metavar="MINUTES",
        help="default: [controller] walltime_minutes",
    )
    submit.add_argument(
        "--margin",
        type=whole_number_arg,
        default=300,
        metavar="SECONDS",
        help="stop this long before it (default: %(default)s)",
    )
    submit.set_defaults(func=_controller_submit)
    job = actions.add_parser(
        "job", parents=[state, poll], help="one run of a keep-alive job (used by its script)"
    )
    job.add_argument("--job-id", required=True, help="the keep-alive job's own id")
    job.set_defaults(func=_controller_job)
