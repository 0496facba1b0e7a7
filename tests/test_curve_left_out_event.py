"""Curve lines the reader leaves out are said where the curve is stored: a `curve` event.

curve.jsonl may not outlive the run folder, and the state's copy is what
`show`, `plot` and `export` read: a half-epoch evaluation that the reader
skips must not vanish without a word.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment

from nas.commands.main import main
from nas.record.store import StateStore

TRAIN = """
import json, os
folder = os.environ["SPLINENAS_POINT_DIR"]
with open(os.path.join(folder, "curve.jsonl"), "a") as f:
    for epoch in (0.5, 1, 1.5, 2):
        f.write(json.dumps({"epoch": epoch, "loss": 1.0 / (1 + epoch), "lr": "cosine"}) + "\\n")
with open(os.path.join(folder, "result.json"), "w") as f:
    json.dump({"metrics": {"score": 1.0}}, f)
"""


def test_skipped_curve_lines_and_fields_are_said_in_a_curve_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAIN)
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment(
        "own", [sys.executable, "train.py", "{lr}"], space, metric="score",
        cluster={"max_attempts": 1, "max_concurrent_jobs": 2}, max_points=1, batch_size=1,
    )  # fmt: skip
    (tmp_path / "own.toml").write_text(text)
    assert main(["init", "own.toml"]) == 0
    state = tmp_path / "state" / "own.h5"
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0
    with StateStore.open(state) as store:
        point = store.state.points[0]
        curve = store.state.curves[point.id]
        notes = [e.message for e in store.state.events if e.kind == "curve"]
    assert [entry["epoch"] for entry in curve] == [1, 2]
    assert len(notes) == 1
    assert "epoch: not a whole number >= 0, line skipped (2 lines, e.g. 0.5)" in notes[0]
    assert "lr: " in notes[0]
