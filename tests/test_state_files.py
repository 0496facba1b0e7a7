"""State files that cannot be trusted: no checksum, another format, a repair that loses work.

The two files in ``tests/fixtures`` were written by an early splinenas, before
the checksum block: one is sound, the other has one flipped bit that makes
HDF5's metadata parser spin (see ``tests/fixtures/README.md``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from experiment_support import experiment_toml

from nas.commands.main import main
from nas.config import parse_experiment
from nas.record import integrity
from nas.record.hdf5 import FORMAT_VERSION, StateVersionError
from nas.record.state import PointStatus
from nas.record.store import SEAL_EVENT, StateStore, StateWriteError, load_state, previous_path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
#: A short limit keeps the spinning fixture's tests short; the default is READ_LIMIT.
LIMIT = "3"


def fixture(name: str, where: Path, as_name: str = "s.h5") -> Path:
    """A writable copy of a fixture (the originals are never written)."""
    path = where / as_name
    shutil.copyfile(FIXTURES / name, path)
    return path


def splinenas(*args: str, limit: str = LIMIT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPLINENAS_READ_LIMIT": limit}
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    "command",
    [["status"], ["show", "0"], ["export", "--csv"], ["fsck"], ["record", "0", "50"]],
    ids=["status", "show", "export", "fsck", "record"],
)
def test_every_command_answers_the_spinning_file_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    path = fixture("unsealed-flipped-state.h5", tmp_path)
    before = path.read_bytes()
    done = splinenas(command[0], "--state", str(path), *command[1:])
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"could not be decoded within {LIMIT} s" in done.stdout + done.stderr
    if command[0] != "fsck":
        assert done.stderr.count("\n") == 1, done.stderr
    assert path.read_bytes() == before, "a file that cannot be read is never rewritten"


def test_a_file_without_checksum_reads_alike_and_the_first_writer_seals_it(
    tmp_path: Path,
) -> None:
    path = fixture("unsealed-state.h5", tmp_path)
    unsealed = path.read_bytes()
    before = load_state(path)
    assert not integrity.file_has_checksum(path)
    with StateStore.open(path) as store:
        assert store.state.events[-1].kind == SEAL_EVENT
    assert integrity.file_has_checksum(path)
    assert previous_path(path).read_bytes() == unsealed, "the unsealed generation stays as .prev"
    after = load_state(path)
    assert after.points == before.points
    assert after.generation == before.generation + 1
    assert dict(after.curves) == dict(before.curves)
    with StateStore.open(path) as store:
        assert store.state.generation == after.generation, "sealed once"


def test_fsck_repair_restores_a_sound_prev_over_the_spinning_file(tmp_path: Path) -> None:
    path = fixture("unsealed-flipped-state.h5", tmp_path)
    done = splinenas("fsck", "--state", str(path), "--repair")
    assert done.returncode == 1 and "no good generation" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    fixture("unsealed-state.h5", tmp_path, "s.h5.prev")
    done = splinenas("fsck", "--state", str(path), "--repair")
    assert done.returncode == 0, done.stderr
    assert "restored generation" in done.stderr and "cannot be read" in done.stderr
    assert load_state(path).points, "the sound generation is back"
    assert len(list(tmp_path.glob("s.h5.corrupt-*"))) == 1


TOML = experiment_toml("toy", {"width": {"type": "int", "low": 8, "high": 64}})


def small_store(path: Path) -> StateStore:
    store = StateStore.create(path, parse_experiment(TOML, "toy.toml"))
    for width in (8, 16, 32):
        store.state.add_point({"width": width}, "initial", 0, predicted=None)
    store.state.record(0, 61.0)
    store.commit()
    return store


def test_a_newer_format_is_named_and_never_repaired_away(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "s.h5"
    small_store(path).close()
    with h5py.File(path, "a") as file:
        file.attrs["format_version"] = FORMAT_VERSION + 1
        file.attrs["package_version"] = "9.1"
    path.write_bytes(integrity.seal(path.read_bytes()[integrity.USERBLOCK :]))
    newer = path.read_bytes()
    with pytest.raises(StateVersionError, match="written by a newer splinenas 9.1.*upgrade"):
        load_state(path)
    assert main(["fsck", "--state", str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}: newer: {path} was written by a newer splinenas 9.1" in out
    assert "--repair" not in err and "upgrade splinenas" in err
    assert main(["fsck", "--state", str(path), "--repair"]) == 1
    assert "not repaired" in capsys.readouterr().err
    assert path.read_bytes() == newer and not list(tmp_path.glob("*.corrupt-*"))


def test_repair_names_the_hand_recorded_point_it_loses(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "s.h5"
    small_store(path).close()
    assert main(["record", "--state", str(path), "2", "70.5"]) == 0
    data = bytearray(path.read_bytes())
    data[30] ^= 1  # a hex digit of the stored checksum: the content still decodes
    path.write_bytes(data)
    capsys.readouterr()
    assert main(["fsck", "--state", str(path), "--repair"]) == 0
    err = capsys.readouterr().err
    assert "point 2: done 70.5 becomes pending" in err, err
    assert "point 0" not in err and "point 1" not in err, "unchanged points are not listed"
    assert load_state(path).point(2).status is PointStatus.PENDING


def test_a_full_disk_names_the_reserve_and_init_names_no_file_it_never_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_store(tmp_path / "probe.h5").close()
    needed = os.path.getsize(previous_path(tmp_path / "probe.h5"))  # generation 1
    free = os.statvfs(tmp_path)

    class Full:
        f_frsize = 1
        f_bavail = needed + 1000  # room for the file, not for the file and the reserve

        def __getattr__(self, name: str) -> int:
            return getattr(free, name)

    monkeypatch.setattr(os, "statvfs", lambda folder: Full())
    path = tmp_path / "new.h5"
    with pytest.raises(StateWriteError) as caught:
        StateStore.create(path, parse_experiment(TOML, "toy.toml"))
    message = str(caught.value)
    assert f"{needed + 1000} bytes free" in message and "kept free" in message, message
    assert f"cannot create {path}" in message and "nothing was written" in message
    assert "unchanged" not in message and "generation" not in message
    assert not path.exists()
