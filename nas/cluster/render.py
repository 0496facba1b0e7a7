"""Job scripts for Slurm, LSF and the local backend, rendered from templates.

A script lives in its point folder and can be resubmitted by hand. Rendering
is pure: every value that reaches the text is validated first (names match
``[A-Za-z0-9_.-]+``, paths are single lines, numbers are in range) and then
shell-quoted; command lines are built as argv lists and joined with
:func:`shlex.join`. Scheduler directives (``#SBATCH``/``#BSUB``) are not read
by the shell but by the scheduler, which understands double quotes only, so a
directive value is written bare, in double quotes, or refused.

The trainer gets ``--point-dir DIR --deadline EPOCH``; the deadline is computed
when the job starts: start + walltime - ``signal_seconds``. Slurm and LSF also
send USR2 that long before the limit; the batch shell forwards it to the step.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from nas.config import DIRECTIVE_UNSAFE, NAME_PATTERN, ClusterConfig

#: Job-script templates ship inside the package (``jobs/templates`` links here).
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

BACKENDS = ("local", "slurm", "lsf")

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_BARE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.,:@%/+=-]+$")
#: Optional directives and the ``[cluster]`` key each one carries.
_SLURM_OPTIONAL = {"--account": "account", "--partition": "queue", "--qos": "qos",
                   "--constraint": "constraint"}  # fmt: skip
_LSF_OPTIONAL = {"-P": "account", "-q": "queue", "-alloc_flags": "alloc_flags"}
#: Slurm keeps the warning time of ``--signal`` in 16 bits.
_MAX_SIGNAL_SECONDS = 65535


class ScriptError(ValueError):
    """A value that cannot be put into a job script; the message names it."""


# --------------------------------------------------------------------------- validation


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ScriptError(f"{what}: expected letters, digits, '_', '.' or '-', got {value!r}")
    return value


def _check_line(value: str | os.PathLike, what: str) -> str:
    text = os.fspath(value)
    if not text or any(c in text for c in "\n\r\0"):
        raise ScriptError(f"{what}: expected a non-empty single line, got {text!r}")
    return text


def directive_value(value: str | os.PathLike, what: str) -> str:
    """``value`` as the scheduler's directive parser will read it back."""
    text = _check_line(value, what)
    if _BARE_DIRECTIVE.fullmatch(text):
        return text
    bad = sorted(DIRECTIVE_UNSAFE.intersection(text))
    if bad:
        raise ScriptError(f"{what}: {text!r} cannot go into a directive (contains {bad[0]!r})")
    return f'"{text}"'


def _ranks_per_node(cluster: ClusterConfig) -> int:
    return cluster.ranks_per_node or max(cluster.gpus_per_node, 1)


def _cores_per_rank(cluster: ClusterConfig) -> int:
    ranks = _ranks_per_node(cluster)
    if cluster.cores_per_node < ranks:
        raise ScriptError(
            f"cluster.cores_per_node ({cluster.cores_per_node}) is less than the "
            f"ranks per node ({ranks})"
        )
    return cluster.cores_per_node // ranks


def deadline_seconds(cluster: ClusterConfig) -> int:
    """Seconds from job start until the trainer must have stopped."""
    seconds = cluster.walltime_minutes * 60 - cluster.signal_seconds
    if seconds <= 0:
        raise ScriptError(
            f"cluster.signal_seconds ({cluster.signal_seconds}) leaves no time within "
            f"cluster.walltime_minutes ({cluster.walltime_minutes})"
        )
    return seconds


# --------------------------------------------------------------------------- pieces


def _trainer_args(point_dir: str, train_args: Sequence[str]) -> list[str]:
    """``-m nas.train ...``: what follows the interpreter or torchrun."""
    args = [_check_line(arg, "trainer argument") for arg in train_args]
    return ["-m", "nas.train", "--point-dir", point_dir, *args]


def _srun_argv(cluster: ClusterConfig) -> list[str]:
    return [
        "srun",
        f"--nodes={cluster.nodes}",
        f"--ntasks-per-node={_ranks_per_node(cluster)}",
        f"--cpus-per-task={_cores_per_rank(cluster)}",
        "--kill-on-bad-exit=1",
    ]


def _jsrun_argv(cluster: ClusterConfig) -> list[str]:
    """One resource set per node (all its GPUs) or one per GPU."""
    gpus = cluster.gpus_per_node
    if cluster.resource_sets == "gpu":
        if gpus < 1:
            raise ScriptError("cluster.resource_sets 'gpu' needs cluster.gpus_per_node >= 1")
        if _ranks_per_node(cluster) != gpus:
            raise ScriptError(
                f"cluster.resource_sets 'gpu' runs one rank per GPU; cluster.ranks_per_node "
                f"is {cluster.ranks_per_node}, cluster.gpus_per_node is {gpus}"
            )
        per_set = ["-n", str(cluster.nodes * gpus), "-r", str(gpus), "-a", "1", "-g", "1"]
        cores = _cores_per_rank(cluster)
    else:
        ranks = _ranks_per_node(cluster)
        per_set = ["-n", str(cluster.nodes), "-r", "1", "-a", str(ranks), "-g", str(gpus)]
        cores = cluster.cores_per_node
    return ["jsrun", *per_set, "-c", str(cores), "-b", f"packed:{_cores_per_rank(cluster)}"]


def _local_argv(cluster: ClusterConfig, python: str) -> list[str]:
    """The interpreter, behind torchrun when several ranks share the machine."""
    if cluster.nodes != 1:
        raise ScriptError(f"the local backend runs on one node; cluster.nodes is {cluster.nodes}")
    ranks = _ranks_per_node(cluster)
    if ranks == 1:
        return [python]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc-per-node={ranks}"]  # fmt: skip


def _slurm_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = [
        ("--job-name", common["job_name"]),
        ("--chdir", common["point_dir"]),
        ("--output", common["stdout"]),
        ("--error", common["stderr"]),
        ("--nodes", str(cluster.nodes)),
        ("--ntasks-per-node", str(_ranks_per_node(cluster))),
        ("--cpus-per-task", str(_cores_per_rank(cluster))),
        ("--time", str(cluster.walltime_minutes)),
    ]
    if cluster.gpus_per_node:
        pairs.append(("--gpus-per-node", str(cluster.gpus_per_node)))
    if cluster.signal_seconds:
        pairs.append(("--signal", f"B:USR2@{_signal_seconds(cluster)}"))
    pairs += _optional_directives(cluster, _SLURM_OPTIONAL)
    return [(f"{flag}=", value) for flag, value in pairs]


def _lsf_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[tuple[str, str]]:
    hours, minutes = divmod(cluster.walltime_minutes, 60)
    pairs = [
        ("-J", common["job_name"]),
        ("-cwd", common["point_dir"]),
        ("-o", common["stdout"]),
        ("-e", common["stderr"]),
        ("-nnodes", str(cluster.nodes)),
        ("-W", f"{hours}:{minutes:02d}"),
    ]
    if cluster.signal_seconds:
        # LSF's warning time has minute granularity: warn no later than asked.
        pairs += [("-wa", "USR2"), ("-wt", str(math.ceil(_signal_seconds(cluster) / 60)))]
    pairs += _optional_directives(cluster, _LSF_OPTIONAL)
    return [(f"{flag} ", value) for flag, value in pairs]


def _optional_directives(cluster: ClusterConfig, keys: Mapping[str, str]) -> list[tuple[str, str]]:
    """(flag, value) of the optional ``[cluster]`` keys that are set."""
    return [
        (flag, value) for flag, key in keys.items() if (value := getattr(cluster, key)) is not None
    ]


def _what(flag: str) -> str:
    """How an error names a directive: with the ``[cluster]`` key it comes from, if any."""
    flag = flag.strip(" =")
    key = _SLURM_OPTIONAL.get(flag) or _LSF_OPTIONAL.get(flag)
    return flag if key is None else f"cluster.{key} in {flag}"


def _signal_seconds(cluster: ClusterConfig) -> int:
    if cluster.signal_seconds > _MAX_SIGNAL_SECONDS:
        raise ScriptError(
            f"cluster.signal_seconds ({cluster.signal_seconds}) exceeds {_MAX_SIGNAL_SECONDS}"
        )
    return cluster.signal_seconds


def _directive_lines(prefix: str, pairs: list[tuple[str, str]], extra: Sequence[str]) -> str:
    lines = [f"{prefix} {flag}{directive_value(value, _what(flag))}" for flag, value in pairs]
    lines += [f"{prefix} {_check_line(line, 'cluster.extra_directives')}" for line in extra]
    return "\n".join(lines)


# --------------------------------------------------------------------------- templates


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
    train_args: Sequence[str] = (),
) -> str:
    """Return the text of a job script that trains the point in ``point_dir``.

    Args:
        backend: ``"local"``, ``"slurm"`` or ``"lsf"``.
        cluster: resources, limits, account, environment.
        point_dir: absolute path of the point folder; the job runs there.
        job_name: the scheduler's job name (unique per submission).
        stdout_path: log of the job; relative paths are taken from ``point_dir``.
        stderr_path: error log; defaults to ``stdout_path``.
        train_args: further arguments for ``python -m nas.train``.

    Raises:
        ScriptError: a value that is not valid in a script, naming it.
    """
    if backend not in BACKENDS:
        raise ScriptError(f"unknown backend {backend!r}; valid backends are {', '.join(BACKENDS)}")
    point = _check_line(point_dir, "point_dir")
    if not os.path.isabs(point):
        raise ScriptError(f"point_dir: expected an absolute path, got {point!r}")
    stdout = _check_line(stdout_path, "stdout_path")
    stderr = stdout if stderr_path is None else _check_line(stderr_path, "stderr_path")
    _check_name(job_name, "job_name")
    common = {"job_name": job_name, "point_dir": point, "stdout": stdout, "stderr": stderr}
    environment = ""
    if cluster.env_file is not None:
        environment = f"source {shlex.quote(_check_line(cluster.env_file, 'cluster.env_file'))}"
    prologue = _fill(
        "prologue",
        {
            "environment": environment,
            "deadline_seconds": str(deadline_seconds(cluster)),
            "threads_per_rank": str(_cores_per_rank(cluster)),
        },
    ).rstrip("\n")
    values = {"job_name": job_name, "point_dir": shlex.quote(point), "prologue": prologue}
    python = _check_line(cluster.python, "cluster.python")
    trainer = _trainer_args(point, train_args)
    if backend == "local":
        launch = shlex.join(_local_argv(cluster, python) + trainer)
        redirect = f">>{shlex.quote(stdout)} " + (
            "2>&1" if stderr == stdout else f"2>>{shlex.quote(stderr)}"
        )
        return _fill("local", {**values, "redirect": redirect, "launch": launch})
    if backend == "slurm":
        launcher, directives = _srun_argv(cluster), _slurm_directives(cluster, common)
        header = _directive_lines("#SBATCH", directives, cluster.extra_directives)
    else:
        launcher, directives = _jsrun_argv(cluster), _lsf_directives(cluster, common)
        header = _directive_lines("#BSUB", directives, cluster.extra_directives)
    step = _fill("step", {"launch": shlex.join([*launcher, python, *trainer])}).rstrip("\n")
    return _fill(backend, {**values, "directives": header, "step": step})


def write_job_script(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file + rename), executable."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
