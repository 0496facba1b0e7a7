"""``--json`` output: one document, a key or a row per line, written in a few large blocks."""

from __future__ import annotations

import io
import json
import math

import pytest

from nas.commands.common import JSONText, write_json
from nas.commands.curves import curve_json
from nas.curvefields import CURVE_FIELDS


class CountingHandle(io.StringIO):
    """A text handle that counts its writes (stdout is unbuffered under PYTHONUNBUFFERED)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def written(document: object) -> CountingHandle:
    handle = CountingHandle()
    write_json(document, handle)
    return handle


def test_an_object_is_one_key_per_line_and_a_list_one_item_per_line() -> None:
    document = {
        "state": "a b.h5",
        "points": [{"id": 0, "params": {"x": 1.5}}, {"id": 1, "params": {"x": None}}],
        "fit": {"loo": 0.25, "argmax": [1, 2]},
        "empty": [],
        "none": {},
        "ünï": "ç\n",
    }
    text = written(document).getvalue()
    assert json.loads(text) == document
    assert text.splitlines() == [
        "{",
        '  "state": "a b.h5",',
        '  "points": [',
        '    {"id": 0, "params": {"x": 1.5}},',
        '    {"id": 1, "params": {"x": null}}',
        "  ],",
        '  "fit": {"loo": 0.25, "argmax": [1, 2]},',
        '  "empty": [],',
        '  "none": {},',
        '  "\\u00fcn\\u00ef": "\\u00e7\\n"',
        "}",
    ]


@pytest.mark.parametrize("document", [[], {}, [1, [2, 3]], "text", 3.5, None, {"k": (1, 2)}])
def test_every_document_reads_back_as_written(document: object) -> None:
    text = written(document).getvalue()
    assert text.endswith("\n") and json.loads(text) == json.loads(json.dumps(document))


def test_a_generator_is_written_as_a_list_while_it_is_consumed() -> None:
    made = []

    def rows():
        for i in range(3):
            made.append(i)
            yield {"id": i}

    text = written({"points": rows(), "after": 1}).getvalue()
    assert made == [0, 1, 2]
    assert json.loads(text) == {"points": [{"id": 0}, {"id": 1}, {"id": 2}], "after": 1}


def test_ten_thousand_rows_take_a_few_writes_not_one_per_row() -> None:
    handle = written({"points": [{"id": i, "value": i / 3} for i in range(10_000)]})
    assert len(json.loads(handle.getvalue())["points"]) == 10_000
    assert handle.writes <= 3


def test_nan_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json({"points": [{"value": math.nan}]}, io.StringIO())


def test_encoded_text_is_written_as_it_is() -> None:
    text = written({"points": [JSONText('{"id": 0}')], "curve": JSONText("[1, 2]")}).getvalue()
    assert json.loads(text) == {"points": [{"id": 0}], "curve": [1, 2]}


def _entries(rows: list[tuple]) -> list[dict]:
    return [dict(zip(CURVE_FIELDS, row, strict=True)) for row in rows]


def test_curve_rows_encode_exactly_as_json_encodes_their_entries() -> None:
    rows = [
        (1, 1000, 2.0, 0.011370666935328903, 0.1, 0.1, 60.0),
        (2, 2000, None, 33.3, 1e-17, 5e-324, 1.7976931348623157e308),  # a loss not measured
        (3, 3000, -0.0, 12.0, 100.0, 0.0, 123456789012.5),
    ]
    assert curve_json(rows) == json.dumps(_entries(rows))
    assert curve_json([]) == "[]"


def test_a_non_finite_number_in_a_curve_row_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        curve_json([(1, 1000, math.inf, 1.0, 1.0, 0.1, 60.0)])
