"""A search's own code is imported from the folder the search runs in, whoever reads it.

``init`` and the controller record the folder they run in; ``status``, ``show``
and the other readers import ``[model] costs`` and ``feasible`` from there, so
a reader started elsewhere computes what the controller computed, even beside
a namesake module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from experiment_support import run
from test_user_costs import write_experiment

from nas.config import parse_experiment
from nas.control import policy, usercosts
from nas.control.usercode import code_folder
from nas.record.state import State
from nas.record.store import StateStore

#: A module of the same name in the folder a reader runs in: it must never be used.
NAMESAKE = 'def costs(values):\n    return {"latency_ms": 1e6, "gflops": 1e6}\n'


@pytest.fixture
def campaign(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A search created with ``init`` in ``tmp_path/campaign``; the test then runs elsewhere."""
    folder = tmp_path / "campaign"
    folder.mkdir()
    write_experiment(folder)
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "init", "own.toml", "--state", "state/own.h5")
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "owncosts.py").write_text(NAMESAKE)
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(elsewhere))  # as `python -m nas` run there would have it
    monkeypatch.setattr(usercosts, "_LOADED", {})
    sys.modules.pop("owncosts", None)
    yield folder
    sys.modules.pop("owncosts", None)


def test_init_records_the_folder_it_ran_in(campaign: Path) -> None:
    state = StateStore.read(campaign / "state" / "own.h5")
    experiment = policy.experiment_of(state, campaign / "state" / "own.h5")
    assert experiment.folder == str(campaign)
    assert code_folder(experiment) == campaign


def test_a_reader_elsewhere_computes_the_costs_the_controller_would(
    campaign: Path, capsys: pytest.CaptureFixture
) -> None:
    state = campaign / "state" / "own.h5"
    first = StateStore.read(state).points[0]
    code, out, err = run(capsys, "show", "--state", str(state), str(first.id), "--json")
    assert code == 0, err
    (row,) = json.loads(out)["constraints"]
    assert row["cost"] == 0.5 * first.params["width"] ** 2 and row["within"]


def test_a_module_gone_from_the_folder_is_one_line_naming_key_and_folder(
    campaign: Path, capsys: pytest.CaptureFixture
) -> None:
    (campaign / "owncosts.py").rename(campaign / "moved.py")
    code, _, err = run(capsys, "status", "--state", str(campaign / "state" / "own.h5"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (code, err)
    assert "own.h5:experiment_toml: [model] costs: cannot import 'owncosts': " in err
    assert f"(looked first in {campaign})" in err


def test_a_controller_in_another_folder_records_it_and_says_so(tmp_path: Path) -> None:
    experiment = parse_experiment(
        '[experiment]\nname = "f"\n[[space]]\nname = "x"\ntype = "float"\nlow = 0\nhigh = 1\n'
    )
    state = State(experiment.text, experiment.space)
    assert policy.experiment_of(state, "s.h5").folder is None  # older states: the working dir
    policy.record_folder(state, tmp_path / "a")
    policy.record_folder(state, tmp_path / "a")
    assert not state.events
    policy.record_folder(state, tmp_path / "b")
    assert policy.experiment_of(state, "s.h5").folder == str(tmp_path / "b")
    (event,) = state.events
    assert event.kind == policy.FOLDER_MOVED and str(tmp_path / "a") in event.message
