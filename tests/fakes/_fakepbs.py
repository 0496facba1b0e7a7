"""A stand-in for PBS Professional's qsub, qstat and qdel on one machine.

The tests have no PBS server, so the PBS path runs against these doubles.
They keep their state in ``$FAKE_PBS_DIR`` (one folder per job), read
``#PBS`` lines and the command line like qsub (the command line wins), run
the job script through ``_fakejob.py`` and answer like PBS Professional /
OpenPBS 22-23 (sources: the PBS Professional Reference Guide, qsub, qstat
and qdel; OpenPBS ``src/cmds/qstat.c`` for the JSON layout and
``src/include/job.h`` for the codes):

* qsub reads the script from its file or, without one, from stdin, and
  prints ``<n>.fakepbs``; the job starts in ``$HOME`` (PBS does not
  start it where qsub ran) with ``PBS_JOBID``, ``PBS_JOBNAME``,
  ``PBS_O_WORKDIR``, ``PBS_NODEFILE`` (one line per node of ``select``) and
  ``PBS_ENVIRONMENT=PBS_BATCH``. Unlike PBS, the rest of the environment is
  qsub's own (as with ``qsub -V``) so the job finds the other doubles.
* qstat ``-x -f -F json`` prints ``{"timestamp", "pbs_version",
  "pbs_server", "Jobs": {id: {...}}}`` with ``Job_Name``, ``Job_Owner``,
  ``job_state`` (Q, R, F), ``substate`` (91 deleted, 92 finished, 93 failed)
  and ``Exit_status`` (the script's status, 256 + N for signal N, -29 when
  the walltime killed it); an unknown id: ``qstat: Unknown Job Id <id>`` on
  stderr, exit status 153, the JSON of the others on stdout.
* qdel of a running job sends TERM, then KILL, to the job's processes; of a
  finished job: ``qdel: Job has finished <id>``, exit status 35.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _fakejob  # noqa: E402

SERVER = "fakepbs"
VALUE_OPTIONS = {"-N", "-A", "-q", "-l", "-o", "-e", "-j", "-k", "-W", "-r", "-m", "-M", "-S"}
FLAG_OPTIONS = {"-V", "-h"}
UNKNOWN_JOB = 153  # PBSE_UNKJOBID (15001) as an exit status
JOB_FINISHED = 35


def state_dir() -> Path:
    return _fakejob.state_dir("FAKE_PBS_DIR", "PBS")


def _next_id(root: Path) -> int:
    return _fakejob.next_number(root)


def _parse(args: list[str], options: dict[str, list[str]], source: str) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in FLAG_OPTIONS:
            options.setdefault(flag, []).append("")
            i += 1
        elif flag in VALUE_OPTIONS and i + 1 < len(args):
            options.setdefault(flag, []).append(args[i + 1])
            i += 2
        else:
            sys.stderr.write(f"qsub: invalid option -- '{flag}' ({source})\n")
            sys.exit(2)
    return args[i:]


def _resources(values: list[str]) -> dict[str, str]:
    """``-l a=b,c=d`` lines -> {a: b, c: d}; ``select=N:...`` keeps its chunk text."""
    resources: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            key, _, rest = item.partition("=")
            resources[key] = rest
    return resources


def _seconds(walltime: str) -> float:
    parts = [int(p) for p in walltime.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def qsub(argv: list[str]) -> int:
    root = state_dir()
    cli: dict[str, list[str]] = {}
    rest = _parse(argv, cli, "command line")
    if len(rest) > 1:
        sys.stderr.write("usage: qsub [options] [script]\n")
        return 2
    text = Path(rest[0]).read_text() if rest else sys.stdin.read()  # no script: stdin
    options: dict[str, list[str]] = {}
    for line in text.splitlines()[1:]:
        if not line.startswith("#PBS"):
            break  # PBS stops reading directives at the first other line
        _parse(shlex.split(line[len("#PBS") :]), options, "#PBS line")
    for flag, values in cli.items():
        options[flag] = options.get(flag, []) + values if flag == "-l" else values
    resources = _resources(options.get("-l", []))
    nodes = int(re.match(r"\d+", resources.get("select", "1")).group(0))
    job_id = f"{_next_id(root)}.{SERVER}"
    folder = root / "jobs" / job_id
    folder.mkdir()
    (folder / "script").write_text(text)
    name = options.get("-N", [Path(rest[0]).name if rest else "STDIN"])[-1]
    (folder / "name").write_text(name)
    (folder / "nodefile").write_text("127.0.0.1\n" * nodes)
    cwd = os.getcwd()
    out = os.path.join(cwd, options.get("-o", [f"{name}.o{job_id.split('.')[0]}"])[-1])
    joined = options.get("-j", ["n"])[-1] == "oe"
    err = out if joined else os.path.join(cwd, options.get("-e", [f"{name}.e0"])[-1])
    env = dict(os.environ, PBS_JOBID=job_id, PBS_JOBNAME=name, PBS_O_WORKDIR=cwd,
               PBS_NODEFILE=str(folder / "nodefile"), PBS_ENVIRONMENT="PBS_BATCH")  # fmt: skip
    limit = _seconds(resources.get("walltime", "01:00:00"))
    runner = [sys.executable, _fakejob.__file__, str(folder), str(folder / "script"),
              str(limit), str(int(signal.SIGUSR2)), "0"]  # fmt: skip
    with open(out, "ab") as stdout, open(err, "ab") as stderr:
        subprocess.Popen(runner, cwd=os.path.expanduser("~"), env=env, stdin=subprocess.DEVNULL,
                         stdout=stdout, stderr=stderr, start_new_session=True)  # fmt: skip
    print(job_id)
    return 0


def job_attributes(folder: Path) -> dict:
    """One job's qstat -f attributes, as PBS's JSON holds them."""
    attributes: dict = {
        "Job_Name": (folder / "name").read_text(),
        "Job_Owner": f"{getpass.getuser()}@{socket.gethostname()}",
    }
    exit_file = folder / "exit.json"
    deleted = (folder / "cancelled").exists()
    if exit_file.exists():
        outcome = json.loads(exit_file.read_text())
        attributes["job_state"] = "F"
        status = outcome["waitstatus"]
        if outcome["timeout"]:
            attributes["Exit_status"] = -29  # JOB_EXEC_KILL_WALLTIME
        elif status is not None:
            attributes["Exit_status"] = 256 - status if status < 0 else status
        failed = attributes.get("Exit_status", 0) != 0
        attributes["substate"] = 91 if deleted else 93 if failed else 92
    elif (folder / "pid").exists():
        attributes.update(job_state="R", substate=42)
    else:
        attributes.update(job_state="Q", substate=10)
    return attributes


def qstat(argv: list[str]) -> int:
    root = state_dir()
    history = "-x" in argv
    if "-f" not in argv or argv[argv.index("-F") + 1 : argv.index("-F") + 2] != ["json"]:
        sys.stderr.write("fake qstat: only -f -F json is supported\n")
        return 2
    ids = [a for a in argv if not a.startswith("-") and a != "json"]
    folders = sorted((root / "jobs").iterdir(), key=lambda p: int(p.name.split(".")[0]))
    wanted = ids or [f.name for f in folders]
    jobs, status = {}, 0
    for job_id in wanted:
        folder = root / "jobs" / job_id
        if not folder.is_dir():
            sys.stderr.write(f"qstat: Unknown Job Id {job_id}\n")
            status = UNKNOWN_JOB
            continue
        attributes = job_attributes(folder)
        if attributes["job_state"] == "F" and not history:
            if ids:
                sys.stderr.write(f"qstat: {job_id} Job has finished, use -x or -H\n")
                status = JOB_FINISHED
            continue
        jobs[job_id] = attributes
    document = {"timestamp": int(time.time()), "pbs_version": "fake", "pbs_server": SERVER}
    if jobs:
        document["Jobs"] = jobs
    print(json.dumps(document, indent=4))
    return status


def qdel(argv: list[str]) -> int:
    root = state_dir()
    status = 0
    for job_id in argv:
        folder = root / "jobs" / job_id
        if not folder.is_dir():
            sys.stderr.write(f"qdel: Unknown Job Id {job_id}\n")
            status = UNKNOWN_JOB
            continue
        if (folder / "exit.json").exists():
            sys.stderr.write(f"qdel: Job has finished {job_id}\n")
            status = JOB_FINISHED
            continue
        (folder / "cancelled").touch()
        if (folder / "pid").exists():
            _fakejob.terminate_group(int((folder / "pid").read_text()))
    return status
