"""Printing a benchmark's report: one JSON document, aligned lines or a Markdown table for people."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def print_report(report: Mapping[str, object], *, as_json: bool, float_format: str) -> None:
    """Print ``report`` as JSON, or as ``key: value`` lines with keys right-aligned.

    Floats take ``float_format`` (e.g. ``".4g"``) in the lines for people; the
    JSON document keeps them exact.
    """
    if as_json:
        print(json.dumps(report))
        return
    width = max(map(len, report)) + 1
    for key, value in report.items():
        shown = format(value, float_format) if isinstance(value, float) else value
        print(f"{key:>{width}}: {shown}")


def print_table(rows: list[Mapping[str, object]], columns: list[str], *, float_format: str) -> None:
    """Print ``rows`` as a Markdown table of ``columns`` (missing cells empty)."""

    def cell(value: object) -> str:
        if value is None:
            return ""
        return format(value, float_format) if isinstance(value, float) else str(value)

    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(" --- " for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(cell(row.get(name)) for name in columns) + " |")


def emit(text: str, out: Path | None) -> None:
    """Print ``text`` (a report's tables) and also write it to ``out`` when one is given."""
    print(text)
    if out is not None:
        out.write_text(text)
