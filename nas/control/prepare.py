"""Turning a point of the state into a point folder a scheduler can run.

Everything written here is derived from the experiment and the point alone,
so rewriting it for every submission changes nothing a running job reads:
``point.json`` keeps the same document (its hash ties the checkpoint to it) and
the job script is replaced atomically.

Relative paths in the experiment (``[cluster] env_file``, ``[data] root`` and
``index``) are resolved against the working directory of ``splinenas run``
and must exist; start the controller from the same directory every time.
The local backend runs the trainer with the controller's own interpreter
unless ``[cluster] python`` is given explicitly. Every rank runs its command
(``[train] command`` with its ``{name}`` fields filled, else the built-in
trainer) in that same directory, behind the launch wrapper
(:mod:`nas.pointdir.contract`).

:func:`run_problems` is the one check of an experiment before training:
``run`` and ``init`` both call it, and it prepares a point of the initial
design with the same code as every submission, so they refuse the same files.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.cluster.base import BACKEND_KEYS, Scheduler, backend_class, backend_names
from nas.cluster.render import ScriptError, ranks_per_node, render_job_script, write_job_script
from nas.config import (
    ClusterConfig,
    ConfigError,
    ControllerConfig,
    DataConfig,
    Experiment,
    tomllib,
)
from nas.control.costs import bound_scale_warnings, cost_problems, cost_warnings
from nas.control.feasible import feasibility, memory_problem, memory_warnings
from nas.pointdir import layout
from nas.pointdir.contract import (
    BUILTIN_COMMAND,
    SEED_FIELD,
    TemplateError,
    command_values,
    fill_command,
    format_value,
    formatted_fields,
)
from nas.pointdir.layout import PointFolderError
from nas.pointdir.point import METRICS, PointFileError, point_document, write_point_file
from nas.record.state import Point, PointStatus

__all__ = ["JobSettings", "feasibility", "job_name", "readiness", "run_problems", "training_seed"]


@dataclass(frozen=True)
class JobSettings:
    """The experiment's tables with every path made absolute, ready for rendering."""

    experiment: Experiment
    cluster: ClusterConfig
    data: DataConfig | None
    workdir: Path

    @classmethod
    def from_experiment(cls, experiment: Experiment, cwd: Path, state: Path) -> JobSettings:
        """Check the experiment as ``init`` does, resolve paths against ``cwd``, choose the interpreter.

        Raises:
            ConfigError: the first of :func:`run_problems` for the state file ``state``.
        """
        problems = run_problems(experiment, cwd, state=state)
        if problems:
            raise problems[0]
        return cls.resolved(experiment, cwd)

    @classmethod
    def resolved(cls, experiment: Experiment, cwd: Path) -> JobSettings:
        """Paths made absolute against ``cwd`` (existing or not) and the interpreter chosen."""
        experiment.require_run_sections()
        cluster = experiment.cluster
        changes: dict[str, str] = {}
        if cluster.env_file is not None:
            changes["env_file"] = str((cwd / cluster.env_file).absolute())
        if cluster.backend == "local" and not _python_given(experiment.text):
            changes["python"] = sys.executable
        data = experiment.data
        if data is not None:
            paths = {
                key: str((cwd / value).absolute())
                for key in ("root", "index")
                if (value := getattr(data, key)) is not None
            }
            data = dataclasses.replace(data, **paths)
        return cls(
            experiment=experiment,
            cluster=dataclasses.replace(cluster, **changes),
            data=data if experiment.builtin_trainer else None,
            workdir=cwd.absolute(),
        )

    def point_values(self, point: Point) -> dict[str, Any]:
        """What ``point.json`` of ``point`` holds, as keywords of :func:`point_document`.

        The built-in trainer's point carries the model, data and train tables;
        a command's point its filled argv instead.
        """
        model, cfg = self.experiment.model, self.experiment.experiment
        values: dict[str, Any] = {
            "point_id": point.id,
            "experiment": cfg.name,
            "params": point.params,
            "fixed": {} if model is None else model.fixed,
            "seed": training_seed(self.experiment, point.extra),
            "metric": cfg.metric,
            "family": None,
            "data": None,
            "train": None,
        }
        if not self.experiment.builtin_trainer:
            return {**values, "command": tuple(self.command(point))}
        assert model is not None  # checked in resolved
        return {**values, "family": model.family, "num_classes": model.num_classes,
                "data": self.data, "train": self.experiment.train}  # fmt: skip

    def command(self, point: Point) -> list[str]:
        """The argv every rank runs for ``point``: ``[train] command`` filled, or the built-in trainer.

        Raises:
            TemplateError: a ``{name}`` that names no parameter (``init`` refuses it first).
        """
        template = self.experiment.train.command
        if template is None:
            return [self.cluster.python, *BUILTIN_COMMAND]
        model = self.experiment.model
        seed = training_seed(self.experiment, point.extra)
        return fill_command(
            template, command_values(point.params, {} if model is None else model.fixed, seed)
        )

    def prepare(self, run: Path, point: Point) -> Path:
        """Write ``point.json`` and the job script of the submission ``point.job_name``.

        Nothing is written unless the point folder is a real folder, or is
        created as one here (:func:`~nas.pointdir.layout.make_point_folder`).

        Raises:
            One of :data:`PREPARE_ERRORS`: this point cannot be trained as configured,
            or not in that folder.
        """
        folder = layout.point_dir(run, point.id)
        write_point_file(folder, **self.point_values(point))
        layout.log_path(run, point.id, point.job_name).parent.mkdir(parents=True, exist_ok=True)
        return write_job_script(folder / layout.JOB_SCRIPT, self.script_text(run, point))

    def check(self, run: Path, point: Point) -> str:
        """Everything :meth:`prepare` checks, writing nothing; the job script it would write.

        Raises:
            One of :data:`PREPARE_ERRORS`: what ``prepare`` would raise.
        """
        folder = layout.point_dir(run, point.id)
        point_document(folder / layout.POINT_FILE, **self.point_values(point))
        return self.script_text(run, point)

    def script_text(self, run: Path, point: Point) -> str:
        """The job script of the submission ``point.job_name``; writes nothing."""
        return render_job_script(
            self.cluster.backend,
            cluster=self.cluster,
            point_dir=str(layout.point_dir(run, point.id)),
            job_name=point.job_name,
            stdout_path=self._log_path(run, point),
            command=self.command(point),
            workdir=str(self.workdir),
        )

    def _log_path(self, run: Path, point: Point) -> str:
        """The submission's log, written so that the backend's filename patterns keep it."""
        path = str(layout.log_path(run, point.id, point.job_name))
        backend = backend_class(self.cluster.backend)
        return path if backend is None else backend.literal_filename(path)


def readiness(
    experiment: Experiment, cwd: Path, *, offline: bool = False, state: Path
) -> tuple[list[ConfigError], list[str]]:
    """What would stop ``run`` from this folder, all at once, and what a person should check.

    Returns :func:`run_problems` and warnings (a batch backend without
    ``[cluster] account``: many sites reject such jobs). An experiment for
    searching by hand (neither ``[model]`` nor ``[data]``) has none.
    """
    costs, warnings = cost_problems(experiment, cwd), cost_warnings(experiment, cwd)
    if not costs:
        warnings += bound_scale_warnings(experiment, cwd)
    if experiment.model is None and experiment.data is None and experiment.builtin_trainer:
        return costs, warnings
    cluster = experiment.cluster
    warnings += _unread_key_warnings(experiment) + memory_warnings(experiment, cwd)
    warnings += _lossy_format_warnings(experiment) + _scan_warnings(experiment)
    if cluster.backend in ("slurm", "lsf") and cluster.account is None:
        option = "--account" if cluster.backend == "slurm" else "-P"
        warnings.append(
            f"{experiment.source}: [cluster] account is not set: jobs go out without "
            f"{option}, which many sites reject"
        )
    problems = run_problems(experiment, cwd, offline=offline, state=state)
    problems += _site_problems(experiment)
    said = {str(c) for c in costs}  # a failing [model] costs also fails its memory rule
    return costs + [p for p in problems if str(p) not in said], warnings


#: The tables whose keys only some backends read: the keys that may go unread, and the
#: :class:`Scheduler` method that names those a backend reads. Every ``[controller]`` key
#: may (the local backend has no keep-alive job to read any of them).
_BACKEND_TABLES = (
    ("cluster", BACKEND_KEYS, "reads"),
    ("controller", frozenset(field.name for field in dataclasses.fields(ControllerConfig)),
     "controller_reads"),
)  # fmt: skip


def _unread_key_warnings(experiment: Experiment) -> list[str]:
    """The ``[cluster]`` and ``[controller]`` keys the experiment gives that its backend does
    not read.

    ``mem`` on PBS, ``alloc_flags`` on Slurm or ``[controller] qos`` on LSF reach
    no script: the job would run without them and nothing would say so.
    """
    backend = experiment.cluster.backend
    document = tomllib.loads(experiment.text)
    warnings = []
    for table, keys, reads in _BACKEND_TABLES:
        given = document.get(table, {})
        for key in sorted(keys.intersection(given) - _read_by(backend, reads)):
            others = sorted(name for name in backend_names() if key in _read_by(name, reads))
            warnings.append(f"{experiment.source}: [{table}] {key} is not used by backend "
                            f"{backend!r} (only by {', '.join(others)}); it has no effect")  # fmt: skip
    return warnings


#: Ranks per job from which a tree without an index is worth a warning: each rank lists
#: every class folder at each start, on the shared file system's metadata servers.
SCAN_WARNING_RANKS = 8


def _scan_warnings(experiment: Experiment) -> list[str]:
    """An image folder without ``[data] index`` trained by many ranks per job: each rank
    scans the tree at each segment's start (ImageNet-22K's 21,841 class folders and 14
    million names, times every rank), a load a parallel file system's metadata servers
    feel; one ``splinenas data index`` run makes it one file read per rank."""
    data, cluster = experiment.data, experiment.cluster
    if data is None or data.kind != "imagefolder" or data.index or not data.root:
        return []
    ranks = cluster.nodes * ranks_per_node(cluster)
    if ranks < SCAN_WARNING_RANKS:
        return []
    return [
        f"{experiment.source}: [data] index is not set: each of the {ranks} ranks of every job "
        f"lists every class folder of {data.root} at its start; build the index once "
        f"(splinenas data index {shlex.quote(data.root)} --out FILE) and set [data] index = FILE"
    ]


def _read_by(backend: str, reads: str) -> frozenset[str]:
    """The keys backend ``backend`` reads, as its method ``reads`` names them."""
    return getattr(backend_class(backend) or Scheduler, reads)()


def _site_problems(experiment: Experiment) -> list[ConfigError]:
    """What the sites of a backend require of every job, checked by ``init``.

    PBS at ALCF (Polaris, Aurora) refuses a job that does not name the file
    systems it uses (``-l filesystems=home:eagle``).
    """
    cluster = experiment.cluster
    given = any(line.replace(" ", "").startswith("-lfilesystems=")
                for line in cluster.extra_directives)  # fmt: skip
    if cluster.backend == "pbs" and cluster.filesystems is None and not given:
        return [ConfigError(experiment.source, "cluster", "filesystems",
                            "backend 'pbs' needs the file systems the job uses, e.g. "
                            "filesystems = \"home:eagle\" (#PBS -l filesystems=...)")]  # fmt: skip
    return []


def run_problems(
    experiment: Experiment, cwd: Path, *, offline: bool = False, state: Path
) -> list[ConfigError]:
    """Everything in the experiment that would stop ``run`` or fail every job, all at once.

    ``run`` (through :meth:`JobSettings.from_experiment`) and ``init`` both
    call this, so they refuse the same files: a missing ``[model]``/``[data]``
    table; a search dimension or ``[model] fixed`` key that is no coordinate
    of the family, a coordinate neither searched nor fixed, or a value the
    family cannot take; ``[model] num_classes`` missing where needed; and
    anything that preparing a point of the initial design refuses (the
    metric, every value that reaches the job script, the point folders under
    the state file ``state``). Unless ``offline``,
    also paths on this machine, taken from ``cwd``: ``[cluster] env_file``,
    ``[data] root`` and ``index``, and ``[cluster] python``.
    """
    missing = experiment.missing_run_sections()
    if missing:
        return missing
    problems = [] if offline else _path_problems(experiment, cwd)
    coordinates = _coordinate_problems(experiment) if experiment.builtin_trainer else []
    if experiment.builtin_trainer:
        problems += coordinates + _builtin_metric_problems(experiment)
    else:
        command = _command_problems(experiment, cwd, offline)
        if command:  # preparing a point would only repeat them
            return problems + command
    try:
        feasibility(experiment, cwd)
        memory = None if coordinates else memory_problem(experiment)
    except ConfigError as exc:
        problems.append(exc)
    else:
        problems += [memory] if memory else []
    return problems + _preparing_problems(experiment, cwd, state)


def _builtin_metric_problems(experiment: Experiment) -> list[ConfigError]:
    """The built-in trainer measures top-1 and top-5 accuracy only."""
    metric = experiment.experiment.metric
    if metric in METRICS:
        return []
    choices = ", ".join(repr(m) for m in METRICS)
    return [ConfigError(experiment.source, "experiment", "metric",
                        f"the built-in trainer measures {choices}, not {metric!r}; "
                        "give [train] command to train with your own code")]  # fmt: skip


def _command_problems(experiment: Experiment, cwd: Path, offline: bool) -> list[ConfigError]:
    """``[train] command``: every ``{name}`` is a searched or fixed parameter or ``{seed}``; the
    program exists, and so does the script an interpreter runs.

    The program and script are looked up only where this machine can tell
    (the local backend without ``[cluster] env_file``, or a program path with a
    ``/``): elsewhere the job's environment decides, and a missing program
    fails the first job with "command not found", without retries.
    """
    argv = experiment.train.command or []
    source, model = experiment.source, experiment.model
    known = set(experiment.space.names) | set({} if model is None else model.fixed)
    try:
        fields = formatted_fields(argv)
    except TemplateError as exc:
        return [ConfigError(source, "train", "command", str(exc))]
    problems = [
        ConfigError(source, "train", "command",
                    f"argument {index} {argv[index]!r}: {{{name}}} names no parameter; the "
                    f"[[space]] names and [model] fixed keys are {', '.join(sorted(known))} "
                    f"(and {{{SEED_FIELD}}}, the training seed)")
        for index, name, _ in fields
        if name not in known and name != SEED_FIELD
    ]  # fmt: skip
    if any(name == SEED_FIELD for _, name, _ in fields):
        problems += _seed_problems(experiment)
    problems = problems or _filling_problems(experiment, argv)
    program = argv[0]
    if problems or offline or "{" in program:
        return problems
    cluster = experiment.cluster
    here = cluster.backend == "local" and cluster.env_file is None  # this machine can tell
    if "/" in program:
        path = cwd / program
        if not path.is_file() or not os.access(path, os.X_OK):
            why = "does not exist" if not path.exists() else "is not an executable file"
            problems.append(ConfigError(source, "train", "command",
                                        f"program {program!r} {why}{_relative(program, cwd)}"))  # fmt: skip
    elif here and not shutil.which(program):
        problems.append(
            ConfigError(source, "train", "command", f"program {program!r} is not found on PATH")
        )
    script = _script(argv) if here else None
    if script is not None and not (cwd / script[1]).exists():
        index, value = script
        problems.append(ConfigError(source, "train", "command",
                                    f"argument {index} {value!r}: the script {program!r} runs "
                                    f"does not exist{_relative(value, cwd)}"))  # fmt: skip
    return problems


def _relative(path: str, cwd: Path) -> str:
    """`` (relative to CWD)`` for a relative path, '' for an absolute one."""
    return "" if os.path.isabs(path) else f" (relative to {cwd})"


def _seed_problems(experiment: Experiment) -> list[ConfigError]:
    """A parameter named ``seed`` where the command names ``{seed}``: which would it be?

    ``{seed}`` is the point's training seed (:data:`~nas.pointdir.contract.SEED_FIELD`).
    """
    model, source = experiment.model, experiment.source
    advice = (f"{{{SEED_FIELD}}} in [train] command is the point's training seed ([train] seed, "
              "plus one after a divergence): rename this parameter")  # fmt: skip
    problems = []
    if SEED_FIELD in experiment.space.names:
        problems.append(ConfigError(source, f"space.{SEED_FIELD}", "name", advice))
    if model is not None and SEED_FIELD in model.fixed:
        problems.append(ConfigError(source, "model", "fixed",
                                    f"{SEED_FIELD!r}: {advice}, or set [train] seed"))  # fmt: skip
    return problems


#: Programs that run a script named by their first argument that is no option (by basename).
_INTERPRETER = re.compile(r"python(\d+(\.\d+)?)?|bash|sh")
#: Short options after which these programs run no script: code (``-c``) or a module (``-m``).
_NO_SCRIPT = frozenset("cm")


def _script(argv: list[str]) -> tuple[int, str] | None:
    """(index, path) of the script an interpreter in ``argv[0]`` runs, where ``argv`` names
    one that looks like a path (``*.py``, ``*.sh`` or with a ``/``, and no ``{field}``)."""
    if not _INTERPRETER.fullmatch(os.path.basename(argv[0])):
        return None
    index = 1
    while index < len(argv) and argv[index].startswith("-") and argv[index] not in ("-", "--"):
        option = argv[index]
        if not option.startswith("--") and _NO_SCRIPT & set(option[1:]):
            return None
        index += 1
    if index < len(argv) and argv[index] == "--":
        index += 1
    if index >= len(argv):
        return None
    value = argv[index]
    looks = value.endswith((".py", ".sh")) or "/" in value
    return (index, value) if looks and "{" not in value and "}" not in value else None


def _filling_problems(experiment: Experiment, argv: list[str]) -> list[ConfigError]:
    """``[train] command`` filled with every value each parameter can take, one at a time.

    A format such as ``{width:03d}`` suits some values and not others (a float,
    a choice ``"auto"``); filled only for the first design point, the command
    would fail the point that first draws such a value, in the middle of the
    search. Numbers are tried at both bounds, choices each; the message names
    the first value the format does not suit (the format's own error), once per
    argument.
    """
    model = experiment.model
    space = experiment.space
    first = space.initial_design()[0]
    fixed = {} if model is None else model.fixed
    found: dict[int, ConfigError] = {}
    for dim in space.dims:
        for value in dim.choices if not dim.is_numeric else (dim.low, dim.high):
            params = space.snap({**first, dim.name: value})
            try:
                fill_command(argv, command_values(params, fixed, experiment.train.seed))
            except TemplateError as exc:
                found.setdefault(exc.index, ConfigError(experiment.source, "train", "command",
                                                        str(exc)))  # fmt: skip
    return list(found.values())


#: Largest relative difference between a value and the number its ``{name:spec}`` text reads
#: back as, that ``init`` lets pass without a warning (``.2e`` differs by 0.5% at most).
FORMAT_TOLERANCE = 0.01


def _lossy_format_warnings(experiment: Experiment) -> list[str]:
    """``{name:spec}`` fields that write a value as another one: ``{lr:.2f}`` gives 1e-05 as
    ``0.00``. The trainer would train another value than the point records, silently.

    Tried on a dimension's bounds and design values and on a fixed number
    (:func:`_lost`); a warning, since a coarse format may be meant.
    """
    argv = list(experiment.train.command or [])
    try:
        fields = formatted_fields(argv)
    except TemplateError:
        return []  # _command_problems names it
    samples = _numeric_samples(experiment)
    warnings = []
    for index, name, spec in fields:
        lost = _lost(samples[name], spec) if spec and name in samples else None
        if lost:
            warnings.append(f"{experiment.source}: [train] command: argument {index} "
                            f"{argv[index]!r}: {{{name}:{spec}}} {lost}, so the trainer gets "
                            "another value than the point records: give a format with more "
                            f"digits, or {{{name}}} (written exactly)")  # fmt: skip
    return warnings


def _numeric_samples(experiment: Experiment) -> dict[str, list[int | float]]:
    """Values each numeric ``{name}`` takes: a dimension's bounds and initial-design values,
    a fixed number's own."""
    model, space = experiment.model, experiment.space
    samples: dict[str, list[int | float]] = {
        name: [value]
        for name, value in ({} if model is None else model.fixed).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    design = space.initial_design()
    for dim in space.numeric:
        samples[dim.name] = [dim.low, dim.high, *(params[dim.name] for params in design)]
    return samples


def _lost(values: list[int | float], spec: str) -> str | None:
    """How ``spec`` loses one of ``values``: two distinct values written alike, or a value
    written as text that reads back as a number more than :data:`FORMAT_TOLERANCE` off."""
    written: dict[str, int | float] = {}
    for value in values:
        try:
            text = format_value(value, spec)
        except TemplateError:
            continue  # _filling_problems names it
        if written.setdefault(text, value) != value:
            return f"writes both {written[text]!r} and {value!r} as {text!r}"
        try:
            back = float(text)
        except ValueError:
            continue  # no number ({n:x}, {x:%}): only the collisions tell
        if not math.isclose(back, value, rel_tol=FORMAT_TOLERANCE):
            return f"writes {value!r} as {text!r}"
    return None


#: Paths of the experiment that must exist on this machine, and what they must be.
_PATHS = (("cluster", "env_file", "file"), ("data", "root", "folder"), ("data", "index", "file"))


def _path_problems(experiment: Experiment, cwd: Path) -> list[ConfigError]:
    """The paths of the experiment that do not exist on this machine."""
    paths = [_PATHS[0]]
    if experiment.data is not None and experiment.builtin_trainer:
        paths += _PATHS[1:]
    problems = []
    for table, key, kind in paths:
        value = getattr(getattr(experiment, table), key)
        if value is None:
            continue
        try:
            path = _existing(cwd, value, experiment.source, table, key)
        except ConfigError as exc:
            problems.append(exc)
            continue
        if path.is_dir() != (kind == "folder"):
            other = "file" if kind == "folder" else "folder"
            problems.append(ConfigError(experiment.source, table, key,
                                        f"{value!r} is a {other}, not a {kind}"))  # fmt: skip
    python = _python_problem(experiment, cwd)
    return problems + ([python] if python else [])


def _python_problem(experiment: Experiment, cwd: Path) -> ConfigError | None:
    """``[cluster] python`` as given, if this machine can tell that jobs cannot start it.

    A path must be absolute (jobs run in their point folder) and exist; a bare
    name is looked up on PATH for the local backend without an ``env_file``
    only, since elsewhere the job's environment decides.
    """
    cluster = experiment.cluster
    python = cluster.python
    if not _python_given(experiment.text) or not python.strip():
        return None  # the default, or empty: rendering names an empty value
    if "/" in python:
        if not os.path.isabs(python):
            problem = (
                f"{python!r} is relative; jobs run in their point folder: give an absolute path"
            )
        elif not os.path.exists(python):
            problem = f"{python!r} does not exist"
        elif not os.access(python, os.X_OK) or os.path.isdir(python):
            problem = f"{python!r} is not an executable file"
        else:
            return None
    elif cluster.backend == "local" and cluster.env_file is None and not shutil.which(python):
        problem = f"{python!r} is not found on PATH"
    else:
        return None
    return ConfigError(experiment.source, "cluster", "python", problem)


def _coordinate_problems(experiment: Experiment) -> list[ConfigError]:
    """Dimensions and fixed settings checked as the trainer checks them, by name and value.

    The trainer builds each candidate from ``[model] fixed`` overridden by the
    searched values (:meth:`~nas.pointdir.point.PointFile.model_params`); a
    name or value it refuses would fail every job ``max_attempts`` times.
    """
    from nas.models import ModelConfigError
    from nas.models import coordinates as coords

    model, source, space = experiment.model, experiment.source, experiment.space
    assert model is not None  # run_problems checked the tables
    family = model.family
    valid = (
        f"coordinates of model family {family!r} are {', '.join(coords.coordinate_names(family))}"
    )
    fixed = {k: v for k, v in model.fixed.items() if k not in space.names}
    problems = [
        ConfigError(source, f"space.{name}", "name", f"{name!r} is no coordinate; {valid}")
        for name in coords.unknown_names(family, space.names)
    ]
    problems += [
        ConfigError(source, "model", "fixed", f"{name!r} is no coordinate; {valid}")
        for name in coords.unknown_names(family, fixed)
    ]
    missing = coords.missing_names(family, [*space.names, *fixed])
    if missing:
        problems.append(ConfigError(source, "model", "fixed",
                                    f"family {family!r} needs {', '.join(missing)}, neither "
                                    "searched in [[space]] nor fixed here"))  # fmt: skip
    problems += box_problems(experiment) if not problems else []
    if problems:
        return problems
    values = [("model", "fixed", name, value) for name, value in fixed.items()]
    values += [
        (f"space.{dim.name}", "type" if dim.is_numeric else "choices", dim.name, params[dim.name])
        for params in space.initial_design()
        for dim in space.dims
    ]
    for table, key, name, value in values:
        try:
            coords.coordinate(family, name).coerce(family, value)
        except ModelConfigError as exc:
            problems.append(ConfigError(source, table, key, str(exc)))
            break
    return problems or _scaled_width_problems(experiment, fixed)


def _scaled_width_problems(experiment: Experiment, fixed: dict[str, Any]) -> list[ConfigError]:
    """A width multiplier ``phi`` that scales a width past ``MAX_WIDTH`` somewhere in the box.

    Each coordinate alone is within its bounds, but the trainer builds the scaled
    width and refuses it (:func:`nas.models.specs.check_scaled_widths`): every such
    candidate would fail its job. Widths and ``phi`` only grow a width, so the box's
    upper corner is where it is widest.
    """
    from nas.models import ModelConfigError
    from nas.models.specs import check_scaled_widths, coerce_params

    space, model = experiment.space, experiment.model
    assert model is not None  # run_problems checked the tables
    if "phi" not in space.names and "phi" not in fixed:
        return []
    corner = {**fixed, **{dim.name: dim.high for dim in space.numeric}}
    corner |= {dim.name: dim.choices[0] for dim in space.categorical}
    try:
        check_scaled_widths(model.family, coerce_params(model.family, corner))
    except ModelConfigError as exc:
        table, key = ("space.phi", "high") if "phi" in space.names else ("model", "fixed")
        return [ConfigError(experiment.source, table, key, f"{exc} (the box's upper corner)")]
    return []


def widened_problems(experiment: Experiment) -> list[ConfigError]:
    """What ``experiment``'s (widened) box lets in that no job could train: a value past a
    coordinate's bounds (:func:`box_problems`), or one the ``[train] command`` cannot be
    filled with (``{n:c}`` past U+10FFFF); ``init``'s own checks."""
    if experiment.builtin_trainer:
        return box_problems(experiment)
    return _filling_problems(experiment, list(experiment.train.command or []))


def box_problems(experiment: Experiment) -> list[ConfigError]:
    """Numeric dimensions whose box reaches past the bounds of their coordinate.

    A bound (e.g. at most :data:`nas.models.coordinates.MAX_DEPTH` blocks a
    stage) is declared with the coordinate, which the trainer applies too.
    ``init`` checks the configured box with it and ``expand``
    (:func:`nas.control.operations.expand`) every widened one, so no point
    outside the bounds ever reaches a job.
    """
    from nas.models import coordinates as coords

    assert experiment.model is not None  # run_problems checked the tables
    family, problems = experiment.model.family, []
    for dim in experiment.space.numeric:
        coordinate = coords.coordinate(family, dim.name)
        for key, value, bound, outside in (
            ("low", dim.low, coordinate.low, "at least"),
            ("high", dim.high, coordinate.high, "at most"),
        ):
            if bound is not None and (value < bound if key == "low" else value > bound):
                problems.append(ConfigError(
                    experiment.source, f"space.{dim.name}", key,
                    f"family {family!r}: coordinate {dim.name!r} takes {outside} {bound}, "
                    f"got {value!r}"))  # fmt: skip
    return problems


def _preparing_problems(experiment: Experiment, cwd: Path, state: Path) -> list[ConfigError]:
    """What preparing the first point of the initial design refuses, as config errors.

    :meth:`JobSettings.check` runs the very checks of every submission: the
    ``point.json`` schema (the metric the trainer measures) and rendering the
    job script (every ``[cluster]`` value and how they combine).
    """
    settings = JobSettings.resolved(experiment, cwd)
    params = experiment.space.initial_design()[0]
    probe = Point(id=0, params=params, status=PointStatus.PENDING, batch=0, origin="design",
                  created=0.0, updated=0.0)  # fmt: skip
    probe = dataclasses.replace(probe, job_name=job_name(experiment.experiment.name, probe))
    source = experiment.source
    try:
        settings.check(layout.run_dir(cwd / state), probe)
    except ScriptError as exc:
        table, _, key = (exc.key or "cluster").partition(".")
        return [ConfigError(source, table, key or None, str(exc).removeprefix(f"{exc.key}: "))]
    except PointFileError as exc:
        table, key = _point_key(exc.key)
        return [ConfigError(source, table, key, exc.detail)]
    except TemplateError as exc:
        return [ConfigError(source, "train", "command", str(exc))]
    return []


#: What preparing a point's job refuses: the point cannot be trained as the experiment
#: says (``init`` checks the first design point and every value of the command's fields),
#: or its folder is no real folder (until a person removes what is there).
PREPARE_ERRORS = (PointFileError, PointFolderError, ScriptError, TemplateError)

#: ``point.json`` keys that come from the experiment, by the table and key they come from.
_POINT_KEYS = {"metric": ("experiment", "metric"), "num_classes": ("model", "num_classes")}


def _point_key(key: str | None) -> tuple[str, str | None]:
    """The experiment's table and key a ``point.json`` key comes from: ``fixed.x`` is
    ``[model] fixed.x``; ``params.x`` is ``[space.x]``."""
    group, _, name = (key or "").partition(".")
    if name and group == "fixed":
        return "model", key
    if name and group == "params":
        return f"space.{name}", None
    return _POINT_KEYS.get(key or "", ("experiment", key))


def training_seed(experiment: Experiment, extra: Mapping[str, Any]) -> int:
    """A point's training seed: ``[train] seed``, plus one after its divergence retry."""
    return experiment.train.seed + int(extra.get("reseeds", 0))


def _existing(cwd: Path, value: str, source: str, table: str, key: str) -> Path:
    path = (cwd / value).absolute()
    if not path.exists():
        raise ConfigError(
            source, table, key, f"{value!r} does not exist (relative paths are taken from {cwd})"
        )
    return path


def _python_given(text: str) -> bool:
    """Whether the experiment names ``[cluster] python`` itself (not the default)."""
    return "python" in tomllib.loads(text).get("cluster", {})


def job_name(experiment: str, point: Point) -> str:
    """The unique scheduler name of a point's submission.

    One per rerun (``splinenas rerun`` counts them in ``extra``), attempt and segment.
    """
    reruns = int(point.extra.get("reruns", 0))
    return f"{experiment}-p{point.id}-r{reruns}a{point.attempts}s{point.segment}"
