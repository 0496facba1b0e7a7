"""A result file set aside by a controller killed before it committed the rejection.

The file is renamed when the job is judged; the state that records the
rejection is committed at the end of the cycle. A controller killed in between
found no result file on restart, called the job one that wrote none and
retried it: a contract breach (known to be rejected again) was trained twice,
and every other rejection read "no result file". The reason file names the job.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_result_contract_more import jobs, search, writing

from nas.commands.main import main
from nas.control.cycle import Controller
from nas.control.ingest import Verdict, judge
from nas.pointdir.layout import RESULT_FILE
from nas.record.store import StateStore

PARAMS = {"g1": 8}


def judged(folder: Path, job: str):
    return judge(folder, 0, PARAMS, cancelled=False, log=folder / "job.log", job=job)


@pytest.mark.parametrize(
    ("document", "verdict", "reason"),
    [
        ('{"metrics": {"top1": 1.0}, "format": 2}', Verdict.CONTRACT, "unsupported format 2"),
        ('{"metrics": {"top1": 71', Verdict.FAILED, "not valid JSON"),  # torn: retried
    ],
    ids=["contract", "retried"],
)
def test_a_second_judgement_of_the_job_finds_its_set_aside_result(
    tmp_path: Path, document: str, verdict: Verdict, reason: str
) -> None:
    (tmp_path / RESULT_FILE).write_text(document)
    first, check = judged(tmp_path, "own-p0-r0a1s0")
    assert first.verdict is verdict and check is not None and check.rejected is not None
    assert not (tmp_path / RESULT_FILE).exists()
    again, found = judged(tmp_path, "own-p0-r0a1s0")  # a restarted controller, nothing committed
    assert (again.verdict, again.detail) == (first.verdict, first.detail)
    assert found is not None and found.rejected == check.rejected and reason in found.reason
    other, none = judged(tmp_path, "own-p0-r0a2s0")  # the next attempt's job wrote nothing
    assert (other.verdict, none) == (Verdict.FAILED, None)
    assert other.detail.startswith("no result file")


class Killed(BaseException):
    """The controller's process ending where it stands (kill -9)."""


def test_a_contract_breach_is_not_trained_again_after_a_kill_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    original = Controller._rejected

    def killed_after(self, point, path, reason) -> None:  # type: ignore[no-untyped-def]
        original(self, point, path, reason)
        raise Killed

    monkeypatch.setattr(Controller, "_rejected", killed_after)
    script = writing("{'metrics': {'score': 1.0}, 'format': 2}")
    with pytest.raises(Killed):
        search(tmp_path, script)
    monkeypatch.setattr(Controller, "_rejected", original)
    state = tmp_path / "state" / "own.h5"
    assert main(["run", "--state", str(state), "--poll", "0.1"]) == 0  # the restart
    with StateStore.open(state) as store:
        points = store.state.points
    assert [p.status.value for p in points] == ["failed", "failed"]
    assert all("format: unsupported format 2" in p.reason for p in points), points
    assert jobs(state) == 2  # one job per point: none trained again
