"""A fit is stored once: proposing again on the same measurements adds no twin."""

from __future__ import annotations

from pathlib import Path

from experiment_support import FLOAT_BOX, experiment_toml

from nas.config import Experiment, parse_experiment
from nas.control import policy
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state


def _experiment(**settings: object) -> Experiment:
    space = {"x": FLOAT_BOX, "y": {"type": "int", "low": -20, "high": 20}}
    return parse_experiment(experiment_toml("bowl", space, **settings), "bowl.toml")


def _bowl(params: dict) -> float:
    return 10.0 - (params["x"] - 0.7) ** 2 - ((params["y"] + 3) / 10) ** 2


def _propose_and_commit(path: Path, exp: Experiment, measure: bool = False) -> list:
    """One controller cycle on the real file: optionally measure what is pending, then propose."""
    with StateStore.open(path) as store:
        if measure:
            for point in store.state.with_status(PointStatus.PENDING):
                store.state.record(point.id, _bowl(point.params))
        points = policy.Study(store.state, exp).propose()
        store.commit()
    return points


def _first_fit(tmp_path: Path, exp: Experiment) -> Path:
    """A real state file with its design measured and the first spline proposal made."""
    path = tmp_path / "bowl.h5"
    with StateStore.create(path, exp) as store:
        policy.Study(store.state, exp).initial_batch()
        store.commit()
    _propose_and_commit(path, exp, measure=True)
    return path


def test_proposing_again_on_the_same_measurements_stores_no_second_fit(tmp_path: Path) -> None:
    exp = _experiment()
    path = _first_fit(tmp_path, exp)
    first = load_state(path).fits
    assert len(first) == 1
    again = _propose_and_commit(path, exp)  # the first proposal is still pending
    assert again and again[0].origin == "fill"  # it continues that proposal's batch
    state = load_state(path)
    assert [f.number for f in state.fits] == [0]
    assert sum(e.kind == "fit" for e in state.events) == 1
    assert policy.current_fit(state) is state.fits[0]
    assert state.fits[0].time == first[0].time


def test_a_new_measurement_stores_a_new_fit(tmp_path: Path) -> None:
    exp = _experiment()
    path = _first_fit(tmp_path, exp)
    _propose_and_commit(path, exp, measure=True)
    fits = load_state(path).fits
    assert len(fits) == 2
    assert len(fits[1].support_ids) == len(fits[0].support_ids) + 1


def test_a_changed_setting_stores_its_own_fit(tmp_path: Path) -> None:
    path = _first_fit(tmp_path, _experiment())
    _propose_and_commit(path, _experiment(smoothing=0.5))
    fits = load_state(path).fits
    assert len(fits) == 2 and fits[0].support_ids == fits[1].support_ids
    assert not (fits[0].coefficients == fits[1].coefficients).all()
