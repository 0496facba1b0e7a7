"""What jobs write reaches people's terminals as text, and odd files do not stop ``show``.

An error's message and a job's log may hold escape sequences (colours, a
window title, a clipboard write) and bidirectional overrides: ``run``'s
narration and ``show`` print them escaped, as ``status`` does. A dangling
symlink, a FIFO or a folder among a point's logs is left out of ``show``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from experiment_support import command_experiment, run

from nas.commands.main import main

REPO = Path(__file__).resolve().parent.parent
SCORE = REPO / "examples" / "shell" / "score.sh"
#: A job that prints escape sequences and leaves them, with a bidi override, in error.json.
FAILING = r"""#!/bin/sh
printf 'job says \033[31mRED\033]0;title\007 done\n'
printf '{"kind": "x", "rank": 0, "exception": "E", "message": "\\u001b[31mRED \\u202eevil"}' \
    >"$SPLINENAS_POINT_DIR/error.json"
exit 1
"""
RAW = ("\x1b", "\x07", "\u202e")


def search(tmp_path: Path, command: list[str]) -> str:
    """``init`` of a one-attempt search of ``command`` over two points; its state path."""
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
             "width": {"type": "int", "low": 2, "high": 10}}  # fmt: skip
    text = command_experiment("esc", command, space, metric="score", max_points=2,
                              cluster={"max_attempts": 1})  # fmt: skip
    (tmp_path / "esc.toml").write_text(text)
    assert main(["init", "esc.toml"]) == 0
    return str(tmp_path / "state" / "esc.h5")


def test_run_and_show_print_a_jobs_escape_sequences_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "fail.sh"
    script.write_text(FAILING)
    script.chmod(0o755)
    state = search(tmp_path, ["./fail.sh"])
    code, _, err = run(capsys, "run", "--state", state, "--poll", "0.1")
    assert code == 0, err
    assert "rank 0: E: \\x1b[31mRED \\u202eevil" in err, err
    assert not any(char in err for char in RAW), err
    code, out, err = run(capsys, "show", "--state", state, "0")
    assert code == 0, err
    assert "rank 0: E: \\x1b[31mRED \\u202eevil" in out  # the status line and the history
    assert "job says \\x1b[31mRED\\x1b]0;title\\x07 done" in out  # the log tail
    assert not any(char in out for char in RAW), out


def test_show_leaves_out_what_is_no_regular_file_among_the_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = search(tmp_path, [str(SCORE), "{lr}", "{width}"])
    assert main(["run", "--state", state, "--poll", "0.1"]) == 0
    logs = tmp_path / "state" / "esc" / "points" / "0" / "logs"
    (logs / "dangling.log").symlink_to(tmp_path / "gone")
    os.mkfifo(logs / "pipe.log")
    (logs / "folder.log").mkdir()
    code, out, err = run(capsys, "show", "--state", state, "0")
    assert code == 0, err
    assert "log esc-p0-r0a1s0.log (last lines):" in out
    assert not any(name in out for name in ("dangling.log", "pipe.log", "folder.log")), out
