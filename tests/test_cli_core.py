"""The core commands end to end: a search run by hand through the CLI alone."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.record.lock import FileLock, lock_path
from nas.record.store import load_state

ROOT = Path(__file__).resolve().parents[1]
TOML = experiment_toml(
    "toy",
    {"x": FLOAT_BOX, "y": FLOAT_BOX},
    metric="score",
    tolerance=0.05,
    max_points=20,
    stop="paper",
)


def objective(params: dict) -> float:
    return 10.0 - (params["x"] - 0.7) ** 2 - (params["y"] + 0.3) ** 2


def run_json(capsys: pytest.CaptureFixture, *argv: str) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A state file holding the pending initial design of the toy."""
    return init_state(tmp_path, capsys, TOML)


def measure_pending(capsys: pytest.CaptureFixture, state: Path) -> int:
    points = run_json(capsys, "status", "--state", str(state))["points"]
    pending = [p for p in points if p["status"] == "pending"]
    for point in pending:
        value = repr(objective(point["params"]))
        code, _, err = run(capsys, "record", "--state", str(state), str(point["id"]), value)
        assert code == 0, err
    return len(pending)


def test_search_converges_through_the_cli_alone(toy: Path, capsys: pytest.CaptureFixture) -> None:
    assert measure_pending(capsys, toy) == 5
    for _ in range(8):
        status = run_json(capsys, "status", "--state", str(toy))
        if status["converged"]:
            break
        proposed = run_json(capsys, "propose", "--state", str(toy))
        assert [sorted(p) for p in proposed] == [["id", "params", "predicted"]]
        assert measure_pending(capsys, toy) == 1
    assert status["converged"], status
    assert status["best"]["params"]["x"] == pytest.approx(0.7, abs=0.15)
    assert status["best"]["params"]["y"] == pytest.approx(-0.3, abs=0.15)
    fit = status["fit"]  # the fit `record` stored with the last measurement: status never refits
    assert fit["n_support"] == len(status["points"])
    assert fit["measured_since"] == 0
    assert load_state(toy).fits, "every proposal's fit is kept"
    code, out, _ = run(capsys, "status", "--state", str(toy))
    assert code == 0
    assert "converged: yes (tolerance 0.05; phase 0 from point 0: init)" in out
    assert "stop rule paper: a proposal was measured within the tolerance" in out
    assert f"best measured: point {status['best']['id']}" in out


def test_subprocess_status_answers_without_torch(toy: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "nas", "status", "--state", str(toy), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert len(json.loads(done.stdout)["points"]) == 5
    probe = (
        "import sys, nas.commands.main; code = nas.commands.main.main(['status', '--state', sys.argv[1]]); "
        "print(code, 'torch' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(toy)], capture_output=True, text=True, env=env
    )
    assert done.stderr.split()[-2:] == ["0", "False"], done.stderr


def test_validate_only_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toy.toml").write_text(TOML)
    monkeypatch.chdir(tmp_path)
    doc = run_json(capsys, "init", "toy.toml", "--validate-only")
    assert doc == {
        "valid": True,
        "experiment": "toy",
        "dims": ["x", "y"],
        "initial_design": 5,
        "problems": [],
        "warnings": [],
        "notes": [],
    }
    assert not (tmp_path / "state").exists()
    assert run(capsys, "init", "toy.toml")[0] == 0
    assert (tmp_path / "state" / "toy.h5").exists()  # the default path


def test_config_error_exits_1_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TOML.replace("tolerance = 0.05", "tolerance = -1.0"))
    code, out, err = run(capsys, "init", str(bad), "--state", str(tmp_path / "s.h5"))
    assert (code, out) == (1, "")
    assert f"{bad}: [experiment] tolerance: expected at least 0.0" in err
    assert not (tmp_path / "s.h5").exists()


def test_init_refuses_a_choice_that_run_could_not_pass_to_the_trainer(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A line break in a choice would break the job script's command line after submission."""
    bad = tmp_path / "bad.toml"
    space = {"x": FLOAT_BOX, "opt": {"type": "categorical", "choices": ["a", "line\nbreak"]}}
    bad.write_text(experiment_toml("toy", space))
    code, out, err = run(capsys, "init", str(bad), "--state", str(tmp_path / "s.h5"))
    assert (code, out) == (1, "")
    assert f"{bad}: [space.opt] choices: choice 1: expected one line" in err
    assert "Traceback" not in err and not (tmp_path / "s.h5").exists()


def test_init_refuses_an_existing_state(toy: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "init", str(toy.with_name("toy.toml")), "--state", str(toy))
    assert code == 1 and "already exists" in err


def test_add_records_on_an_existing_point(toy: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_json(capsys, "add", "--state", str(toy), "--params", "x=2,y=2.0", "--value", "3.5")
    assert (doc["id"], doc["created"], doc["value"], doc["origin"]) == (0, False, 3.5, "initial")
    code, _, err = run(capsys, "add", "--state", str(toy), "--params", "x=2,y=2", "--value", "4")
    assert code == 1 and "already measured (3.5)" in err and "--replace" in err
    code, out, _ = run(
        capsys, "add", "--state", str(toy), "--params", "y=2,x=2", "--value", "4", "--replace"
    )
    assert (code, out) == (0, "0\n")
    code, out, _ = run(capsys, "add", "--state", str(toy), "--params", "x=0.5,y=-1")
    assert (code, out) == (0, "5\n")
    point = load_state(toy).point(5)
    assert (point.origin, point.status.value, point.value) == ("manual", "pending", None)


@pytest.mark.parametrize(
    ("params", "message"),
    [("x=1", r"missing \['y'\]"), ("x=1,y=1,z=2", r"unknown \['z'\]"), ("x1", "expected k=v")],
)
def test_bad_params_are_usage_errors(
    toy: Path, capsys: pytest.CaptureFixture, params: str, message: str
) -> None:
    code, _, err = run(capsys, "add", "--state", str(toy), "--params", params)
    assert code == 2
    assert re.search(message, err), err


def test_record_errors(toy: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(capsys, "record", "--state", str(toy), "0", "1.5")[0] == 0
    cases = {
        ("0", "2.5"): "already measured (1.5)",
        ("9", "1"): "no point with id 9",
    }
    for (point, value), message in cases.items():
        code, _, err = run(capsys, "record", "--state", str(toy), point, value)
        assert code == 1 and message in err, err
    code, _, err = run(capsys, "record", "--state", str(toy), "1", "nan")
    assert code == 2 and "'nan' is not a finite number" in err, err
    assert run(capsys, "record", "--state", str(toy), "0", "2.5", "--replace")[0] == 0
    assert load_state(toy).point(0).value == 2.5
    assert run(capsys, "record", "--state", str(toy), "0", "abc")[0] == 2


@pytest.mark.parametrize(
    "argv",
    [["record", "３", "1"], ["record", "1_0", "1"], ["propose", "-n", "١"], ["show", "３"],
     ["rerun", "1", "٣"], ["show", "0", "--lines", "1_0"]],
)  # fmt: skip
def test_a_point_id_or_count_is_ascii_digits(
    toy: Path, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    """``int()`` reads full-width, Arabic-Indic and underscored digits: ``record ３`` recorded
    point 3."""
    code, _, err = run(capsys, argv[0], "--state", str(toy), *argv[1:])
    assert code == 2 and "is not a whole number in ASCII digits" in err, err
    assert all(point.value is None for point in load_state(toy).points)


def test_a_negative_value_in_scientific_notation_is_a_value_not_an_option(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """argparse alone takes ``-1.5e1`` for an unknown option ("VALUE is required")."""
    assert run(capsys, "record", "--state", str(toy), "1", "-1.5e1") == (
        0,
        "",
        "point 1: recorded -15\n",
    )
    code, _, err = run(
        capsys, "add", "--state", str(toy), "--params", "x=0.5,y=0", "--value", "-2E-1"
    )
    assert code == 0, err
    code, _, err = run(capsys, "record", "--state", str(toy), "2", "-inf")
    assert code == 2 and "'-inf' is not a finite number" in err
    assert [load_state(toy).point(i).value for i in (1, 5, 2)] == [-15.0, -0.2, None]


def test_writer_commands_respect_the_lock(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nas.commands.core.LOCK_WAIT_SECONDS", 0.5)
    lock = FileLock(toy)
    lock.acquire()
    try:
        code, _, err = run(capsys, "record", "--state", str(toy), "0", "1")
    finally:
        lock.release()
    assert code == 1 and f"locked by pid {os.getpid()}" in err and "waited 0.5 s" in err
    assert run_json(capsys, "status", "--state", str(toy))["points"][0]["value"] is None


def test_a_record_waits_for_the_lock_a_short_command_holds(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Trainings that end together each call ``record``: the later ones wait their turn."""
    lock = FileLock(toy)
    lock.acquire()
    threading.Timer(1.0, lock.release).start()
    started = time.monotonic()
    code, _, err = run(capsys, "record", "--state", str(toy), "0", "1")
    assert code == 0, err
    assert time.monotonic() - started >= 0.9
    assert run_json(capsys, "status", "--state", str(toy))["points"][0]["value"] == 1.0


def test_predict_and_dry_run(toy: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "predict", "--state", str(toy), "--params", "x=0,y=0")
    assert code == 1 and "cannot predict yet: no point is measured yet" in err
    measure_pending(capsys, toy)
    doc = run_json(capsys, "predict", "--state", str(toy), "--params", "x=0,y=0")
    assert {"loo_rmse", "n_support", "outside_range", "predicted"} <= set(doc)
    assert doc["predicted"] == pytest.approx(objective({"x": 0, "y": 0}))
    assert doc["n_support"] == 5
    proposals = run_json(capsys, "propose", "--state", str(toy), "-n", "2", "--dry-run")
    assert [p["id"] for p in proposals] == [None, None]
    assert len(load_state(toy).points) == 5
    assert run(capsys, "propose", "--state", str(toy), "-n", "0")[0] == 2


def test_proposing_again_while_points_wait_gives_the_rest_of_their_batch(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """One `propose -n 1` after another (the earlier points still pending) stores the batch
    one `propose -n 3` would have: spread out as fills, not crowded round the argmax."""
    measure_pending(capsys, toy)
    whole = run_json(capsys, "propose", "--state", str(toy), "-n", "3", "--dry-run")
    one_by_one = [run_json(capsys, "propose", "--state", str(toy), "-n", "1")[0] for _ in range(3)]
    assert [p["params"] for p in one_by_one] == [p["params"] for p in whole]
    assert [p.origin for p in load_state(toy).points[-3:]] == ["incremental", "fill", "fill"]


def test_export_csv(toy: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    run(capsys, "record", "--state", str(toy), "2", "9.5")
    code, out, _ = run(capsys, "export", "--state", str(toy), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 5
    assert (rows[2]["x"], rows[2]["y"], rows[2]["status"], rows[2]["value"]) == (
        "0.0",
        "0.0",
        "done",
        "9.5",
    )
    assert rows[0]["value"] == "" and rows[0]["origin"] == "initial"
    target = tmp_path / "points.csv"
    assert run(capsys, "export", "--state", str(toy), "--csv", "--out", str(target))[0] == 0
    assert target.read_text() == out
    assert run(capsys, "export", "--state", str(toy))[0] == 2  # --csv is the format to name


def test_export_never_writes_over_a_file_of_the_campaign(
    toy: Path, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """`--out` naming the state (also through a symlink), its `.prev` or a file in its run
    folder is refused before anything is written; a new file in the run folder is fine."""
    run(capsys, "record", "--state", str(toy), "2", "9.5")
    before = toy.read_bytes()
    (tmp_path / "alias.h5").symlink_to(toy)
    run_folder = toy.with_suffix("")
    run_folder.mkdir(exist_ok=True)
    kept = run_folder / "notes.txt"
    kept.write_text("mine")
    for out in (toy, tmp_path / "alias.h5", Path(f"{toy}.prev"), kept):
        code, _, err = run(capsys, "export", "--state", str(toy), "--csv", "--out", str(out))
        assert code == 2 and "is a file of the campaign" in err, out
    assert toy.read_bytes() == before and kept.read_text() == "mine"
    assert run(capsys, "status", "--state", str(toy))[0] == 0
    fresh = run_folder / "export.csv"
    assert run(capsys, "export", "--state", str(toy), "--csv", "--out", str(fresh))[0] == 0
    assert fresh.read_text().startswith("id,")


def test_export_never_writes_over_another_campaign_or_an_experiment_file(
    toy: Path, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    second = init_state(other, capsys, TOML)  # another campaign's state, and its toy.toml
    kept = {path: path.read_bytes() for path in (second, other / "toy.toml")}
    for out, kind in ((second, "an HDF5 file"), (other / "toy.toml", "a TOML file")):
        code, _, err = run(capsys, "export", "--state", str(toy), "--csv", "--out", str(out))
        assert code == 2 and f"--out {out}: is {kind}" in err, err
    assert {path: path.read_bytes() for path in kept} == kept
    earlier = tmp_path / "points.csv"  # an earlier export is replaced, as before
    earlier.write_text("old")
    assert run(capsys, "export", "--state", str(toy), "--csv", "--out", str(earlier))[0] == 0
    assert earlier.read_text().startswith("id,")


def test_missing_state_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "status", "--state", str(tmp_path / "none.h5"))
    assert code == 1 and "no state file at" in err and "splinenas init" in err


def test_status_says_what_to_trust(toy: Path, capsys: pytest.CaptureFixture) -> None:
    """A rising plane: the best is a corner, and a wobble makes the fit looser than 0.05."""
    for point_id, (x, y) in enumerate([(2, 2), (-2, -2), (0, 0), (-2, 2), (2, -2)]):
        value = x + y + (0.3 if point_id == 2 else 0.0)
        assert run(capsys, "record", "--state", str(toy), str(point_id), str(value))[0] == 0
    assert run(capsys, "propose", "--state", str(toy))[0] == 0
    doc = run_json(capsys, "status", "--state", str(toy))
    assert doc["best"]["on_edge"] == ["x = 2.0 (high)", "y = 2.0 (high)"]
    assert doc["fit"]["measured_since"] == 0 and doc["fit"]["loo_rmse"] > 0.05
    assert doc["gpu_hours"] == 0.0 and doc["budget"]["remaining_points"] == 14
    code, out, _ = run(capsys, "status", "--state", str(toy))
    lines = out.splitlines()
    assert "best measured: point 0 (x=2,y=2) = 4" in lines
    assert "budget: 14 of 20 trainings left; 0.0 GPU-h spent" in lines
    assert any(line.startswith("spline: predicted maximum ") for line in lines)
    notes = [line for line in lines if line.startswith("note: ")]
    assert notes[0].startswith("note: the fit is looser than the tolerance: a match may be luck")
    assert notes[1] == (
        "note: the best point sits on the box's edge (x = 2.0 (high), y = 2.0 (high)): "
        "the optimum may lie outside; consider `splinenas expand`"
    )


@pytest.mark.parametrize(
    ("loo", "agreement", "note"),
    [
        (1.5, 1.0, "(LOO RMSE 1.5 > tolerance 1)"),  # exact: the tolerance as set
        (1.5, 2.0, None),  # noise sd 1: a left-out measurement carries its noise
        (2.5, 2.0, "(LOO RMSE 2.5 > tolerance 2 (twice the noise sd))"),
    ],
)
def test_a_loose_fit_is_judged_at_the_tolerance_measurements_are_held_to(
    loo: float, agreement: float, note: str | None
) -> None:
    from nas.commands.summary import LOOSE_FIT, trust_notes

    doc = {
        "fit": {"loo_rmse": loo, "outside_range": False},
        "tolerance": 1.0,
        "stop": {"tolerance": agreement},
        "best": None,
        "goal": "maximize",
        "metric": "top1",
    }
    assert trust_notes(doc) == ([] if note is None else [f"{LOOSE_FIT} {note}"])


def test_validate_only_checks_what_run_needs_from_this_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Slurm example as shipped: placeholder data paths, no account, env file elsewhere."""
    monkeypatch.chdir(tmp_path)
    source = ROOT / "jobs" / "resnet18-imagenet22k-slurm.toml"
    code, out, err = run(capsys, "init", str(source), "--validate-only")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert [line.split(": ")[3] for line in lines[:3]] == [
        "[cluster] env_file",
        "[data] root",
        "[data] index",
    ]
    assert all(line.startswith(f"splinenas init: error: {source}: [") for line in lines[:3])
    assert "'/scratch/PROJECT/imagenet22k' does not exist" in lines[1]
    assert lines[3] == (
        f"splinenas init: warning: {source}: [cluster] account is not set: jobs go out "
        "without --account, which many sites reject"
    )
    assert len(lines) == 4 and not (tmp_path / "state").exists()


def test_add_on_an_existing_point_says_what_it_did(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Adding at the params of an existing point never says "nothing added" when it recorded
    or replaced the value: the message names what changed, old value and new."""
    add = ["add", "--state", str(toy), "--params", "x=2,y=2"]
    code, out, err = run(capsys, *add, "--value", "3.5")
    assert (code, out) == (0, "0\n")
    assert err.strip() == "point 0 exists already with these params; recorded 3.5", err
    code, out, err = run(capsys, *add, "--value", "74", "--replace")
    assert (code, out) == (0, "0\n")
    assert err.strip() == "point 0 exists already with these params; replaced 3.5 -> 74", err
    assert load_state(toy).point(0).value == 74.0
    code, _, err = run(capsys, *add, "--value", "74")
    assert (code, err.strip()) == (0, "point 0 exists already with these params and value 74")
    code, _, err = run(capsys, *add)
    assert (code, err.strip()) == (0, "point 0 exists already with these params; nothing added")


@pytest.mark.parametrize(
    ("text", "beyond"), [("1e999", True), ("-1E400", True), ("nan", False), ("-inf", False)]
)
def test_a_measurement_that_is_not_finite_is_a_usage_error_quoting_what_was_typed(
    toy: Path, capsys: pytest.CaptureFixture, text: str, beyond: bool
) -> None:
    """'1e999' was refused as "got inf", a number the person never typed, exit 1."""
    before = toy.read_bytes()
    for argv in (
        ["record", "--state", str(toy), "1", "--", text],
        ["add", "--state", str(toy), "--params", "x=2,y=2", f"--value={text}"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"{text!r} is not a finite number" in err, err
        assert ("beyond the largest number a float holds" in err) is beyond, err
    assert toy.read_bytes() == before


@pytest.mark.parametrize("text", ["7_1", "\u0667\u0660", "7\u00a0", "\uff17", "0x1p3", ""])
def test_a_measurement_is_plain_ascii_notation(
    toy: Path, capsys: pytest.CaptureFixture, text: str
) -> None:
    """Python's float() takes '7_1' as 71 and Arabic-Indic digits as 70: a typo or a
    pasted number would be stored as a different measurement. `record` and `add --value`
    refuse it as a usage error naming the text, and store nothing."""
    before = toy.read_bytes()
    for argv in (
        ["record", "--state", str(toy), "1", text],
        ["add", "--state", str(toy), "--params", "x=2,y=2", f"--value={text}"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"{text!r} is not a plain number" in err, err
        assert "Traceback" not in err
    assert toy.read_bytes() == before
    for text in ("71", "-1.5e1", "+.5", "7.", "1E-3"):
        argv = ["record", "--state", str(toy), "--replace", "--", "1", text]
        assert run(capsys, *argv)[0] == 0, text
    assert load_state(toy).point(1).value == 1e-3


def test_an_experiment_file_given_as_the_state_is_named_as_such(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Not "corrupt ... restore it from a backup": the person gave the wrong file."""
    experiment = toy.with_name("toy.toml")
    before = experiment.read_bytes()
    code, _, err = run(capsys, "record", "--state", str(experiment), "0", "1")
    assert code == 1 and "is a text file, not a state file" in err and "backup" not in err
    assert experiment.read_bytes() == before and not lock_path(experiment).exists()


def test_add_with_the_params_a_table_shows_takes_that_point(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``status`` shows floats to six digits: pasted into ``add``, they name the point shown."""
    space = {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 0, "high": 1},
    }
    state = init_state(tmp_path, capsys, experiment_toml("six", space, design="space-filling"))
    before = load_state(state).points
    point = next(p for p in before if float(f"{p.params['x']:.6g}") != p.params["x"])
    shown = ",".join(f"{k}={v:.6g}" for k, v in point.params.items())
    code, out, err = run(capsys, "add", "--state", str(state), "--params", shown, "--value", "5")
    assert (code, out.strip()) == (0, str(point.id)), err
    assert f"point {point.id} exists already shown with these params (stored as x=" in err
    after = load_state(state)
    assert len(after.points) == len(before) and after.point(point.id).value == 5


def test_propose_with_every_point_cancelled_says_how_to_go_on(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """Not "0 points proposed", exit 0, for ever: the search waits for nothing."""
    ids = [str(p.id) for p in load_state(toy).points]
    assert run(capsys, "cancel", "--state", str(toy), *ids)[0] == 0
    code, out, err = run(capsys, "propose", "--state", str(toy), "-n", "1")
    assert (code, out) == (1, "") and "`splinenas rerun ID...`" in err, err
    n = len(ids)
    assert f"{n} of {n} told points failed" in err  # the search's count ...
    assert f"(of the points told as failed: {n} cancelled)" in err, err  # ... and which they are
