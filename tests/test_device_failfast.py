"""A GPU job on a machine whose ranks see no GPU stops at once, is not retried, and says why.

The real trainer runs on the local backend with ``[cluster] gpus_per_node = 1``
and every device hidden (``CUDA_VISIBLE_DEVICES=""``, as on this CPU machine):
it must leave ``error.json`` of kind "environment" before it reads any data,
and the controller must fail the point once, with the reason in ``status``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state

from nas.commands.main import main
from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import load_state

REPO = Path(__file__).resolve().parent.parent


def test_a_gpu_job_without_a_visible_gpu_fails_once_with_the_environment_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("ZE_AFFINITY_MASK", "")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    text = experiment_text(
        experiment={"max_points": 2, "batch_size": 1},
        cluster={"python": sys.executable, "gpus_per_node": 1, "max_concurrent_jobs": 1},
    )
    state_path = init_state(tmp_path, text)
    outcome = run_controller(
        state_path, poll=0.2, max_cycles=600, progress=lambda s: None, cwd=tmp_path
    )
    assert outcome.cycles >= 1
    state = load_state(state_path)
    failed = [p for p in state.points if p.status is PointStatus.FAILED]
    assert failed and all(p.attempts == 1 for p in failed)  # never retried
    assert not any(p.status is PointStatus.DONE for p in state.points)
    folder = layout.point_dir(layout.run_dir(state_path), failed[0].id)
    error = json.loads((folder / "error.json").read_text())
    assert error["kind"] == layout.ENVIRONMENT_FAILURE and error["exception"] == "DeviceError"
    assert "CUDA_VISIBLE_DEVICES=''" in error["message"]
    assert re.match(r"rank 0 of 1 \(\w+\), .*local rank 0 of 1 on this node", error["message"])
    assert not (folder / "checkpoint.pt").exists()
    for name in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        assert name in failed[0].reason
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["status", "--state", str(state_path)]) == 0
    shown = capsys.readouterr().out
    assert "CUDA_VISIBLE_DEVICES=''" in shown and "ZE_AFFINITY_MASK" in shown
