"""``splinenas report``: the page's content, and the page in a real headless Chromium.

The browser test installs Debian's ``chromium`` when it is missing
(``tests/tools/debian-tool.sh``, as ``tests/slurm/cluster.sh`` installs Slurm),
opens the page from disk with the network off, and checks that it logs no
console error, that its images decode, and that a header click sorts the
points table.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run
from tool_support import debian_tool

from nas.pointdir.curve import make_entry
from nas.record.lock import FileLock
from nas.record.store import StateStore

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, tolerance=0.05)
VALUES = [3.0, 0.25, 7.25, 0.5, 2.0]  # top-1 percentages


@pytest.fixture
def searched(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The toy's design measured by hand, a proposal pending, a learning curve for point 2."""
    state = init_state(tmp_path, capsys, TOML)
    for point_id, value in enumerate(VALUES):
        assert run(capsys, "record", "--state", str(state), str(point_id), str(value))[0] == 0
    assert run(capsys, "propose", "--state", str(state))[0] == 0
    curve = [
        make_entry(epoch=e, images=100, loss=2.0 / e, top1=v, top5=99.0, lr=0.1, seconds=1.0)
        for e, v in ((1, 40.0), (2, 61.5), (3, 7.25))
    ]
    with StateStore.open(state) as store:  # as the controller stores it at ingest
        store.state.set_curve(2, curve)
        store.commit()
    return state


def test_the_page_is_self_contained(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "report", "--state", str(searched), "--out", str(tmp_path / "r"))
    assert code == 0, err
    page = (tmp_path / "r" / "index.html").read_text()
    assert re.findall(r"(?:src|href)=\"(?!data:)[^\"]*\"", page) == []  # nothing to fetch
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', page)) == 4
    assert "best measured: point 2 (x=0,y=0) = 7.25" in page
    assert '<li id="curve-2"><svg' in page and page.count('class="curve"') == 1
    assert page.count("<tr><td>") >= len(VALUES) + 1 and "http-equiv" not in page
    assert re.search(r"fit \d+: 5 points", page)  # the event history


def test_watch_refreshes_only_while_a_controller_holds_the_lock(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nas.commands.report import controller_runs, write_report

    lock = FileLock(searched)
    lock.acquire()
    try:
        assert controller_runs(searched)
        page = write_report(searched, tmp_path / "r", 7.0).read_text()
        assert '<meta http-equiv="refresh" content="7">' in page  # read though the lock is held
    finally:
        lock.release()
    assert not controller_runs(searched)
    code, _, err = run(
        capsys, "report", "--state", str(searched), "--out", str(tmp_path / "r"), "--watch", "5"
    )
    assert code == 0 and "no controller runs any more" in err
    assert "http-equiv" not in (tmp_path / "r" / "index.html").read_text()


HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="page" src="PAGE"></iframe>
<script>
console.error("harness-probe");
document.getElementById("page").addEventListener("load", function () {
  var d = this.contentDocument;
  var ids = function () {
    return Array.prototype.map.call(d.querySelectorAll("#points tbody tr"),
      function (row) { return row.cells[0].textContent; });
  };
  var out = {images: Array.prototype.map.call(d.images, function (i) { return i.naturalWidth; })};
  out.curves = Array.prototype.map.call(d.querySelectorAll("svg.curve polyline"),
    function (line) { var box = line.getBBox(); return [box.width, box.height]; });
  var best = d.querySelector("#points tr.best");
  out.best = best ? [best.cells[0].textContent, getComputedStyle(best.cells[0]).backgroundColor] : null;
  out.closedGroups = d.querySelectorAll("details.events:not([open])").length;
  var measured = d.querySelectorAll("#points th")[3];
  out.before = ids();
  measured.click(); out.ascending = ids();
  measured.click(); out.descending = ids();
  document.getElementById("result").textContent = JSON.stringify(out);
});
</script></body></html>
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    return debian_tool("chromium", "chromium", "chromium-browser")


def headless(chromium: str, profile: Path, url: str) -> subprocess.CompletedProcess:
    """Load ``url`` with the network off; stdout: the DOM after its scripts ran; stderr: console."""
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--allow-file-access-from-files",  # lets the harness read the page in its frame
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if "CONSOLE" in line and "harness-probe" not in line
    ]


def test_the_page_works_in_a_headless_browser(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture, chromium: str
) -> None:
    assert run(capsys, "report", "--state", str(searched), "--out", str(tmp_path / "r"))[0] == 0
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.replace("PAGE", "r/index.html"))
    done = headless(chromium, tmp_path / "profile", harness.as_uri())
    assert "harness-probe" in done.stderr, done.stderr  # the console is captured at all
    assert console_errors(done.stderr) == []
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(result["images"]) == 4 and all(width > 0 for width in result["images"])
    assert result["before"] == ["0", "1", "2", "3", "4", "5"]
    assert result["ascending"] == ["1", "3", "4", "0", "2", "5"]  # pending point 5: '-' last
    assert result["descending"] == ["2", "0", "4", "3", "1", "5"]  # and last again
    ((width, height),) = result["curves"]
    assert width > 100 and height > 50  # the learning curve from the state is drawn
    assert result["best"][0] == "2" and result["best"][1] not in ("rgba(0, 0, 0, 0)", "")
    assert result["closedGroups"] >= len(VALUES)  # events: one collapsed group per point
