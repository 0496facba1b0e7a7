"""`splinenas import` of the files people have: Excel CSVs, other encodings, spreadsheets, states."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from experiment_support import experiment_toml, init_state, run

from nas.record.state import PointStatus
from nas.record.store import load_state

SPACE = {
    "g1": {"type": "int", "low": 4, "high": 32},
    "g2": {"type": "float", "low": 0.0, "high": 1.0},
}
TOML = experiment_toml("warm", SPACE, max_points=40)  # metric top1: percentages
ROWS = [(8, 0.25, 91.5), (16, 0.5, 94.25), (24, 0.75, 95.125)]


@pytest.fixture
def warm(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    folder = tmp_path / "warm"
    folder.mkdir()
    return init_state(folder, capsys, TOML)


def csv_text(rows: list[tuple], value_column: str = "value") -> str:
    lines = [f"g1,g2,{value_column}"] + [",".join(str(v) for v in row) for row in rows]
    return "\r\n".join(lines) + "\r\n"


def imported(state: Path) -> list[tuple]:
    points = [p for p in load_state(state).points if p.origin == "import"]
    return sorted((p.params["g1"], p.params["g2"], p.value) for p in points)


def one_line_refusal(code: int, err: str) -> str:
    assert code != 0 and "Traceback" not in err, err
    return err


def refused_import(warm: Path, capsys: pytest.CaptureFixture, source: Path) -> str:
    """``import`` of ``source``, refused without a traceback and with nothing imported;
    what it said."""
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    err = one_line_refusal(code, err)
    assert imported(warm) == []
    return err


def test_an_excel_csv_with_a_byte_order_mark_imports(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(b"\xef\xbb\xbf" + csv_text(ROWS).encode("utf-8"))
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 0, err
    assert imported(warm) == sorted(ROWS)


def test_a_latin1_csv_is_refused_naming_the_encoding_and_the_row(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "latin1.csv"
    text = "g1,g2,value,note\n8,0.25,91.5,ok\n16,0.5,94.25,Müller\n"
    source.write_bytes(text.encode("latin-1"))
    err = refused_import(warm, capsys, source)
    assert "UTF-8" in err and "byte 0xfc" in err and "row 2" in err and "line 3" in err


@pytest.mark.parametrize("suffix", [".xlsx", ".ods"])
def test_a_spreadsheet_is_refused_with_save_as_csv(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, suffix: str
) -> None:
    source = tmp_path / f"runs{suffix}"
    with zipfile.ZipFile(source, "w") as book:  # both formats are zip archives of XML
        book.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        book.writestr("content.xml", "<sheet/>")
    err = refused_import(warm, capsys, source)
    assert "spreadsheet" in err and "save it as CSV" in err and str(source) in err
    assert len(err.strip().splitlines()) == 1


def test_a_spreadsheet_renamed_to_csv_is_still_recognised(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "runs.csv"
    with zipfile.ZipFile(source, "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")
    err = refused_import(warm, capsys, source)
    assert "save it as CSV" in err


def test_another_campaigns_state_file_imports_its_measured_points_with_provenance(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    other = init_state(earlier, capsys, experiment_toml("earlier", SPACE, max_points=40))
    for g1, g2, value in ROWS:
        code, _, err = run(
            capsys,
            "add",
            "--state",
            str(other),
            "--params",
            f"g1={g1},g2={g2}",
            "--value",
            str(value),
        )
        assert code == 0, err
    code, _, err = run(capsys, "add", "--state", str(other), "--params", "g1=30,g2=0.1")
    assert code == 0, err  # pending in the other campaign: not a measurement
    code, _, err = run(capsys, "import", "--state", str(warm), str(other))
    assert code == 0, err
    assert imported(warm) == sorted(ROWS)
    source_ids = {p.params["g1"]: p.id for p in load_state(other).points}
    for point in load_state(warm).points:
        if point.origin == "import":
            provenance = point.extra["import"]
            assert provenance["source"] == str(other)
            assert provenance["experiment"] == "earlier"
            assert provenance["point"] == source_ids[point.params["g1"]]
            assert point.status is PointStatus.DONE


def other_campaign(
    tmp_path: Path, capsys: pytest.CaptureFixture, metric: str, rows: list[tuple]
) -> Path:
    """A campaign named and measured by ``metric`` in ``tmp_path/earlier``, holding ``rows``."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    other = init_state(earlier, capsys, experiment_toml(metric, SPACE, metric=metric))
    for g1, g2, value in rows:
        argv = ["add", "--state", str(other), "--params", f"g1={g1},g2={g2}", "--value"]
        code, _, err = run(capsys, *argv, str(value))
        assert code == 0, err
    return other


def test_a_state_file_of_another_metric_is_refused(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = other_campaign(tmp_path, capsys, "loss", [(8, 0.5, 0.3)])
    code, _, err = run(capsys, "import", "--state", str(warm), str(other))
    err = one_line_refusal(code, err)
    assert "loss" in err and "top1" in err
    assert imported(warm) == []


def test_a_csv_value_column_named_after_the_metric_imports(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "top1.csv"
    source.write_text(csv_text(ROWS, "top1"), encoding="utf-8")
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 0, err
    assert imported(warm) == sorted(ROWS)


def test_json_points_with_the_metric_as_their_value_key_import(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "points.json"
    points = [{"params": {"g1": a, "g2": b}, "top1": v} for a, b, v in ROWS]
    source.write_text(json.dumps(points))
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 0, err
    assert imported(warm) == sorted(ROWS)


def test_a_json_file_that_yields_no_points_is_an_error(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "points.json"
    source.write_text(json.dumps([{"params": {"g1": 8, "g2": 0.5}, "accuracy": 91.0}]))
    err = refused_import(warm, capsys, source)
    assert "no measurement" in err and "'value' or 'top1'" in err


def test_fractions_on_a_percent_metric_are_warned_about_and_kept(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = [(g1, g2, round(v / 100, 5)) for g1, g2, v in ROWS]
    source = tmp_path / "fractions.csv"
    source.write_text(csv_text(rows), encoding="utf-8")
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 0, err
    assert "warning" in err and "fractions" in err and "x 100" in err
    assert imported(warm) == sorted(rows)  # nothing the user gave is changed silently


def test_percentages_raise_no_fraction_warning(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "percent.csv"
    source.write_text(csv_text(ROWS), encoding="utf-8")
    code, _, err = run(capsys, "import", "--state", str(warm), str(source))
    assert code == 0 and "fraction" not in err, err


def json_points(rows: list[tuple], **keys: object) -> list[dict]:
    """``{"params": ..., "value": v}`` per row, with ``keys`` added to (or replacing) each."""
    return [{"params": {"g1": a, "g2": b}, "value": v, **keys} for a, b, v in rows]


@pytest.mark.parametrize("value", [{"x": 70}, [70]])
@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_a_json_value_that_is_not_a_number_is_refused_naming_the_row(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, value: object, flags: list[str]
) -> None:
    source = tmp_path / "points.json"
    source.write_text(json.dumps(json_points(ROWS[:1]) + json_points(ROWS[1:2], value=value)))
    code, out, err = run(capsys, "import", "--state", str(warm), str(source), *flags)
    assert code == 1 and (json.loads(out)["exit_code"] == 1 if flags else out == "")
    assert f"{source} row 2: value {value!r} is not a number" in one_line_refusal(code, err)
    assert imported(warm) == []


def test_a_json_document_nested_too_deeply_is_refused_naming_the_file(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "deep.json"
    source.write_text("[" * 100_000 + "]" * 100_000)
    err = refused_import(warm, capsys, source)
    assert f"{source}: not valid JSON: nested too deeply" in err
    assert len(err.strip().splitlines()) == 1


def test_the_status_json_of_a_campaign_with_another_metric_is_refused(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = other_campaign(tmp_path, capsys, "top5", ROWS)
    code, out, err = run(capsys, "status", "--state", str(other), "--json")
    assert code == 0 and json.loads(out)["metric"] == "top5", err
    source = tmp_path / "status.json"
    source.write_text(out)
    err = refused_import(warm, capsys, source)
    assert f"{source} measured 'top5', this search 'top1'" in err
    for metric in ("top1", None):  # this search's metric, or none named: the same points import
        source.write_text(json.dumps({**json.loads(out), "metric": metric}))
        code, _, err = run(capsys, "import", "--state", str(warm), str(source))
        assert code == 0, err
        assert imported(warm) == sorted(ROWS)


@pytest.mark.parametrize(("line", "count"), [("16,0.5,94.25,99", 4), ("16,0.5", 2)])
def test_a_csv_row_with_more_or_fewer_fields_than_the_header_is_refused(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, line: str, count: int
) -> None:
    source = tmp_path / "ragged.csv"
    source.write_text(f"g1,g2,value\n8,0.25,91.5\n{line}\n24,0.75,95.125\n", encoding="utf-8")
    err = refused_import(warm, capsys, source)
    assert f"{source} row 2: {count} fields, the header has 3" in err


@pytest.mark.parametrize("header", ["g1,g2,value,value", "g1,g1,g2,value"])
def test_a_csv_header_naming_a_column_twice_is_refused(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, header: str
) -> None:
    """Reading rows into a mapping keeps the last of two columns: a guess, refused."""
    source = tmp_path / "twice.csv"
    row = "8,0.25,91.5,93.0" if header.endswith("value,value") else "8,16,0.25,91.5"
    source.write_text(f"{header}\n{row}\n", encoding="utf-8")
    err = refused_import(warm, capsys, source)
    twice = "'value'" if header.endswith("value,value") else "'g1'"
    assert f"{source}: the header names {twice} twice" in err


def test_value_and_the_metric_together_are_refused_alike_in_json_and_csv(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    points = tmp_path / "points.json"
    points.write_text(json.dumps(json_points(ROWS[:1]) + json_points(ROWS[1:2], top1=75)))
    code, _, err = run(capsys, "import", "--state", str(warm), str(points))
    both = "both 'value' and 'top1': give the measurement once"
    assert f"{points} row 2: {both}" in one_line_refusal(code, err)
    table = tmp_path / "points.csv"
    table.write_text("g1,g2,value,top1\n8,0.25,91.5,91.5\n", encoding="utf-8")
    code, _, err = run(capsys, "import", "--state", str(warm), str(table))
    assert f"{table} header: {both}" in one_line_refusal(code, err)
    assert imported(warm) == []


@pytest.mark.parametrize("text", ["null", "42", '"hello"', "true"])
def test_a_json_file_holding_a_bare_value_is_refused_as_json(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, text: str
) -> None:
    source = tmp_path / "points.json"
    source.write_text(text + "\n")
    err = refused_import(warm, capsys, source)
    assert f"{source}: not a JSON document of points: expected a list of points" in err
    assert "header" not in err


# ------------------------------------------------ rows count from 1 in every kind of source


def provenance_rows(state: Path) -> dict[int, int]:
    """``g1`` of each imported point: the row its ``extra.import`` names."""
    points = [p for p in load_state(state).points if p.origin == "import"]
    return {p.params["g1"]: p.extra["import"]["row"] for p in points}


def test_a_state_file_numbers_its_rows_from_1_as_its_exported_csv_does(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Point N of a state is row N + 1 of its ``export --csv`` and of the state itself."""
    other = other_campaign(tmp_path, capsys, "top1", ROWS)
    ids = {p.params["g1"]: p.id for p in load_state(other).points}
    table = tmp_path / "other.csv"
    code, _, err = run(capsys, "export", "--state", str(other), "--csv", "--out", str(table))
    assert code == 0, err
    (tmp_path / "again").mkdir()
    again = init_state(tmp_path / "again", capsys, TOML)
    assert run(capsys, "import", "--state", str(warm), str(other))[0] == 0
    assert run(capsys, "import", "--state", str(again), str(table))[0] == 0
    rows = {g1: ids[g1] + 1 for g1, _, _ in ROWS}
    assert provenance_rows(warm) == rows == provenance_rows(again)
    # a refusal names the same row, and the state's point id beside it
    g1, g2, value = ROWS[0]
    argv = ["--params", f"g1={g1},g2={g2}", "--value", str(value + 1)]
    for state in (warm, again):
        code, _, err = run(capsys, "add", "--state", str(state), *argv, "--replace")
        assert code == 0, err
    code, _, err = run(capsys, "import", "--state", str(warm), str(other))
    assert f"{other} row {rows[g1]} (point {ids[g1]}): point " in one_line_refusal(code, err)
    code, _, err = run(capsys, "import", "--state", str(again), str(table))
    assert f"{table} row {rows[g1]}: point " in one_line_refusal(code, err)


def test_a_csv_row_is_the_line_below_the_header_blank_lines_counted(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """As the refusal of a byte that is not UTF-8 counts them: row N is line N + 1."""
    source = tmp_path / "gap.csv"
    source.write_text("g1,g2,value\n8,0.25,91.5\n\n16,0.5\n", encoding="utf-8")
    err = refused_import(warm, capsys, source)
    assert f"{source} row 3: 2 fields, the header has 3" in err
    source.write_bytes("g1,g2,value,Müller\n".encode("latin-1"))
    err = refused_import(warm, capsys, source)
    assert f"{source} line 1: byte 0xfc" in err and "row 0" not in err


# ------------------------------------------------ a measurement column with only empty cells


@pytest.mark.parametrize("column", ["value", "top1"])
def test_a_measurement_column_of_empty_cells_is_named_as_empty(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, column: str
) -> None:
    source = tmp_path / "unmeasured.csv"
    source.write_text(csv_text([(8, 0.25, ""), (16, 0.5, "")], column), encoding="utf-8")
    err = refused_import(warm, capsys, source)
    assert f"{source}: the column {column!r} is there, but every cell of it is empty" in err
    assert "each needs" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("points", "said"),
    [
        (
            [{"params": {"g1": 8, "g2": 0.25}, "status": "pending", "value": None}] * 2,
            "of its points 2 not done (2 pending)",
        ),
        (
            [{"params": {"g1": 8, "g2": 0.25}, "value": None}],
            "of its points 1 done without a value (null)",
        ),
    ],
)
def test_a_json_document_of_unmeasured_points_says_they_are_unmeasured(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture, points: list, said: str
) -> None:
    """``status --json`` of a campaign that measured nothing yet: no key is missing."""
    source = tmp_path / "status.json"
    source.write_text(json.dumps({"points": points}), encoding="utf-8")
    err = refused_import(warm, capsys, source)
    assert f"{source}: no measurement to import: {said}" in err
    assert "each needs" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------ a refusal says what --snap would store


def test_a_row_outside_the_box_says_what_snap_would_store_and_snap_says_what_it_did(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "wide.csv"
    source.write_text(csv_text([ROWS[0], (2, 0.5, 90.0)]), encoding="utf-8")
    err = refused_import(warm, capsys, source)
    would = "g1=2 outside the box; with --snap it would be stored as 4, the lower bound"
    assert f"{source} row 2: {would}" in err
    assert "g1=2 stored as" not in err  # nothing was stored
    code, _, err = run(capsys, "import", "--state", str(warm), str(source), "--snap")
    assert code == 0, err
    assert f"note: {source} row 2: g1=2 stored as 4, the lower bound" in err
    assert imported(warm) == sorted([ROWS[0], (4, 0.5, 90.0)])


def test_a_row_with_two_values_outside_the_box_names_what_snap_would_store_of_each(
    warm: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "wide.csv"
    source.write_text(csv_text([(40, 1.5, 90.0)]), encoding="utf-8")
    err = refused_import(warm, capsys, source)
    assert (
        f"{source} row 1: g1=40; g2=1.5 outside the box; with --snap they would be stored: "
        "g1=40 as 32, the upper bound; g2=1.5 as 1.0, the upper bound"
    ) in err
    assert " stored as " not in err
