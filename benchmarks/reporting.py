"""Printing a benchmark's one-row report: one JSON document, or aligned lines for people."""

from __future__ import annotations

import json
from collections.abc import Mapping


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
