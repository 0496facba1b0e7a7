"""State model, HDF5 store and crash safety of commits."""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import IO

import h5py
import numpy as np
import pytest
from experiment_support import experiment_toml

from nas.config import parse_experiment
from nas.record.hdf5 import FORMAT_VERSION, TIME_UNITS, StateFormatError
from nas.record.lock import LockError, lock_path
from nas.record.state import TRANSITIONS, PointStatus, State, StateError
from nas.record.store import StateStore, _previous_staging, load_state, previous_path

TOML = experiment_toml(
    "toy",
    {
        "width": {"type": "int", "low": 8, "high": 64},
        "mult": {"type": "float", "low": 0.25, "high": 4.0, "log": True},
        "block": {"type": "categorical", "choices": ["basic", "bottleneck"]},
    },
)
EXPERIMENT = parse_experiment(TOML, "toy.toml")
S = PointStatus


def new_state() -> State:
    return State(EXPERIMENT.text, EXPERIMENT.space)


def params(width: float = 16, mult: float = 1.0, block: str = "basic") -> dict:
    return {"width": width, "mult": mult, "block": block}


# ------------------------------------------------------------------------------ the model


def test_add_point_snaps_and_refuses_a_twin() -> None:
    state = new_state()
    point = state.add_point(params(width=16.4), "initial", 0, predicted=3.5)
    assert point.params == params(width=16)
    assert (point.status, point.predicted, point.origin) == (S.PENDING, 3.5, "initial")
    assert state.find(params(width=15.6)) == point
    with pytest.raises(StateError, match=r"point 0 already has params"):
        state.add_point(params(width=16.2), "manual", 1)
    assert state.find(params(block="bottleneck")) is None


def test_ids_are_never_reused_and_batches_count_up() -> None:
    state = new_state()
    assert state.next_batch() == 0
    ids = [state.add_point(params(width=w), "initial", 0).id for w in (8, 9, 10)]
    assert ids == [0, 1, 2]
    assert state.next_batch() == 1
    state.set_status(1, S.CANCELLED, reason="not needed")
    assert state.add_point(params(width=11), "manual", 1).id == 3


def test_unknown_origin_and_unknown_point_are_named() -> None:
    state = new_state()
    with pytest.raises(StateError, match=r"unknown origin 'guess'"):
        state.add_point(params(), "guess", 0)
    with pytest.raises(StateError, match=r"no point with id 7"):
        state.record(7, 1.0)


def test_record_needs_replace_for_a_different_value() -> None:
    state = new_state()
    state.add_point(params(), "manual", 0)
    assert state.record(0, 71.5).status is S.DONE
    assert state.record(0, 71.5).value == 71.5  # the same value again is harmless
    with pytest.raises(StateError, match=r"point 0 is already measured \(71.5\).*--replace"):
        state.record(0, 72.0)
    assert state.record(0, 72.0, replace=True).value == 72.0
    assert "was 71.5" in state.events[-1].message


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_record_refuses_non_finite_values(value: float) -> None:
    state = new_state()
    state.add_point(params(), "manual", 0)
    with pytest.raises(StateError, match="must be finite"):
        state.record(0, value)
    assert state.point(0).value is None


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", [s for s in S if s is not S.DONE])
def test_transition_table_is_enforced(source: PointStatus, target: PointStatus) -> None:
    state = new_state()
    state.add_point(params(), "initial", 0)
    state._put(state.point(0), status=source)
    if target in TRANSITIONS[source]:
        assert state.set_status(0, target, reason="why").status is target
        assert state.point(0).reason == "why"
    else:
        with pytest.raises(StateError, match=f"cannot go from {source.value} to {target.value}"):
            state.set_status(0, target)


def test_finished_and_active_statuses() -> None:
    assert {s for s in S if s.is_finished()} == {S.DONE, S.FAILED, S.INFEASIBLE, S.CANCELLED}
    assert {s for s in S if s.is_active()} == {S.SUBMITTING, S.SUBMITTED, S.RUNNING}
    assert TRANSITIONS[S.DONE] == frozenset()


def test_update_point_allows_bookkeeping_fields_only() -> None:
    state = new_state()
    state.add_point(params(), "initial", 0)
    point = state.update_point(0, job_id="123", job_name="toy-p0-a1", attempts=1, extra={"a": 1})
    assert (point.job_id, point.job_name, point.attempts, point.extra) == (
        "123",
        "toy-p0-a1",
        1,
        {"a": 1},
    )
    with pytest.raises(StateError, match=r"cannot update status, value; updatable fields are"):
        state.update_point(0, status=S.DONE, value=1.0)
    with pytest.raises(StateError, match="extra must be JSON-able"):
        state.update_point(0, extra={"when": object()})


def test_set_space_recomputes_coordinates_and_keeps_points() -> None:
    state = new_state()
    state.add_point(params(width=64, mult=4.0), "initial", 0)
    wider = state.space.with_bounds("width", high=128)
    state.set_space(wider)
    np.testing.assert_allclose(state.coords(), [[(64 - 8) / 120, 1.0]])
    assert state.find(params(width=64, mult=4.0)).id == 0
    with pytest.raises(StateError, match=r"point 0 .* is not a legal point"):
        state.set_space(state.space.with_bounds("width", high=32))
    assert state.space == wider


def test_a_fit_too_small_to_leave_one_out_says_so_in_the_log() -> None:
    state = new_state()
    state.add_fit([0, 1], [0.5, -1.0, 2.0], math.nan, params(width=32), 82.0)
    state.add_fit([0, 1], [0.5, -1.0, 2.0], 0.75, params(width=32), 82.0)
    assert [e.message for e in state.events if e.kind == "fit"] == [
        "fit 0: 2 points, LOO RMSE - (too few points to leave one out)",
        "fit 1: 2 points, LOO RMSE 0.75",
    ]


# ------------------------------------------------------------------------------ the store


def filled_store(path: Path) -> StateStore:
    store = StateStore.create(path, EXPERIMENT)
    state = store.state
    state.add_point(params(width=8, mult=0.25), "initial", 0, predicted=None)
    state.add_point(
        params(width=64, mult=4.0, block="bottleneck"), "incremental", 1, predicted=80.25
    )
    state.record(0, 61.0)
    state.set_status(1, S.SUBMITTING)
    state.update_point(1, job_name="toy-p1-a1", extra={"note": "ünïcode"})
    state.add_fit(
        [0, 1], [0.5, -1.0, 2.0], 0.75, params(width=32), 82.0, local_loo=0.125, warped=["width"]
    )
    state.add_fit([0, 1], [0.5, -1.0, 2.0], 0.75, params(width=32), 82.0)
    state.meta["cycle"] = 3
    store.commit()
    return store


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with filled_store(path) as store:
        written = store.state
    loaded = load_state(path)
    assert loaded.points == written.points
    assert loaded.events == written.events
    assert loaded.meta == {"cycle": 3}
    assert loaded.generation == written.generation == 2
    assert loaded.experiment_text == TOML
    assert loaded.space == EXPERIMENT.space
    fit = loaded.fits[0]
    assert (fit.support_ids, fit.loo_rmse, fit.argmax, fit.predicted_max, fit.local_loo) == (
        (0, 1),
        0.75,
        params(width=32),
        82.0,
        0.125,
    )
    np.testing.assert_array_equal(fit.coefficients, [0.5, -1.0, 2.0])
    assert (fit.warped, loaded.fits[1].warped) == (("width",), ())  # none warped: no attribute
    np.testing.assert_allclose(loaded.coords(), [[0.0, 0.0], [1.0, 1.0]])


def test_file_is_plain_hdf5_without_pickles(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    with h5py.File(path, "r") as file:
        assert file.attrs["format_version"] == FORMAT_VERSION
        assert file["points/status"].asstr()[()].tolist() == ["done", "submitting"]
        assert json.loads(file["points/params_json"].asstr()[1])["block"] == "bottleneck"
        assert file["points/coords"].shape == (2, 2)
        assert file["events"].dtype.names == ("time", "kind", "point_id", "message")
        assert set(file["fits/0"]) == {"support_ids", "coefficients"}
        assert file["experiment_toml"].asstr()[()] == TOML


def test_commit_keeps_the_previous_generation(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with filled_store(path) as store:
        store.state.record(1, 70.0)
        store.commit()
    assert load_state(previous_path(path)).generation == 2
    assert load_state(path).point(1).value == 70.0
    assert not list(tmp_path.glob("*.tmp*"))


def test_previous_generation_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_: object) -> None:
        raise OSError("hard links not supported")

    path = tmp_path / "s.h5"
    with filled_store(path) as store:
        monkeypatch.setattr(os, "link", no_links)
        store.state.log("note", "a change to commit")
        store.commit()
    assert load_state(previous_path(path)).generation == 2
    assert load_state(path).generation == 3


def test_a_commit_without_changes_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with filled_store(path) as store:
        before = (path.stat().st_mtime_ns, previous_path(path).stat().st_mtime_ns)
        store.commit()
        assert (path.stat().st_mtime_ns, previous_path(path).stat().st_mtime_ns) == before
        store.state.update_point(0, attempts=1)
        store.commit()
    assert load_state(path).generation == 3 and load_state(path).point(0).attempts == 1
    with StateStore.open(path) as store:
        store.commit()
    assert load_state(path).generation == 3, "opening and committing unchanged writes nothing"


def test_create_refuses_an_existing_file_and_open_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    StateStore.create(path, EXPERIMENT).close()
    with pytest.raises(StateError, match="already exists"):
        StateStore.create(path, EXPERIMENT)
    assert not lock_path(path).exists()
    with pytest.raises(StateError, match="no state file at .*splinenas init"):
        StateStore.open(tmp_path / "missing.h5")


def test_second_writer_in_this_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with StateStore.create(path, EXPERIMENT):
        with pytest.raises(LockError, match=f"locked by pid {os.getpid()} on host"):
            StateStore.open(path)
    StateStore.open(path).close()  # released on exit


def test_commit_refuses_after_the_lock_was_broken(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with StateStore.create(path, EXPERIMENT) as store:
        lock_path(path).unlink()
        with pytest.raises(LockError, match="no longer held"):
            store.commit()


@pytest.mark.parametrize("cut", [0, 100, 0.5])
def test_corrupt_file_error_names_the_previous_generation(tmp_path: Path, cut: float) -> None:
    path = tmp_path / "s.h5"
    with filled_store(path) as store:
        store.state.log("note", "a third generation")
        store.commit()
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data)) if cut < 1 else cut])
    with pytest.raises(
        StateFormatError, match=r"corrupt.*s\.h5\.prev \(generation 2\).*copy it over"
    ):
        load_state(path)


def test_corrupt_file_without_previous_generation(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(StateFormatError, match="no previous generation"):
        load_state(path)


def reseal(path: Path) -> None:
    """Give a state file edited in place the checksum of its new content."""
    from nas.record import integrity

    path.write_bytes(integrity.seal(path.read_bytes()[integrity.USERBLOCK :]))


def legacy_copy(path: Path) -> Path:
    """The same state as a file from before checksums (no user block)."""
    from nas.record.hdf5 import _write_content

    legacy = path.with_name("legacy.h5")
    with h5py.File(legacy, "w", track_order=True) as file:
        _write_content(file, load_state(path))
    return legacy


def test_missing_dataset_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    legacy = legacy_copy(path)
    for name in (path, legacy):
        with h5py.File(name, "a") as file:
            del file["points/status"]
    with pytest.raises(StateFormatError, match="does not match its SHA-256 checksum"):
        load_state(path)
    with pytest.raises(StateFormatError, match="corrupt or incomplete.*status"):
        load_state(legacy)  # unchecked: found when decoding


def test_a_file_from_before_checksums_is_read_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    assert load_state(legacy_copy(path)).points == load_state(path).points


def test_a_changed_value_is_caught_and_prev_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    with h5py.File(path, "a") as file:
        file["points/value"][0] = 12.5
    with h5py.File(previous_path(path), "a") as file:
        file.attrs["generation"] = 7
    with pytest.raises(StateFormatError, match=r"checksum.*\.prev is corrupt too.*backup"):
        load_state(path)


def test_flipped_bits_load_identically_or_fail_in_one_line() -> None:
    """A sample of the sweep in tests/flip_sweep.py (run it for the full counts)."""
    from flip_sweep import sweep

    counts = sweep(40, seed=11, timeout=20.0)
    assert counts["same"] + counts["error"] == 40, dict(counts)


def test_fsck_reports_and_repair_restores_the_newest_good_generation(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nas.commands.main import main

    path = tmp_path / "s.h5"
    filled_store(path).close()
    assert main(["fsck", "--state", str(path)]) == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 4
    path.write_bytes(data)
    capsys.readouterr()
    assert main(["fsck", "--state", str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}: corrupt: its content does not match" in out
    assert f"{previous_path(path)}: ok (generation 1)" in out and "--repair" in err
    assert main(["fsck", "--state", str(path), "--repair", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"]["status"] == "ok" and doc["state"]["generation"] == 1
    assert "restored generation 1" in doc["repair"]
    assert len(list(tmp_path.glob("s.h5.corrupt-*"))) == 1, "the corrupt file is kept"
    previous_path(path).write_bytes(data)
    path.write_bytes(data)
    assert main(["fsck", "--state", str(path), "--repair"]) == 1
    assert "no good generation" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("version", "message"),
    [(FORMAT_VERSION + 1, "upgrade splinenas"), (FORMAT_VERSION - 1, "older than format")],
)
def test_other_format_versions_are_refused(tmp_path: Path, version: int, message: str) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    with h5py.File(path, "a") as file:
        file.attrs["format_version"] = version
    reseal(path)  # a genuine file of that version, not a damaged one
    with pytest.raises(StateFormatError, match=f"state format {version}.*{message}"):
        load_state(path)


def test_plain_hdf5_is_not_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as file:
        file["x"] = 1
    with pytest.raises(StateFormatError, match="not a splinenas state file"):
        load_state(path)


def test_a_commit_of_ten_thousand_points_reads_back_whole(tmp_path: Path) -> None:
    # how fast a commit of this size is lives in benchmarks/commit_cost.py and
    # controller_scale.py, not here: a test must not assume the machine's speed
    store = StateStore.create(tmp_path / "s.h5", EXPERIMENT)
    state = store.state
    rng = np.random.default_rng(0)
    while len(state.points) < 10_000:
        candidate = params(int(rng.integers(8, 65)), float(rng.uniform(0.25, 4.0)))
        if state.find(candidate) is None:
            point = state.add_point(candidate, "manual", 0, predicted=1.0)
            state.record(point.id, float(rng.normal()))
    for _ in range(30):
        state.add_fit(range(40), rng.normal(size=43), 0.2, params(), 5.0)
    store.commit()
    state.record(17, 42.0, replace=True)  # a second commit after one change
    store.commit()
    store.close()
    again = StateStore.read(tmp_path / "s.h5")
    assert [(p.id, p.params, p.value) for p in again.points] == [
        (p.id, p.params, p.value) for p in state.points
    ]
    assert again.point(17).value == 42.0
    assert len(again.fits) == 30
    assert np.array_equal(again.fits[-1].coefficients, state.fits[-1].coefficients)


# ------------------------------------------------------------------------------ crash safety

WRITER = textwrap.dedent(
    """
    import sys
    from nas.record.store import StateStore
    store = StateStore.open(sys.argv[1])
    state = store.state
    while True:
        g = state.generation + 1
        point = state.add_point({"width": 8 + g % 57, "mult": 0.25 + g / 1000, "block": "basic"},
                                "manual", g)
        state.record(point.id, float(g))
        state.meta["written_as"] = g
        store.commit()
        print(g, flush=True)
    """
)


def read_until(pipe: IO[bytes], end: bytes | None, timeout: float) -> bytes:
    """Bytes from ``pipe`` up to and including ``end`` (None: end of file), unbuffered.

    Reads the descriptor itself, so nothing is left behind in a buffer that a
    later read would not see; fails after ``timeout`` seconds without them.
    """
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while end is None or end not in data:
            left = deadline - time.monotonic()
            assert left > 0 and selector.select(left), f"no {end!r} after {timeout} s: {data!r}"
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                assert end is None, f"end of file before {end!r}: {data!r}"
                return data
            data += chunk
    return data


def check_consistent(path: Path) -> int:
    """Load the state and check it is exactly some generation's content."""
    state = load_state(path)
    generation = state.generation
    assert state.meta.get("written_as", 2) == generation
    assert len(state.points) == 500 + generation - 2
    assert max((p.value for p in state.points if p.value is not None), default=2) == generation
    return generation


def test_killing_a_writer_mid_commit_leaves_old_or_new_generation(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with StateStore.create(path, EXPERIMENT) as store:  # large enough that a commit takes a while
        for i in range(500):
            store.state.add_point(
                params(8 + i % 57, 0.25 + 3.5 * i / 500, "bottleneck"), "manual", 0
            )
        store.commit()
    rng = random.Random(1)
    mid_commit = 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    errors = tmp_path / "writer.err"
    for _ in range(20):
        before = check_consistent(path)
        with errors.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, stderr=stderr,
                env=env,
            )  # fmt: skip
        assert child.stdout is not None
        try:
            out = read_until(child.stdout, b"\n", timeout=300)  # the first commit is done
        except AssertionError as exc:  # the writer died before it committed: say why
            child.wait(timeout=300)
            detail = f"writer exit {child.returncode}: {errors.read_text()}"
            raise AssertionError(f"{exc}; {detail}") from exc
        committed = int(out.split()[0])
        time.sleep(rng.uniform(0.0, 0.1))  # now kill one mid-way
        child.send_signal(signal.SIGKILL)
        out += read_until(child.stdout, None, timeout=300)
        child.wait(timeout=300)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL, errors.read_text()
        committed = max(map(int, out.split()))
        after = check_consistent(path)
        assert before < after and after in (committed, committed + 1)
        mid_commit += bool(list(tmp_path.glob("s.h5.tmp.*")))  # killed while writing
    assert mid_commit >= 5, f"only {mid_commit} of 20 kills hit a commit in progress"
    assert lock_path(path).exists()  # left by the last victim; the next writer takes it over
    with StateStore.open(path) as store:
        assert store.state.generation == after
    assert not list(tmp_path.glob("s.h5.tmp.*"))


def test_the_file_says_what_its_numbers_mean(tmp_path: Path) -> None:
    """`h5ls -v` / `h5dump -A` readers see metric, goal, units and one time convention."""
    path = tmp_path / "s.h5"
    filled_store(path).close()
    with h5py.File(path, "r") as file:
        assert file.attrs["metric"] == "top1" and file.attrs["goal"] == "maximize"
        assert file.attrs["time_units"] == TIME_UNITS and isinstance(file.attrs["created"], float)
        value = file["points/value"].attrs
        assert (value["units"], value["metric"], value["goal"]) == ("percent", "top1", "maximize")
        assert file["points/predicted"].attrs["units"] == "percent"
        assert file["points/created"].attrs["units"] == TIME_UNITS
        assert file["events"].attrs["time_units"] == TIME_UNITS
        assert file["points/gpu_hours"].attrs["units"].startswith("GPU-hours")


def test_a_file_with_an_iso_creation_time_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    filled_store(path).close()
    created = load_state(path).created
    with h5py.File(path, "a") as file:
        iso = datetime.datetime.fromtimestamp(created).astimezone().isoformat()
        file.attrs["created"] = iso
        del file.attrs["time_units"]
    reseal(path)
    assert load_state(path).created == pytest.approx(created, abs=1e-5)


# ------------------------------------------------------------------------------ one search, one lock


def created(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "real.h5"
    StateStore.create(path, EXPERIMENT).close()
    return path


def test_a_symlinked_name_is_refused_while_the_real_one_is_held(tmp_path: Path) -> None:
    path = created(tmp_path)
    alias = path.with_name("alias.h5")
    alias.symlink_to(path.name)
    with StateStore.open(path):
        with pytest.raises(LockError, match="locked by"):
            StateStore.open(alias)
    with StateStore.open(alias):
        with pytest.raises(LockError, match="locked by"):
            StateStore.open(path)


def test_commits_through_a_symlink_keep_it_a_symlink(tmp_path: Path) -> None:
    from nas.pointdir.layout import run_dir

    path = created(tmp_path)
    alias = tmp_path / "alias.h5"
    alias.symlink_to(path)
    with StateStore.open(alias) as store:
        store.state.add_point(params(), "initial", 0)
        store.commit()
    assert alias.is_symlink() and not path.is_symlink()
    assert len(load_state(path).points) == 1
    assert run_dir(alias) == run_dir(path)


def test_a_hard_linked_second_name_is_refused(tmp_path: Path) -> None:
    path = created(tmp_path)
    os.link(path, tmp_path / "twin.h5")
    for name in (path, tmp_path / "twin.h5"):
        with pytest.raises(LockError, match="2 hard links"):
            StateStore.open(name)


def test_a_commit_stopped_after_keeping_prev_is_not_a_hard_link_alias(tmp_path: Path) -> None:
    path = created(tmp_path)
    os.link(path, previous_path(path))  # what the commit leaves before its final rename
    StateStore.open(path).close()


def test_a_commit_killed_while_it_links_prev_is_not_a_hard_link_alias(tmp_path: Path) -> None:
    """Killed between linking the current generation to ``.prev.tmp`` and renaming it."""
    path = created(tmp_path)
    staging = _previous_staging(path)
    os.link(path, staging)
    with StateStore.open(path) as store:
        assert not staging.exists() and path.stat().st_nlink == 1
        store.state.add_point(params(), "initial", 0)
        store.commit()
    assert len(load_state(path).points) == 1
    os.link(path, staging)
    os.link(path, tmp_path / "twin.h5")  # a real second name is still refused
    with pytest.raises(LockError, match="3 hard links"):
        StateStore.open(path)


def test_a_missing_state_with_its_prev_says_to_copy_prev(tmp_path: Path) -> None:
    path = created(tmp_path)
    with StateStore.open(path) as store:
        store.state.add_point(params(), "initial", 0)
        store.commit()
    path.unlink()
    with pytest.raises(StateError, match=r"previous generation .*real.h5.prev exists; copy"):
        load_state(path)


# ------------------------------------------------------------------------------ disk full


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs; skipped only where this machine refuses to mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_commit_on_a_full_disk_fails_in_one_line_and_the_next_start_resumes(
    small_disk: Path,
) -> None:
    path = small_disk / "s.h5"
    filled_store(path).close()
    before = load_state(path)
    filler = fill(small_disk)
    argv = [sys.executable, "-m", "nas", "record", "--state", str(path), "0", "70.5", "--replace"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def record() -> subprocess.CompletedProcess:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        return done

    done = record()  # not even room for the lock file
    assert done.returncode == 1 and "cannot write lock file" in done.stderr, done.stderr
    assert not lock_path(path).exists(), "no empty lock left behind"
    os.truncate(filler, filler.stat().st_size - 8192)  # room for the lock file, not a commit
    done = record()
    assert done.returncode == 1, done.stderr
    assert "commit failed" in done.stderr and "is unchanged" in done.stderr
    assert "bytes free" in done.stderr or "No space left" in done.stderr
    assert load_state(path).points == before.points, "the old generation is intact"
    assert not list(small_disk.glob("s.h5.tmp.*")) and not lock_path(path).exists()
    filler.unlink()
    assert record().returncode == 0
    assert load_state(path).point(0).value == 70.5
