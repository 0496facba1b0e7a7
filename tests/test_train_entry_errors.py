"""How the built-in trainer ends on each kind of failure: the exit code, ``error.json``
and the log, and what the controller makes of it.

Out of memory on any device is infeasible (exit 4); a ``point.json`` whose model
coordinates build no network is a usage error (exit 2, one line); a ``--deadline``
is read by the rule of ``SPLINENAS_DEADLINE``; a backend that fails after the
rendezvous says so; a torch older than the trainer's floor is an environment error.
"""

from __future__ import annotations

import configparser
import json
import logging
import re
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from test_train_run import PARAMS, write_point  # noqa: E402

from nas import trial
from nas.control.ingest import Verdict, judge
from nas.pointdir.layout import (
    ENVIRONMENT_FAILURE,
    EXIT_ERROR,
    EXIT_OUT_OF_MEMORY,
    EXIT_USAGE,
)
from nas.train import run
from nas.train.__main__ import is_out_of_memory, main, parse_args
from nas.train.device import MIN_TORCH, DeviceError, require_torch
from nas.train.launch import LaunchError, detect, init_process_group

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def stand_in_point(directory: Path) -> Path:
    """A point folder for a run whose segment is replaced: only the file must exist."""
    directory.mkdir()
    (directory / "point.json").write_text("{}")
    return directory


def error_file(directory: Path) -> dict[str, object]:
    return json.loads((directory / "error.json").read_text())


def verdict(directory: Path) -> Verdict:
    outcome, _ = judge(directory, 1, {}, cancelled=False, log=directory / "none.log")
    return outcome.verdict


def failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "nas.train" and r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- out of memory


def cpu_allocator_failure() -> RuntimeError:
    """The CPU allocator's own error (probe-t §3): a petabyte is refused at once."""
    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    pytest.skip("this machine allocated a petabyte")


def test_the_cpu_allocator_running_out_is_out_of_memory() -> None:
    exc = cpu_allocator_failure()
    assert "can't allocate memory" in str(exc) and type(exc) is RuntimeError
    assert is_out_of_memory(exc)
    assert is_out_of_memory(MemoryError())


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError(
            "level_zero backend failed with error: 39 (UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)"
        ),
        RuntimeError("Native API failed. Native API returns: -5 (PI_ERROR_OUT_OF_RESOURCES)"),
        RuntimeError("ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY"),
        torch.OutOfMemoryError("XPU out of memory. Tried to allocate 20.00 GiB"),
    ],
    ids=["unified-runtime", "sycl-pi", "level-zero", "xpu-allocator"],
)
def test_intel_gpu_out_of_memory_is_out_of_memory(exc: Exception) -> None:
    assert is_out_of_memory(exc)


def test_other_failures_are_not_out_of_memory() -> None:
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # no allocator raises that


def test_a_cpu_run_out_of_memory_exits_4_and_the_point_is_infeasible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exc = cpu_allocator_failure()

    def fail(segment: run.Segment) -> int:
        raise exc

    monkeypatch.setattr(run, "run_segment", fail)
    point = stand_in_point(tmp_path / "p")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_OUT_OF_MEMORY
    assert error_file(point)["oom"] is True
    assert verdict(point) is Verdict.INFEASIBLE  # not retried


# --------------------------------------------------------------------------- usage errors


def test_model_coordinates_no_network_has_exit_2_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    point = write_point(tmp_path / "p", epochs=1, steps=1, params={**PARAMS, "wings": 2})
    assert main(["--point-dir", str(point)], environ={}) == EXIT_USAGE
    (record,) = failure_records(caplog)
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert record.getMessage().startswith(f"rank 0: {point / 'point.json'}: family 'resnet'")
    assert "unknown coordinate(s) ['wings']" in record.getMessage()
    error = error_file(point)
    assert (error["exception"], error["exit_code"], error["oom"]) == ("ModelConfigError", 2, False)
    assert verdict(point) is Verdict.USAGE  # the same every attempt: not retried


def test_a_point_file_that_cannot_be_read_exits_2_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    point = tmp_path / "p"
    point.mkdir()
    (point / "point.json").write_text("{} {}")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_USAGE
    (record,) = failure_records(caplog)
    assert record.exc_info is None and "not valid JSON" in record.getMessage()
    assert error_file(point)["exception"] == "PointFileError"
    assert verdict(point) is Verdict.USAGE


def test_a_bug_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(segment: run.Segment) -> int:
        raise KeyError("something nobody foresaw")

    monkeypatch.setattr(run, "run_segment", fail)
    point = stand_in_point(tmp_path / "p")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_ERROR
    (record,) = failure_records(caplog)
    assert record.exc_info is not None
    assert error_file(point)["exception"] == "KeyError"
    assert verdict(point) is Verdict.FAILED  # retried: another attempt may pass


# --------------------------------------------------------------------------- deadline


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "soon", "12:00"])
def test_a_deadline_that_is_no_finite_time_is_refused_both_ways(tmp_path: Path, text: str) -> None:
    (tmp_path / "point.json").write_text("{}")
    with pytest.raises(trial.TrialError, match="expected UNIX seconds"):
        trial.deadline({"SPLINENAS_DEADLINE": text})
    with pytest.raises(SystemExit) as exited:
        parse_args(["--point-dir", str(tmp_path), f"--deadline={text}"], environ={})
    assert exited.value.code == EXIT_USAGE
    assert main(["--point-dir", str(tmp_path), f"--deadline={text}"], environ={}) == EXIT_USAGE


@pytest.mark.parametrize("text", ["1700000000", "1.7e9", "-5", "0"])
def test_a_finite_deadline_is_read_alike_both_ways(tmp_path: Path, text: str) -> None:
    (tmp_path / "point.json").write_text("{}")
    from_flag = parse_args(["--point-dir", str(tmp_path), f"--deadline={text}"], environ={})
    from_env = parse_args(["--point-dir", str(tmp_path)], environ={"SPLINENAS_DEADLINE": text})
    assert from_flag.deadline == from_env.deadline == float(text)


# --------------------------------------------------------------------------- backend start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_backend_that_fails_after_the_rendezvous_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """probe-m §7: an NCCL plugin failure was reported as a rendezvous timeout."""
    port = _free_port()
    server = dist.TCPStore("127.0.0.1", port, 2, is_master=True, wait_for_workers=False)

    def broken(**kwargs: object) -> None:
        raise dist.DistBackendError("NCCL error: unhandled system error (stand-in)")

    monkeypatch.setattr(dist, "init_process_group", broken)
    environ = {
        "TORCHELASTIC_USE_AGENT_STORE": "True",  # join the store above as a client
        "SPLINENAS_RENDEZVOUS_TIMEOUT": "5",
        "NCCL_SOCKET_IFNAME": "hsn0",
        "CCL_ATL_TRANSPORT": "ofi",
        "HOME": "/not/quoted",
    }
    env = detect({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                  "MASTER_PORT": str(port)})  # fmt: skip
    with pytest.raises(LaunchError) as raised:
        init_process_group(env, torch.device("cpu"), environ)
    message = str(raised.value)
    assert "could not complete the rendezvous" not in message
    assert f"rank 0 of 2 joined the rendezvous at 127.0.0.1:{port}" in message
    assert "the 'gloo' process-group backend (gloo) could not start on cpu" in message
    assert "NCCL error: unhandled system error (stand-in)" in message
    assert "NCCL_SOCKET_IFNAME='hsn0'" in message and "FI_PROVIDER=unset" in message
    assert "CCL_ATL_TRANSPORT='ofi'" in message and "HOME" not in message
    del server


# --------------------------------------------------------------------------- torch floor


def test_a_torch_older_than_the_floor_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "__version__", "2.2.1")
    message = (
        "torch 2.2.1 found; the built-in trainer needs torch 2.3 or later (torch.amp.GradScaler)"
    )
    with pytest.raises(DeviceError, match=re.escape(message)):
        require_torch()


@pytest.mark.parametrize("version", ["2.3.0", "2.3.0a0+git1234", "2.14.1+cu130", "3.0", "custom"])
def test_a_torch_at_or_past_the_floor_passes(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(torch, "__version__", version)
    require_torch()


def test_an_old_torch_fails_the_point_once_as_an_environment_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch, "__version__", "2.2.1+cu121")
    point = stand_in_point(tmp_path / "p")
    assert main(["--point-dir", str(point)], environ={}) == EXIT_ERROR
    error = error_file(point)
    assert (error["kind"], error["exit_code"]) == (ENVIRONMENT_FAILURE, EXIT_ERROR)
    assert "torch 2.2.1+cu121 found" in str(error["message"])
    (record,) = failure_records(caplog)
    assert record.exc_info is None
    assert verdict(point) is Verdict.ENVIRONMENT  # the controller does not retry it


def test_the_floor_is_the_one_setup_cfg_declares() -> None:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    floors = {
        (int(major), int(minor))
        for requirements in config["options.extras_require"].values()
        for major, minor in re.findall(r"^torch>=(\d+)\.(\d+)$", requirements, re.MULTILINE)
    }
    assert floors == {MIN_TORCH}
