"""Operator commands against real state files: rerun, cancel, show, unlock, expand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.cluster import JobState, LocalScheduler
from nas.pointdir import layout
from nas.record.lock import lock_path
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

ROOT = Path(__file__).resolve().parents[1]
TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX})


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A state file holding the pending initial design of the toy (points 0-4)."""
    return init_state(tmp_path, capsys, TOML)


def submit(state: Path, point_id: int, job_id: str = "7") -> None:
    with StateStore.open(state) as store:
        store.state.update_point(point_id, attempts=1, job_name=f"toy-p{point_id}-a1s0")
        store.state.set_status(point_id, PointStatus.SUBMITTING)
        store.state.update_point(point_id, job_id=job_id)
        store.state.set_status(point_id, PointStatus.SUBMITTED, f"job {job_id}")
        store.commit()


def fail(state: Path, point_id: int) -> None:
    submit(state, point_id)
    with StateStore.open(state) as store:
        store.state.set_status(point_id, PointStatus.FAILED, "gave up after 1 attempts: exit 1")
        store.commit()


def hold(state: Path) -> subprocess.Popen:
    """A live controller's stand-in: it holds the state's lock and beats as a controller
    does (a bare lock is what `add` holds: no request is queued for it) until stdin ends."""
    code = textwrap.dedent(
        """
        import sys
        from nas.control.liveness import Pulse
        from nas.record.lock import FileLock
        FileLock(sys.argv[1]).acquire()
        Pulse(sys.argv[1], 60.0)
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def held(toy: Path) -> Iterator[subprocess.Popen]:
    """The toy's lock, held by another live process until the test ends."""
    holder = hold(toy)
    yield holder
    holder.communicate("")


def test_rerun_resets_a_failed_point(toy: Path, capsys: pytest.CaptureFixture) -> None:
    fail(toy, 3)
    code, out, err = run(capsys, "rerun", "--state", str(toy), "3", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["applied"] and doc["queued"] is None
    assert doc["outcomes"][0]["changed"] and doc["outcomes"][0]["point_id"] == 3
    state = load_state(toy)
    point = state.point(3)
    assert (point.status, point.attempts, point.job_id) == (PointStatus.PENDING, 0, "")
    assert any("was failed after 1 attempts, job 7" in e.message for e in state.events)


def test_rerun_of_a_done_or_unknown_point_fails(toy: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(capsys, "record", "--state", str(toy), "1", "3.5")[0] == 0
    code, _, err = run(capsys, "rerun", "--state", str(toy), "1")
    assert code == 1 and "refused: point 1 is done" in err
    code, _, err = run(capsys, "rerun", "--state", str(toy), "42")
    assert code == 1 and "no point with id 42" in err


def test_a_locked_state_gets_the_request_queued(
    toy: Path, held: subprocess.Popen, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "cancel", "--state", str(toy), "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert not doc["applied"]
    assert Path(doc["queued"]).parent == layout.inbox_dir(layout.run_dir(toy))
    assert json.loads(Path(doc["queued"]).read_text())["ids"] == [2]
    assert f"pid {held.pid}" in err and "next cycle" in err
    assert load_state(toy).point(2).status is PointStatus.PENDING
    held.communicate("")  # the holder exits; the next command applies the queue first
    code, _, err = run(capsys, "rerun", "--state", str(toy), "2")
    assert code == 0, err
    state = load_state(toy)
    assert state.point(2).status is PointStatus.PENDING  # cancelled by the queue, then rerun
    requests = [e.message.split(" ")[0] for e in state.events if e.kind == "request"]
    assert requests == ["cancel", "rerun"]
    assert not list(layout.inbox_dir(layout.run_dir(toy)).glob("*.json"))


def test_cancel_stops_a_real_local_job(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scheduler = LocalScheduler(layout.jobs_dir(layout.run_dir(toy)))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsleep 120\n")
    job_id = scheduler.submit(script, job_name="toy-p4-a1s0", cwd=tmp_path)
    deadline = time.monotonic() + 300
    while scheduler.status([job_id])[job_id] is not JobState.RUNNING:
        assert time.monotonic() < deadline, "the sleep job did not start"
        time.sleep(0.1)
    submit(toy, 4, job_id)
    code, _, err = run(capsys, "cancel", "--state", str(toy), "4")
    assert code == 0, err
    assert f"job {job_id} cancelled" in err
    assert load_state(toy).point(4).status is PointStatus.CANCELLED
    fresh = LocalScheduler(layout.jobs_dir(layout.run_dir(toy)))
    while fresh.status([job_id])[job_id] is JobState.RUNNING:
        assert time.monotonic() < deadline, "the job survived its cancellation"
        time.sleep(0.1)
    assert fresh.status([job_id])[job_id] is JobState.CANCELLED


def test_show_collects_history_logs_and_result(toy: Path, capsys: pytest.CaptureFixture) -> None:
    submit(toy, 0)
    folder = layout.point_dir(layout.run_dir(toy), 0)
    (folder / layout.LOGS).mkdir(parents=True)
    lines = "".join(f"epoch {i}\n" for i in range(50))
    (folder / layout.LOGS / "toy-p0-a1s0.log").write_text(lines)
    (folder / "result.json").write_text(json.dumps({"point_id": 0, "metrics": {"top1": 71.5}}))
    with StateStore.open(toy) as store:
        store.state.record(0, 71.5)
        store.state.log("ingest-by-hand", "result of a job started outside the controller: 71.5", 0)
        store.commit()
    code, out, err = run(capsys, "show", "--state", str(toy), "0", "--json", "--lines", "3")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and doc["value"] == 71.5 and doc["job_id"] == "7"
    assert doc["logs"] == {"toy-p0-a1s0.log": ["epoch 47", "epoch 48", "epoch 49"]}
    assert doc["result"]["metrics"]["top1"] == 71.5 and doc["by_hand"]
    assert [e["kind"] for e in doc["events"]][:2] == ["add", "status"]
    code, out, _ = run(capsys, "show", "--state", str(toy), "0")
    assert code == 0 and "from a job started by hand" in out and "epoch 49" in out
    assert run(capsys, "show", "--state", str(toy), "9")[0] == 1


def test_unlock_refuses_a_live_holder(
    toy: Path, held: subprocess.Popen, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "unlock", "--state", str(toy))
    assert code == 1 and "still running" in err
    assert lock_path(toy).exists()


def test_unlock_removes_the_lock_of_a_dead_holder(toy: Path, capsys: pytest.CaptureFixture) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = os.uname().nodename
    lock_path(toy).write_text(json.dumps({"host": host, "pid": child.pid, "started": 1.0}))
    code, out, err = run(capsys, "unlock", "--state", str(toy), "--json")
    assert code == 0, err
    assert json.loads(out)["holder"]["pid"] == child.pid
    assert not lock_path(toy).exists()
    code, out, _ = run(capsys, "unlock", "--state", str(toy), "--json")
    assert code == 0 and json.loads(out)["removed"] is False


def test_expand_adds_the_new_design_and_skips_measured_points(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    for point in load_state(toy).points:
        assert run(capsys, "record", "--state", str(toy), str(point.id), "1.0")[0] == 0
    code, out, err = run(capsys, "expand", "--state", str(toy), "--dim", "x", "--high", "4")
    assert code == 0, err
    state = load_state(toy)
    added = [p for p in state.points if p.origin == "expand"]
    assert sorted((p.params["x"], p.params["y"]) for p in added) == [
        (1.0, 0.0),
        (4.0, -2.0),
        (4.0, 2.0),
    ]
    assert all(p.status is PointStatus.PENDING for p in added)
    assert state.space.numeric[0].high == 4.0
    assert len(state.with_status(PointStatus.DONE)) == 5
    assert err.count("skipped") == 2
    code, _, err = run(capsys, "expand", "--state", str(toy), "--refine", "x=0:1,y=0:1")
    assert code == 0, err
    refined = [p for p in load_state(toy).points if p.origin == "expand"][3:]
    # Of the sub-box's 5 points, (0, 0) is the first centre and (1, 0) the widened box's.
    assert sorted((p.params["x"], p.params["y"]) for p in refined) == [
        (0.0, 1.0),
        (0.5, 0.5),
        (1.0, 1.0),
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["expand"],
        ["expand", "--dim", "x"],
        ["expand", "--refine", "x=1"],
        ["expand", "--refine", "x=0:1", "--dim", "y", "--low", "-3"],
    ],
)
def test_expand_usage_errors(toy: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    code, _, err = run(capsys, *argv, "--state", str(toy))
    assert code == 2 and "error" in err


def test_expand_that_shrinks_is_refused_before_anything_is_queued(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "expand", "--state", str(toy), "--dim", "y", "--low", "-1")
    assert code == 1 and "does not contain the current box" in err
    assert not layout.inbox_dir(layout.run_dir(toy)).exists()


def test_texts_for_people_show_no_python_values(toy: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "show", "--state", str(toy), "1")
    assert "measured -, predicted -, origin initial" in out and "None" not in out
    for point_id in range(5):
        run(capsys, "record", "--state", str(toy), str(point_id), str(point_id))
    code, _, err = run(capsys, "propose", "--state", str(toy), "-n", "1", "--dry-run")
    assert "1 point proposed (dry run, nothing stored)" in err.splitlines()
    code, _, err = run(capsys, "expand", "--state", str(toy), "--dim", "x", "--high", "3")
    assert code == 0 and "{" not in err and "'" not in err
    assert "point 5 added: x=3,y=2" in err.splitlines()


def test_expand_widens_several_dims_in_one_call_within_the_budget(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    for point in load_state(toy).points:
        assert run(capsys, "record", "--state", str(toy), str(point.id), "1.0")[0] == 0
    argv = ["expand", "--state", str(toy), "--dim", "x", "--high", "4", "--dim", "y"]
    code, _, err = run(capsys, *argv, "--low", "-3", "--high", "3", "--max-points", "5")
    assert code == 1 and "budget has 0 of 5 left; raise it with --max-points 10" in err
    before = load_state(toy)
    assert before.space.numeric[0].high != 4 and len(before.points) == 5  # nothing changed
    code, _, err = run(capsys, *argv, "--low", "-3", "--high", "3")
    assert code == 0, err
    state = load_state(toy)
    added = [p for p in state.points if p.origin == "expand"]
    assert [p.params for p in added] == state.space.initial_design()
    assert "expand: 5 design points added;" in err and "points left" in err
    doc = json.loads(run(capsys, "status", "--state", str(toy), "--json")[1])
    assert doc["phase"]["number"] == 1 and doc["phase"]["first_id"] == added[0].id


#: The demo's ResNet experiment: model-family coordinates g1, g2 (widths) and d1 (a depth).
DIGITS = (ROOT / "jobs" / "demo-digits.toml").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dim", "g1", "--low", "-10"], "coordinate 'g1' takes at least 1, got -10"),
        (["--dim", "g1", "--low", "0"], "coordinate 'g1' takes at least 1, got 0"),
        (["--dim", "g1", "--high", "100000"], "coordinate 'g1' takes at most 65536, got 100000"),
        (
            ["--dim", "g2", "--high", "70", "--dim", "d1", "--high", "300"],
            "coordinate 'd1' takes at most 256, got 300",
        ),
    ],
)
def test_expand_refuses_a_box_the_model_family_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    """`init` refuses these bounds in the experiment file; a widened box is held to the same
    rule and wording, before anything changes, so no job is ever built from such a point."""
    state = init_state(tmp_path, capsys, DIGITS)
    before = state.read_bytes()
    code, _, err = run(capsys, "expand", "--state", str(state), *argv)
    assert code == 1 and f"expand refused: family 'resnet': {message}" in err, err
    assert len(err.strip().splitlines()) == 1
    assert state.read_bytes() == before
    assert not layout.inbox_dir(layout.run_dir(state)).exists()
    code, _, err = run(capsys, "add", "--state", str(state), "--params", "g1=-5,g2=8,d1=1")
    assert code == 1 and "outside the box" in err
    code, _, err = run(capsys, "expand", "--state", str(state), "--dim", "g1", "--low", "1")
    assert code == 0 and "box widened: g1 = [1, 32]" in err, err


@pytest.mark.parametrize(
    "argv",
    [["--dim", "x", "--high", "4_0"], ["--refine", "x=0:1_0"], ["--dim", "x", "--high", "٤"]],
)
def test_expand_bounds_are_plain_ascii_numbers(
    toy: Path, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    """A bound typed `4_0` is a typo, not 40: refused as `record` refuses such a value."""
    before = toy.read_bytes()
    code, _, err = run(capsys, "expand", "--state", str(toy), *argv)
    assert code == 2 and "is not a plain number" in err, err
    assert toy.read_bytes() == before


@pytest.mark.parametrize("action", ["rerun", "cancel"])
def test_a_request_for_a_measured_point_is_refused_not_queued(
    toy: Path, capsys: pytest.CaptureFixture, action: str
) -> None:
    assert run(capsys, "record", "--state", str(toy), "1", "3.5")[0] == 0
    holder = hold(toy)
    try:
        code, _, err = run(capsys, action, "--state", str(toy), "2", "1")
        assert code == 1 and "point 1 is done" in err and "nothing was queued" in err
        assert not list(layout.inbox_dir(layout.run_dir(toy)).glob("*.json"))
        code, _, err = run(capsys, action, "--state", str(toy), "2")  # may change: queued
        assert code == 0 and "queued" in err
    finally:
        holder.communicate("")
