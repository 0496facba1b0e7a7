"""What a scientist needs to trust a search's answer, as ``status``, ``demo`` and ``report`` say it.

"Converged" alone reads as more than it is: a measurement can match its
prediction by luck when the spline's leave-one-out error is wider than the
tolerance, and a best point on the box's edge says the optimum may lie
outside it. The summary names both, next to the best measured value, the
spline's predicted maximum, the budget left and the GPU-hours spent.

The fit comes from the state file when the last stored fit is on exactly
the measured points (the controller stores one with every proposal and
when it stops), so a login node answers without importing the search's
numerics (scipy); otherwise it is fitted here.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, TextIO

from nas.commands.common import (
    json_number,
    number_text,
    params_text,
    plural,
    point_doc,
    write_table,
)
from nas.commands.curves import guard_summary, running_progress, write_guard_lines
from nas.control import frontier, policy
from nas.names import printable
from nas.numbers import amount_text
from nas.pointdir import layout
from nas.record.state import Point, PointStatus, State
from nas.search.space import SearchSpace

#: What status says when the fit is wider than the tolerance.
LOOSE_FIT = "the fit is looser than the tolerance: a match may be luck"


def optimum_word(goal: str) -> str:
    """What the spline's best point is called under ``[experiment] goal``."""
    return "maximum" if goal == "maximize" else "minimum"


def fit_doc(study: policy.Study) -> tuple[dict[str, Any] | None, str | None]:
    """The last fit stored in the state, or why there is none.

    Readers never refit: at scale a fit takes minutes and needs scipy. The
    controller stores a fit with every proposal and when it stops (``import``
    when it brings measurements); ``measured_since`` says how many
    measurements the stored fit has not seen, and its warnings were logged
    when it was made.
    """
    state = study.state
    fit = state.fits[-1] if state.fits else None
    if fit is None:
        return None, f"no fit yet: {study.fit_blocker()}"
    measured = len(state.with_status(PointStatus.DONE))
    warnings = [
        e.message for e in state.events if e.kind == policy.FIT_WARNING and e.time >= fit.time
    ]
    return {
        "n_support": len(fit.support_ids),
        "loo_rmse": json_number(fit.loo_rmse),
        "argmax": fit.argmax,
        "predicted_max": json_number(fit.predicted_max),
        "outside_range": policy.outside_range(study.experiment, fit.predicted_max),
        "warnings": warnings,
        "stored": fit.number,
        "measured_since": max(measured - len(fit.support_ids), 0),
        "noise": fit.noise or None,
        "warped": list(fit.warped),
    }, None


def noise_line(noise: dict[str, Any]) -> str:
    """The measured noise sd with its 95 % interval, or why none is used (``noise = "auto"``)."""
    interval = ""
    if noise.get("low") is not None and noise.get("high") is not None:
        interval = f"95 % {number_text(noise['low'])} to {number_text(noise['high'])}, "
    if noise["sd"] > 0.0:
        text = f"noise sd {number_text(noise['sd'])} ({interval}from {noise['support']} points"
        return text + (f"; {noise['note']})" if noise["note"] else ")")
    return f"noise sd: {noise['note']} ({interval}0 used: exact spline, tolerance as set)"


#: How near a bound, as a share of the box's width, a coordinate counts as on its edge.
EDGE_SHARE = 1e-9


def edge_dims(space: SearchSpace, params: dict[str, Any]) -> list[str]:
    """The numeric dimensions where ``params`` sit on a bound of the box, e.g. ``g2 = 64 (high)``.

    "On" is relative to the box's width (:data:`EDGE_SHARE`), never finer than the
    float spacing at the bound: an absolute margin would put every coordinate of a
    box narrower than it on both edges at once.
    """
    edges = []
    for dim in space.numeric:
        value = float(params[dim.name])
        span = float(dim.high) - float(dim.low)
        for side, bound in (("low", float(dim.low)), ("high", float(dim.high))):
            if abs(value - bound) <= max(EDGE_SHARE * span, 4 * math.ulp(bound)):
                edges.append(f"{dim.name} = {params[dim.name]} ({side})")
    return edges


def trust_notes(doc: dict[str, Any]) -> list[str]:
    """The warnings a reader of a status needs before believing its answer.

    The fit's leave-one-out error is held to the tolerance a measurement is
    compared with a prediction at (``stop.tolerance``): with a noise sd that is
    never below twice the sd, since a left-out measurement carries its noise.
    """
    notes = []
    fit = doc["fit"]
    limit = doc["stop"]["tolerance"]
    if fit is not None and fit["loo_rmse"] is not None and fit["loo_rmse"] > limit:
        floor = " (twice the noise sd)" if limit > doc["tolerance"] else ""
        notes.append(
            f"{LOOSE_FIT} (LOO RMSE {number_text(fit['loo_rmse'])} > tolerance {limit:g}{floor})"
        )
    if fit is not None and fit["outside_range"]:
        notes.append(
            f"the spline's predicted {optimum_word(doc['goal'])} "
            f"{number_text(fit['predicted_max'])} lies outside the valid range of "
            f"{doc['metric']} ([experiment] value_range): the spline extrapolates; "
            "proposals are predicted at the range's bound"
        )
    if doc["best"] is not None and doc["best"]["on_edge"]:
        edges = ", ".join(doc["best"]["on_edge"])
        notes.append(
            f"the best point sits on the box's edge ({edges}): the optimum may lie outside; "
            f"consider `splinenas expand`"
        )
    return notes


def _unusable_fit_note(study: policy.Study, fit: dict[str, Any] | None) -> list[str]:
    """Why a stored fit's numbers read "-" (not finite) or are not to be believed (a
    measurement beyond what a fit can take), and what to do: none when it is usable."""
    if fit is None or (fit["predicted_max"] is not None and not policy.oversized(study.state)):
        return []
    return [f"no usable fit: {policy.unusable_fit(study.state)}"]


def _gpu_hours(points: list[Point]) -> float:
    return float(sum(p.gpu_hours for p in points if math.isfinite(p.gpu_hours)))


def status_doc(study: policy.Study, path: object, now: float | None = None) -> dict[str, Any]:
    """Everything ``status`` reports, as one JSON-able document, the controller's liveness at
    ``now`` (default: this moment) included, so that every reader of a search says whether it
    still runs."""
    from nas.control import liveness

    state = study.state
    fit, fit_error = fit_doc(study)
    best, raw = study.best(exact=False), study.raw_best()
    evidence = study.stop_evidence(exact=False)
    cfg = study.experiment.experiment
    gpu_hours = _gpu_hours(state.points)
    held = study.gpu_budget()
    doc = {
        "state": str(path),
        "experiment": cfg.name,
        "metric": cfg.metric,
        "goal": cfg.goal,
        "generation": state.generation,
        "points": [{**point_doc(p), "reason": p.reason} for p in state.points],
        "fit": fit,
        "fit_error": fit_error,
        "best": None
        if best is None
        else {
            "id": best.id,
            "params": best.params,
            "value": best.value,
            "on_edge": edge_dims(state.space, best.params),
        },
        "raw_best": None
        if raw is None
        else {"id": raw.id, "params": raw.params, "value": raw.value},
        "converged": evidence.stop,
        "stop": {
            "rule": evidence.rule,
            "reason": evidence.reason,
            "tolerance": evidence.tolerance,
            "last_gaps": list(evidence.gaps),
            "agreements_needed": evidence.k,
            "stall": evidence.stall,
            "stall_needed": evidence.stall_needed,
            "promised_gain": json_number(evidence.gain),
            "neighbour_loo_error": json_number(evidence.local_error),
            "check_gap": json_number(evidence.away),
            "checking_away": evidence.explore,
        },
        "phase": policy.current_phase(state),
        "tolerance": cfg.tolerance,
        "gpu_hours": gpu_hours,
        "budget": {
            "max_points": policy.max_points(state, study.experiment),
            "remaining_points": study.remaining_points(),
            "trainings": study.spent_points(),
            "imported_points": study.imported_points(),
            "max_gpu_hours": cfg.max_gpu_hours,
            "remaining_gpu_hours": None
            if cfg.max_gpu_hours is None
            else max(cfg.max_gpu_hours - gpu_hours, 0.0),
            "exhausted": study.budget_reason(),
            "committed_gpu_hours": None if held is None else held.committed,
        },
    }
    doc["running"] = running_progress(state, layout.run_dir(str(path)))
    doc["pace"] = _pace(state, layout.run_dir(str(path)))
    doc["diverged"] = guard_summary(state)
    doc["costs"] = frontier.cost_summary(study)
    doc["notes"] = [*_unusable_fit_note(study, fit), *trust_notes(doc)]
    doc["controller"] = liveness.liveness(str(path), now)
    return doc


def activity_lines(doc: dict[str, Any], now: float) -> list[str]:
    """What ``status`` says of the search's activity: each running point's progress, the
    diverged points and the controller (:func:`write_guard_lines`, the liveness line)."""
    from nas.control import liveness

    lines = io.StringIO()
    write_guard_lines(doc, lines)
    return [
        *lines.getvalue().splitlines(),
        liveness.liveness_line(doc["controller"], doc["state"], now),
    ]


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The summary below the points table, one finding per line."""
    lines = [f"experiment {doc['experiment']} ({doc['goal']} {doc['metric']}), "]
    lines[0] += plural(len(doc["points"]), "point")
    best = doc["best"]
    if best is not None:
        lines.append(
            f"best measured: point {best['id']} ({params_text(best['params'])}) = "
            f"{number_text(best['value'])}"
        )
    raw = doc["raw_best"]
    if raw is not None and best is not None and raw["id"] != best["id"]:
        lines.append(f"best single measurement: point {raw['id']} = {number_text(raw['value'])}")
    fit = doc["fit"]
    if fit is not None:
        lines.append(
            f"spline: predicted {optimum_word(doc['goal'])} "
            f"{number_text(fit['predicted_max'])} at {params_text(fit['argmax'])}"
        )
        lines.append(
            f"fit: N = {fit['n_support']}, LOO RMSE {number_text(fit['loo_rmse'])} "
            f"(tolerance {doc['tolerance']:g})"
        )
        if fit["measured_since"]:
            lines[-1] += f"; fit {fit['stored']}, {fit['measured_since']} measured since"
        if fit["noise"]:
            lines.append(noise_line(fit["noise"]))
        if fit["warped"]:
            lines.append(
                f"log scale for the spline (smaller leave-one-out error): "
                f"{', '.join(fit['warped'])}"
            )
        lines += [f"warning: {w}" for w in fit["warnings"]]
    else:
        lines.append(f"fit: {doc['fit_error'] or 'not yet (too few measured points)'}")
    verdict = "yes" if doc["converged"] else "no"
    phase = doc["phase"]
    lines.append(
        f"converged: {verdict} (tolerance {doc['tolerance']:g}; phase {phase['number']} "
        f"from point {phase['first_id']}: {phase['why']})"
    )
    stop = doc["stop"]
    gaps = ", ".join(f"{g:.3g}" for g in stop["last_gaps"]) or "none"
    lines.append(
        f"stop rule {stop['rule']}: {stop['reason']}; last gaps {gaps}; "
        f"best flat for {stop['stall']} measurements"
    )
    budget = doc["budget"]
    left = f"{budget['remaining_points']} of {budget['max_points']} trainings left"
    if budget["imported_points"]:
        left += f" ({budget['imported_points']} imported points not counted)"
    if budget["remaining_gpu_hours"] is not None:
        remaining = amount_text(budget["remaining_gpu_hours"])
        left += f", {remaining} of {budget['max_gpu_hours']:g} GPU-h left"
        if budget["committed_gpu_hours"]:
            committed = amount_text(budget["committed_gpu_hours"])
            left += f" ({committed} of them predicted for the points still out)"
    spent = amount_text(doc["gpu_hours"])
    lines.append(f"budget: {budget['exhausted'] or left}; {spent} GPU-h spent")
    lines += frontier.cost_lines(doc["costs"])
    lines += [f"note: {note}" for note in doc["notes"]]
    return lines


#: The most of a log's last line that :func:`failure_line` keeps.
_LAST_LINE_CHARS = 160


def failure_line(reason: str) -> str:
    """A failure's reason on the one line ``status`` gives each failed point.

    A first line ending in a colon introduces the lines below it (``no result
    file; log tail:`` and the log's last lines), which the line cannot hold: cut
    there it would end on "log tail:" and say nothing. A note in their place
    (``(empty log PATH)``, ``(no log: ...)``) stands for the label; with nothing
    below the label goes; else the last line of the tail follows, where a
    traceback ends with its error (``splinenas show`` prints the whole tail).
    """
    first, *below = reason.splitlines() or [""]
    if not first.endswith(":"):
        return first
    head, sep, _label = first[:-1].rpartition("; ")
    last = next((line.strip() for line in reversed(below) if line.strip()), "")
    if not last:
        return head or first[:-1]
    if len(below) == 1 and last.startswith("(") and last.endswith(")"):
        return f"{head}{sep}{last[1:-1]}"
    if len(last) > _LAST_LINE_CHARS:
        last = last[:_LAST_LINE_CHARS] + "..."
    return f"{first} ... {last}"


def print_status(doc: dict[str, Any], out: TextIO) -> None:
    """The points table, then the summary."""
    rows = [["id", "params", "status", "measured", "predicted", "origin", "batch"]]
    rows += [
        [
            str(p["id"]),
            params_text(p["params"]),
            p["status"],
            number_text(p["value"]),
            number_text(p["predicted"]),
            p["origin"],
            str(p["batch"]),
        ]
        for p in doc["points"]
    ]
    write_table(rows, out)
    for p in doc["points"]:  # a failed point waits for a person: say why
        if p["status"] == "failed" and p["reason"]:
            out.write(f"point {p['id']} failed: {printable(failure_line(p['reason']))}\n")
    out.write("\n" + "".join(f"{line}\n" for line in summary_lines(doc)))
    write_guard_lines(doc, out)
    if doc["pace"]:
        from nas.pointdir.result import pace_text

        out.write("training pace (rank 0, steady state):\n")
        for point_id, pace in doc["pace"].items():
            out.write(f"  point {point_id}: {pace_text(pace)}\n")


def point_pace(point: Point, folder: Path) -> dict[str, float] | None:
    """A measured point's speed figures: stored at ingest, else (older states) its result.json."""
    if "pace" in point.extra:
        return dict(point.extra["pace"]) or None
    from nas.pointdir.result import read_pace

    return read_pace(folder)


def _pace(state: State, run: Path) -> dict[str, dict[str, float]]:
    """Images/s, data-wait share and device-hours of each measured point.

    The controller stores them in the state when it ingests a result, so
    this opens no point folder; only points measured before it did (and
    that have a folder, found by one listing) are read from ``result.json``.
    """
    folders = set(os.listdir(run / layout.POINTS)) if (run / layout.POINTS).is_dir() else set()
    found = {}
    for point in state.points:
        if point.value is None or ("pace" not in point.extra and str(point.id) not in folders):
            continue
        pace = point_pace(point, layout.point_dir(run, point.id))
        if pace:
            found[str(point.id)] = pace
    return found
