"""Every sub-command against the typical mistakes of a new user: one clear line, never a traceback.

Each row runs one command line in this process. A mistake must end with
exit code 1 or 2, one line on stderr that starts ``splinenas`` and says
``error:`` (argparse's usage lines may come before it for exit code 2), no
traceback, and the state file byte for byte as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_support import init_state, run

from nas.commands.demo import DEMO_EXPERIMENT

#: {S} a state file, {D} a folder, {F} a plain text file, {G} a file of garbage,
#: {T} an experiment file, {M} a path that does not exist.
MISTAKES = [
    ("init", "{M}/x.toml"),
    ("init", "{D}"),
    ("init", "{G}"),
    ("init", "/dev/zero"),
    ("init", "{T}", "--state", "{F}/x.h5"),
    ("init", "{T}", "--state", "/proc/x/y.h5"),
    ("init", "{T}", "--state", "{D}"),
    ("init", "{T}", "--state", "{S}"),
    ("add", "--state", "{S}", "--params", "g1=abc,g2=8,d1=1"),
    ("add", "--state", "{S}", "--params", "z=1"),
    ("add", "--state", "{S}", "--params", "g1=1_0,g2=8,d1=1"),
    ("add", "--state", "{S}", "--params", "g1=1" + "0" * 400 + ",g2=8,d1=1"),
    ("predict", "--state", "{S}", "--params", "g1=\u0667,g2=8,d1=1"),
    ("add", "--state", "{S}", "--params", "g1=4,g2=8,d1=1", "--value", "abc"),
    ("add", "--state", "{D}", "--params", "g1=4,g2=8,d1=1"),
    ("record", "--state", "{S}", "99", "1.0"),
    ("record", "--state", "{S}", "0", "abc"),
    ("record", "--state", "{G}", "0", "1"),
    ("record", "--state", "{M}", "0", "1"),
    ("predict", "--state", "{S}", "--params", "g1=4"),
    ("predict", "--state", "{S}", "--params", "g1=4,g2=8,d1=1"),
    ("propose", "--state", "{S}", "-n", "0"),
    ("propose", "--state", "{S}", "-n", "x"),
    ("status", "--state", "{D}"),
    ("status", "--state", "{G}"),
    ("status", "--state", "{M}"),
    ("status", "--state", "{F}"),
    ("status", "--state", ""),
    ("show", "--state", "", "1"),
    ("export", "--state", "{S}", "--csv", "--out", "{M}/points.csv"),
    ("export", "--state", "{S}", "--csv", "--out", "{D}"),
    ("export", "--state", "{S}", "--csv", "--out", "{F}/points.csv"),
    ("export", "--state", "{D}", "--csv"),
    ("export", "--state", "{S}", "--csv", "--out", "{S}"),
    ("export", "--state", "{S}", "--json", "--out", "{S}"),
    ("run", "--state", "{S}", "--poll", "-1"),
    ("run", "--state", "{S}", "--poll", "nan", "--dry-run"),
    ("run", "--state", "{S}", "--poll", "1e300", "--dry-run"),
    ("controller", "submit", "--state", "{S}", "--poll", "inf"),
    ("run", "--state", "{D}", "--once"),
    ("run", "--state", "{G}", "--dry-run"),
    ("rerun", "--state", "{S}", "99"),
    ("rerun", "--state", "{S}", "x"),
    ("cancel", "--state", "{S}", "99"),
    ("cancel", "--state", "{D}", "1"),
    ("show", "--state", "{D}", "4"),
    ("show", "--state", "{S}", "99"),
    ("show", "--state", "{S}", "0", "--lines", "0"),
    ("unlock", "--state", "{D}"),
    ("unlock", "--state", "{M}"),
    ("expand", "--state", "{S}", "--dim", "nope", "--high", "3"),
    ("expand", "--state", "{S}", "--dim", "g1", "--high", "abc"),
    ("expand", "--state", "{S}", "--refine", "g1=1"),
    ("expand", "--state", "{S}", "--dim", "g1", "--low", "40"),
    ("controller", "submit", "--state", "{D}"),
    ("controller", "submit", "--state", "{S}", "--poll", "0"),
    ("controller", "job", "--state", "{M}", "--job-id", "1"),
    ("cost", "{M}/x.toml", "--params", "g1=4"),
    ("cost", "{T}", "--params", "g1"),
    ("cost", "{D}", "--params", "g1=4"),
    ("cost", "{T}", "--params", "g1=4,g2=8,d1=1", "--num-classes", "x"),
    ("cost", "{T}", "--params", "g1=4,g2=8,d1=1", "--num-classes", "0"),
    ("front", "--state", "{S}", "--pool", "100000000"),
    ("cost", "{T}", "--params", "g1=4,g2=8,d1=1", "--num-classes", "-3"),
    ("data", "index", "{M}", "--out", "{D}/i.h5"),
    ("data", "index", "{D}", "--out", "{M}/i.h5"),
    ("data", "index", "{D}", "--out", "{D}"),
    ("data", "index", "{D}", "--out", "{D}/i.h5", "--threads", "0"),
    ("demo", "--out", "{F}"),
    ("demo", "--out", "/proc/demo"),
    ("plot", "--state", "{D}", "--out", "{D}/plots"),
    ("plot", "--state", "{S}", "--out", "{F}"),
    ("plot", "--state", "{S}", "--out", "/proc/plots"),
    ("report", "--state", "{D}", "--out", "{D}/report"),
    ("report", "--state", "{S}", "--out", "{F}"),
    ("report", "--state", "{S}", "--out", "/proc/report"),
    ("report", "--state", "{S}", "--out", "{D}/report", "--watch", "0"),
    ("report", "--state", "{G}", "--out", "{D}/report"),
]


@pytest.fixture
def places(tmp_path: Path, capsys: pytest.CaptureFixture) -> dict[str, str]:
    state = init_state(tmp_path, capsys, DEMO_EXPERIMENT.read_text(encoding="utf-8"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "notes.txt").write_text("a plain file\n")
    (tmp_path / "garbage").write_bytes(bytes(range(256)) * 4)
    return {
        "S": str(state),
        "D": str(folder),
        "F": str(tmp_path / "notes.txt"),
        "G": str(tmp_path / "garbage"),
        "T": str(tmp_path / "toy.toml"),
        "M": str(tmp_path / "missing"),
    }


@pytest.mark.parametrize("argv", MISTAKES, ids=[" ".join(argv) for argv in MISTAKES])
def test_a_mistake_is_one_clear_line(
    argv: tuple[str, ...],
    places: dict[str, str],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # demo sets it when unset; keep it to this test
    state = Path(places["S"])
    before = state.read_bytes()
    code, out, err = run(capsys, *(part.format(**places) for part in argv))
    lines = err.strip().splitlines()
    assert code in (1, 2), err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith(f"splinenas {argv[0]}") and "error:" in lines[-1], err
    if code == 1:
        assert len(lines) == 1, err
    assert state.read_bytes() == before


def test_a_run_folder_given_as_state_names_the_state_file(
    places: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    state = Path(places["S"])
    run_folder = state.with_suffix("")
    run_folder.mkdir()
    code, _, err = run(capsys, "show", "--state", str(run_folder), "4")
    assert code == 1
    assert err == (
        f"splinenas show: error: {run_folder} is a folder, not a state file; "
        f"did you mean {state}?\n"
    )


def test_data_index_checks_its_output_before_scanning(
    places: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    tree = Path(places["D"])
    (tree / "cat").mkdir()
    (tree / "cat" / "a.png").write_bytes(b"")
    code, _, err = run(capsys, "data", "index", str(tree), "--out", "/nonexistent/i.h5")
    assert code == 2
    assert err == (
        "splinenas data index: error: --out /nonexistent/i.h5: the folder /nonexistent does not exist\n"
    )


@pytest.mark.parametrize(
    ("argv", "default"),
    [
        (("run",), "--poll SECONDS seconds between cycles (default: 60)"),
        (("show",), "--lines LINES log lines per file (default: 20)"),
        (("controller", "submit"), "cycles (default: 60)"),
    ],
)
def test_help_shows_the_defaults(
    argv: tuple[str, ...], default: str, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0 and default in " ".join(out.split())
