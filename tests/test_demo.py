"""``splinenas demo``: the bundled experiment, its --fast variant, and a real run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from demo_support import DemoRun, demo_argv, demo_env

from nas.commands.demo import (
    DEMO_EXPERIMENT,
    FAST_CHANGES,
    demo_text,
    quiet_progress,
    with_values,
)
from nas.commands.main import main
from nas.config import parse_experiment
from nas.control.cycle import CycleSummary
from nas.control.plan import Stop
from nas.record.state import SPLINE_ORIGINS, PointStatus
from nas.record.store import StateStore
from nas.search.optimizer import SplineOptimizer

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TABLE_HEADER = ["id", "params", "predicted", "measured", "|error|"]


# ---------------------------------------------------------------------------- the experiment


def test_jobs_folder_links_to_the_shipped_demo_experiment():
    assert (ROOT / "jobs" / "demo-digits.toml").resolve() == DEMO_EXPERIMENT


def test_fast_variant_changes_only_its_keys():
    full = parse_experiment(demo_text(fast=False))
    fast = parse_experiment(demo_text(fast=True))
    assert (fast.experiment.name, fast.experiment.max_points, fast.train.epochs) == (
        "demo-digits-fast",
        6,
        2,
    )
    # one proposal after the d+2 initial design
    design = SplineOptimizer(fast.space, fast.experiment.search_settings()).initial_design()
    assert fast.experiment.max_points == len(design) + 1
    changed = {table for table, _ in FAST_CHANGES}
    for table, section in full.sections().items():
        if table not in changed:
            assert fast.sections()[table] == section
    assert fast.space.initial_design() == full.space.initial_design()
    assert fast.cluster.backend == "local" and fast.cluster.env_file is None


def test_with_values_keeps_comments_and_other_tables():
    text = '[a]\nx = 1  # the x\ny = "k"\n[b]\nx = 2\n'
    assert with_values(text, {("a", "x"): 5, ("b", "x"): "z"}) == (
        '[a]\nx = 5  # the x\ny = "k"\n[b]\nx = "z"\n'
    )


@pytest.mark.parametrize(
    "text, match",
    [
        ("[a]\ny = 1\n[b]\nx = 2\n", r"not set in the experiment text: \[a\] x"),
        ("[a]\nx = 1\nx = 2\n", r"\[a\] x is set twice"),
    ],
)
def test_with_values_names_the_key_it_cannot_change(text, match):
    with pytest.raises(ValueError, match=match):
        with_values(text, {("a", "x"): 3})


def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["demo", "--fast", "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_progress_prints_a_cycle_only_when_something_changed(capsys):
    def summary(cycle: int, done: int, stop: Stop | None = None) -> CycleSummary:
        counts = {"done": done, "running": 1, "pending": 0, "failed": 0}
        return CycleSummary(cycle, counts, 0, 90.0, None, 0.0, (), stop)

    report = quiet_progress(sys.stderr)
    for item in (summary(1, 0), summary(2, 0), summary(3, 1), summary(4, 1, Stop("converged"))):
        report(item)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["cycle 1", "cycle 3", "cycle 4"]


# ---------------------------------------------------------------------------- end to end


def _check_pngs(folder: Path) -> None:
    names = sorted(p.name for p in folder.glob("*.png"))
    assert {"convergence.png", "predicted-vs-measured.png", "projections.png"} <= set(names)
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, name


@pytest.mark.slow
def test_the_demo_interrupted_resumed_and_reported(demo_run: DemoRun) -> None:
    """The session's demo run (``demo_support.py``): Ctrl-C after its first measurement, then
    the same command again to the end, then once more with ``--json`` on the finished search."""
    state = demo_run.state
    assert "search paused" in demo_run.paused.stdout
    assert "again to resume" in demo_run.paused.stdout
    paused = StateStore.read(demo_run.paused_state)
    design = len(paused.points)  # the design is stored whole at init: d+2 = 5 points
    assert design == 5 and paused.with_status(PointStatus.DONE)

    second = demo_run.resumed
    assert f"resuming {state}" in second.stderr
    final = StateStore.read(state)
    budget = parse_experiment(demo_text(fast=False)).experiment.max_points
    initial = [p for p in final.points if p.origin == "initial"]
    proposed = [p for p in final.points if p.origin in SPLINE_ORIGINS]
    assert len(initial) + len(proposed) == len(final.points)
    assert len(initial) == design and all(p.status is PointStatus.DONE for p in initial)
    assert 1 <= len(proposed) <= budget - design
    assert all(p.status is PointStatus.DONE for p in proposed)
    assert all(p.predicted is not None and 0.0 <= p.value <= 100.0 for p in proposed)
    assert all(p.attempts == 1 for p in final.points)  # the interrupted job was re-attached

    lines = second.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == TABLE_HEADER)
    for offset, point in enumerate(proposed, start=1):
        row = lines[header + offset].split()
        params = ",".join(f"{k}={v}" for k, v in point.params.items())
        assert row[:2] == [str(point.id), params]
        assert float(row[2]) == pytest.approx(point.predicted, rel=1e-5)
        assert float(row[3]) == pytest.approx(point.value, rel=1e-5)
        assert float(row[4]) == pytest.approx(abs(point.value - point.predicted), rel=1e-4)
    assert "search ended: max_points reached" in second.stdout or "converged" in second.stdout
    _check_pngs(state.parent / "demo-digits" / "plots")

    again = subprocess.run(
        demo_argv("--json"), cwd=demo_run.folder, env=demo_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["finished"] is True and doc["state"] == str(state)
    assert [p["id"] for p in doc["proposed"]] == [p.id for p in proposed]
    # the experiment gives the metric's noise sd: the best is the point with the best
    # smoothed value of a spline fitted afresh here; the top measurement is shown apart
    cfg = parse_experiment(demo_text(fast=False))
    assert cfg.experiment.noise is not None
    refit = SplineOptimizer(final.space, cfg.experiment.search_settings())
    for point in final.points:
        refit.tell(point.params, point.value)
    assert doc["best"]["params"] == refit.best[0]
    (smoothed,) = refit.fitted_values([refit.best[0]])
    assert doc["best"]["smoothed"] == pytest.approx(smoothed, rel=1e-9)
    assert doc["best"]["value"] == refit.best[1]
    assert doc["raw_best"]["value"] == max(p.value for p in final.points)
    assert doc["noise_sd"] == cfg.experiment.noise
    if doc["raw_best"]["id"] != doc["best"]["id"]:
        assert f"best single measurement: point {doc['raw_best']['id']}," in second.stdout
    assert len(StateStore.read(state).points) == len(final.points)  # nothing trained again
    assert doc["fit"]["n_support"] == len(final.points) and doc["fit"]["stored"] is not None
    # leave-one-out errors carry the noise: held to twice its sd when that is looser
    loose = doc["fit"]["loo_rmse"] > max(doc["tolerance"], 2 * doc["noise_sd"])
    assert any(n.startswith("the fit is looser than the tolerance") for n in doc["notes"]) == loose
    assert "spline: predicted top1 " in second.stdout


def test_run_on_the_demo_experiment_trains_on_one_thread_as_demo_does(tmp_path: Path) -> None:
    """`splinenas run` gets the thread count from the experiment, not from `demo`'s environment."""
    from nas.cluster.render import render_job_script
    from nas.config import load_experiment

    cluster = load_experiment(ROOT / "jobs" / "demo-digits.toml").cluster
    script = render_job_script(
        "local", cluster=cluster, point_dir=str(tmp_path), job_name="j", stdout_path="log"
    )
    assert 'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"' in script
