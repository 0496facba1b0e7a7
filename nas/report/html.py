"""One self-contained HTML page of a search: what was trained, what it cost, what it found.

Summary, recipe (family or own command, fixed coordinates, data, training), cost
(device-hours per point and in total, pace), a sortable points table with the
best row highlighted, the plots with a caption sentence each, each point's
learning curve, and the events grouped by point, rounded and collapsed.

The page needs no server and no network: the pictures are PNGs inlined as
``data:`` URIs, the learning curves small inline SVGs, and the one script
that sorts the table sits in the page. A person opens it from a laptop
after copying one file. ``refresh_seconds`` adds a meta refresh so that a
page rewritten by ``splinenas report --watch`` reloads itself.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

#: Sorts the points table on a header click: numbers as numbers, '-' last, click again to reverse.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.getAttribute("aria-sort") === "ascending";
    th.closest("tr").querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    function key(row) {
      var text = row.cells[column].textContent.trim();
      var number = parseFloat(text);
      return isNaN(number) || !/^-?[0-9.]/.test(text) ? [1, text] : [0, number];
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x[0] !== y[0]) { return x[0] - y[0]; }
      var order = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
      return down ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f0f0f0; cursor: pointer; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
.note { color: #8a4b00; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
svg.curve { border: 1px solid #ddd; vertical-align: middle; }
svg.curve text { font-size: 10px; fill: #555; }
tr.best td { background: #fff3c4; font-weight: bold; }
dl.recipe { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.recipe dt { font-weight: bold; }
dl.recipe dd { margin: 0; }
details { margin: 0.3em 0; }
summary { cursor: pointer; }
figcaption { color: #444; max-width: 60em; }
"""


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page carries its pictures."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(figure: Any, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def curve_svg(
    xs: Sequence[float], ys: Sequence[float], label: str, width: int = 300, height: int = 110
) -> str:
    """A learning curve as a small inline SVG: the line, its first and last value, its epochs."""
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 2:
        return ""
    left, right, top, bottom = 40, 8, 8, 18
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def at(x: float, y: float) -> str:
        across = left + (x - x0) / (x1 - x0) * (width - left - right)
        up = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return f"{across:.1f},{up:.1f}"

    points = " ".join(at(x, y) for x, y in pairs)
    text = (
        f'<text x="2" y="{top + 8}">{y1:.4g}</text>'
        f'<text x="2" y="{height - bottom}">{y0:.4g}</text>'
        f'<text x="{left}" y="{height - 4}">epoch {x0:g}</text>'
        f'<text x="{width - right}" y="{height - 4}" text-anchor="end">{x1:g}</text>'
    )
    return (
        f'<svg class="curve" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(label)}">{text}<polyline fill="none" stroke="#1f77b4" '
        f'stroke-width="1.5" points="{points}"/></svg>'
    )


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


#: The points table's columns (key in each point's document, header); "value" stays 4th:
#: a header click sorts by it.
POINT_COLUMNS = (
    ("id", "id"),
    ("params", "params"),
    ("status", "status"),
    ("value", "measured"),
    ("predicted", "predicted"),
    ("origin", "origin"),
    ("batch", "batch"),
    ("device_hours", "device-h"),
    ("images_per_second", "img/s per rank"),
)


def _points_table(points: Sequence[Mapping[str, Any]], best_id: int | None) -> str:
    head = "".join(f"<th>{title}</th>" for _, title in POINT_COLUMNS)
    rows = "".join(
        ('<tr class="best" title="best measured point">' if p["id"] == best_id else "<tr>")
        + "".join(f"<td>{html.escape(_cell(p.get(key)))}</td>" for key, _ in POINT_COLUMNS)
        + "</tr>"
        for p in points
    )
    return f'<table class="sortable" id="points"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


#: A number written with more digits than a person reads: 4 significant digits suffice.
_LONG_NUMBER = re.compile(r"-?\d+\.\d{5,}(?:[eE][-+]?\d+)?")


def rounded(text: str) -> str:
    """``text`` with every long decimal number cut to 4 significant digits."""
    return _LONG_NUMBER.sub(lambda m: f"{float(m.group()):.4g}", text)


def _events_section(events: Sequence[Mapping[str, Any]]) -> str:
    """The event history: counts by kind, then one collapsed group per point and one for the plan."""
    if not events:
        return "<p>none</p>"
    kinds = Counter(e["kind"] for e in events)
    counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    groups: dict[int | None, list[Mapping[str, Any]]] = {}
    for event in events:
        groups.setdefault(event["point_id"], []).append(event)
    parts = [f'<p id="event-counts">{len(events)} events: {html.escape(counts)}</p>']
    for point_id in sorted(groups, key=lambda k: (k is not None, k if k is not None else -1)):
        group = groups[point_id]
        name = "the search (fits, phases, requests)" if point_id is None else f"point {point_id}"
        last = rounded(group[-1]["message"].splitlines()[0]) if group[-1]["message"] else ""
        rows = "".join(
            f"<tr><td>{_utc(e['time'])}</td><td>{html.escape(e['kind'])}</td>"
            f"<td>{html.escape(rounded(e['message']))}</td></tr>"
            for e in group
        )
        parts.append(
            f'<details class="events"><summary>{html.escape(name)}: {len(group)} events; '
            f"last {html.escape(group[-1]['kind'])}: {html.escape(last)}</summary>"
            "<table><thead><tr><th>time (UTC)</th><th>kind</th><th>message</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>"
        )
    return "".join(parts)


def _utc(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _text(value: str | None) -> str:
    """A setting for the page: an unset one (None) as "-", never a failed page."""
    return "-" if value is None else str(value)


def build_page(
    *,
    title: str,
    summary_lines: Sequence[str],
    recipe: Sequence[tuple[str, str | None]],
    cost_lines: Sequence[str],
    points: Sequence[Mapping[str, Any]],
    best_id: int | None,
    plots: Mapping[str, tuple[bytes, str]],
    curves: Mapping[int, tuple[Sequence[float], Sequence[float], str]],
    events: Sequence[Mapping[str, Any]],
    refresh_seconds: float | None = None,
    written: float,
) -> str:
    """The whole page as one string; every text from the state is HTML-escaped.

    ``plots`` maps a file stem to (PNG bytes, caption sentence); ``curves`` a
    point id to (epochs, values, label).
    """
    refresh = (
        f'<meta http-equiv="refresh" content="{max(1, round(refresh_seconds))}">'
        if refresh_seconds
        else ""
    )
    summary = "".join(
        f'<li class="{"note" if line.startswith("note:") else ""}">{html.escape(line)}</li>'
        for line in summary_lines
    )
    recipe_items = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(_text(text))}</dd>" for name, text in recipe
    )
    costs = "".join(f"<li>{html.escape(line)}</li>" for line in cost_lines)
    images = "".join(
        f'<figure><img alt="{html.escape(stem)}" src="{png_data_uri(png)}">'
        f"<figcaption>{html.escape(caption)} ({html.escape(stem)}.png)</figcaption></figure>"
        for stem, (png, caption) in plots.items()
    )
    curve_items = "".join(
        f'<li id="curve-{point_id}">{svg} {html.escape(label)}</li>'
        for point_id, (xs, ys, label) in curves.items()
        if (svg := curve_svg(xs, ys, label))
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>written {_utc(written)} UTC"
        + (f"; reloads every {max(1, round(refresh_seconds))} s" if refresh_seconds else "")
        + "</p>",
        f"<h2>Summary</h2><ul>{summary}</ul>",
        f'<h2>What is trained</h2><dl class="recipe">{recipe_items}</dl>',
        f'<h2>Cost</h2><ul id="cost">{costs}</ul>',
        "<h2>Points</h2><p>the best measured point is highlighted; click a header to sort</p>"
        + _points_table(points, best_id),
        f"<h2>Plots</h2>{images or '<p>none yet: no measured point</p>'}",
        "<h2>Learning curves</h2>"
        + (f'<ul id="curves">{curve_items}</ul>' if curve_items else "<p>none yet</p>"),
        f"<h2>Events</h2>{_events_section(events)}",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}<script>{_SORT_SCRIPT}</script></body></html>\n"
    )
