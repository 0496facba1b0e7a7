"""A result file that every attempt writes the same way is a contract breach, not retried.

Each retry of an own trainer is a whole training: another point's ``params``
or ``point_id``, a metric outside its range (a fraction/percent mix-up, a
loss that blew up) and a ``result.json`` that is a link, folder or FIFO are
the trainer's own doing. A NaN searched metric is a divergence (its own
error, for the reseed path), and an integer no float holds in a side figure
costs that figure only. An own trainer that echoes its whole config
(``trial.point().values``: the searched params and ``[model] fixed``) is
accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nas.control.ingest import check_result
from nas.pointdir.layout import POINT_FILE, RESULT_FILE
from nas.pointdir.result import Measured, ResultDiverged, ResultError, validate_result

PARAMS = {"x": 1.0, "width": 64}
FIXED = {"epochs": 3, "optimizer": "adam", "width": 8}  # width: overridden by the search
SCORE = Measured("score", (-1e150, 1e150))
PERCENT = Measured("accuracy", (0.0, 100.0))
HUGE = "1" + "0" * 400  # an integer no float holds


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A point folder with the point.json the controller writes (point 4)."""
    document = {"format": 1, "point_id": 4, "experiment": "e", "params": PARAMS,
                "fixed": FIXED, "seed": 0, "metric": "score"}  # fmt: skip
    (tmp_path / POINT_FILE).write_text(json.dumps(document))
    return tmp_path


def write(folder: Path, document: dict | str) -> Path:
    path = folder / RESULT_FILE
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def refusal(path: Path, measured: Measured = SCORE) -> ResultError:
    with pytest.raises(ResultError) as caught:
        validate_result(path, 4, PARAMS, measured)
    return caught.value


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    "params",
    [
        {**FIXED, **PARAMS},  # trial.point().values: the whole config
        {**PARAMS, "epochs": 3},  # some of fixed
        {"epochs": 3.0, **PARAMS},  # the same number
        PARAMS,
    ],
    ids=["all fixed", "some fixed", "3.0", "searched only"],
)
def test_params_may_echo_the_fixed_values(folder: Path, params: dict) -> None:
    path = write(folder, {"metrics": {"score": 0.5}, "params": params})
    assert validate_result(path, 4, PARAMS, SCORE).params == params


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({**PARAMS, "x": 2.0}, "'x'"),
        ({"x": 1.0}, "'width'"),
        ({**PARAMS, "epochs": 4}, "'epochs'"),
        ({**PARAMS, "depth": 3}, "'depth'"),
    ],
    ids=["searched value", "searched missing", "fixed value", "unknown key"],
)
def test_other_params_break_the_contract_and_name_the_key(
    folder: Path, params: dict, key: str
) -> None:
    caught = refusal(write(folder, {"metrics": {"score": 0.5}, "params": params}))
    assert caught.contract and "differ from this point's at " + key in caught.reason
    assert "or leave params out" in caught.reason


def test_without_a_point_file_only_the_searched_params_are_accepted(tmp_path: Path) -> None:
    caught = refusal(write(tmp_path, {"metrics": {"score": 0.5}, "params": {**PARAMS, "e": 3}}))
    assert caught.contract and "'e'" in caught.reason


def test_another_points_id_breaks_the_contract(folder: Path) -> None:
    caught = refusal(write(folder, {"metrics": {"score": 0.5}, "point_id": 5}))
    assert caught.contract and "point_id 5 but expected 4" in caught.reason


# --------------------------------------------------------------------------- the searched metric


@pytest.mark.parametrize(
    ("text", "measured", "shown"),
    [
        ('{"metrics": {"accuracy": 160}}', PERCENT, "160 is outside its valid range [0, 100]"),
        ('{"metrics": {"score": 1e300}}', SCORE, "1e+300 is outside its valid range"),
        (f'{{"metrics": {{"score": {HUGE}}}}}', SCORE, "an integer of 401 digits"),
        (f'{{"metrics": {{"score": -{HUGE}}}}}', SCORE, "an integer of 401 digits"),
    ],
    ids=["percent", "1e300", "huge int", "huge negative int"],
)
def test_a_metric_out_of_its_range_breaks_the_contract(
    folder: Path, text: str, measured: Measured, shown: str
) -> None:
    caught = refusal(write(folder, text), measured)
    assert caught.contract and shown in caught.reason and "check the unit" in caught.reason


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_searched_metric_is_a_divergence_not_a_contract_breach(
    folder: Path, constant: str
) -> None:
    caught = refusal(write(folder, f'{{"metrics": {{"score": {constant}}}}}'))
    assert isinstance(caught, ResultDiverged) and not caught.contract
    assert "diverged" in caught.reason


# --------------------------------------------------------------------------- side figures


def test_an_integer_no_float_holds_costs_only_its_side_figure(folder: Path) -> None:
    text = f'{{"metrics": {{"score": 0.5, "big": {HUGE}}}, "device_hours": {HUGE}, "epochs": 3}}'
    result = validate_result(write(folder, text), 4, PARAMS, SCORE)
    assert result.metrics == {"score": 0.5} and result.epochs == 3
    assert result.device_hours is None
    assert set(result.dropped) == {
        "device_hours (an integer of 401 digits (too large for a number))",
        "metrics.big (an integer of 401 digits (too large for a number))",
    }


def test_an_identity_key_no_float_holds_is_still_refused(folder: Path) -> None:
    caught = refusal(write(folder, f'{{"metrics": {{"score": 0.5}}, "point_id": {HUGE}}}'))
    assert caught.contract and "point_id" in caught.reason


# --------------------------------------------------------------------------- what is there


def link(path: Path) -> None:
    path.with_name("best.json").write_text('{"metrics": {"score": 0.5}}')
    path.symlink_to("best.json")


@pytest.mark.parametrize(
    ("make", "what"),
    [(link, "is a symbolic link"), (Path.mkdir, "is a directory"), (os.mkfifo, "is a FIFO")],
    ids=["symlink", "folder", "fifo"],
)
def test_a_result_that_is_no_regular_file_breaks_the_contract(
    folder: Path, make: object, what: str
) -> None:
    make(folder / RESULT_FILE)  # type: ignore[operator]
    check = check_result(folder, 4, PARAMS, SCORE)
    assert check is not None and check.result is None and check.contract
    assert what in check.reason and "write result.json as a regular file" in check.reason
    assert check.rejected is not None
    assert "not retried" in check.rejected.with_suffix(".reason.txt").read_text()
