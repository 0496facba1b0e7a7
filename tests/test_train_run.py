"""End-to-end runs of ``python -m nas.train`` on the digits: one rank, two ranks, resume, stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.config import DataConfig, TrainConfig
from nas.pointdir.layout import EXIT_COMPLETE, EXIT_ERROR, EXIT_INCOMPLETE
from nas.pointdir.result import validate_result
from nas.train.__main__ import main
from nas.train.stop import StopControl

PARAMS = {"c1": 4, "g1": 4, "g2": 8}
FIXED = {
    "block": "basic",
    "g3": 8,
    "g4": 8,
    "d1": 1,
    "d2": 1,
    "d3": 1,
    "d4": 1,
    "stem": "basic",
    "maxpool": False,
}
#: The long-tailed digits (imbalance 0.8) leave 403 validation images: odd on purpose.
VALIDATION_IMAGES = 403
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def write_point(directory, *, epochs=2, steps=4, family="resnet", params=PARAMS):
    from nas.pointdir.point import write_point_file

    write_point_file(
        directory,
        point_id=1,
        experiment="test",
        family=family,
        params=params,
        fixed=FIXED,
        data=DataConfig(kind="digits", resolution=16),
        train=TrainConfig(epochs=epochs, batch_per_gpu=16, log_every=2, max_steps_per_epoch=steps),
        seed=7,
    )
    return directory


def final_weights(directory) -> dict[str, torch.Tensor]:
    return torch.load(directory / "checkpoint.pt", weights_only=True)["model"]


def test_single_process_run_writes_a_valid_result(tmp_path, capsys):
    point = write_point(tmp_path / "p")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_COMPLETE
    result = validate_result(point / "result.json", 1, PARAMS)
    assert (result.epochs, result.world_size, result.device) == (2, 1, "cpu")
    assert result.val_images == VALIDATION_IMAGES and result.bad_images == 0
    assert result.device_hours > 0 and result.wall_seconds > 0
    out = capsys.readouterr().out
    assert "epoch 1/2 step 2/4 loss" in out and "images/s" in out and "eta" in out
    assert not (point / "progress.json").exists()


def test_resume_after_one_epoch_gives_the_same_weights(tmp_path):
    whole = write_point(tmp_path / "whole")
    assert main(["--point-dir", str(whole)], environ={}) == EXIT_COMPLETE
    split = write_point(tmp_path / "split")
    assert main(["--point-dir", str(split), "--segment-epochs", "1"], environ={}) == EXIT_INCOMPLETE
    progress = json.loads((split / "progress.json").read_text())
    assert (progress["epochs_completed"], progress["step_in_epoch"]) == (1, 0)
    assert not (split / "result.json").exists()
    assert main(["--point-dir", str(split)], environ={}) == EXIT_COMPLETE
    expected, resumed = final_weights(whole), final_weights(split)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    a = validate_result(whole / "result.json", 1, PARAMS)
    b = validate_result(split / "result.json", 1, PARAMS)
    assert a.metrics == b.metrics and b.epochs == 2


def test_deadline_stops_with_a_checkpoint_and_the_incomplete_code(tmp_path):
    point = write_point(tmp_path / "p")
    code = main(["--point-dir", str(point), "--deadline", str(time.time() + 1)], environ={})
    assert code == EXIT_INCOMPLETE
    assert (point / "checkpoint.pt").is_file() and not (point / "result.json").exists()
    assert json.loads((point / "progress.json").read_text())["reason"] == "deadline"


def test_a_checkpoint_of_other_inputs_is_refused(tmp_path):
    point = write_point(tmp_path / "p", epochs=1, steps=1)
    assert main(["--point-dir", str(point), "--deadline", "0"], environ={}) == EXIT_INCOMPLETE
    write_point(point, epochs=1, steps=2)
    assert main(["--point-dir", str(point)], environ={}) == EXIT_ERROR
    error = json.loads((point / "error.json").read_text())
    assert error["exception"] == "CheckpointError" and "different point.json" in error["message"]


def test_usage_errors(tmp_path):
    assert main(["--point-dir", str(tmp_path)], environ={}) == 2
    write_point(tmp_path)
    assert main(["--point-dir", str(tmp_path), "--segment-epochs", "0"], environ={}) == 2


def test_a_stop_signal_is_noticed_at_the_next_check():
    stop = StopControl(deadline=None, device=torch.device("cpu"))
    stop.install()
    try:
        assert stop.check(0.0) is None
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.check(0.0) == "signal SIGUSR2"
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


# --------------------------------------------------------------------------- two ranks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith(("SLURM_", "LSB_", "JSM_", "OMPI_"))}
    env.update(OMP_NUM_THREADS="1", SPLINENAS_RENDEZVOUS_TIMEOUT="60")
    return env


def _check_two_rank_result(point):
    result = validate_result(point / "result.json", 1, PARAMS)
    assert result.world_size == 2
    assert result.bus_bandwidth_gbps is not None and result.bus_bandwidth_gbps > 0  # start-up check
    # 403 images over 2 ranks: each counted exactly once, no padding duplicates
    assert result.val_images == VALIDATION_IMAGES


def two_ranks(point: Path) -> subprocess.CompletedProcess:
    """The trainer on ``point`` with two ranks under torchrun, as a node of a job runs it."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    return subprocess.run(
        [*torchrun, "-m", "nas.train", "--point-dir", str(point)],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_two_ranks_under_torchrun(tmp_path):
    point = write_point(tmp_path / "p", epochs=1)
    done = two_ranks(point)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_two_rank_result(point)


@pytest.mark.slow
def test_two_ranks_from_slurm_variables(tmp_path):
    point = write_point(tmp_path / "p", epochs=1)
    port = str(_free_port())
    ranks = []
    for rank in range(2):
        env = _clean_environment()
        env.update(
            SLURM_PROCID=str(rank),
            SLURM_NTASKS="2",
            SLURM_LOCALID=str(rank),
            SLURM_JOB_ID="4242",
            SLURM_JOB_NODELIST="localhost",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        ranks.append(
            subprocess.Popen(
                [sys.executable, "-m", "nas.train", "--point-dir", str(point)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=240)[0] for process in ranks]
    assert [process.returncode for process in ranks] == [0, 0], outputs[0][-3000:]
    assert "images/s" in outputs[0] and "images/s" not in outputs[1]  # rank 0 logs progress
    _check_two_rank_result(point)
