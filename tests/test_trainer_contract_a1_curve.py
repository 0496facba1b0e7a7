"""``curve.jsonl`` lines as Python's ``json.dumps`` writes them are read, not lost or changed.

A NaN loss is null (as ``trial.report`` writes it) and the rest of the entry
stays; a string where a built-in figure belongs costs that figure only; a
fractional epoch or image count is not truncated into another epoch's entry.
What a reader leaves out is named (:attr:`CurveTail.left_out`) for the
controller's ``curve`` event.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.pointdir.curve import parse_entry, read_curve, read_curve_tail
from nas.pointdir.layout import CURVE_FILE


def write_lines(folder: Path, *documents: dict) -> None:
    text = "".join(json.dumps(document) + "\n" for document in documents)
    (folder / CURVE_FILE).write_text(text)


def by_epoch(folder: Path) -> dict[int, dict]:
    return {entry["epoch"]: entry for entry in read_curve(folder)}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_nonfinite_builtin_figure_is_null_and_the_entry_stays(tmp_path: Path, bad: float) -> None:
    write_lines(tmp_path, {"epoch": 2, "loss": bad, "top1": bad, "accuracy": 52, "lr": 0.1})
    entry = by_epoch(tmp_path)[2]
    assert (entry["loss"], entry["top1"], entry["lr"], entry["accuracy"]) == (None, None, 0.1, 52.0)
    assert read_curve_tail(tmp_path).left_out == ()  # null as written: nothing is left out


def test_a_string_in_a_builtin_field_costs_that_field_only(tmp_path: Path) -> None:
    write_lines(
        tmp_path,
        {"epoch": 4, "loss": 0.2, "lr": "cosine", "accuracy": 54},
        {"epoch": 5, "loss": 0.1, "lr": "cosine", "top5": [1]},
    )
    entries = by_epoch(tmp_path)
    assert (entries[4]["lr"], entries[4]["loss"], entries[4]["accuracy"]) == (None, 0.2, 54.0)
    assert entries[5]["top5"] is None
    assert read_curve_tail(tmp_path).left_out == (
        "lr: not a number, field left out (2 lines, e.g. 'cosine')",
        "top5: not a number, field left out (1 line, e.g. [1])",
    )


@pytest.mark.parametrize(
    ("line", "field"),
    [({"epoch": 5.5}, "epoch"), ({"epoch": 6, "images": 12.7}, "images"),
     ({"epoch": -1}, "epoch"), ({"epoch": "7"}, "epoch"), ({"epoch": 6, "images": -3}, "images")],
)  # fmt: skip
def test_a_count_that_is_no_whole_number_skips_the_line_and_says_so(
    tmp_path: Path, line: dict, field: str
) -> None:
    write_lines(tmp_path, {"epoch": 5, "loss": 0.5}, {**line, "loss": 0.1})
    tail = read_curve_tail(tmp_path)
    assert [(e["epoch"], e["loss"]) for e in tail.entries] == [(5, 0.5)], "not merged into 5"
    assert tail.left_out == (
        f"{field}: not a whole number >= 0, line skipped (1 line, e.g. {line[field]!r})",
    )


def test_a_whole_float_count_is_read_as_its_integer(tmp_path: Path) -> None:
    write_lines(tmp_path, {"epoch": 3.0, "images": 640.0})
    entry = by_epoch(tmp_path)[3]
    assert (entry["epoch"], entry["images"]) == (3, 640)
    assert isinstance(entry["epoch"], int) and isinstance(entry["images"], int)


@pytest.mark.parametrize(("images", "noted"), [(None, False), ("many", True), (False, True)])
def test_images_that_are_no_number_are_read_as_0(
    tmp_path: Path, images: object, noted: bool
) -> None:
    write_lines(tmp_path, {"epoch": 1, "images": images, "loss": 0.5})
    tail = read_curve_tail(tmp_path)
    assert [(e["epoch"], e["images"], e["loss"]) for e in tail.entries] == [(1, 0, 0.5)]
    assert bool(tail.left_out) == noted


def test_every_second_line_fractional_gives_one_note(tmp_path: Path) -> None:
    write_lines(tmp_path, *({"epoch": e / 2, "loss": 1.0} for e in range(1, 201)))
    tail = read_curve_tail(tmp_path)
    assert [e["epoch"] for e in tail.entries] == list(range(1, 101))
    assert tail.left_out == ("epoch: not a whole number >= 0, line skipped (100 lines, e.g. 0.5)",)


def test_the_tail_still_unpacks_as_entries_and_unread_bytes(tmp_path: Path) -> None:
    write_lines(tmp_path, {"epoch": 1})
    entries, unread = read_curve_tail(tmp_path)
    assert [e["epoch"] for e in entries] == [1] and unread == 0


def test_parse_entry_without_a_list_for_notes_is_as_before() -> None:
    assert parse_entry({"epoch": 1, "lr": "x"}) is not None
    assert parse_entry({"epoch": 1.5}) is None
    assert parse_entry({"loss": 1.0}) is None
