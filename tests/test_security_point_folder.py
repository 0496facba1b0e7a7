"""A point folder is used only while it is a real folder.

A job (or anyone who may write ``points/``) can put a symlink where a point
folder belongs. Followed, the controller would record another folder's
``result.json`` as the point's measurement, delete its ``checkpoint.pt`` and
write its files there. The point fails instead, once, with a reason that
names the link; nothing in the link's target is read, renamed, deleted or
written. The run folder itself may be a symlink (to scratch space).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment, run
from test_ingest_files import PARAMS

from nas.commands.main import main
from nas.control.ingest import (
    archive_attempt,
    archive_outcome_files,
    check_result,
    drop_checkpoint,
    judge,
    set_aside,
)
from nas.pointdir.layout import (
    CHECKPOINT_FILE,
    CURVE_FILE,
    ERROR_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    PointFolderError,
)
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

REPO = Path(__file__).resolve().parent.parent
SCORE = REPO / "examples" / "shell" / "score.sh"
#: What the folder a link points to holds, file by file; none of it may change.
VICTIM = {
    RESULT_FILE: '{"metrics": {"score": 5}}\n',
    CHECKPOINT_FILE: "weights of another training\n",
    PROGRESS_FILE: '{"epochs_completed": 1, "step_in_epoch": 0}\n',
    ERROR_FILE: '{"kind": "x", "rank": 0, "message": "m"}\n',
    CURVE_FILE: '{"epoch": 0}\n',
}


def victim(folder: Path) -> Path:
    """A folder of someone's files, as :data:`VICTIM` lists them."""
    folder.mkdir(parents=True)
    for name, text in VICTIM.items():
        (folder / name).write_text(text)
    return folder


def untouched(folder: Path) -> bool:
    """Whether ``folder`` holds exactly what :func:`victim` put there."""
    return {p.name: p.read_text() for p in folder.iterdir()} == VICTIM


def search(tmp_path: Path, command: list[str], *, max_points: int = 2) -> Path:
    """``init`` of a command's search in ``tmp_path``; its state file."""
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment("own", command, space, metric="score", max_points=max_points,
                              cluster={"max_attempts": 3})  # fmt: skip
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 0
    return tmp_path / "state" / "own.h5"


def statuses(state: Path) -> dict[int, tuple[str, str]]:
    return {p.id: (p.status.value, p.reason) for p in load_state(state).points}


def test_a_point_folder_swapped_for_a_symlink_fails_without_touching_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = victim(tmp_path / "victim")
    script = tmp_path / "swap.sh"
    script.write_text(
        f'#!/bin/sh\nd="$SPLINENAS_POINT_DIR"\nmv "$d" "$d.moved" && ln -s "{target}" "$d"\n'
    )
    script.chmod(0o755)
    state = search(tmp_path, ["./swap.sh"])
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    for point_id, (status, reason) in statuses(state).items():
        assert status == "failed", reason
        assert f"points/{point_id} is a symbolic link to {target}" in reason, reason
        assert "must be a real folder" in reason and f"splinenas rerun {point_id}" in reason
    # its files as they were (the job itself, not the controller, may write beside them)
    assert {name: (target / name).read_text() for name in VICTIM} == VICTIM
    assert not list(target.glob("*.rejected-*")) and not (target / "point.json").exists()
    assert len(list((tmp_path / "state" / "own" / "jobs").iterdir())) == 2  # none retried


def test_a_link_or_file_planted_where_a_point_folder_goes_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = victim(tmp_path / "victim")
    state = search(tmp_path, [str(SCORE), "{lr}", "{width}"], max_points=3)
    points = tmp_path / "state" / "own" / "points"
    points.mkdir(parents=True)
    (points / "0").symlink_to(target)
    (points / "1").write_text("a file\n")
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    found = statuses(state)
    assert found[0][0] == "failed" and "its job cannot be prepared" in found[0][1]
    assert f"points/0 is a symbolic link to {target}" in found[0][1]
    assert found[1][0] == "failed" and "points/1 is a regular file" in found[1][1]
    assert found[2][0] == "done"
    assert untouched(target) and (points / "1").read_text() == "a file\n"


@pytest.mark.parametrize("status", ["cancelled", "submitting"])
def test_a_waiting_points_folder_replaced_by_a_symlink_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    """A cancelled point is looked at for a result run by hand; a point left ``submitting``
    by a killed controller for the result of a job that may have run."""
    monkeypatch.chdir(tmp_path)
    target = victim(tmp_path / "victim")
    state = search(tmp_path, [str(SCORE), "{lr}", "{width}"])
    with StateStore.open(state) as store:
        store.state.update_point(0, attempts=1, job_name="own-p0-r0a1s0")
        store.state.set_status(0, PointStatus(status))
        store.commit()
    points = tmp_path / "state" / "own" / "points"
    points.mkdir(parents=True)
    (points / "0").symlink_to(target)
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    found = statuses(state)
    if status == "cancelled":
        assert found[0] == ("cancelled", "")
    else:
        assert found[0][0] == "failed" and "points/0 is a symbolic link to" in found[0][1]
    assert found[1][0] == "done" and untouched(target)


def test_a_run_folder_that_is_a_symlink_to_scratch_space_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "scratch" / "own"
    (scratch / "points").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "own").symlink_to(scratch)
    state = search(tmp_path, [str(SCORE), "{lr}", "{width}"])
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    assert [status for status, _ in statuses(state).values()] == ["done", "done"]
    assert (scratch / "points" / "0" / RESULT_FILE).is_file()


#: Each way the controller reads, renames or deletes in a point folder.
USES: dict[str, Callable[[Path], object]] = {
    "check_result": lambda folder: check_result(folder, 0, PARAMS),
    "judge": lambda folder: judge(folder, 0, PARAMS, cancelled=False, log=folder / "x.log"),
    "set_aside": lambda folder: set_aside(folder / RESULT_FILE, "bad"),
    "drop_checkpoint": drop_checkpoint,
    "archive_outcome_files": lambda folder: archive_outcome_files(folder, "job"),
    "archive_attempt": lambda folder: archive_attempt(folder, "diverged-seed0"),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_ingest_refuses_a_point_folder_that_is_a_symlink(tmp_path: Path, use: str) -> None:
    target = victim(tmp_path / "victim")
    folder = tmp_path / "points" / "0"
    folder.parent.mkdir()
    folder.symlink_to(target)
    with pytest.raises(PointFolderError, match="is a symbolic link to"):
        USES[use](folder)
    assert untouched(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_result_read_from_a_folder_of_another_user_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, [str(SCORE), "{lr}", "{width}"])
    folder = tmp_path / "state" / "own" / "points" / "0"
    folder.mkdir(parents=True)
    os.chown(folder, 4321, 4321)
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    code, out, err = run(capsys, "show", "--state", str(state), "0", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done"
    ingest = next(e["message"] for e in doc["events"] if e["kind"] == "ingest")
    assert "points/0 belongs to uid 4321, not to uid 0" in ingest, ingest
