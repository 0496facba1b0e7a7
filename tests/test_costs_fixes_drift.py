"""Finding 8: a bound edited in the experiment file after ``init`` is said by every reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from cost_support import measure_pending, resnet_experiment
from experiment_support import run

from nas.record.store import StateStore


@pytest.fixture
def edited(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A measured design whose experiment file's bound was tightened after init."""
    source = tmp_path / "costly.toml"
    source.write_text(resnet_experiment(constraints="gmacs = 0.01"))
    state = tmp_path / "costly.h5"
    code, _, err = run(capsys, "init", str(source), "--state", str(state))
    assert code == 0, err
    with StateStore.open(state) as store:
        measure_pending(store.state)
        store.commit()
    source.write_text(resnet_experiment(constraints="gmacs = 0.002"))
    return state


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--dry-run"),
        ("propose", "--dry-run"),
        ("status",),
        ("status", "--json"),
        ("front",),
        ("best",),
    ],
    ids=" ".join,
)
def test_every_reader_warns_that_the_edited_file_is_not_read(
    edited: Path, capsys: pytest.CaptureFixture, argv: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, argv[0], "--state", str(edited), *argv[1:])
    assert code == 0, err
    assert err.count("was edited after init") == 1, err
    assert "warning: " in err and "splinenas import --state NEW.h5" in err
