"""Things the CLI said wrong or not at all: unread ``[controller]`` keys, a dangling
"log tail:" in ``status``, invisible characters in ``run --dry-run``, 300-digit GPU-hours,
a point folder that is gone, a refusal of ``add`` outside the box that did not say what
``--snap`` would store, and "the guard saved 0.00 GPU-hours" for walltime left unused."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from experiment_support import (
    FLOAT_BOX,
    LOG_LR,
    command_experiment,
    experiment_toml,
    init_state,
    run,
)

from nas.cluster import keepalive
from nas.cluster.base import backend_class, backend_names
from nas.config import ControllerConfig
from nas.names import printable, shown
from nas.numbers import amount_text
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import StateStore

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX})


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A state file holding the pending initial design of the toy (points 0-4)."""
    return init_state(tmp_path, capsys, TOML)


def submit(state: Path, point_id: int, **changes: object) -> None:
    """``point_id`` as the controller leaves it once its job is submitted."""
    with StateStore.open(state) as store:
        job_name = f"toy-p{point_id}-r0a1s0"
        store.state.update_point(point_id, attempts=1, job_name=job_name, **changes)
        store.state.set_status(point_id, PointStatus.SUBMITTING)
        store.state.update_point(point_id, job_id="7")
        store.state.set_status(point_id, PointStatus.SUBMITTED, "job 7")
        store.commit()


def fail(state: Path, point_id: int, reason: str) -> None:
    submit(state, point_id)
    with StateStore.open(state) as store:
        store.state.set_status(point_id, PointStatus.FAILED, reason)
        store.commit()


# ---------------------------------------------------------------- 1: unread [controller] keys


def _init_warnings(tmp_path: Path, capsys: pytest.CaptureFixture, text: str) -> list[str]:
    """What ``init --validate-only`` says is not used, after the table name."""
    (tmp_path / "keys.toml").write_text(text)
    (tmp_path / "t.sh").write_text("#!/bin/sh\n")
    (tmp_path / "t.sh").chmod(0o755)
    code, _, err = run(capsys, "init", "keys.toml", "--validate-only")
    assert code == 0, err
    return [re.search(r"\[\w+\] .*", line)[0] for line in err.splitlines() if "is not used" in line]


#: What ``init`` asks of each backend besides: an account, PBS's file systems.
_SITE = {"slurm": {"account": "abc"}, "lsf": {"account": "abc"}, "pbs": {"filesystems": "home"}}


@pytest.mark.parametrize(
    ("backend", "table", "keys", "unread"),
    [
        ("pbs", "cluster", {"mem": "200G", "qos": "high"},
         ["mem is not used by backend 'pbs' (only by slurm)",
          "qos is not used by backend 'pbs' (only by slurm)"]),
        ("slurm", "cluster", {"mem": "200G", "alloc_flags": "smt4"},
         ["alloc_flags is not used by backend 'slurm' (only by lsf)"]),
        ("lsf", "cluster", {"resource_sets": "node", "queue": "batch"}, []),
        ("pbs", "controller", {"qos": "high", "cores": 2, "queue": "svc"},
         ["qos is not used by backend 'pbs' (only by slurm)"]),
        ("lsf", "controller", {"cores": 2, "account": "abc"},
         ["cores is not used by backend 'lsf' (only by flux, pbs, slurm)"]),
        ("flux", "controller", {"qos": "high", "account": "abc"},
         ["qos is not used by backend 'flux' (only by slurm)"]),
        ("local", "controller", {"walltime_minutes": 60, "qos": "high"},
         ["qos is not used by backend 'local' (only by slurm)",
          "walltime_minutes is not used by backend 'local' (only by flux, lsf, pbs, slurm)"]),
        ("slurm", "controller", {"account": "abc", "queue": "q", "qos": "high", "cores": 2,
                                 "walltime_minutes": 60, "extra_directives": ["--comment=x"]}, []),
    ],
)  # fmt: skip
def test_init_names_the_keys_the_backend_does_not_read(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    table: str,
    keys: dict,
    unread: list[str],
) -> None:
    """`[cluster] mem` or `[controller] qos` on PBS reached no script, and nothing said so."""
    monkeypatch.chdir(tmp_path)
    cluster = {"backend": backend, **_SITE.get(backend, {})}
    if table == "cluster":
        cluster.update(keys)
    text = command_experiment("keys", ["./t.sh", "{lr}"], {"lr": LOG_LR}, metric="s",
                              cluster=cluster)  # fmt: skip
    if table == "controller":
        text += "[controller]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    said = _init_warnings(tmp_path, capsys, text)
    assert said == [f"[{table}] {line}; it has no effect" for line in unread]


#: A value of each ``[controller]`` key other than its default.
_OTHER = {"account": "acct2", "queue": "q2", "qos": "qos2", "cores": 2, "walltime_minutes": 77,
          "extra_directives": ["--comment=x"]}  # fmt: skip


@pytest.mark.parametrize("backend", [n for n in backend_names() if backend_class(n).keepalive])
def test_the_controller_keys_a_backend_reads_are_those_that_change_its_script(
    tmp_path: Path, backend: str
) -> None:
    """The declaration ``init`` warns from is the one the keep-alive script is rendered from."""
    assert set(_OTHER) == {f.name for f in dataclasses.fields(ControllerConfig)}

    def script(controller: ControllerConfig) -> str:
        job = keepalive.KeepAliveJob(
            backend=backend, state_path=tmp_path / "s.h5", script_path=tmp_path / "k.sh",
            log_path=tmp_path / "c.log", workdir=tmp_path, job_name="toy-controller",
            python="/usr/bin/python3", walltime_minutes=controller.walltime_minutes,
            margin_seconds=60, poll=5.0, controller=controller)  # fmt: skip
        return keepalive.render(job)

    plain = script(ControllerConfig())
    changes = {key for key, value in _OTHER.items()
               if script(ControllerConfig(**{key: value})) != plain}  # fmt: skip
    assert changes == backend_class(backend).controller_reads()


# ---------------------------------------------------------------- 2: "log tail:" with nothing after


def _failure_line(capsys: pytest.CaptureFixture, state: Path, point_id: int) -> str:
    code, out, err = run(capsys, "status", "--state", str(state))
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith(f"point {point_id} failed")]
    return line


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("(empty log /r/p3.log)", "attempt 1 of 1: no result file; empty log /r/p3.log"),
        ("(no log: '/r/p3.log' does not exist)",
         "attempt 1 of 1: no result file; no log: '/r/p3.log' does not exist"),
        ("", "attempt 1 of 1: no result file"),
        ("step 1\nTraceback:\nRuntimeError: boom",
         "attempt 1 of 1: no result file; log tail: ... RuntimeError: boom"),
    ],
)  # fmt: skip
def test_status_never_ends_a_failure_on_log_tail(
    toy: Path, capsys: pytest.CaptureFixture, tail: str, expected: str
) -> None:
    """``status`` shows one line of a reason whose log tail follows on the lines below."""
    fail(toy, 3, f"attempt 1 of 1: no result file; log tail:\n{tail}")
    line = _failure_line(capsys, toy, 3)
    assert line == f"point 3 failed: {expected}"


def test_status_keeps_a_one_line_reason_as_it_is(toy: Path, capsys: pytest.CaptureFixture) -> None:
    fail(toy, 2, "gave up after 3 attempts: rank 0: RuntimeError: x: y")
    assert _failure_line(capsys, toy, 2) == (
        "point 2 failed: gave up after 3 attempts: rank 0: RuntimeError: x: y"
    )


# ---------------------------------------------------------------- 3: invisible characters


#: Characters a terminal does not show as themselves (or turns text around with).
INVISIBLE = ["\u2028", "\u2029", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
             "\u2067", "\u2068", "\u2069", "\u200b", "\u200e", "\ufeff", "\x07", "\x1b"]  # fmt: skip


@pytest.mark.parametrize("char", INVISIBLE)
def test_printable_escapes_what_a_terminal_would_hide(char: str) -> None:
    text = f"a{char}b\nnext\tline"
    assert printable(text) == f"a{char.encode('unicode_escape').decode()}b\nnext\tline"
    assert shown(f"/x/a{char}b") == repr(f"/x/a{char}b")


def test_printable_leaves_visible_text_alone() -> None:
    text = "ünïcode 'quoted' \\ back $HOME\n  indented\tline"
    assert printable(text) == text


def _bidi_search(
    folder: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s.h5`` in ``folder`` (the working folder then): a search whose choice and command
    carry bidirectional controls (both pass ``init``).

    A line or paragraph separator does not: ``init`` refuses it in a choice (one line).
    """
    monkeypatch.chdir(folder)
    space = {"act": {"type": "categorical", "choices": ["re\u202elu", "ta\u2066nh", "a\u200bb"]},
             "lr": LOG_LR}  # fmt: skip
    text = command_experiment("bidi", ["./t.sh", "{act}", "--flag=\u202byes"], space,
                              metric="s", cluster={"backend": "local"})  # fmt: skip
    (folder / "bidi.toml").write_text(text)
    (folder / "t.sh").write_text("#!/bin/sh\n")
    (folder / "t.sh").chmod(0o755)
    code, _, err = run(capsys, "init", "bidi.toml", "--state", "s.h5")
    assert code == 0, err


def test_dry_run_prints_invisible_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script's text for people escapes them; the script the job runs keeps them."""
    _bidi_search(tmp_path, capsys, monkeypatch)
    code, out, err = run(capsys, "run", "--dry-run", "--state", "s.h5")
    assert code == 0, err
    hidden = [char for char in INVISIBLE if char in out + err]
    assert hidden == [], hidden
    assert "'re\\u202elu'" in out and "'--flag=\\u202byes'" in out
    code, _, err = run(capsys, "run", "--dry-run", "--state", "s.h5", "--out", "scripts")
    assert code == 0, err
    scripts = "".join(p.read_text() for p in (tmp_path / "scripts").iterdir())
    assert "'re\u202elu'" in scripts and "'--flag=\u202byes'" in scripts
    code, out, _ = run(capsys, "run", "--dry-run", "--state", "s.h5", "--json")
    assert code == 0 and "'re\u202elu'" in json.loads(out)["submit"][0]["text"]


def test_status_table_shows_a_choice_s_invisible_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bidi_search(tmp_path, capsys, monkeypatch)
    code, out, err = run(capsys, "status", "--state", "s.h5")
    assert code == 0, err
    assert [char for char in INVISIBLE if char in out] == []
    assert "re\\u202elu" in out


# ---------------------------------------------------------------- 4: 1e300 GPU-hours


#: A run of digits no person reads: what ``f"{1e300:.1f}"`` prints.
LONG_DIGITS = re.compile(r"\d{20}")


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.0"), (12.345, "12.3"), (999999.0, "999999.0"), (1e300, "1e+300"),
     (12345678.9, "1.235e+07"), (-1e300, "-1e+300"), (1e-9, "0.0")],
)  # fmt: skip
def test_amount_text_is_compact_beyond_a_million(value: float, text: str) -> None:
    assert amount_text(value) == text


@pytest.mark.parametrize(
    ("limit", "said"),
    [(1e301, ["9e+300 of 1e+301 GPU-h left", "; 1e+300 GPU-h spent"]),
     (10, ["max_gpu_hours reached: 1e+300 of 10 GPU-hours used"])],
)  # fmt: skip
def test_status_writes_huge_gpu_hours_compactly(
    tmp_path: Path, capsys: pytest.CaptureFixture, limit: float, said: list[str]
) -> None:
    """In the budget line while GPU-hours are left, and in the stop reason once spent."""
    state = init_state(tmp_path, capsys, experiment_toml(
        "toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, max_gpu_hours=limit))  # fmt: skip
    submit(state, 0, gpu_hours=1e300)
    code, out, err = run(capsys, "status", "--state", str(state))
    assert code == 0, err
    (budget,) = [line for line in out.splitlines() if line.startswith("budget:")]
    assert all(text in budget for text in said), budget
    assert not LONG_DIGITS.search(out), out


def test_show_writes_a_huge_pace_compactly(toy: Path, capsys: pytest.CaptureFixture) -> None:
    submit(toy, 0, extra={"pace": {"images_per_second": 1e300, "device_hours": 2.0}})
    code, out, err = run(capsys, "show", "--state", str(toy), "0")
    assert code == 0, err
    assert "1e+300 img/s per rank" in out and not LONG_DIGITS.search(out), out


def test_show_writes_huge_device_hours_compactly(toy: Path, capsys: pytest.CaptureFixture) -> None:
    """Already so before: ``pace_text`` writes device-hours with ``.3g``."""
    submit(toy, 0, gpu_hours=1e300, extra={"pace": {"device_hours": 1e300}})
    code, out, err = run(capsys, "show", "--state", str(toy), "0")
    assert code == 0, err
    assert "1e+300 device-h" in out and not LONG_DIGITS.search(out), out


# ---------------------------------------------------------------- 5: a point folder that is gone


def test_show_says_a_deleted_point_folder_no_longer_exists(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    submit(toy, 1)
    folder = layout.point_dir(layout.run_dir(toy), 1)
    (folder / layout.LOGS).mkdir(parents=True)
    (folder / layout.LOGS / "toy-p1-r0a1s0.log").write_text("epoch 1\n")
    code, out, err = run(capsys, "show", "--state", str(toy), "1")
    assert code == 0, err
    assert f"folder {folder}\n" in out and "no longer exists" not in out
    shutil.rmtree(folder)
    code, out, err = run(capsys, "show", "--state", str(toy), "1")
    assert code == 0, err
    assert f"folder {folder} (no longer exists: its logs and result files are gone)\n" in out
    code, out, _ = run(capsys, "show", "--state", str(toy), "1", "--json")
    assert code == 0 and json.loads(out)["folder_exists"] is False


def test_show_does_not_miss_the_folder_of_a_point_never_submitted(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """A pending point has no folder yet: that is no loss."""
    code, out, err = run(capsys, "show", "--state", str(toy), "2")
    assert code == 0, err
    assert "no longer exists" not in out


# ---------------------------------------------------------------- 6: what --snap would store


def test_add_outside_the_box_says_what_snap_would_store_not_what_was_stored(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "add", "--state", str(toy), "--params", "x=9,y=0")
    assert code == 1 and len(StateStore.read(toy).points) == 5
    box = "x in [-2.0, 2.0], y in [-2.0, 2.0]"
    assert f"--params: x=9 outside the box ({box}); with --snap it would be stored as 2.0" in err
    assert "x=9 stored as" not in err, err
    code, _, err = run(capsys, "add", "--state", str(toy), "--params", "x=9,y=0", "--snap")
    assert code == 0 and "note: x=9 stored as 2.0, the upper bound" in err, err
    assert StateStore.read(toy).points[-1].params == {"x": 2.0, "y": 0.0}


# ---------------------------------------------------------------- 7: what the guard saved


@pytest.mark.parametrize(
    ("saved", "said"),
    [({"device_hours": 3.0, "gpu_hours": 2.5}, "the guard saved 2.50 GPU-hours (3.00 device-hours)"),
     ({"device_hours": 0.004, "gpu_hours": 0.004},
      "the guard saved under 0.01 GPU-hours (under 0.01 device-hours)"),
     ({"device_hours": 0.3, "gpu_hours": 0.0},
      "their runs left 0.30 device-hours of walltime unused (no GPU-hours counted: "
      "they named no GPU)"),
     ({"device_hours": 0.0, "gpu_hours": 0.0},
      "no time saved is known (no run had segment time left to count)")],
)  # fmt: skip
def test_status_says_what_the_guard_saved_as_far_as_it_is_known(
    toy: Path, capsys: pytest.CaptureFixture, saved: dict[str, float], said: str
) -> None:
    submit(toy, 0, extra={"diverged": 1, "guard_saved": saved})
    code, out, err = run(capsys, "status", "--state", str(toy))
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("diverged:")]
    assert line == f"diverged: points 0 (submitted); {said}"
    code, out, _ = run(capsys, "status", "--state", str(toy), "--json")
    guard = json.loads(out)["diverged"]
    assert (guard["saved_gpu_hours"], guard["saved_device_hours"]) == (
        saved["gpu_hours"], saved["device_hours"])  # fmt: skip
    assert "walltime left" in guard["saved_meaning"]


def test_a_command_that_exits_5_at_once_is_said_to_leave_its_walltime_unused(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launch wrapper counts the walltime left for it, on no device it knows: no saving."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.sh").write_text("#!/bin/sh\nexit 5\n")
    (tmp_path / "t.sh").chmod(0o755)
    text = command_experiment("five", ["./t.sh", "{lr}"], {"lr": LOG_LR}, metric="s",
                              max_points=3, cluster={"backend": "local"})  # fmt: skip
    (tmp_path / "five.toml").write_text(text)
    assert run(capsys, "init", "five.toml", "--state", "s.h5")[0] == 0
    run(capsys, "run", "--state", "s.h5", "--poll", "0.1")
    code, out, err = run(capsys, "status", "--state", "s.h5")
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("diverged:")]
    assert "device-hours of walltime unused (no GPU-hours counted" in line, line
    assert "saved" not in line and "0.00" not in line, line
