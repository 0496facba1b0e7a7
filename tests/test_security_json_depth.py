"""JSON that others wrote is read whatever it holds: nested too deeply, or read in pieces.

Python's decoder recurses once per nested array: a line of a few thousand
``[`` raises RecursionError, which no ``except ValueError`` catches. A curve
line like that is skipped as a torn line is, for the controller, ``status``
and ``show`` alike; a lock file like that is an unreadable lock. A file a
network file system hands over in pieces is read whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from experiment_support import command_experiment, run

from nas.commands.main import main
from nas.pointdir import jsonio
from nas.pointdir.curve import read_curve
from nas.pointdir.jsonio import parse_json, read_json_object
from nas.pointdir.layout import CURVE_FILE
from nas.record.lock import lock_path, read_holder

#: Deeper than any recursion limit the decoder may run under, far within the size limits.
DEEP = "[" * 50_000 + "]" * 50_000


def test_parse_json_says_nested_too_deeply_as_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(DEEP)


def test_a_curve_line_nested_too_deeply_is_skipped_like_a_torn_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"epoch": 0, "top1": 10.0}),
        '{"epoch": 1, "odd": ' + DEEP + "}",
        json.dumps({"epoch": 2, "top1": 30.0}),
        '{"epoch": 3, "top1": 4',  # torn
    ]
    (tmp_path / CURVE_FILE).write_text("\n".join(lines) + "\n")
    assert [entry["epoch"] for entry in read_curve(tmp_path)] == [0, 2]


def test_a_deeply_nested_curve_line_stops_neither_the_controller_nor_status_nor_show(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's odd curve line: its point is measured, the readers show the rest."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.sh"
    script.write_text(
        "#!/bin/sh\n"
        'd="$SPLINENAS_POINT_DIR"\n'
        'echo \'{"epoch": 0, "score": 1}\' >"$d/curve.jsonl"\n'
        f'echo \'{{"epoch": 1, "x": {DEEP}}}\' >>"$d/curve.jsonl"\n'
        'echo \'{"metrics": {"score": 1}}\' >"$d/result.json"\n'
    )
    script.chmod(0o755)
    space = {"w": {"type": "int", "low": 0, "high": 9}}
    text = command_experiment("deep", ["./train.sh"], space, metric="score", max_points=2)
    (tmp_path / "deep.toml").write_text(text)
    assert main(["init", "deep.toml"]) == 0
    state = str(tmp_path / "state" / "deep.h5")
    assert main(["run", "--state", state, "--poll", "0.1"]) == 0
    code, out, err = run(capsys, "status", "--state", state, "--json")
    assert code == 0, err
    assert [p["status"] for p in json.loads(out)["points"]] == ["done", "done"]
    code, out, err = run(capsys, "show", "--state", state, "0", "--json")
    assert code == 0, err
    assert [entry["epoch"] for entry in json.loads(out)["curve"]] == [0]


def test_a_lock_file_nested_too_deeply_is_an_unreadable_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = tmp_path / "x.h5"
    lock_path(state).write_text(DEEP)
    assert read_holder(lock_path(state)) is None
    code, _, err = run(capsys, "unlock", "--state", str(state))
    assert code == 1 and "unreadable holder" in err, err


def test_a_file_read_in_pieces_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.read`` may return fewer bytes than asked before the end (a network file system)."""
    path = tmp_path / "progress.json"
    document = {"epochs_completed": 3, "step_in_epoch": 0, "reason": "deadline " * 20}
    path.write_text(json.dumps(document))
    whole = os.read
    monkeypatch.setattr(jsonio.os, "read", lambda fd, count: whole(fd, min(count, 7)))
    assert read_json_object(path) == document
