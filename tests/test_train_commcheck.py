"""The start-up all-reduce: nccl-tests' bus bandwidth, a real two-rank gloo measurement,
the warning below a site's expectation, and where the figure goes."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nas.control.ingest import Verdict, judge
from nas.pointdir.result import pace_text, write_progress
from nas.train import commcheck
from nas.train.commcheck import CommCheck, bus_bandwidth, expected_bandwidth
from nas.train.device import DeviceError


def test_bus_bandwidth_is_nccl_tests_definition() -> None:
    # 8 ranks, 100 MB in 0.1 s: algorithm bandwidth 1 GB/s, bus 2 * 7/8 of it.
    assert bus_bandwidth(100_000_000, 0.1, 8) == pytest.approx(1.75)
    assert bus_bandwidth(100_000_000, 0.1, 2) == pytest.approx(1.0)


def test_below_the_sites_expectation_the_line_warns() -> None:
    slow = CommCheck("NCCL 2.21.5", 136, 25 * 2**20, 0.05, expected_gbps=5.0)
    fast = CommCheck("NCCL 2.21.5", 136, 25 * 2**20, 0.002, expected_gbps=5.0)
    assert slow.low and "WARNING: below the 5 GB/s" in slow.line()
    assert not fast.low and "WARNING" not in fast.line()
    assert "NCCL 2.21.5 over 136 ranks: all-reduce of 25 MiB" in fast.line()
    unknown = CommCheck("gloo", 2, 1024, 1.0, expected_gbps=None)
    assert not unknown.low and "expected_bus_bandwidth_gbps" not in unknown.fields()


def test_the_expectation_comes_from_the_environment_and_is_checked() -> None:
    assert expected_bandwidth({}) is None
    assert expected_bandwidth({"SPLINENAS_EXPECTED_BUS_GBPS": "5"}) == 5.0
    with pytest.raises(DeviceError, match="SPLINENAS_EXPECTED_BUS_GBPS='fast'"):
        expected_bandwidth({"SPLINENAS_EXPECTED_BUS_GBPS": "fast"})


def test_one_rank_measures_nothing() -> None:
    assert commcheck.measure(torch.device("cpu"), 1024, {}) is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, 2, is_master=rank == 0)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2)
    try:
        check = commcheck.measure(torch.device("cpu"), 4 * 2**20,
                                  {"SPLINENAS_EXPECTED_BUS_GBPS": "1e6"})  # fmt: skip
        Path(out, f"rank-{rank}.json").write_text(
            json.dumps({"seconds": check.seconds, "line": check.line(), **check.fields()})
        )
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_agree_on_the_slowest_time(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    documents = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert documents[0]["seconds"] == documents[1]["seconds"] > 0  # the MAX over ranks
    assert documents[0]["bus_bandwidth_gbps"] > 0
    assert documents[0]["expected_bus_bandwidth_gbps"] == 1e6
    assert "gloo over 2 ranks: all-reduce of 4 MiB" in documents[0]["line"]
    assert "WARNING" in documents[0]["line"]  # no CPU reaches a petabyte per second


def test_the_figure_reaches_progress_the_incomplete_reason_and_status(tmp_path: Path) -> None:
    figures = CommCheck("RCCL 2.20.5", 16, 25 * 2**20, 0.04, expected_gbps=5.0).fields()
    write_progress(tmp_path, point_id=3, epoch=1, step=0, reason="deadline", figures=figures)
    document = json.loads((tmp_path / "progress.json").read_text())
    assert document["bus_bandwidth_gbps"] == pytest.approx(1.2288, rel=1e-3)
    outcome, _ = judge(tmp_path, 3, {}, cancelled=False, log=tmp_path / "log")
    assert outcome.verdict is Verdict.INCOMPLETE
    assert "all-reduce 1.23 GB/s bus (WARNING: below the site's 5 GB/s)" in outcome.detail
    assert "all-reduce 1.23 GB/s bus (WARNING" in pace_text(figures)
    assert os.path.exists(tmp_path / "progress.json")


def test_the_job_prologue_logs_every_network_variable_the_trainer_quotes() -> None:
    """The shell prologue cannot import the list: the two are kept equal here."""
    prologue = (Path(commcheck.__file__).parents[1] / "cluster/templates/prologue.sh").read_text()
    logged = set(re.findall(r"\b([A-Z_]+)=\$\{\1:-unset\}", prologue))
    assert logged == set(commcheck.NETWORK_VARIABLES)
