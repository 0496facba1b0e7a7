"""``splinenas demo``: a whole search on this machine, from nothing to a table and pictures.

The demo experiment ships inside the package (``nas/demo/demo-digits.toml``;
``jobs/demo-digits.toml`` links to it): a 3-dim ResNet family trained on the
long-tailed digits by the local backend. The command creates its state in
``--out``, runs the controller until the search converges or spends its
budget, then reports the best architecture, the predicted-vs-measured table
of the proposed points and where the files are, and writes the plots.

Nothing is ever overwritten: a state already in ``--out`` is resumed (a
finished search is only reported again). Ctrl-C stops after the current
cycle has committed; a training that has started finishes in the background
and is picked up by the next ``splinenas demo``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nas.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    emit_json,
    json_number,
    number_text,
    params_text,
    path_arg,
    reported,
    writable_path,
    write_table,
)
from nas.config import tomllib
from nas.pointdir import layout

if TYPE_CHECKING:
    from nas.config import Experiment
    from nas.control.cycle import CycleSummary
    from nas.control.loop import RunResult
    from nas.record.state import State

#: The demo experiment, shipped as package data.
DEMO_EXPERIMENT = Path(__file__).resolve().parent.parent / "demo" / "demo-digits.toml"
#: What ``--fast`` changes: fewer epochs, and one proposal after the initial design.
FAST_CHANGES: Mapping[tuple[str, str], object] = {
    ("experiment", "name"): "demo-digits-fast",
    ("experiment", "max_points"): 6,
    ("train", "epochs"): 2,
}
#: Seconds between controller cycles: a candidate trains for tens of seconds.
POLL_SECONDS = 1.0
#: Folder of the pictures inside the run folder.
PLOTS = "plots"

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def with_values(text: str, changes: Mapping[tuple[str, str], object]) -> str:
    """``text`` with the value of each ``(table, key)`` replaced; comments and layout stay.

    The stored experiment text keeps the demo file's comments, which a TOML
    writer would drop. Only plain ``key = value`` lines of the named tables are
    touched, and the result is parsed back to prove every change landed.

    Raises:
        ValueError: a key is not set in its table, or appears there more than once.
    """
    lines = text.splitlines(keepends=True)
    table = None
    found: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines):
        header = _TABLE_HEADER.match(line)
        if header:
            table = header.group(1)
            continue
        for (wanted, key), value in changes.items():
            match = re.match(rf"^(\s*{re.escape(key)}\s*=\s*)[^#]*?(\s*#.*)?$", line)
            if table == wanted and match:
                if (wanted, key) in found:
                    raise ValueError(f"[{wanted}] {key} is set twice")
                found[(wanted, key)] = number
                lines[number] = f"{match.group(1)}{json.dumps(value)}{match.group(2) or ''}\n"
    missing = [f"[{table}] {key}" for table, key in changes if (table, key) not in found]
    if missing:
        raise ValueError(f"not set in the experiment text: {', '.join(missing)}")
    result = "".join(lines)
    parsed = tomllib.loads(result)
    for (table, key), value in changes.items():
        if parsed[table][key] != value:
            raise ValueError(f"[{table}] {key}: wrote {value!r}, read back {parsed[table][key]!r}")
    return result


def demo_text(fast: bool) -> str:
    """The experiment text of the demo, or of its shorter ``--fast`` variant."""
    text = DEMO_EXPERIMENT.read_text(encoding="utf-8")
    return with_values(text, FAST_CHANGES) if fast else text


# ---------------------------------------------------------------------------- progress


def quiet_progress(out: TextIO) -> Callable[[CycleSummary], None]:
    """A progress report that prints a cycle's line only when something changed."""
    last: list[tuple] = []

    def report(summary: CycleSummary) -> None:
        key = (summary.counts, summary.best_id, summary.gap, summary.stop)
        if last and last[0] == key:
            return
        last[:] = [key]
        print(summary.line(), file=out, flush=True)

    return report


# ---------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class DemoPaths:
    """Where a demo keeps its files, all inside ``--out``."""

    state: Path
    run: Path
    plots: Path

    @classmethod
    def of(cls, out: Path, name: str) -> DemoPaths:
        state = (out / f"{name}.h5").absolute()
        run = layout.run_dir(state)
        return cls(state=state, run=run, plots=run / PLOTS)


def report_doc(
    state: State,
    experiment: Experiment,
    paths: DemoPaths,
    outcome: RunResult,
    plots: list[Path],
    seconds: float,
) -> dict[str, Any]:
    """Everything the demo reports, as one JSON-able document."""
    from nas.commands.summary import status_doc
    from nas.control import policy
    from nas.record.state import SPLINE_ORIGINS, PointStatus

    study = policy.Study(state, experiment)
    status = status_doc(study, paths.state)
    best = study.best()
    smoothed = None if best is None else study.optimizer.fitted_values([best.params])
    model = experiment.model
    proposed = [p for p in state.points if p.origin in SPLINE_ORIGINS]
    return {
        "state": str(paths.state),
        "run_dir": str(paths.run),
        "plots": [str(p) for p in plots],
        "reason": outcome.reason,
        "ok": outcome.ok,
        "finished": outcome.summary is not None and outcome.summary.stop is not None,
        "seconds": round(seconds, 1),
        "metric": experiment.experiment.metric,
        "tolerance": experiment.experiment.tolerance,
        "fit": status["fit"],
        "notes": status["notes"],
        "best": None
        if best is None
        else {
            "id": best.id,
            "params": best.params,
            "value": best.value,
            "smoothed": None if smoothed is None else json_number(smoothed[0]),
            "family": None if model is None else model.family,
            "fixed": {} if model is None else dict(model.fixed),
        },
        "raw_best": status["raw_best"],
        "noise_sd": None if smoothed is None else json_number(study.optimizer.noise_sd()),
        "proposed": [
            {
                "id": p.id,
                "params": p.params,
                "status": p.status.value,
                "predicted": json_number(p.predicted),
                "measured": json_number(p.value) if p.status is PointStatus.DONE else None,
            }
            for p in proposed
        ],
    }


def _smoothed_text(doc: Mapping[str, Any]) -> str:
    """With a noise sd, the best's smoothed value: the number it was chosen by.

    A search with noise picks the point whose smoothed value is best, which
    need not be the highest single measurement (shown on its own line).
    """
    smoothed = doc["best"]["smoothed"]
    if smoothed is None:
        return ""
    return f" (smoothed {number_text(smoothed)} at noise sd {number_text(doc['noise_sd'])})"


def print_report(doc: Mapping[str, Any], out: TextIO) -> None:
    """The report for people: best architecture, the proposals' table, the files."""

    metric = doc["metric"]
    verdict = "search ended" if doc["finished"] else "search paused"
    out.write(f"\n{verdict}: {doc['reason']} ({_duration(doc['seconds'])})\n")
    best = doc["best"]
    if best is None:
        out.write("best architecture: none measured yet\n")
    else:
        out.write(
            f"best architecture: point {best['id']}, {params_text(best['params'])}: "
            f"{metric} {number_text(best['value'])}{_smoothed_text(doc)}\n"
        )
        if best["fixed"]:
            out.write(f"  {best['family']} with {params_text(best['fixed'])}\n")
        raw = doc["raw_best"]
        if raw is not None and raw["id"] != best["id"]:
            out.write(
                f"best single measurement: point {raw['id']}, {params_text(raw['params'])}: "
                f"{metric} {number_text(raw['value'])}\n"
            )
    out.write(f"\nproposed points, predicted vs measured (tolerance {doc['tolerance']:g}):\n")
    rows = [["id", "params", "predicted", "measured", "|error|"]]
    for p in doc["proposed"]:
        error = None
        if p["measured"] is not None and p["predicted"] is not None:
            error = abs(p["measured"] - p["predicted"])
        measured = number_text(p["measured"]) if p["measured"] is not None else p["status"]
        rows.append([str(p["id"]), params_text(p["params"]), number_text(p["predicted"]), measured])
        rows[-1].append(number_text(error))
    if len(rows) == 1:
        rows.append(["-", "(none yet)", "-", "-", "-"])
    write_table(rows, out)
    fit = doc["fit"]
    if fit is not None:
        out.write(
            f"\nspline: predicted {metric} {number_text(fit['predicted_max'])} at "
            f"{params_text(fit['argmax'])}; LOO RMSE {number_text(fit['loo_rmse'])}\n"
        )
    for note in doc["notes"]:
        out.write(f"note: {note}\n")
    out.write(f"\nstate:  {doc['state']}\n")
    out.write(f"runs:   {doc['run_dir']}/points/<id>/ (point.json, job.sh, logs/, result.json)\n")
    for path in doc["plots"]:
        out.write(f"plot:   {path}\n")
    if not doc["finished"]:
        out.write("\nrun the same `splinenas demo` command again to resume\n")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


# ---------------------------------------------------------------------------- the command


def _prepare(out: Path, fast: bool) -> tuple[DemoPaths, bool]:
    """The demo's paths in ``out`` and whether its state is new (created now) or resumed."""
    from nas.config import parse_experiment
    from nas.control import policy
    from nas.record.store import StateStore

    writable_path(out, "--out", folder=True, create=True)
    experiment = parse_experiment(demo_text(fast), str(DEMO_EXPERIMENT))
    paths = DemoPaths.of(out, experiment.experiment.name)
    if paths.state.exists():
        return paths, False
    with StateStore.create(paths.state, experiment) as store:
        policy.Study(store.state, experiment).initial_batch()
        store.commit()
    return paths, True


def _write_plots(paths: DemoPaths) -> list[Path]:
    from nas.report.plots import PlotError, write_plots

    try:
        return write_plots(paths.state, paths.plots)
    except PlotError as exc:
        print(f"no plots: {exc}", file=sys.stderr)
        return []


@reported
def run_demo(args: argparse.Namespace) -> int:
    """Create or resume the demo in ``--out``, run it to the end, report and plot."""
    from nas.control import loop, policy
    from nas.record.store import StateStore

    started = time.monotonic()
    paths, created = _prepare(args.out, args.fast)
    what = "created" if created else "resuming"
    print(f"{what} {paths.state}; trainer logs in {paths.run}/points/<id>/logs/", file=sys.stderr)
    outcome = loop.run_controller(
        paths.state, poll=POLL_SECONDS, progress=quiet_progress(sys.stderr)
    )
    plots = _write_plots(paths)
    state = StateStore.read(paths.state)
    experiment = policy.experiment_of(state, paths.state)
    doc = report_doc(state, experiment, paths, outcome, plots, time.monotonic() - started)
    if args.json:
        emit_json(doc)
    else:
        print_report(doc, sys.stdout)
    if not outcome.ok:
        print(f"splinenas demo: {outcome.reason}", file=sys.stderr)
    return EXIT_OK if outcome.ok else EXIT_FAILURE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``splinenas`` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="run a whole search on this machine: digits, a 3-dim ResNet family, CPU",
        description=(
            "Create a search from the bundled demo experiment (a 3-dim ResNet family on the "
            "long-tailed digits, trained here by the local backend), run it until the "
            "measurement of a proposal agrees with its prediction or the budget is spent, "
            "then print the best architecture and the predicted-vs-measured table and write "
            "the plots. Rerunning it on the same --out resumes; Ctrl-C stops after the "
            "current cycle."
        ),
    )
    parser.add_argument(
        "--out",
        type=path_arg,
        default=Path("state") / "demo",
        metavar="DIR",
        help="folder for the state, the point folders and the plots (default: state/demo)",
    )
    parser.add_argument(
        "--fast", action="store_true", help="a shorter search: 2 epochs, one proposal"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(func=run_demo)
