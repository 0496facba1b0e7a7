"""Exactly once from any login node: SIGKILL mid-submission, restart on another host and TMPDIR.

A few kills per double here, in the default suite (Slurm's few, ten, run in
``tests/test_backend_slurm.py`` through a slow ``sbatch``); the campaign of 30 kills per
backend (about 30 minutes on 2 cores) is marked ``campaign``, which the default
suite leaves out: ``pytest -m campaign tests/test_kill_campaign.py``, or
``python tests/kill_campaign.py --kills 30 lsf pbs flux``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kill_campaign import campaign, can_rename_host
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

FAKES = ["lsf", "pbs", "flux"]


def check(report) -> None:
    print(report.line())
    assert report.twice() == [], report.line()
    assert report.most_unfinished <= 1, report.line()
    assert report.overlaps == 0, report.line()
    assert report.done == report.points, report.line()


@pytest.mark.parametrize("backend", FAKES)
def test_a_few_kills_on_the_doubles(tmp_path: Path, backend: str) -> None:
    report = campaign(tmp_path, backend, kills=2, max_points=5)
    check(report)
    assert report.kills == 2 and report.in_flight >= 1, report.line()
    assert report.other_host >= 1 or not can_rename_host()


@pytest.mark.campaign
@pytest.mark.parametrize("backend", FAKES)
def test_thirty_kills_on_the_doubles(tmp_path: Path, backend: str) -> None:
    report = campaign(tmp_path, backend, kills=30, max_points=24)
    check(report)
    assert report.kills == 30 and report.in_flight >= 10, report.line()


@pytest.mark.campaign
@pytest.mark.slurm
def test_thirty_kills_on_slurm(slurm_cluster: str, tmp_path: Path) -> None:  # noqa: F811
    report = campaign(tmp_path, "slurm", kills=30, max_points=24)
    check(report)
    assert report.kills == 30 and report.in_flight >= 10, report.line()
