"""Job scripts for Slurm, LSF and the local backend, rendered from templates.

A script lives in its point folder and can be resubmitted by hand. Rendering
is pure: every value that reaches the text is validated first (names match
``[A-Za-z0-9_.-]+``, paths are single lines, numbers are in range) and then
shell-quoted; command lines are built as argv lists and joined with
:func:`shlex.join`. Scheduler directives (``#SBATCH``/``#BSUB``) are not read
by the shell but by the scheduler, which understands double quotes only, so a
directive value is written bare, in double quotes, or refused.

Every rank runs ``python -m nas.trial.launch --point-dir DIR --workdir DIR
--deadline EPOCH -- COMMAND...`` (:mod:`nas.pointdir.contract`): the wrapper
sets the contract's variables and starts the command, the built-in trainer
(``python -m nas.train``) or ``[train] command``. The deadline is computed
when the job starts: start + walltime - ``signal_seconds``. Slurm and LSF also
send USR2 that long before the limit; the batch shell forwards it to the step.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from nas.cluster.base import Directive, backend_class, backend_names
from nas.config import (
    DIRECTIVE_UNSAFE,
    MAX_SIGNAL_SECONDS,
    ClusterConfig,
    ControllerConfig,
    directive_problem,
)
from nas.errors import UserError
from nas.names import line_problem, name_problem
from nas.pointdir.contract import BUILTIN_COMMAND, LAUNCH_MODULE
from nas.pointdir.jsonio import atomic_write_bytes
from nas.pointdir.layout import (
    ACCELERATOR_VAR,
    DEVICE_ORDER_VAR,
    ENVIRONMENT_FAILURE,
    ERROR_FILE,
    RANKS_PER_NODE_VAR,
)

#: Job-script templates ship inside the package (``jobs/templates`` links here).
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_BARE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.,:@%/+=-]+$")


class ScriptError(UserError, ValueError):
    """A value that cannot be put into a job script; the message names it.

    ``key`` is the experiment key the value comes from (``"cluster.nodes"``),
    when it comes from one, so that ``splinenas init`` can name file, table and key.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _key_of(what: str) -> str | None:
    """The experiment key in a value's description (``cluster.queue in --partition``)."""
    return what.split(" ", 1)[0] if what.startswith(("cluster.", "controller.")) else None


# --------------------------------------------------------------------------- validation


def check_name(value: str, what: str) -> str:
    """``value`` if it is a name (:func:`nas.names.name_problem`), else ScriptError naming ``what``."""
    problem = name_problem(value)
    if problem:
        raise ScriptError(f"{what}: {problem}", _key_of(what))
    return value


def check_line(value: str | os.PathLike, what: str) -> str:
    """``value`` as text if it is one non-empty line, else ScriptError naming ``what``."""
    text = os.fspath(value)
    problem = line_problem(text) if text else "expected a value, got ''"
    if problem:
        raise ScriptError(f"{what}: {problem}", _key_of(what))
    return text


def directive_value(value: str | os.PathLike, what: str) -> str:
    """``value`` as the scheduler's directive parser will read it back."""
    text = check_line(value, what)
    if _BARE_DIRECTIVE.fullmatch(text):
        return text
    bad = sorted(DIRECTIVE_UNSAFE.intersection(text))
    if bad:
        raise ScriptError(
            f"{what}: {text!r} cannot go into a directive (contains {bad[0]!r})", _key_of(what)
        )
    return f'"{text}"'


def ranks_per_node(cluster: ClusterConfig) -> int:
    """Ranks on each node: ``[cluster] ranks_per_node``, else one per GPU, else one."""
    return cluster.ranks_per_node or max(cluster.gpus_per_node, 1)


def cores_per_rank(cluster: ClusterConfig) -> int:
    """The node's cores shared evenly among its ranks."""
    ranks = ranks_per_node(cluster)
    if cluster.cores_per_node < ranks:
        raise ScriptError(
            f"cluster.cores_per_node ({cluster.cores_per_node}) is less than the "
            f"ranks per node ({ranks})",
            "cluster.cores_per_node",
        )
    return cluster.cores_per_node // ranks


def device_exports(cluster: ClusterConfig) -> str:
    """``export`` of what :mod:`nas.train.device` reads: the accelerator, ranks per node, order.

    Without GPUs the request is "auto" (a GPU if torch sees one, else the CPU).
    The order is exported only when ``[cluster] device_order`` is set, so an
    environment file's ``SPLINENAS_DEVICE_ORDER`` is the site default.
    """
    values = {
        ACCELERATOR_VAR: cluster.accelerator if cluster.gpus_per_node else "auto",
        RANKS_PER_NODE_VAR: str(ranks_per_node(cluster)),
    }
    if cluster.device_order is not None:
        values[DEVICE_ORDER_VAR] = cluster.device_order
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


def deadline_seconds(cluster: ClusterConfig) -> int:
    """Seconds from job start until the trainer must have stopped."""
    seconds = cluster.walltime_minutes * 60 - cluster.signal_seconds
    if seconds <= 0:
        raise ScriptError(
            f"cluster.signal_seconds ({cluster.signal_seconds}) leaves no time within "
            f"cluster.walltime_minutes ({cluster.walltime_minutes})",
            "cluster.signal_seconds",
        )
    return seconds


# --------------------------------------------------------------------------- pieces


def launch_line(
    launcher: Sequence[str], point_dir: str, workdir: str, command: Sequence[str]
) -> str:
    """The shell line that starts every rank: launcher, launch wrapper, ``--``, the command.

    ``$deadline`` (set by the prologue) is the one word left for the shell to expand.
    """
    for arg in command:  # an empty argument is one (no shell splits words here): shlex quotes it
        problem = line_problem(arg)
        if problem:
            raise ScriptError(f"trainer argument: {problem}", "train.command")
    wrapper = [*launcher, "-m", LAUNCH_MODULE, "--point-dir", point_dir, "--workdir", workdir]
    return f'{shlex.join(wrapper)} --deadline "$deadline" -- {shlex.join(command)}'


def optional_directives(
    table: ClusterConfig | ControllerConfig, keys: Mapping[str, str]
) -> list[Directive]:
    """(flag, value) of the optional ``[cluster]`` (or ``[controller]``) keys that are set."""
    return [
        (flag, value) for flag, key in keys.items() if (value := getattr(table, key)) is not None
    ]


def signal_seconds(cluster: ClusterConfig) -> int:
    """``[cluster] signal_seconds``, refused beyond what Slurm keeps in 16 bits."""
    if cluster.signal_seconds > MAX_SIGNAL_SECONDS:
        raise ScriptError(
            f"cluster.signal_seconds ({cluster.signal_seconds}) exceeds {MAX_SIGNAL_SECONDS}",
            "cluster.signal_seconds",
        )
    return cluster.signal_seconds


def directive_lines(
    prefix: str,
    pairs: Sequence[Directive],
    extra: Sequence[str] = (),
    optional_keys: Mapping[str, str] | None = None,
    extra_key: str = "cluster.extra_directives",
) -> str:
    """``prefix flag=value`` lines, then ``extra``; errors name the key a value comes from."""
    keys = optional_keys or {}

    def what(flag: str) -> str:
        flag = flag.strip(" =")
        return f"cluster.{keys[flag]} in {flag}" if flag in keys else flag

    lines = [
        f"{prefix} {flag}"
        if value is None
        else f"{prefix} {flag}{directive_value(value, what(flag))}"
        for flag, value in pairs
    ]
    lines += [f"{prefix} {_directive(line, extra_key)}" for line in extra]
    return "\n".join(lines)


def _directive(line: str, key: str) -> str:
    """A free directive line of ``key``, if it is one option the scheduler accepts."""
    problem = directive_problem(line)
    if problem:
        raise ScriptError(f"{key}: entry {line!r}: {problem}", key)
    return line


# --------------------------------------------------------------------------- templates


def _environment(env_file: str) -> str:
    """Source ``env_file``, or stop the job with its exit status and an ``error.json``."""
    path = check_line(env_file, "cluster.env_file")
    head = {
        "kind": ENVIRONMENT_FAILURE,
        "env_file": path,
        "exception": "EnvironmentFailed",
        "message": f"sourcing the environment file {path} failed; no rank was started",
        "oom": False,
    }
    prefix = json.dumps(head, sort_keys=True)[:-1] + ", "  # the script appends time and code
    values = {"env_file": shlex.quote(path), "error_prefix": shlex.quote(prefix),
              "error_file": ERROR_FILE}  # fmt: skip
    return _fill("environment", values).rstrip("\n")


def _fill(name: str, values: Mapping[str, str]) -> str:
    """Substitute ``{{key}}`` in template ``name``; every key must be used exactly as given."""
    text = (TEMPLATE_DIR / f"{name}.sh").read_text(encoding="utf-8")
    used = set(_PLACEHOLDER.findall(text))
    missing = sorted(used - set(values))
    if missing:
        raise KeyError(f"template {name}.sh: no value for {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_job_script(
    backend: str,
    *,
    cluster: ClusterConfig,
    point_dir: str | os.PathLike,
    job_name: str,
    stdout_path: str | os.PathLike,
    stderr_path: str | os.PathLike | None = None,
    command: Sequence[str] | None = None,
    workdir: str | os.PathLike | None = None,
    train_args: Sequence[str] = (),
) -> str:
    """Return the text of a job script that trains the point in ``point_dir``.

    Args:
        backend: the name of a registered backend (``"local"``, ``"slurm"``, ``"lsf"``).
        cluster: resources, limits, account, environment.
        point_dir: absolute path of the point folder; the job runs there.
        job_name: the scheduler's job name (unique per submission).
        stdout_path: log of the job; relative paths are taken from ``point_dir``.
        stderr_path: error log; defaults to ``stdout_path``.
        command: the argv every rank runs; default the built-in trainer,
            ``<[cluster] python> -m nas.train``.
        workdir: where the command runs; default ``point_dir``.
        train_args: further arguments appended to the command.

    Raises:
        ScriptError: a value that is not valid in a script, naming it.
    """
    scheduler = backend_class(backend)
    if scheduler is None:
        valid = ", ".join(backend_names())
        raise ScriptError(f"unknown backend {backend!r}; valid backends are {valid}")
    point = check_line(point_dir, "point_dir")
    if not os.path.isabs(point):
        raise ScriptError(f"point_dir: expected an absolute path, got {point!r}")
    stdout = check_line(stdout_path, "stdout_path")
    stderr = stdout if stderr_path is None else check_line(stderr_path, "stderr_path")
    check_name(job_name, "job_name")
    common = {"job_name": job_name, "point_dir": point, "stdout": stdout, "stderr": stderr}
    environment = "" if cluster.env_file is None else _environment(cluster.env_file)
    prologue = _fill(
        "prologue",
        {
            "environment": environment,
            "deadline_seconds": str(deadline_seconds(cluster)),
            "threads_per_rank": str(cores_per_rank(cluster)),
            "device_exports": device_exports(cluster),
        },
    ).rstrip("\n")
    values = {"job_name": job_name, "point_dir": shlex.quote(point), "prologue": prologue}
    python = check_line(cluster.python, "cluster.python")
    argv = [python, *BUILTIN_COMMAND] if command is None else list(command)
    work = point if workdir is None else check_line(workdir, "workdir")
    launch = launch_line(
        scheduler.launcher_argv(cluster, python), point, work, [*argv, *train_args]
    )
    if scheduler.directive_prefix is None:
        redirect = f">>{shlex.quote(stdout)} " + (
            "2>&1" if stderr == stdout else f"2>>{shlex.quote(stderr)}"
        )
        return _fill(backend, {**values, "redirect": redirect, "launch": launch})
    header = directive_lines(
        scheduler.directive_prefix,
        scheduler.job_directives(cluster, common),
        cluster.extra_directives,
        scheduler.optional_keys,
    )
    step = _fill("step", {"launch": launch}).rstrip("\n")
    return _fill(backend, {**values, "directives": header, "step": step})


def write_job_script(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, executable."""
    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8"), mode=0o755)
    return path
