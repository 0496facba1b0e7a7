"""How the built-in trainer's process ends: output flushed, no interpreter teardown.

A gloo worker thread can still be releasing the last collective's tensors while
Python finalises; it then aborts the rank (exit -6) after the result was written,
about one run in twelve of two ranks on a loaded machine. The trainer leaves with
``os._exit`` once its files are written, so that teardown never runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_train_loader_edges import write_point  # noqa: E402
from test_train_run import _clean_environment  # noqa: E402

#: Runs ``python -m nas.train`` as ``-m`` does, with an exit handler that teardown would call.
RUN_WITH_TEARDOWN_PROBE = (
    "import atexit, runpy\n"
    "atexit.register(print, 'interpreter teardown ran', flush=True)\n"
    "runpy.run_module('nas.train', run_name='__main__', alter_sys=True)\n"
)


def run_trainer(point: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITH_TEARDOWN_PROBE, "--point-dir", str(point)],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_finished_training_exits_0_with_its_output_and_skips_the_teardown(tmp_path):
    point = write_point(tmp_path / "p", batch=133)
    done = run_trainer(point)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (point / "result.json").is_file()
    assert "epoch 1/1 step 3/3 epoch done" in done.stdout  # flushed into a pipe before leaving
    assert "interpreter teardown ran" not in done.stdout


def test_a_failed_training_exits_with_its_code_and_its_log_line(tmp_path):
    point = write_point(tmp_path / "p", batch=133)
    (point / "point.json").write_text("{not json")
    done = run_trainer(point)
    assert done.returncode not in (0, 1), done.stderr[-2000:]  # a classified exit, not a crash
    assert "rank 0" in done.stderr  # the log handler's line reached the pipe
    assert "interpreter teardown ran" not in done.stdout
