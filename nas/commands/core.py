"""Core commands: init, add, import, record, predict, propose, status, export.

These work on the state file alone and never train, so a person can run
the whole search by hand (measure each proposed point, record it) and a
login node answers at once. Results go to stdout (one JSON document with
``--json``); notes for people go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from nas.commands import summary
from nas.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    LOCK_WAIT_SECONDS,
    Handler,
    UsageError,
    emit_json,
    error_document,
    json_number,
    json_option,
    number_arg,
    number_text,
    params_text,
    path_arg,
    plural,
    point_doc,
    reported,
    state_option,
    whole_number_arg,
    writable_path,
    write_json,
    write_table,
)
from nas.commands.curves import export_doc
from nas.config import (
    ConfigError,
    Experiment,
    choice_problems,
    load_experiment,
    parse_params,
)
from nas.control import policy
from nas.numbers import exact_text
from nas.pointdir import layout
from nas.record.integrity import file_is_hdf5
from nas.record.lock import lock_path
from nas.record.state import State
from nas.record.store import StateStore, previous_path, real_path
from nas.search.space import Params, SearchSpace, SpaceError


def _search_failures() -> tuple[type[Exception], ...]:
    """Failures of a fit or search; imported late since scipy.stats is slow to import."""
    from nas.search.propose import SearchError
    from nas.search.spline import SplineError

    return SplineError, SearchError


# ---------------------------------------------------------------------------- helpers


def _params_arg(
    text: str,
    space: SearchSpace,
    *,
    allow_outside: bool,
    remedy: Callable[[list[str]], str],
    as_given: bool = False,
    stores: bool = True,
) -> tuple[Params, Params]:
    """``k=v,...`` from the command line as given and snapped, checked against the space.

    Every value that snapping changes is reported on stderr; a value outside
    the box is refused unless ``allow_outside``: ``remedy`` of the snapping notes
    of those values names the option (and, for ``--snap``, what it would store).
    ``as_given``: the caller uses the values as given (``predict --extrapolate``),
    so the notes say that instead of what snapping would have stored; without
    ``stores`` (``predict``) they say where the spline is evaluated.
    """
    from nas.control.imports import given_part

    try:
        given = parse_params(text)
        snapped, notes, outside = space.snap_report(given)
    except SpaceError as exc:
        raise UsageError(f"--params: {exc}; dimensions are {', '.join(space.names)}") from None
    except ValueError as exc:
        raise UsageError(f"--params: {exc}") from None
    if outside and not allow_outside:
        raise policy.StudyError(
            f"--params: {'; '.join(given_part(v) for v in outside)} outside the box "
            f"({space.box_text()}); {remedy(outside)}"
        )
    if as_given:  # refused before any note says it is evaluated
        try:
            space.to_unit_unsnapped(given)
        except SpaceError as exc:
            raise policy.StudyError(f"--params: {exc}") from None
    for note in notes:
        if as_given:
            where = "outside the box, extrapolated" if note in outside else "off the grid"
            note = f"{given_part(note)} evaluated as given ({where})"
        elif not stores:  # the snapping notes say what is stored; this caller stores nothing
            note = note.replace(" stored as ", " evaluated at ", 1)
        print(f"note: {note}", file=sys.stderr)
    return given, snapped


def _extrapolate(outside: list[str]) -> str:
    """``predict``'s remedy for values outside the box: it can evaluate them as given."""
    return "give --extrapolate to evaluate the spline there anyway"


def _read(path: Path) -> policy.Study:
    return policy.Study.of(StateStore.read(path), path)


def _proposing(state: State, path: Path) -> policy.Study:
    """The study of ``state`` that proposes as the controller would: only feasible candidates."""
    from nas.control.feasible import commands_rule
    from nas.control.plan import warn_source_drift

    experiment = policy.experiment_of(state, path)
    warn_source_drift(state, path)
    return policy.Study(state, experiment, commands_rule(experiment))


def _beyond_range(study: policy.Study, value: float) -> str:
    """Why a prediction is not to be believed as it stands: it lies outside the metric's range."""
    low, high = policy.value_range(study.experiment)
    metric = study.experiment.experiment.metric
    return (
        f"the spline predicts {metric} = {value:.6g}, outside its valid range "
        f"[{low:g}, {high:g}] ([experiment] value_range): it extrapolates there"
    )


# ---------------------------------------------------------------------------- handlers


@reported
def _init(args: argparse.Namespace) -> int:
    from nas.control.prepare import readiness
    from nas.control.tradeoffs import design_notes

    experiment = load_experiment(args.experiment)
    name = experiment.experiment.name
    path = writable_path(args.state or layout.default_state(name), "--state", create=True)
    problems, warnings = readiness(experiment, Path.cwd(), offline=args.offline, state=path)
    problems = [*choice_problems(experiment), *problems]  # a new experiment's only
    notes = [note.text for note in design_notes(experiment)]
    if args.validate_only:
        return _validate_only(args, experiment, problems, warnings, notes)
    _print_readiness(problems, warnings, notes)
    if problems:
        if args.json:
            emit_json(error_document("; ".join(str(p) for p in problems), EXIT_FAILURE))
        return EXIT_FAILURE
    store = StateStore.create(path, experiment)
    try:
        with store:
            policy.record_folder(store.state, Path.cwd())
            policy.record_source(store.state, Path(args.experiment))
            points = policy.Study(store.state, experiment).initial_batch()
            store.commit()
    except BaseException:  # a state without its initial design is no search: leave none
        for created in (path, previous_path(path)):
            created.unlink(missing_ok=True)
        raise
    if args.json:
        emit_json(
            {
                "state": str(path),
                "experiment": name,
                "points": [point_doc(p) for p in points],
                "notes": notes,
            }
        )
    else:
        print(path)
    print(
        f"created {path}: {len(points)} initial-design points pending in batch 0", file=sys.stderr
    )
    return EXIT_OK


def _print_readiness(problems: list[ConfigError], warnings: list[str], notes: list[str]) -> None:
    """One line per problem, then one per warning, then one per note (a setting of the
    file that the search overrides), on stderr."""
    lines = [f"error: {p}" for p in problems] + [f"warning: {w}" for w in warnings]
    for line in lines + [f"note: {n}" for n in notes]:
        print(f"splinenas init: {line}", file=sys.stderr)


def _validate_only(
    args: argparse.Namespace,
    experiment: Experiment,
    problems: list[ConfigError],
    warnings: list[str],
    notes: list[str],
) -> int:
    """Report the file's problems and what ``run`` would need from this folder; write nothing.

    The initial design is the one ``init`` would store (a cost-spread one
    where a trade-off or a known-cost bound asks for it) while the file has no
    problem, else the experiment's own ``design``.
    """
    from nas.search.optimizer import SplineOptimizer  # scipy.stats: slow to import

    settings = experiment.experiment.search_settings()
    name = experiment.experiment.name
    if problems:
        design = SplineOptimizer(experiment.space, settings).initial_design()
    else:
        study = policy.Study(State(experiment.text, experiment.space), experiment)
        design = study.optimizer.initial_design()
    if args.json:
        emit_json(
            {
                "valid": not problems,
                "experiment": name,
                "dims": list(experiment.space.names),
                "initial_design": len(design),
                "problems": [str(p) for p in problems],
                "warnings": warnings,
                "notes": notes,
            }
        )
    _print_readiness(problems, warnings, notes)
    if problems:
        return EXIT_FAILURE
    print(
        f"{args.experiment} is valid: experiment {name}, dims "
        f"{', '.join(experiment.space.names)}, {len(design)} initial-design points",
        file=sys.stderr,
    )
    return EXIT_OK


@reported
def _add(args: argparse.Namespace) -> int:
    from nas.control.imports import would_snap

    with StateStore.open(args.state, LOCK_WAIT_SECONDS) as store:
        experiment = policy.experiment_of(store.state, args.state)
        _, params = _params_arg(
            args.params,
            store.state.space,
            allow_outside=args.snap,
            remedy=would_snap,
        )
        value = (
            None if args.value is None else policy.check_value(experiment, args.value, "--value")
        )
        existing = policy.existing_point(store.state, params)
        before = None if existing is None else existing.value
        point, created = policy.add_manual(store.state, params, value, replace=args.replace)
        if value is not None:
            _store_fit_if_possible(policy.Study(store.state, experiment))
        store.commit()
    if args.json:
        emit_json({**point_doc(point), "created": created})
    else:
        print(point.id)
    if not created:  # say what happened to the point that was there: its value may have changed
        done = "; nothing added"
        if value is not None and before is None:
            done = f"; recorded {value:.15g}"
        elif value is not None and before != value:
            done = f"; replaced {before:.15g} -> {value:.15g}"
        elif value is not None:
            done = f" and value {value:.15g}"
        same = "with these params" if point.params == params else _shown_as(point.params)
        print(f"point {point.id} exists already {same}{done}", file=sys.stderr)
    return EXIT_OK


def _shown_as(stored: Params) -> str:
    """How ``add`` names a point it took for params given as a table showed them."""
    exact = ",".join(
        f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"
        for key, value in stored.items()
    )
    return f"shown with these params (stored as {exact})"


def _proposals(study: policy.Study, n: int | None, dry_run: bool = False) -> list:
    """``study.propose``; a search that can propose nothing and waits for nothing is an
    error that says how a person moves it on (not "0 points proposed", exit 0)."""
    from nas.search.optimizer import SearchStalled

    try:
        return study.propose(n, dry_run=dry_run)
    except SearchStalled as exc:
        told = study.unmeasured_text()
        which = f" (of the points told as failed: {told})" if told else ""
        raise policy.StudyError(
            f"{exc}{which}; `splinenas rerun ID...` makes failed or cancelled points pending again, "
            "`splinenas add` adds points by hand"
        ) from None


def _store_fit_if_possible(study: policy.Study) -> None:
    """Fit the new measurements once, here, so readers (``status``) never show a stale fit."""
    try:
        study.store_fit()
    except _search_failures() as exc:
        print(f"note: no fit stored yet: {exc}", file=sys.stderr)


@reported
def _import(args: argparse.Namespace) -> int:
    from nas.control import imports

    with StateStore.open(args.state, LOCK_WAIT_SECONDS) as store:
        experiment = policy.experiment_of(store.state, args.state)
        try:
            rows = imports.read_rows(args.file, store.state.space, experiment.experiment.metric)
            report = imports.import_rows(
                store.state,
                experiment,
                rows,
                source=str(args.file),
                note=args.note or "",
                snap=args.snap,
                replace=args.replace,
            )
        except OSError as exc:
            raise policy.StudyError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        except imports.RowsError as exc:
            separator = "\n" if "\n" in str(exc) else " "  # one problem reads as one line
            raise policy.StudyError(f"nothing imported:{separator}{exc}") from None
        _store_fit_if_possible(policy.Study(store.state, experiment))
        withdrawn = imports.withdraw_design(store.state)
        store.commit()
    if args.json:
        emit_json(
            {
                "added": [point_doc(p) for p in report.added],
                "withdrawn": [p.id for p in withdrawn],
                "updated": [point_doc(p) for p in report.updated],
                "unchanged": [p.id for p in report.unchanged],
                "skipped": report.skipped,
                "snapped": report.notes,
                "warnings": report.warnings,
                "costs": report.costs,
            }
        )
    for line in report.notes + report.skipped:
        print(f"note: {line}", file=sys.stderr)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(
        f"imported {args.file}: {len(report.added)} points added, {len(report.updated)} given "
        f"their value, {len(report.unchanged)} already there"
        + (f"; measured costs carried: {', '.join(report.costs)}" if report.costs else ""),
        file=sys.stderr,
    )
    if withdrawn:
        ids = " ".join(str(p.id) for p in withdrawn)
        print(
            f"withdrew initial-design points {ids}: the measured points determine the spline "
            "(`splinenas rerun ID` brings one back)",
            file=sys.stderr,
        )
    return EXIT_OK


@reported
def _record(args: argparse.Namespace) -> int:
    with StateStore.open(args.state, LOCK_WAIT_SECONDS) as store:
        experiment = policy.experiment_of(store.state, args.state)
        value = policy.check_value(experiment, args.value, f"point {args.id}")
        point = store.state.record(args.id, value, replace=args.replace, given=True)
        _store_fit_if_possible(policy.Study(store.state, experiment))
        store.commit()
    if args.json:
        emit_json(point_doc(point))
    print(f"point {point.id}: recorded {exact_text(point.value)}", file=sys.stderr)
    return EXIT_OK


@reported
def _predict(args: argparse.Namespace) -> int:
    study = _read(args.state)
    given, snapped = _params_arg(
        args.params,
        study.state.space,
        allow_outside=args.extrapolate,
        remedy=_extrapolate,
        as_given=args.extrapolate,
        stores=False,
    )
    try:
        params = given if args.extrapolate else snapped
        value, fit = study.predict(params, extrapolate=args.extrapolate)
    except ValueError as exc:  # a category without a spline yet
        raise policy.StudyError(str(exc)) from None
    outside = policy.outside_range(study.experiment, value)
    _, errors = study.optimizer.predict_interval([params], extrapolate=args.extrapolate)
    error = float(errors[0])
    if args.json:
        emit_json(
            {
                "predicted": json_number(value),
                "outside_range": outside,
                "error": json_number(error),
                "error_meaning": ERROR_MEANING,
                "loo_rmse": json_number(fit.loo_rmse),
                "n_support": fit.n_support,
            }
        )
    else:
        print(f"{value:.6g}")
        print(
            f"error estimate +/- {number_text(error)}: {ERROR_MEANING}\n"
            f"fit on {fit.n_support} points, LOO RMSE {number_text(fit.loo_rmse)}",
            file=sys.stderr,
        )
    if outside:
        print(f"warning: {_beyond_range(study, value)}", file=sys.stderr)
    return EXIT_OK


#: What ``predict``'s error estimate is; how often it held: README, benchmarks/calibration.py.
ERROR_MEANING = (
    "the leave-one-out errors of the measured points nearest this one, scaled by its distance "
    "from them (0 at a measured point); an empirical rule, not a probability: how often "
    "held-out measurements fell within 1 and 2 estimates is in the README (Costs, constraints "
    "and trade-offs)"
)


def _refuse_beside_a_controller(state: Path, max_points: int | None) -> None:
    """``propose`` on a state a running controller holds: it proposes by itself (the lock
    wait would end in "locked" after 10 s), and a budget goes to it through its inbox."""
    from nas.control.liveness import controller_holder

    holder = controller_holder(state)
    if holder is None:
        return
    what = (
        f"to give it a budget of {max_points} trainings, `splinenas run --state {state} "
        f"--max-points {max_points}` (queued for it)"
        if max_points is not None
        else "`propose --dry-run` shows what it would propose"
    )
    raise policy.StudyError(
        f"a running controller (pid {holder.pid} on {holder.host}) holds {state} and "
        f"proposes by itself; {what}"
    )


@reported
def _propose(args: argparse.Namespace) -> int:
    if args.n is not None and args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    if args.max_points is not None and args.max_points < 1:
        raise UsageError(f"--max-points must be at least 1, got {args.max_points}")
    if args.dry_run:
        study = _proposing(StateStore.read(args.state), args.state)
        _set_budget(study, args.max_points)  # in memory: a dry run commits nothing
        proposals = _proposals(study, args.n, dry_run=True)
        rows = [(None, p.params, p.predicted) for p in proposals]
        what = "dry run, nothing stored"
    else:
        _refuse_beside_a_controller(args.state, args.max_points)
        with StateStore.open(args.state, LOCK_WAIT_SECONDS) as store:
            study = _proposing(store.state, args.state)
            _set_budget(study, args.max_points)
            points = _proposals(study, args.n)
            store.commit()
        rows = [(p.id, p.params, p.predicted) for p in points]
        what = f"stored as pending in batch {points[0].batch}" if points else "nothing stored"
    if args.json:
        emit_json(
            [{"id": i, "params": params, "predicted": json_number(v)} for i, params, v in rows]
        )
    elif rows:
        table = [["id", "params", "predicted"]]
        table += [
            ["-" if i is None else str(i), params_text(p), number_text(v)] for i, p, v in rows
        ]
        write_table(table, sys.stdout)
    print(f"{plural(len(rows), 'point')} proposed ({what})", file=sys.stderr)
    if not rows:
        print(f"nothing to propose yet: {study.fit_blocker()}", file=sys.stderr)
    if study.converged():
        print("note: the search has converged already (see `splinenas status`)", file=sys.stderr)
    return EXIT_OK


def _set_budget(study: policy.Study, points: int | None) -> None:
    """``propose --max-points N``: the budget of trainings, logged in the state.

    A budget that allows no training beyond those spent is refused before anything
    is stored: ``propose`` could propose nothing under it, and storing it only to
    refuse the proposal ("max_points reached ...; raise it") named a budget the
    state never kept.

    Raises:
        UsageError: ``points`` is no more than the trainings already spent.
    """
    if points is None:
        return
    spent = study.spent_points()
    if points <= spent:
        than = "below" if points < spent else "no more than"
        raise UsageError(
            f"--max-points {points} is {than} the {spent} trainings already spent; nothing "
            f"stored: `propose` proposes within the budget, so give more than {spent}"
        )
    policy.raise_budget(study.state, study.experiment, points, "propose --max-points")


@reported
def _status(args: argparse.Namespace) -> int:
    from nas.control import liveness
    from nas.control.plan import warn_source_drift

    now = time.time()
    study = _read(args.state)
    warn_source_drift(study.state, args.state)
    doc = summary.status_doc(study, args.state, now)
    if args.json:
        emit_json(doc)
    else:
        summary.print_status(doc, sys.stdout)
        print(liveness.liveness_line(doc["controller"], args.state, now))
    return EXIT_OK


_CSV_FIELDS = ("status", "value", "predicted", "batch", "origin", "job_id", "job_name", "attempts")
_CSV_FIELDS += ("segment", "gpu_hours", "reason")


def _csv_rows(state: State) -> Iterable[list[Any]]:
    """A header, then one row per point: id, one column per dimension, the record."""
    yield ["id", *state.space.names, *_CSV_FIELDS, "created", "updated"]
    for point in state.points:
        values = [getattr(point, name) for name in _CSV_FIELDS]
        values = ["" if v is None else getattr(v, "value", v) for v in values]
        times = [_iso(point.created), _iso(point.updated)]
        yield [point.id, *(point.params[name] for name in state.space.names), *values, *times]


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _write_csv(state: State, handle: TextIO) -> None:
    csv.writer(handle, lineterminator="\n").writerows(_csv_rows(state))


def _clear_of_campaign(out: Path, state: Path) -> None:
    """Refuse an ``--out`` that would overwrite a file of the campaign being exported.

    ``--out p.h5`` for ``--state p.h5`` is one slip away, and ``open(out, "w")``
    would replace the state by a CSV: every later command then finds it corrupt
    and ``fsck`` can only go back to ``.prev``, losing the last commit. The
    state, its ``.prev`` and lock, and any file already in its run folder
    (results, logs, scripts) are the campaign's; a new file in that folder is not.
    Another campaign's state (any HDF5 file) and an experiment file (``.toml``)
    are never an earlier export either.
    """
    target = Path(os.path.realpath(out))
    home = real_path(state)
    owned = {Path(os.path.realpath(p)) for p in (home, previous_path(home), lock_path(home))}
    inside = target.is_relative_to(layout.run_dir(state)) and target.exists()
    if target in owned or inside:
        raise UsageError(
            f"--out {out}: is a file of the campaign in {state}; export to another file"
        )
    if file_is_hdf5(target) or (target.suffix == ".toml" and target.exists()):
        kind = "an HDF5 file (a state or an index)" if target.suffix != ".toml" else "a TOML file"
        raise UsageError(f"--out {out}: is {kind}, not an export; export to another file")


@reported
def _export(args: argparse.Namespace) -> int:
    if args.tensorboard is not None:
        return _export_tensorboard(args)
    if args.out is not None:
        writable_path(args.out, "--out")
        _clear_of_campaign(args.out, args.state)
    state = StateStore.read(args.state)
    if args.json:
        doc = export_doc(state, layout.run_dir(args.state), args.state)
        if args.out is None:
            write_json(doc, sys.stdout)
        else:
            with open(args.out, "w", encoding="utf-8") as handle:
                write_json(doc, handle)
            print(f"wrote {len(state.points)} points to {args.out}", file=sys.stderr)
        return EXIT_OK
    if args.out is None:
        _write_csv(state, sys.stdout)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            _write_csv(state, handle)
        print(f"wrote {plural(len(state.points), 'point')} to {args.out}", file=sys.stderr)
    return EXIT_OK


def _export_tensorboard(args: argparse.Namespace) -> int:
    """One TensorBoard run per point, written by tensorboardX (the ``tensorboard`` extra)."""
    from nas.report.tensorboard import ExportError, export_tensorboard

    if args.out is not None:
        raise UsageError("--out goes with --csv or --json; --tensorboard names its own folder")
    writable_path(args.tensorboard, "--tensorboard", folder=True, create=True)
    state = StateStore.read(args.state)
    cfg = policy.experiment_of(state, args.state).experiment
    try:
        runs = export_tensorboard(state, args.tensorboard, metric=cfg.metric, goal=cfg.goal)
    except ExportError as exc:
        raise policy.StudyError(str(exc)) from None
    print(
        f"wrote {plural(len(runs) - 1, 'point run')} and the search run to {args.tensorboard}; "
        f"view with: tensorboard --logdir {args.tensorboard}",
        file=sys.stderr,
    )
    return EXIT_OK


# ---------------------------------------------------------------------------- parsers


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the core commands to the ``splinenas`` parser."""
    as_json, state = json_option(), state_option()
    replace = argparse.ArgumentParser(add_help=False)
    replace.add_argument(
        "--replace", action="store_true", help="overwrite a different earlier measurement"
    )

    def add(name: str, handler: Handler, parents: list, summary: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, parents=parents, help=summary, description=summary)
        parser.set_defaults(func=handler)
        return parser

    init = add("init", _init, [as_json], "validate an experiment and create its state file")
    init.add_argument("experiment", type=path_arg, metavar="EXPERIMENT.toml")
    init.add_argument(
        "--state", type=path_arg, metavar="PATH", help="default: state/<experiment name>.h5"
    )
    init.add_argument(
        "--validate-only",
        action="store_true",
        help="check the file and everything `run` would refuse, write nothing",
    )
    init.add_argument(
        "--offline",
        action="store_true",
        help="skip the checks of paths on this machine ([cluster] env_file and python, "
        "[data] root and index): for a file written here for another machine",
    )

    point = add("add", _add, [as_json, state, replace], "add a point by hand, measured or not")
    point.add_argument("--params", required=True, metavar="K=V,...", help="one value per dimension")
    point.add_argument("--value", type=number_arg, help="its measurement, if known")
    point.add_argument(
        "--snap", action="store_true", help="store a point outside the box at the nearest bound"
    )

    imported = add(
        "import",
        _import,
        [as_json, state, replace],
        "add measurements from a CSV (dims + value) or JSON file, e.g. an earlier campaign",
    )
    imported.add_argument("file", type=path_arg, metavar="FILE")
    imported.add_argument("--note", help="provenance note stored with each point")
    imported.add_argument(
        "--snap", action="store_true", help="store points outside the box at the nearest bound"
    )

    record = add("record", _record, [as_json, state, replace], "record a measurement for a point")
    record.add_argument("id", type=whole_number_arg, metavar="ID")
    record.add_argument("value", type=number_arg, metavar="VALUE")

    predict = add("predict", _predict, [as_json, state], "the spline's prediction at a point")
    predict.add_argument(
        "--params", required=True, metavar="K=V,...", help="one value per dimension"
    )
    predict.add_argument(
        "--extrapolate", action="store_true", help="evaluate the spline outside the box too"
    )

    propose = add("propose", _propose, [as_json, state], "fit and propose the next points")
    propose.add_argument(
        "-n", type=whole_number_arg, metavar="Q", help="number of points (default: batch_size)"
    )
    propose.add_argument("--dry-run", action="store_true", help="show the proposals, store nothing")
    propose.add_argument(
        "--max-points",
        type=whole_number_arg,
        metavar="N",
        help="set the budget of trainings to N first (imported points do not count)",
    )

    add("status", _status, [as_json, state], "points table, fit summary and convergence")

    export = add(
        "export", _export, [state], "write the points table, or every point with its curve"
    )
    form = export.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", action="store_true", help="the points table as CSV")
    form.add_argument(
        "--json", action="store_true", help="every point with its bookkeeping and learning curve"
    )
    form.add_argument(
        "--tensorboard",
        type=path_arg,
        metavar="DIR",
        help="TensorBoard event files: one run per point (curve, final metrics, costs, "
        "params as hyperparameters); needs the tensorboard extra",
    )
    export.add_argument("--out", type=path_arg, metavar="FILE", help="default: stdout")
