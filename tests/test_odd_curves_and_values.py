"""What a probe of the reading commands found: curves of a command of its own, flat and huge
measurements, and a refresh interval no timer can wait.

A command of ``[train] command`` reports what the README asks of it
(``epoch``, ``loss`` and its metric), not the built-in trainer's top-1; a
search whose measurements are all equal, or near the largest float, has a
flat or non-finite spline. The reading commands (``status``, ``show``,
``plot``, ``report``) show what there is and never a traceback. Every state
here is made through the CLI; the curves are written by a real command.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, LOG_LR, command_experiment, experiment_toml, run
from experiment_support import init_state as init_toy
from matplotlib.image import imread

from nas.pointdir import layout
from nas.record.store import StateStore

#: A command that reports as the README shows: the first point it runs ends after two
#: evaluations with its result; every other one reports two evaluations (no loss in the
#: first) and keeps training.
TRAINER = """
import json, os, time
from pathlib import Path

folder = Path(os.environ["SPLINENAS_POINT_DIR"])
first = json.loads((folder / "point.json").read_text())["point_id"] == 0
entries = [
    {"epoch": 0, "loss": 1.0, "accuracy": 50.0} if first else {"epoch": 0, "accuracy": 40.0},
    {"epoch": 1, "loss": 0.5, "accuracy": 60.0} if first else {"epoch": 1, "loss": 1.0, "accuracy": 50.0},
]
(folder / "curve.tmp").write_text("".join(json.dumps(e) + "\\n" for e in entries))
os.replace(folder / "curve.tmp", folder / "curve.jsonl")
if not first:
    time.sleep(300)  # cancelled by the test
(folder / "result.tmp").write_text(json.dumps({"metrics": {"accuracy": 60.0}}))
os.replace(folder / "result.tmp", folder / "result.json")
"""


def _wait_for(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 120
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _status(capsys: pytest.CaptureFixture, state: Path) -> dict:
    code, out, err = run(capsys, "status", "--state", str(state), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def own_search(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A search of :data:`TRAINER`: point 0 measured with its curve stored, point 1 running
    with one evaluation in its ``curve.jsonl``; the running jobs are cancelled at the end."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAINER)
    text = command_experiment(
        "own",
        [sys.executable, str(tmp_path / "train.py"), "--lr={lr}"],
        {"lr": LOG_LR},
        cluster={"max_concurrent_jobs": 2},
        metric="accuracy",
    )
    state = init_toy(tmp_path, capsys, text)
    run_dir = layout.run_dir(state)
    try:
        assert run(capsys, "run", "--state", str(state), "--once")[0] == 0
        _wait_for(lambda: (layout.point_dir(run_dir, 0) / "result.json").exists(), "point 0")
        _wait_for(lambda: (layout.point_dir(run_dir, 1) / "curve.jsonl").exists(), "point 1")
        _wait_for(
            lambda: (
                run(capsys, "run", "--state", str(state), "--once")[0] == 0
                and _status(capsys, state)["points"][0]["status"] == "done"
            ),
            "point 0 to be ingested",
        )
        yield state
    finally:
        active = [p["id"] for p in _status(capsys, state)["points"] if p["status"] == "running"]
        if active:
            run(capsys, "cancel", "--state", str(state), *map(str, active))


def test_status_shows_a_running_command_s_own_metric_and_loss(
    own_search: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "status", "--state", str(own_search))
    assert code == 0, err
    assert "running: point 1: epoch 1, accuracy 50, loss 1\n" in out
    running = {item["id"]: item for item in _status(capsys, own_search)["running"]}
    assert running[1]["epoch"] == 1 and running[1]["top1"] is None
    assert running[1]["figures"] == {"loss": 1.0, "accuracy": 50.0}


def test_show_lists_only_the_figures_a_command_reported(
    own_search: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "show", "--state", str(own_search), "1")
    assert code == 0, err
    table = [line.split() for line in out[out.index("learning curve:\n") :].splitlines()[1:4]]
    assert table == [["epoch", "loss", "accuracy"], ["0", "-", "40"], ["1", "1", "50"]]
    # a measured point's curve comes from the state, the command's own accuracy kept in it
    (layout.point_dir(layout.run_dir(own_search), 0) / "curve.jsonl").unlink()
    code, out, err = run(capsys, "show", "--state", str(own_search), "0")
    assert code == 0, err
    table = out[out.index("learning curve:\n") :].splitlines()[1:4]
    assert [line.split() for line in table] == [
        ["epoch", "loss", "accuracy"],
        ["0", "1", "50"],
        ["1", "0.5", "60"],
    ]
    assert "non-finite" not in out and "top-1" not in out
    code, out, err = run(capsys, "export", "--state", str(own_search), "--json")
    assert code == 0, err
    curve = {p["id"]: p["curve"] for p in json.loads(out)["points"]}[0]
    assert [(e["epoch"], e["loss"], e["accuracy"]) for e in curve] == [(0, 1, 50), (1, 0.5, 60)]


def test_plot_and_report_draw_a_command_s_own_metric_and_no_empty_panel(
    own_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "plot", "--state", str(own_search), "--out", str(tmp_path / "p"))
    assert code == 0, err
    image = imread(tmp_path / "p" / "learning-curves.png")
    assert image.shape[1] == 1100, "the command's accuracy and its loss, no empty top-1 panel"
    code, _, err = run(capsys, "report", "--state", str(own_search), "--out", str(tmp_path / "r"))
    assert code == 0, err
    page = (tmp_path / "r" / "index.html").read_text()
    assert "point 0: accuracy 50 at epoch 0 to 60 at epoch 1" in page  # kept in the state


#: The probe's space: a log-scale learning rate, a width and a categorical optimiser.
MIXED = {
    "lr": LOG_LR,
    "hidden": {"type": "int", "low": 8, "high": 128},
    "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
}


def _recorded(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    values: list[str],
    space: dict | None = None,
    **settings: object,
) -> Path:
    """A toy over ``space`` (two floats unless given) whose first points are recorded as ``values``."""
    text = experiment_toml("odd", space or {"x": FLOAT_BOX, "y": FLOAT_BOX}, **settings)
    state = init_toy(tmp_path, capsys, text)
    for point_id, value in enumerate(values):
        code, _, err = run(capsys, "record", "--state", str(state), str(point_id), value)
        assert code == 0, err
    return state


def _draws(tmp_path: Path, capsys: pytest.CaptureFixture, state: Path, sheet: str) -> None:
    for command in ("plot", "report"):
        out = tmp_path / command
        code, _, err = run(capsys, command, "--state", str(state), "--out", str(out))
        assert code == 0 and "Traceback" not in err, err
    assert (tmp_path / "plot" / f"{sheet}.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "index.html").stat().st_size > 10_000


def test_plot_and_report_draw_a_search_whose_measurements_are_all_equal(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = _recorded(tmp_path, capsys, ["70"] * 5, metric="accuracy")
    _draws(tmp_path, capsys, state, "projections")
    (tmp_path / "mixed").mkdir()
    state = _recorded(tmp_path / "mixed", capsys, ["70"] * 5, MIXED, metric="accuracy")
    _draws(tmp_path / "mixed", capsys, state, "projections-sgd")


@pytest.fixture
def huge(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The probe's search without a value_range, measured near the largest float and below the
    smallest: its spline is not finite."""
    state = _recorded(tmp_path, capsys, [], MIXED, metric="score", design="space-filling")
    with StateStore.open(state) as store:  # as a state written before the bound holds them
        for point_id, value in enumerate([1e300, 1e-300, 5e-324, 1.7e308]):
            store.state.record(point_id, value)
        store.commit()
    assert run(capsys, "record", "--state", str(state), "4", "1")[0] == 0
    assert _status(capsys, state)["fit"]["predicted_max"] is None
    return state


def test_plot_and_report_draw_measurements_near_the_largest_float(
    huge: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _draws(tmp_path, capsys, huge, "projections-sgd")


def test_show_says_dash_for_a_prediction_that_is_not_finite(
    huge: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "show", "--state", str(huge), "0")
    assert code == 0, err
    assert "the spline's predicted maximum: - at " in out


@pytest.mark.parametrize("seconds", ["inf", "1e300", "nan", "0", "86401"])
def test_report_watch_is_a_positive_wait_of_at_most_a_day(
    seconds: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = _recorded(tmp_path, capsys, [])
    code, _, err = run(capsys, "report", "--state", str(state), "--out", str(tmp_path / "r"),
                       "--watch", seconds)  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert f"--watch: expected seconds more than 0 and at most 86400 (a day), got {seconds}" in err
    assert not (tmp_path / "r").exists()


def test_report_watch_of_a_day_writes_the_page_once_without_a_controller(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = _recorded(tmp_path, capsys, [])
    code, _, err = run(capsys, "report", "--state", str(state), "--out", str(tmp_path / "r"),
                       "--watch", "86400")  # fmt: skip
    assert code == 0, err
    assert "no controller runs any more" in err
    assert 'http-equiv="refresh"' not in (tmp_path / "r" / "index.html").read_text()
    assert os.path.getsize(tmp_path / "r" / "index.html") > 1000
