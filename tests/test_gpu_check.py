"""benchmarks/gpu_check.sh: no visible GPU is a failure; rows are kept as they complete;
rows that no longer fit the budget are skipped and named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"

#: Stands in for the interpreter: answers each of the script's calls at once
#: (the table at the end runs on the real interpreter).
FAKE_PYTHON = f"""#!/bin/bash
case "$*" in
    *"device_check.py visibility"*) echo '{{"pipe": "visibility", "ok": true, "reason": "1 GPU"}}' ;;
    *"device_count"*) echo 1 ;;
    *"-m pytest"*) echo "2 passed in 1.0s" ;;
    *"torch.distributed.run"*) echo '{{"pipe": "allreduce", "ok": true, "reason": "one GPU"}}' ;;
    *"--only data"*) echo "decoder crashed" >&2; exit 3 ;;
    *"--only"*) args="$*"; row=${{args##*--only }}; row=${{row%% *}}
        echo "{{\\"pipe\\": \\"${{row%%:*}}\\", \\"what\\": \\"$row\\", \\"images_per_second\\": 1.5}}" ;;
    *) exec {sys.executable} "$@" ;;
esac
"""


def _run(tmp_path: Path, python: str, budget: int = 450) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": python, "GPU_CHECK_BUDGET": str(budget)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_no_visible_gpu_fails_instead_of_passing(tmp_path: Path) -> None:
    done = _run(tmp_path, sys.executable)  # this machine has no GPU
    assert done.returncode == 1
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "FAILED visibility" in summary and "no usable GPU" in summary
    rows = (tmp_path / "out" / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["ok"] is False
    assert "CUDA_VISIBLE_DEVICES" in json.loads(rows[0])["reason"]


def test_rows_are_kept_as_they_complete_and_what_no_longer_fits_is_skipped(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    done = _run(tmp_path, str(fake), budget=120)
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert done.returncode == 1, done.stdout  # the data row failed
    assert "FAILED data (exit status 3" in summary
    assert "ok model:resnet50-fp32" in summary and "ok allreduce" in summary
    for row in ("model:resnet50-bf16-cl-compile", "model:blresnext50-bf16-cl-compile"):
        assert f"SKIPPED {row}:" in summary and "the row may take 150 s" in summary
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert [r["what"] for r in rows if r["pipe"] == "model"] == [
        "model:resnet50-fp32", "model:resnet50-bf16-cl", "model:blresnext50-bf16-cl"]  # fmt: skip
    table = (tmp_path / "out" / "throughput.md").read_text()
    assert "model:resnet50-fp32" in table and "allreduce: one GPU" in table
