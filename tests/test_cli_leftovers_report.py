"""``splinenas report`` on an own model, and the page's summary saying what ``status`` says."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from experiment_support import command_experiment, run

from nas.control import liveness
from nas.record.lock import FileLock
from nas.record.state import PointStatus
from nas.record.store import StateStore

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


@pytest.fixture
def own(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """An own command with a fixed ``{tag}`` (a ``[model]`` table without a family)."""
    text = command_experiment("own", ["true", "{x}", "{tag}"], SPACE, fixed={"tag": "a"})
    (tmp_path / "own.toml").write_text(text)
    state = tmp_path / "own.h5"
    assert run(capsys, "init", str(tmp_path / "own.toml"), "--state", str(state))[0] == 0
    return state


def _page(capsys: pytest.CaptureFixture, state: Path, out: Path) -> str:
    code, _, err = run(capsys, "report", "--state", str(state), "--out", str(out))
    assert code == 0, err
    return html.unescape((out / "index.html").read_text())


def test_the_page_of_an_own_model_names_its_command_not_a_family(
    own: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    page = _page(capsys, own, tmp_path / "r")
    recipe = re.search(r'<dl class="recipe">(.*?)</dl>', page).group(1)
    assert "<dt>own command</dt><dd>true '{x}' '{tag}'</dd>" in recipe
    assert "<dt>fixed coordinates</dt><dd>tag=a</dd>" in recipe and "family" not in recipe


def test_an_unset_recipe_entry_is_a_dash_not_a_failed_page() -> None:
    from nas.report.html import build_page

    page = build_page(
        title="t",
        summary_lines=[],
        recipe=[("family", None)],
        cost_lines=[],
        points=[],
        best_id=None,
        plots={},
        curves={},
        events=[],
        written=0.0,
    )
    assert "<dt>family</dt><dd>-</dd>" in page


def test_the_summary_says_what_runs_as_status_does(
    own: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with StateStore.open(own) as store:  # point 0 as the controller leaves it once submitted
        store.state.update_point(0, attempts=1, job_name="own-p0-r0a1s0")
        store.state.set_status(0, PointStatus.SUBMITTING)
        store.state.update_point(0, job_id="7")
        store.state.set_status(0, PointStatus.SUBMITTED, "job 7")
        store.commit()
    lock = FileLock(own)  # this process as the controller that holds the state
    lock.acquire()
    me = lock.holder
    liveness.beat(own, liveness.Heartbeat(me.host, me.pid, me.started, 60.0, 3, time.time()))
    try:
        page = _page(capsys, own, tmp_path / "r")
        _, status, _ = run(capsys, "status", "--state", str(own))
    finally:
        lock.release()
    said = [line for line in status.splitlines() if line.startswith(("running:", "controller:"))]
    assert [line[:20] for line in said] == ["running: point 0: no", "controller: running,"]
    for line in said:  # the same lines, up to the time they were written
        assert f'<li class="">{line.split(", since")[0]}' in page
