"""A stand-in for the Flux commands splinenas uses, on one machine.

No Flux can be installed from this machine's package registries (Debian has
no flux-core), so the Flux path runs against this double. It keeps its state
in ``$FAKE_FLUX_DIR`` (one folder per job) and follows flux-core's manual
pages (flux-batch(1), flux-run(1), flux-jobs(1), flux-cancel(1),
flux-job(1), flux-environment(7), flux-shell-options(7); RFC 19 for F58
job ids, RFC 36 for ``#flux:`` directives):

* ``flux batch [OPTIONS] SCRIPT`` reads the directives (the command line
  wins), prints the job id in F58 and runs the script in the submitter's
  working directory and environment, less what the broker unsets
  (``FLUX_JOB_*``, ``FLUX_TASK_*``, ``PMI_*``, ``SLURM_*``, ``PALS_*``),
  plus ``FLUX_URI`` and ``FLUX_ENCLOSING_ID``; ``-t`` is enforced (result
  TIMEOUT) and ``--signal=SIG@Ns`` is sent that long before it to the script
  and its steps alike.
* ``flux run -N -n -c -g [-o gpu-affinity=per-task] CMD`` starts the tasks
  with ``FLUX_TASK_RANK``, ``FLUX_TASK_LOCAL_ID``, ``FLUX_JOB_SIZE``,
  ``FLUX_JOB_NNODES``, ``FLUX_JOB_ID`` (F58), ``PMI_RANK``, ``PMI_SIZE`` and,
  per task, its GPUs in ``CUDA_VISIBLE_DEVICES``; it exits with the highest
  task status (128 + N for signal N).
* ``flux jobs -a [-c N] --json`` prints ``{"jobs": [...]}`` with ``id``
  (integer), ``jobid`` (F58), ``name``, ``state`` and, once INACTIVE,
  ``result``, ``returncode`` and ``exception``; ``flux jobs --json ID``
  prints that one job.
* ``flux cancel ID`` raises a cancel exception: TERM, then KILL after the
  grace time; result CANCELED. ``flux getattr hostlist|parent-uri`` and
  ``flux job id [--to=dec] ID`` answer as Flux does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import _fakejob  # noqa: E402

F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: Flux job ids are 64-bit FLUIDs; these start high enough to need several F58 digits.
ID_BASE = 1 << 40
#: Options that take a value (short and long); the ones splinenas uses, and a few more.
VALUE_OPTIONS = {"-N": "nodes", "--nodes": "nodes", "-n": "slots", "--nslots": "slots",
                 "--ntasks": "slots", "-c": "cores", "--cores-per-slot": "cores",
                 "--cores-per-task": "cores", "-g": "gpus", "--gpus-per-slot": "gpus",
                 "--gpus-per-task": "gpus", "-t": "time", "--time-limit": "time",
                 "--job-name": "name", "--output": "output", "--error": "error",
                 "--signal": "signal", "-q": "queue", "--queue": "queue", "-B": "bank",
                 "--bank": "bank", "--requires": "requires", "-o": "setopt",
                 "--setopt": "setopt"}  # fmt: skip
FLAG_OPTIONS = {"-x", "--exclusive"}
UNSET = ("FLUX_JOB_", "FLUX_TASK_", "FLUX_KVS_NAMESPACE", "PMI_", "SLURM_", "PALS_")


def encode_f58(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 58)
        digits = F58[rest] + digits
        if not number:
            return "ƒ" + digits


def decode(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if text[:1] in ("ƒ", "f") and text[1:] and all(c in F58 for c in text[1:]):
        number = 0
        for c in text[1:]:
            number = number * 58 + F58.index(c)
        return number
    return None


def state_dir() -> Path:
    return _fakejob.state_dir("FAKE_FLUX_DIR", "flux")


def _next_id(root: Path) -> int:
    return ID_BASE + _fakejob.next_number(root) * 7919


def _parse(args: list[str], options: dict[str, list[str]], command: str) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag, eq, inline = args[i].partition("=")
        if flag in FLAG_OPTIONS:
            options.setdefault("exclusive", []).append("")
            i += 1
        elif flag in VALUE_OPTIONS and (eq or i + 1 < len(args)):
            options.setdefault(VALUE_OPTIONS[flag], []).append(inline if eq else args[i + 1])
            i += 1 if eq else 2
        else:
            sys.stderr.write(f"flux-{command}: error: unrecognized arguments: {args[i]}\n")
            sys.exit(2)
    return args[i:]


def _fsd(text: str) -> float:
    """Flux Standard Duration (RFC 23); a bare number of -t is minutes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    if not match:
        sys.exit(f"flux: invalid duration {text!r}")
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}[match.group(2)]
    return float(match.group(1)) * scale


def _directives(text: str) -> list[str]:
    """The arguments of the ``#flux:`` lines that follow the shebang."""
    args: list[str] = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith("#flux:"):
            break
        args += shlex.split(line[len("#flux:") :], comments=True)
    return args


def batch(argv: list[str]) -> int:
    root = state_dir()
    cli: dict[str, list[str]] = {}
    rest = _parse(argv, cli, "batch")
    if len(rest) != 1:
        sys.stderr.write("flux-batch: error: expected one script\n")
        return 2
    text = Path(rest[0]).read_text()
    options: dict[str, list[str]] = {}
    _parse(_directives(text), options, "batch")
    options.update(cli)
    number = _next_id(root)
    folder = root / "jobs" / str(number)
    folder.mkdir()
    (folder / "script").write_text(text)
    (folder / "name").write_text(options.get("name", [Path(rest[0]).name])[-1])
    shell_options = dict(o.partition("=")[::2] for o in options.get("setopt", []))
    mode = "ab" if shell_options.get("output.mode") == "append" else "wb"
    out = options.get("output", [f"flux-{encode_f58(number)}.out"])[-1]
    err = options.get("error", [out])[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(UNSET)}
    env.update(FLUX_URI=f"local://{folder}/broker", FLUX_ENCLOSING_ID=encode_f58(number),
               FAKE_FLUX_HOSTLIST="127.0.0.1")  # fmt: skip
    limit = _fsd(options.get("time", ["60"])[-1])
    warn_signal, warn_before = signal.SIGUSR1, 0.0
    if "signal" in options:
        name, _, when = options["signal"][-1].partition("@")
        warn_signal = getattr(signal, "SIG" + name.removeprefix("SIG")) if name else warn_signal
        warn_before = _fsd((when or "60") + ("" if when[-1:].isalpha() else "s"))
    runner = [sys.executable, _fakejob.__file__, str(folder), str(folder / "script"),
              str(limit), str(int(warn_signal)), str(warn_before)]  # fmt: skip
    with open(out, mode) as stdout, open(err, "ab") if err != out else stdout as stderr:
        subprocess.Popen(runner, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                         stderr=stderr, start_new_session=True)  # fmt: skip
    print(encode_f58(number))
    return 0


def _default_signals() -> None:
    """Tasks start from the job shell, not from `flux run`: no disposition of the caller's."""
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def run(argv: list[str]) -> int:
    options: dict[str, list[str]] = {}
    command = _parse(argv, options, "run")
    if not command:
        sys.stderr.write("flux-run: error: no command\n")
        return 2
    nodes = int(options.get("nodes", ["1"])[-1])
    size = int(options.get("slots", [str(nodes)])[-1])
    gpus = int(options.get("gpus", ["0"])[-1])
    per_task = "gpu-affinity=per-task" in options.get("setopt", [])
    per_node = -(-size // nodes)
    step_id = encode_f58(ID_BASE + os.getpid())  # a job of the batch job's own instance
    tasks = []
    for rank in range(size):
        local = rank % per_node
        env = dict(os.environ, FLUX_TASK_RANK=str(rank), FLUX_TASK_LOCAL_ID=str(local),
                   FLUX_JOB_SIZE=str(size), FLUX_JOB_NNODES=str(nodes), FLUX_JOB_ID=step_id,
                   PMI_RANK=str(rank), PMI_SIZE=str(size))  # fmt: skip
        if gpus:
            first = local * gpus if per_task else 0
            count = gpus if per_task else gpus * per_node
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(first, first + count))
        tasks.append(subprocess.Popen(command, env=env, preexec_fn=_default_signals))
    codes = [task.wait() for task in tasks]
    return max(128 - code if code < 0 else code for code in codes)


def _job(folder: Path) -> dict:
    number = int(folder.name)
    job: dict = {"id": number, "jobid": encode_f58(number), "name": (folder / "name").read_text(),
                 "userid": os.getuid()}  # fmt: skip
    exit_file = folder / "exit.json"
    cancelled = (folder / "cancelled").exists()
    if exit_file.exists():
        outcome = json.loads(exit_file.read_text())
        status = outcome["waitstatus"]
        job["state"] = "INACTIVE"
        if not outcome["started"]:
            job.update(result="CANCELED", returncode=-128)
        else:
            job["returncode"] = status
            job["result"] = (
                "CANCELED" if cancelled else "TIMEOUT" if outcome["timeout"]
                else "COMPLETED" if status == 0 else "FAILED"
            )  # fmt: skip
        if job["result"] in ("CANCELED", "TIMEOUT"):
            kind = "cancel" if cancelled else "timeout"
            job["exception"] = {"occurred": True, "severity": 0, "type": kind, "note": ""}
        job["success"] = job["result"] == "COMPLETED"
    elif (folder / "pid").exists():
        job["state"] = "RUN"
    else:
        job["state"] = "SCHED"
    return job


def jobs(argv: list[str]) -> int:
    root = state_dir()
    if "--json" not in argv:
        sys.stderr.write("fake flux jobs: only --json is supported\n")
        return 2
    show_all = "-a" in argv
    args = [a for a in argv if a not in ("-a", "--json")]
    if "-c" in args:
        at = args.index("-c")
        del args[at : at + 2]
    folders = sorted((root / "jobs").iterdir(), key=lambda p: int(p.name))
    if args:
        numbers = [decode(a) for a in args]
        found = [root / "jobs" / str(n) for n in numbers if n is not None]
        found = [f for f in found if f.is_dir()]
        if len(found) != len(args):
            sys.stderr.write(f"flux-jobs: ERROR: unknown job id {args[0]}\n")
            return 1
        listed = [_job(f) for f in found]
        print(json.dumps(listed[0] if len(listed) == 1 else {"jobs": listed}))
        return 0
    listed = [_job(f) for f in reversed(folders)]  # newest first, as Flux lists them
    if not show_all:
        listed = [j for j in listed if j["state"] != "INACTIVE"]
    print(json.dumps({"jobs": listed}))
    return 0


def cancel(argv: list[str]) -> int:
    root = state_dir()
    status = 0
    for arg in argv:
        number = decode(arg)
        folder = root / "jobs" / str(number)
        if number is None or not folder.is_dir():
            sys.stderr.write(f"flux-cancel: ERROR: {arg}: unknown job id\n")
            status = 1
            continue
        if (folder / "exit.json").exists():
            sys.stderr.write(f"flux-cancel: ERROR: {arg}: job is inactive\n")
            status = 1
            continue
        (folder / "cancelled").touch()
        if (folder / "pid").exists():
            _fakejob.terminate_group(int((folder / "pid").read_text()))
    return status


def getattr_(argv: list[str]) -> int:
    if not os.environ.get("FLUX_URI"):
        sys.stderr.write("flux-getattr: ERROR: Unable to connect to Flux\n")
        return 1
    values = {"hostlist": os.environ.get("FAKE_FLUX_HOSTLIST", "127.0.0.1"),
              "parent-uri": "local:///fake-flux/parent"}  # fmt: skip
    if argv[-1:] == [] or argv[-1] not in values:
        sys.stderr.write(f"flux-getattr: {argv[-1:]}: No such file or directory\n")
        return 1
    print(values[argv[-1]])
    return 0


def job(argv: list[str]) -> int:
    if argv[:1] != ["id"]:
        sys.stderr.write("fake flux job: only `id` is supported\n")
        return 2
    ids = [a for a in argv[1:] if not a.startswith("--to")]
    number = decode(ids[-1]) if ids else None
    if number is None:
        sys.stderr.write("flux-job: invalid job id\n")
        return 1
    print(number)
    return 0


COMMANDS = {"batch": batch, "run": run, "jobs": jobs, "cancel": cancel, "getattr": getattr_,
            "job": job}  # fmt: skip


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(f"flux: unknown command {argv[:1]}\n")
        return 2
    return COMMANDS[argv[0]](argv[1:])
