"""One self-contained HTML page of a search: summary, sortable points table, plots, curves, events.

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
svg.curve { border: 1px solid #ddd; }
"""


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page carries its pictures."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(figure: Any, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def curve_svg(curve: Sequence[Any], width: int = 240, height: int = 90) -> str:
    """A learning curve (values, or ``[epoch, value]`` pairs) as a small inline SVG polyline."""
    pairs = [(float(i), float(v)) if not isinstance(v, Sequence) else (float(v[0]), float(v[1]))
             for i, v in enumerate(curve)]  # fmt: skip
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 2:
        return ""
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    points = " ".join(
        f"{4 + (x - x0) / (x1 - x0) * (width - 8):.1f},{height - 4 - (y - y0) / (y1 - y0) * (height - 8):.1f}"
        for x, y in pairs
    )
    label = f"{ys[0]:.4g} to {ys[-1]:.4g} over {len(pairs)} steps"
    return (
        f'<svg class="curve" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(label)}"><polyline fill="none" stroke="#1f77b4" '
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


def _points_table(points: Sequence[Mapping[str, Any]]) -> str:
    columns = ["id", "params", "status", "value", "predicted", "origin", "batch"]
    head = "".join(f"<th>{'measured' if c == 'value' else c}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(p[c]))}</td>" for c in columns) + "</tr>"
        for p in points
    )
    return f'<table class="sortable" id="points"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _events_table(events: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        "<tr>"
        + f"<td>{_utc(e['time'])}</td><td>{html.escape(e['kind'])}</td>"
        + f"<td>{'' if e['point_id'] is None else e['point_id']}</td>"
        + f"<td>{html.escape(e['message'])}</td></tr>"
        for e in events
    )
    head = "<tr><th>time (UTC)</th><th>kind</th><th>point</th><th>message</th></tr>"
    return f'<table id="events"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def _utc(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def build_page(
    *,
    title: str,
    summary_lines: Sequence[str],
    points: Sequence[Mapping[str, Any]],
    plots: Mapping[str, bytes],
    curves: Mapping[int, Sequence[Any]],
    events: Sequence[Mapping[str, Any]],
    refresh_seconds: float | None = None,
    written: float,
) -> str:
    """The whole page as one string; every text from the state is HTML-escaped."""
    refresh = (
        f'<meta http-equiv="refresh" content="{max(1, round(refresh_seconds))}">'
        if refresh_seconds
        else ""
    )
    summary = "".join(
        f'<li class="{"note" if line.startswith("note:") else ""}">{html.escape(line)}</li>'
        for line in summary_lines
    )
    images = "".join(
        f'<figure><img alt="{html.escape(stem)}" src="{png_data_uri(png)}">'
        f"<figcaption>{html.escape(stem)}.png</figcaption></figure>"
        for stem, png in plots.items()
    )
    curve_items = "".join(
        f"<li>point {point_id}: {svg}</li>"
        for point_id, curve in curves.items()
        if (svg := curve_svg(curve))
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>written {_utc(written)} UTC"
        + (f"; reloads every {max(1, round(refresh_seconds))} s" if refresh_seconds else "")
        + "</p>",
        f"<h2>Summary</h2><ul>{summary}</ul>",
        f"<h2>Points</h2><p>click a header to sort</p>{_points_table(points)}",
        f"<h2>Plots</h2>{images or '<p>none yet: no measured point</p>'}",
    ]
    if curve_items:
        sections.append(f"<h2>Learning curves</h2><ul>{curve_items}</ul>")
    sections.append(f"<h2>Events</h2>{_events_table(events)}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}<script>{_SORT_SCRIPT}</script></body></html>\n"
    )
