"""A stand-in for IBM Spectrum LSF's bsub, bjobs and bkill on one machine.

LSF is closed software, so its path is tested against these doubles. They
keep their state in ``$FAKE_LSF_DIR`` (one folder per job: name, pid, exit
code), parse real argv and ``#BSUB`` lines like LSF does, run the job script
locally in its own session and answer in LSF's formats and exit codes.
Standard library only: they run under whatever python3 is on PATH.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _fakejob  # noqa: E402

#: bsub options that take a value; the ones the job scripts use, and a few more.
VALUE_OPTIONS = {
    "-J", "-cwd", "-o", "-e", "-oo", "-eo", "-q", "-P", "-W", "-nnodes", "-alloc_flags",
    "-wa", "-wt", "-n", "-R", "-G", "-app", "-M",
}  # fmt: skip
FLAG_OPTIONS = {"-x", "-N", "-B", "-r", "-rn"}
FIELDS = ("jobid", "stat", "job_name", "exit_code", "exit_reason")
#: Runs the script, then records its exit status for bjobs.
RUNNER = 'bash "$1"; rc=$?; printf "%s\\n" "$rc" >"$2.tmp" && mv "$2.tmp" "$2"'


def state_dir() -> Path:
    return _fakejob.state_dir("FAKE_LSF_DIR", "LSF")


def _next_id(root: Path) -> int:
    return _fakejob.next_number(root)


def _parse_options(args: list[str], options: dict[str, str], source: str) -> list[str]:
    """Fill ``options`` from ``args``; return what is left (a command, if any)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in FLAG_OPTIONS:
            options[flag] = ""
            i += 1
        elif flag in VALUE_OPTIONS and i + 1 < len(args):
            options[flag] = args[i + 1]
            i += 2
        else:
            sys.stderr.write(f"{flag}: Illegal option ({source}).\n")
            sys.exit(255)
    return args[i:]


def bsub(argv: list[str]) -> int:
    root = state_dir()
    cli: dict[str, str] = {}
    command = _parse_options(argv, cli, "command line")
    if command:
        sys.stderr.write("fake bsub: only scripts on stdin are supported\n")
        return 255
    script = sys.stdin.read()
    options: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("#BSUB"):
            _parse_options(shlex.split(line[len("#BSUB") :]), options, "#BSUB line")
    options.update(cli)  # the command line wins, as in LSF
    job_id = _next_id(root)
    folder = root / "jobs" / str(job_id)
    folder.mkdir()
    (folder / "script").write_text(script)
    (folder / "name").write_text(options.get("-J", "NONAME"))
    # CSM machines list the launch node once, then each compute host once per slot.
    (folder / "hostfile").write_text("batch-launch\n" + "127.0.0.1\n" * 4)
    cwd = options.get("-cwd", os.getcwd())
    env = dict(os.environ, LSB_JOBID=str(job_id), LSB_JOBNAME=options.get("-J", "NONAME"),
               LSB_DJOB_HOSTFILE=str(folder / "hostfile"))  # fmt: skip
    out = _log_path(options.get("-o", "/dev/null"), job_id, cwd)
    err = _log_path(options["-e"], job_id, cwd) if "-e" in options else out
    with open(out, "ab") as stdout, open(err, "ab") as stderr:
        child = subprocess.Popen(
            ["bash", "-c", RUNNER, "fake-lsf-job", str(folder / "script"), str(folder / "exit")],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    (folder / "pid").write_text(str(child.pid))
    queue = options.get("-q", "batch")
    print(f"Job <{job_id}> is submitted to queue <{queue}>.")
    return 0


def _log_path(template: str, job_id: int, cwd: str) -> str:
    path = template.replace("%J", str(job_id)).replace("%I", "0")
    return os.path.join(cwd, path)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def job_info(folder: Path) -> dict[str, str]:
    """One job's bjobs fields."""
    exit_file = folder / "exit"
    killed = (folder / "killed").exists()
    info = {"jobid": folder.name, "job_name": (folder / "name").read_text(),
            "exit_code": "-", "exit_reason": "-"}  # fmt: skip
    if exit_file.exists():
        code = int(exit_file.read_text())
        info["stat"] = "DONE" if code == 0 else "EXIT"
        if code:
            info["exit_code"] = str(code)
    elif (folder / "pid").exists() and _alive(int((folder / "pid").read_text())):
        info["stat"] = "RUN"
    elif (folder / "pid").exists():
        info["stat"] = "EXIT"
    else:
        info["stat"] = "PEND"
    if killed and info["stat"] == "EXIT":
        info["exit_reason"] = "TERM_OWNER: job killed by owner"
    return info


def _output_format(spec: str) -> tuple[list[str], str]:
    """``"jobid stat delimiter='|'"`` -> (["jobid", "stat"], "|"), like bjobs -o."""
    words = shlex.split(spec.replace("delimiter=", "delimiter= "))
    if "delimiter=" in words:
        at = words.index("delimiter=")
        return words[:at] + words[at + 2 :], words[at + 1]
    return words, " "


def bjobs(argv: list[str]) -> int:
    root = state_dir()
    fields, show_all, header, ids = ["jobid", "stat", "job_name"], False, True, []
    delimiter = " "
    args = iter(argv)
    for arg in args:
        if arg == "-noheader":
            header = False
        elif arg == "-a":
            show_all = True
        elif arg == "-o":
            fields, delimiter = _output_format(next(args))
            unknown = [f for f in fields if f not in FIELDS]
            if unknown:
                sys.stderr.write(f"{unknown[0]}: Illegal field name\n")
                return 255
        elif arg == "-u":
            next(args)
        elif arg.startswith("-"):
            sys.stderr.write(f"{arg}: Illegal option.\n")
            return 255
        else:
            ids.append(arg)
    folders = sorted((root / "jobs").iterdir(), key=lambda p: int(p.name))
    rows, status = [], 0
    if ids:
        for job_id in ids:
            folder = root / "jobs" / job_id
            if folder.is_dir():
                rows.append(job_info(folder))
            else:
                sys.stderr.write(f"Job <{job_id}> is not found\n")
                status = 255
    else:
        rows = [job_info(f) for f in folders]
        if not show_all:
            rows = [r for r in rows if r["stat"] not in ("DONE", "EXIT")]
    if not rows:
        if not ids:
            sys.stderr.write("No job found\n" if show_all else "No unfinished job found\n")
        return 255
    if header:
        print(delimiter.join(f.upper() for f in fields))
    for row in rows:
        print(delimiter.join(row[f] for f in fields))
    return status


def bkill(argv: list[str]) -> int:
    root = state_dir()
    status = 0
    for job_id in argv:
        folder = root / "jobs" / job_id
        if not folder.is_dir():
            sys.stderr.write(f"Job <{job_id}>: No matching job found\n")
            status = 255
            continue
        if job_info(folder)["stat"] in ("DONE", "EXIT"):
            sys.stderr.write(f"Job <{job_id}>: Job has already finished\n")
            status = 255
            continue
        (folder / "killed").touch()
        _terminate(int((folder / "pid").read_text()))
        print(f"Job <{job_id}> is being terminated")
    return status


def _terminate(pid: int) -> None:
    """TERM the job's process group, then KILL what is left, like LSF's bkill."""
    for signum, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            return
