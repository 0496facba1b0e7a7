"""The report says what was trained and what it cost: recipe, device-hours, pace, curves, events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from experiment_support import run
from trained_support import trained_state

VALUES = {0: 91.123456789, 1: 93.5, 2: 95.25, 3: 90.0}
PACE = {0: 0.25, 1: 0.5, 2: 0.75, 3: 0.5}


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    return trained_state(tmp_path, VALUES, PACE)


def page_of(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    code, _, err = run(capsys, "report", "--state", str(state), "--out", str(tmp_path / "r"))
    assert code == 0, err
    return (tmp_path / "r" / "index.html").read_text()


def test_the_page_shows_the_recipe(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    page = page_of(trained, tmp_path, capsys)
    recipe = re.search(r'<dl class="recipe">(.*?)</dl>', page).group(1)
    assert "<dt>family</dt><dd>resnet</dd>" in recipe
    assert "block=basic" in recipe and "c1=8" in recipe  # the fixed coordinates
    assert "<dt>data</dt><dd>digits (built in) at 16 px</dd>" in recipe
    assert "1 epochs, batch 16 per GPU" in recipe and "local, 1 node(s) (CPU)" in recipe


def test_the_page_shows_device_hours_per_point_and_in_total_and_the_pace(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    page = page_of(trained, tmp_path, capsys)
    cost = re.search(r'<ul id="cost">(.*?)</ul>', page).group(1)
    total = sum(PACE.values())
    assert f"{total:.3g} device-hours in total over 4 trained points" in cost
    assert f"({total / 4:.3g} per point" in cost
    assert "pace: 400 to 403 images/s per rank" in cost
    row = re.search(r'<tr class="best"[^>]*>(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[0] == "2" and cells[3] == "95.25" and cells[7] == "0.75" and cells[8] == "402"
    assert page.count('<tr class="best"') == 1


def test_the_page_draws_every_learning_curve_from_the_state(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    page = page_of(trained, tmp_path, capsys)
    for point_id, value in VALUES.items():
        item = re.search(rf'<li id="curve-{point_id}">(.*?)</li>', page).group(1)
        assert "<polyline" in item and f"to {value:.4g} at epoch 3" in item


def test_events_are_rounded_grouped_by_point_and_collapsed(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    page = page_of(trained, tmp_path, capsys)
    events = page[page.index("<h2>Events</h2>") :]
    assert "91.123456789" not in events and "value 91.12" in events
    groups = re.findall(r'<details class="events"><summary>([^<]*)</summary>', events)
    assert groups[0].startswith("the search (fits, phases, requests)")
    assert any(g.startswith("point 0: ") and "last record: value 91.12" in g for g in groups)
    assert "<details open" not in events
    assert re.search(r'<p id="event-counts">\d+ events: \d+ \w+', events)
