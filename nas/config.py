"""Experiment TOML -> frozen dataclasses.

An experiment file has the tables ``[experiment]``, ``[[space]]`` (one per
search dimension), ``[model]``, ``[data]``, ``[train]``, ``[cluster]`` and
``[controller]``. Only ``[experiment]`` and ``[[space]]`` are needed to create
a state and to search by hand; ``splinenas run`` also needs ``[model]`` and
``[data]`` (the other tables have defaults for every key).

Every table is declared once as a dataclass whose fields carry their expected
type and constraint in ``metadata``; one generic parser checks unknown keys,
types, ranges and choices, so every error names the file, the table and the
key and says what was expected.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from nas.errors import UserError
from nas.names import line_problem, name_problem
from nas.numbers import finite_number, plain_number
from nas.search.settings import (
    SETTINGS,
    SearchSettings,
    SettingError,
    check_value,
    declared,
    option,
)
from nas.search.space import Dim, SearchSpace, SpaceError

log = logging.getLogger(__name__)


#: Characters that no quoting carries through an ``#SBATCH`` / ``#BSUB`` line intact.
DIRECTIVE_UNSAFE = frozenset('"\\$`')
#: Longest free-text value of a job-script directive (``constraint``, ``alloc_flags``,
#: ``gpu_bind``, an ``extra_directives`` entry): sites' own values are tens of characters.
MAX_DIRECTIVE_LENGTH = 1000
#: Largest ``resolution`` and ``val_resize`` in pixels: 16x ImageNet's usual 256.
MAX_RESOLUTION = 4096
#: Longest ``walltime_minutes`` of a job: one year; sites limit jobs to days.
MAX_WALLTIME_MINUTES = 365 * 24 * 60
#: Longest warning before a job's time limit: Slurm keeps ``--signal``'s time in 16 bits.
MAX_SIGNAL_SECONDS = 65535


class ConfigError(UserError, ValueError):
    """An experiment file that cannot be used; the message names file, table and key."""

    def __init__(self, source: str, table: str, key: str | None, message: str) -> None:
        where = f"[{table}]" + (f" {key}" if key else "")
        super().__init__(f"{source}: {where}: {message}")
        self.source, self.table, self.key, self.detail = source, table, key, message


# --------------------------------------------------------------------------- field kinds
# ``option`` and the check of a declared value live with the search settings
# (:mod:`nas.search.settings`), which ``[experiment]`` exposes field by field.


#: Longest experiment name: it prefixes job names and names the state and run folder.
MAX_EXPERIMENT_NAME = 64


def _experiment_name(value: str) -> str | None:
    """A name that makes a visible file and a valid job name (not ``..`` or 300 characters)."""
    if not value[:1].isascii() or not value[:1].isalnum():
        return f"must start with a letter or digit, got {value!r}"
    if len(value) > MAX_EXPERIMENT_NAME:
        return f"at most {MAX_EXPERIMENT_NAME} characters, got {len(value)}"
    return name_problem(value)


def _directive_line(value: str) -> str | None:
    """One line that fits a directive: no line break, at most :data:`MAX_DIRECTIVE_LENGTH`."""
    if len(value) > MAX_DIRECTIVE_LENGTH:
        return f"at most {MAX_DIRECTIVE_LENGTH} characters, got {len(value)}"
    return line_problem(value)


def _directive_text(value: str) -> str | None:
    problem = _directive_line(value)
    bad = sorted(DIRECTIVE_UNSAFE.intersection(value))
    if problem is None and bad:
        problem = f"cannot go into a job-script directive: contains {bad[0]!r}"
    return problem


def _program(value: str) -> str | None:
    """A program a launcher starts: a name or a path, one word that is not an option.

    It follows the launcher's own options (``srun ... <python> -m ...``): ``-v``
    would be read as the launcher's option, and blanks are not part of a name.
    """
    problem = line_problem(value)
    if problem is None and (not value.strip() or value.startswith("-") or value != value.strip()):
        problem = f"expected a program name or path (no leading '-' or blanks), got {value!r}"
    return problem


def _memory_size(value: str) -> str | None:
    if not re.fullmatch(r"[1-9][0-9]*[KMGT]?", value):
        return f"expected a whole amount with an optional unit K, M, G or T (e.g. '200G'), got {value!r}"
    return None


def _filesystems(value: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9_]+(:[A-Za-z0-9_]+)*", value):
        return f"expected file system names joined by ':' (e.g. 'home:eagle'), got {value!r}"
    return None


def _bind_word(value: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9_:,.=-]+", value):
        return f"expected one --cpu-bind value (e.g. 'cores' or 'list:1-8:9-16'), got {value!r}"
    return None


#: A word of a directive line: blanks end it except inside double quotes.
_DIRECTIVE_WORD = re.compile(r'(?:[^\s"]|"[^"]*")+')
#: Read by a scheduler's directive parser outside double quotes as something else than
#: text: a comment (sbatch, flux: ``#``), shell punctuation that splits words (flux's
#: shlex: ``;|&()<>``). A single quote is a quote to sbatch, qsub and flux anywhere.
_DIRECTIVE_UNQUOTED = frozenset("#;|&()<>")


def directive_problem(line: str) -> str | None:
    """Why ``line`` is not one scheduler directive, or None if it is.

    sbatch, bsub, qsub and flux split a directive line into words at blanks
    outside double quotes and reject a word that no option takes (sbatch:
    "Invalid directive found in batch script"), which fails every job. One
    entry is one option: ``-x``, ``-x value``, ``--name`` or ``--name=value``;
    a value with blanks goes in double quotes.
    """
    problem = _directive_line(line)
    if problem:
        return problem
    if line.count('"') % 2:
        return "has an unmatched double quote"
    if "'" in line:
        return "has a single quote, which schedulers read as a quote; use double quotes"
    bare = sorted(_DIRECTIVE_UNQUOTED.intersection(re.sub(r'"[^"]*"', "", line)))
    if bare:
        return f"has {bare[0]!r} outside double quotes, which a scheduler reads as a comment or a word break"
    words = _DIRECTIVE_WORD.findall(line)
    if not words:
        return "is empty"
    if not words[0].startswith("-"):
        return f"starts with {words[0]!r}, not an option ('-x' or '--name')"
    if len(words) > 2 or (len(words) == 2 and words[1].startswith("-")):
        return "holds more than one option; give one option per entry"
    if len(words) == 2 and words[0].startswith("--"):
        option = words[0].split("=", 1)[0]
        return (
            f"the scheduler reads {words[1]!r} as a separate word; write {option}=<value>, "
            "in double quotes if the value has blanks"
        )
    return None


def _check_directives(value: list) -> str | None:
    for item in value:
        if not isinstance(item, str):
            return f"expected a list of strings, found {item!r}"
        problem = directive_problem(item)
        if problem:
            return f"entry {item!r}: {problem}"
    return None


def _check_range(value: list) -> str | None:
    numbers = [v for v in value if finite_number(v)]
    if len(value) != 2 or len(numbers) != 2 or not numbers[0] < numbers[1]:
        return f"expected [low, high], two numbers with low < high, got {value!r}"
    return None


def _check_fixed(value: dict) -> str | None:
    for key, item in value.items():
        if not isinstance(item, (bool, int, float, str)):
            return (
                f"value of {key!r} must be a number, string or boolean, got {type(item).__name__}"
            )
    return None


def _check_command(value: list) -> str | None:
    """An argv list: at least the program, every item one line of text."""
    if not value:
        return "expected a non-empty list: the program and its arguments"
    for index, item in enumerate(value):
        if not isinstance(item, str):
            return f"argument {index}: expected a string, got {item!r}"
        problem = line_problem(item)
        if problem:
            return f"argument {index}: {problem}"
    if not value[0]:
        return "argument 0: the program is empty"
    return None


def _check_choices(value: list) -> str | None:
    """Every string choice one line: it goes into the trainer's command line like a fixed value.

    Refused here so that ``init`` refuses it, not ``run`` after a job was submitted.
    """
    for index, item in enumerate(value):
        problem = line_problem(item) if isinstance(item, str) else None
        if problem:
            return f"choice {index}: {problem}"
    return None


def choice_problems(experiment: Experiment) -> list[ConfigError]:
    """Categorical choices of a new experiment that ``--params`` could never name.

    Asked by ``init`` only: a state made before this rule keeps its choices and
    runs on (its commands read the stored file again), where only ``add``,
    ``predict`` and imports cannot name such a choice.
    """
    problems = []
    for dim in experiment.space.categorical:
        for index, item in enumerate(dim.choices):
            problem = _unaddressable(item)
            if problem:
                where = f"space.{dim.name}"
                problems.append(
                    ConfigError(
                        experiment.source, where, "choices", f"choice {index} ({item!r}): {problem}"
                    )
                )
    return problems


def _unaddressable(choice: Any) -> str | None:
    """Why ``--params`` (``add``, ``predict``, ``cost``, an import) could never name ``choice``.

    The command line reads a choice back with :func:`parse_params`: the string
    "16" comes back as the number 16, "true" as a boolean, " pad" stripped,
    "a,b" split, so such a choice could be searched and trained but never
    added, predicted or imported (an independent check found the project's own
    ``export --csv`` could not be imported back). A number is given as itself.
    """
    if isinstance(choice, float) and not math.isfinite(choice):
        return "a choice must be a finite number or a name"
    if not isinstance(choice, str):
        return None  # the space's own check names a choice of another type
    if choice != choice.strip() or "," in choice:  # the empty choice is ``K=``
        return "--params cannot give a choice with a comma or with spaces at its ends"
    try:
        back = _parse_scalar(choice)
    except ValueError:
        back = None
    if back == choice:
        return None
    return (
        f"--params reads {choice!r} as {back!r}, so no command could name it; give a number "
        'as a number (16, not "16") and a name that is no number, true or false'
    )


#: ``package.module:function``.
_FUNCTION_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def _function_path(value: str) -> str | None:
    if not _FUNCTION_PATH.fullmatch(value):
        return f"expected 'package.module:function', got {value!r}"
    return None


def _parse_table(cls: type, raw: Any, source: str, table: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, validating every key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(source, table, None, f"expected a table, got {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            source, table, unknown[0], f"unknown key; valid keys are {', '.join(sorted(known))}"
        )
    values = {}
    for name, spec in known.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(source, table, name, "missing required key")
            continue
        values[name] = _validate_value(raw[name], spec.metadata, source, table, name)
    return cls(**values)


def _validate_value(value: Any, meta: Mapping, source: str, table: str, key: str) -> Any:
    try:
        return check_value(value, meta, key)
    except SettingError as exc:
        raise ConfigError(source, table, key, exc.detail) from None


# --------------------------------------------------------------------------- the tables


@dataclass(frozen=True)
class ExperimentConfig:
    """``[experiment]``: what is searched for and when to stop."""

    name: str = option(kind=str, check=_experiment_name, doc="experiment name; used in job names")
    metric: str = option("top1", kind=str, check=name_problem, doc="result metric to optimise")
    value_range: list | None = option(
        None,
        kind=list,
        check=_check_range,
        optional=True,
        doc="[low, high] a measurement must lie in; top1/top5 default to [0, 100]",
    )
    goal: str = declared("goal")
    tolerance: float = declared("tolerance")
    stop: str | None = declared("stop")
    max_points: int = option(
        50, kind=int, minimum=1, doc="budget: points proposed, cancelled and infeasible excluded"
    )
    batch_size: int = declared("batch_size")
    batch_fill: str | None = declared("batch_fill")
    refill: bool = option(
        False,
        kind=bool,
        doc="after the design, propose as each spline point finishes to keep batch_size training",
    )
    seed: int = declared("seed")
    strategy: str = declared("strategy")
    smoothing: float = declared("smoothing")
    noise: float | str | None = declared("noise")
    capping: float = declared("capping")
    warping: str | None = declared("warping")
    design: str = declared("design")
    design_points: int | None = declared("design_points")
    min_distance: float = declared("min_distance")
    climb: str | None = declared("climb")
    constraints: dict = declared("constraints")
    tradeoff: str | None = declared("tradeoff")
    max_gpu_hours: float | None = option(None, kind=float, minimum=0.0, optional=True)
    max_wall_hours: float | None = option(None, kind=float, minimum=0.0, optional=True)

    def search_settings(self) -> SearchSettings:
        """The settings of the spline search that this table holds."""
        return SearchSettings(**{name: getattr(self, name) for name in _SEARCH_KEYS})

    def valid_range(self) -> tuple[float, float] | None:
        """The range a measurement must lie in: ``value_range``, [0, 100] for percentages, else None."""
        if self.value_range is not None:
            low, high = self.value_range
            return float(low), float(high)
        return (0.0, 100.0) if self.metric in PERCENT_METRICS else None


#: Metrics whose valid range is known without ``[experiment] value_range``.
PERCENT_METRICS = ("top1", "top5")


#: The search settings that ``[experiment]`` exposes (the others keep their defaults).
_SEARCH_KEYS = tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.name in SETTINGS)


@dataclass(frozen=True)
class DimConfig:
    """One ``[[space]]`` entry; turned into a :class:`nas.search.space.Dim`."""

    name: str = option(kind=str)
    type: str = option(kind=str, choices=("int", "float", "categorical"))
    low: float | None = option(None, kind=(int, float), optional=True)
    high: float | None = option(None, kind=(int, float), optional=True)
    log: bool = option(False, kind=bool)
    choices: list = option([], kind=list)


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the network family and its settings that are not searched."""

    family: str | None = option(
        None,
        kind=str,
        choices=("resnet", "resnext", "blresnext"),
        optional=True,
        doc="built-in trainer's network family; required unless [train] command is given",
    )
    num_classes: int | None = option(
        None, kind=int, minimum=2, optional=True, doc="default: the number of classes in the data"
    )
    fixed: dict = option({}, kind=dict, check=_check_fixed, doc="coordinates held fixed")
    feasible: str | None = option(
        None,
        kind=str,
        check=_function_path,
        optional=True,
        doc="'package.module:function' of (params) -> None or the reason a point cannot train",
    )
    costs: str | None = option(
        None,
        kind=str,
        check=_function_path,
        optional=True,
        doc="'package.module:function' of (params) -> {cost name: number} for an own model",
    )


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: where images come from and how they are fed."""

    kind: str = option(kind=str, choices=("digits", "imagefolder", "shards"))
    root: str | None = option(None, kind=str, check=line_problem, optional=True)
    index: str | None = option(
        None, kind=str, check=line_problem, optional=True, doc="index file from `data index`"
    )
    resolution: int = option(224, kind=int, minimum=8, maximum=MAX_RESOLUTION)
    val_resize: int | None = option(
        None, kind=int, minimum=8, maximum=MAX_RESOLUTION, optional=True
    )
    workers: int = option(4, kind=int, minimum=0)
    prefetch: int = option(2, kind=int, minimum=1, doc="batches in flight per loader worker")
    decode: str = option("cpu", kind=str, choices=("cpu", "gpu"), doc="where JPEGs are decoded")
    pin_memory: bool = option(True, kind=bool)
    max_bad_images: int = option(100, kind=int, minimum=0)
    imbalance: float = option(
        0.8, kind=float, minimum=0.01, maximum=1.0, doc="digits: class k keeps imbalance**k"
    )
    seed: int = option(0, kind=int, minimum=0)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the command of one measurement, and the built-in trainer's optimiser and loop."""

    command: list | None = option(
        None,
        kind=list,
        check=_check_command,
        optional=True,
        doc="argv every rank runs instead of the built-in trainer; {name} takes a parameter",
    )
    epochs: int = option(60, kind=int, minimum=1)
    batch_per_gpu: int = option(32, kind=int, minimum=1)
    lr: float = option(0.1, kind=float, minimum=0.0)
    momentum: float = option(0.9, kind=float, minimum=0.0, maximum=1.0)
    weight_decay: float = option(1e-4, kind=float, minimum=0.0)
    lr_power: float = option(1.0, kind=float, minimum=0.0, doc="polynomial decay power")
    warmup_epochs: float = option(0.0, kind=float, minimum=0.0)
    amp: str = option("off", kind=str, choices=("off", "bf16", "fp16"))
    channels_last: bool = option(False, kind=bool)
    compile: bool = option(
        False, kind=bool, doc="torch.compile the model; compiled code is cached in the point folder"
    )
    log_every: int = option(50, kind=int, minimum=1, doc="progress line every N steps")
    max_steps_per_epoch: int | None = option(None, kind=int, minimum=1, optional=True)
    seed: int = option(0, kind=int, minimum=0)
    keep_checkpoint: bool = option(
        False, kind=bool, doc="keep checkpoint.pt of a completed point (default: delete it)"
    )
    eval_every: int = option(1, kind=int, minimum=1, doc="learning-curve evaluation every N epochs")
    curve_images: int = option(
        50_000, kind=int, minimum=1, doc="validation images of the learning curve (fixed subset)"
    )
    diverge_patience: int = option(
        3, kind=int, minimum=0, doc="stop after N evaluations at chance after warm-up (0: off)"
    )
    on_divergence: str = option(
        "retry", kind=str, choices=("retry", "fail"), doc="retry once with a new seed, or fail"
    )


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]``: where and how candidates are trained."""

    backend: str = option("local", kind=str, choices=("local", "slurm", "lsf", "pbs", "flux"))
    nodes: int = option(1, kind=int, minimum=1)
    gpus_per_node: int = option(0, kind=int, minimum=0)
    ranks_per_node: int | None = option(
        None, kind=int, minimum=1, optional=True, doc="default: gpus_per_node, or 1 on CPU"
    )
    cores_per_node: int = option(1, kind=int, minimum=1)
    accelerator: str = option(
        "gpu",
        kind=str,
        choices=("gpu", "cuda", "xpu"),
        doc="with gpus_per_node > 0 every rank must drive one: 'gpu' (CUDA/ROCm or Intel XPU), "
        "'cuda' (NVIDIA/AMD) or 'xpu' (Intel)",
    )
    device_order: str | None = option(
        None,
        kind=str,
        choices=("local-rank", "reversed"),
        optional=True,
        doc="rank -> visible device: 'local-rank', or 'reversed' (ALCF's rule on Polaris); "
        "default: the environment file's SPLINENAS_DEVICE_ORDER, else 'local-rank'",
    )
    resource_sets: str = option("node", kind=str, choices=("node", "gpu"), doc="jsrun layout")
    walltime_minutes: int = option(120, kind=int, minimum=1, maximum=MAX_WALLTIME_MINUTES)
    signal_seconds: int = option(300, kind=int, minimum=0, doc="stop this early before the limit")
    account: str | None = option(None, kind=str, check=name_problem, optional=True)
    queue: str | None = option(None, kind=str, check=name_problem, optional=True)
    qos: str | None = option(None, kind=str, check=name_problem, optional=True)
    constraint: str | None = option(None, kind=str, check=_directive_text, optional=True)
    alloc_flags: str | None = option(None, kind=str, check=_directive_text, optional=True)
    extra_directives: list = option([], kind=list, check=_check_directives)
    gpu_bind: str | None = option(
        None,
        kind=str,
        check=_directive_text,
        optional=True,
        doc="slurm: one GPU per task, bound by --gpu-bind=<this> (e.g. 'closest')",
    )
    cpu_bind: str | None = option(
        None,
        kind=str,
        check=_bind_word,
        optional=True,
        doc="slurm: srun --cpu-bind=<this> (e.g. 'cores', as NERSC asks on Perlmutter); "
        "pbs: mpiexec --cpu-bind <this> in place of depth binding (e.g. 'list:1-8:9-16:...')",
    )
    filesystems: str | None = option(
        None,
        kind=str,
        check=_filesystems,
        optional=True,
        doc="pbs: -l filesystems=<this> (e.g. 'home:eagle'); init requires it for PBS",
    )
    mem: str | None = option(
        None, kind=str, check=_memory_size, optional=True, doc="slurm: --mem per node, e.g. '200G'"
    )
    jsrun_smpiargs: str = option(
        "off",
        kind=str,
        check=line_problem,
        doc="lsf: jsrun --smpiargs=<this>; 'off' for the non-MPI trainer, '' leaves it out",
    )
    env_file: str | None = option(None, kind=str, check=line_problem, optional=True)
    python: str = option("python3", kind=str, check=_program)
    max_gpu_memory_gib: float | None = option(
        None, kind=float, minimum=0.0, optional=True, doc="GPU memory in GiB (2**30 bytes)"
    )
    memory_margin: float = option(
        0.9,
        kind=float,
        minimum=0.01,
        maximum=1.0,
        doc="share of the GPU memory a candidate may use",
    )
    max_attempts: int = option(3, kind=int, minimum=1)
    max_concurrent_jobs: int = option(4, kind=int, minimum=1)


@dataclass(frozen=True)
class ControllerConfig:
    """``[controller]``: what the keep-alive controller job asks its scheduler for.

    Independent of the training jobs: the controller is one Python process
    that needs a core or two and no GPU.
    """

    account: str | None = option(None, kind=str, check=name_problem, optional=True)
    queue: str | None = option(
        None, kind=str, check=name_problem, optional=True, doc="queue (LSF) or partition (Slurm)"
    )
    qos: str | None = option(None, kind=str, check=name_problem, optional=True)
    walltime_minutes: int = option(
        1440,
        kind=int,
        minimum=1,
        maximum=MAX_WALLTIME_MINUTES,
        doc="one run of the job; it renews itself",
    )
    cores: int = option(1, kind=int, minimum=1, maximum=2)
    extra_directives: list = option([], kind=list, check=_check_directives)


# --------------------------------------------------------------------------- the document

_TABLES: dict[str, type] = {
    "experiment": ExperimentConfig,
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "cluster": ClusterConfig,
    "controller": ControllerConfig,
}

#: Keys renamed since they were introduced: (table, old) -> (new, how the old value is read).
_RENAMED = {
    ("cluster", "max_gpu_memory_gb"): (
        "max_gpu_memory_gib",
        "its value is read as GiB (2**30 bytes), the unit GPU memory is sold in",
    ),
}


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file. ``text`` is kept verbatim for the state file."""

    source: str
    text: str
    experiment: ExperimentConfig
    space: SearchSpace
    model: ModelConfig | None = None
    data: DataConfig | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    #: The folder the search runs in, as its state records it: its own code (``[model]
    #: feasible`` and ``costs``) is imported from there whichever folder a reader runs
    #: in. None for a file that is no search yet (the working directory serves).
    folder: str | None = None

    @property
    def builtin_trainer(self) -> bool:
        """Whether the built-in trainer measures the points (no ``[train] command``)."""
        return self.train.command is None

    def missing_run_sections(self) -> list[ConfigError]:
        """The tables that training needs and the file lacks: the built-in trainer's model and data.

        A search by hand has neither, and its owner may mean to train with an own
        command: the message names both ways, not only the table the built-in one needs.
        """
        if not self.builtin_trainer:
            return []
        need = "`run` needs it for the built-in trainer, or [train] command for your own code"
        problems = [
            ConfigError(self.source, table, None, f"missing table; {need}")
            for table in ("model", "data")
            if getattr(self, table) is None
        ]
        if self.model is not None and self.model.family is None:
            problems.append(
                ConfigError(self.source, "model", "family",
                            "missing required key of the built-in trainer (or give [train] command)")
            )  # fmt: skip
        return problems

    def require_run_sections(self) -> None:
        """Raise the first of :meth:`missing_run_sections`."""
        problems = self.missing_run_sections()
        if problems:
            raise problems[0]

    def num_classes(self) -> int | None:
        """``[model] num_classes``, else what the data implies when that is known without reading it."""
        if self.model is not None and self.model.num_classes is not None:
            return self.model.num_classes
        return DIGITS_CLASSES if self.data is not None and self.data.kind == "digits" else None

    def given(self, table: str, key: str) -> bool:
        """Whether the file sets ``[table] key`` itself (under its name or a former one).

        A value equal to the default may still have been chosen: code that
        overrides a setting asks this, not whether the value is the default.
        """
        raw = tomllib.loads(self.text).get(table)
        if not isinstance(raw, Mapping):
            return False
        former = [
            old for (where, old), (new, _) in _RENAMED.items() if (where, new) == (table, key)
        ]
        return any(name in raw for name in (key, *former))

    def sections(self) -> dict[str, dict | None]:
        """The non-space tables as plain dicts (``None`` where absent)."""
        return {
            name: None if getattr(self, name) is None else dataclasses.asdict(getattr(self, name))
            for name in _TABLES
        }


#: Classes of the bundled digits data (nas.data.digits.NUM_CLASSES, known without torch).
DIGITS_CLASSES = 10
#: Keys that a ``[[space]]`` entry needs, by its type.
_DIM_REQUIRED = {"int": ("low", "high"), "float": ("low", "high"), "categorical": ("choices",)}


def _parse_space(raw: Any, source: str) -> SearchSpace:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(source, "space", None, "expected one or more [[space]] entries")
    dims = []
    for i, entry in enumerate(raw):
        table = f"space.{i}"
        dim = _parse_table(DimConfig, entry, source, table)
        table = f"space.{dim.name}"
        problem = _check_choices(dim.choices)
        if problem:
            raise ConfigError(source, table, "choices", problem)
        for key in _DIM_REQUIRED[dim.type]:
            if key not in entry:
                raise ConfigError(
                    source, table, key, f"missing required key of a {dim.type} dimension"
                )
        try:
            dims.append(
                Dim(
                    name=dim.name,
                    type=dim.type,
                    # as written: an integer bound reaches the int dimension's check exactly,
                    # not rounded to a float on the way (2**53 + 1 would pass as 2**53)
                    low=entry.get("low", dim.low),
                    high=entry.get("high", dim.high),
                    log=dim.log,
                    choices=tuple(dim.choices),
                )
            )
        except (SpaceError, TypeError, ValueError) as exc:
            raise ConfigError(source, table, getattr(exc, "key", None), str(exc)) from None
    try:
        return SearchSpace(dims)
    except (SpaceError, ValueError) as exc:
        raise ConfigError(source, "space", None, str(exc)) from None


def parse_experiment(text: str, source: str = "<string>") -> Experiment:
    """Parse and validate experiment TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", None, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "-", None, "not valid TOML: nested too deeply") from None
    unknown = sorted(set(raw) - set(_TABLES) - {"space"})
    if unknown:
        valid = ", ".join(sorted([*_TABLES, "space"]))
        raise ConfigError(source, unknown[0], None, f"unknown table; valid tables are {valid}")
    if "experiment" not in raw:
        raise ConfigError(source, "experiment", None, "missing required table")
    if "space" not in raw:
        raise ConfigError(source, "space", None, "missing required [[space]] entries")
    tables = {
        name: _parse_table(cls, _renamed(raw[name], source, name), source, name)
        for name, cls in _TABLES.items()
        if name in raw
    }
    model: ModelConfig | None = tables.get("model")
    data: DataConfig | None = tables.get("data")
    if data is not None and data.kind == "imagefolder" and not (data.root or data.index):
        raise ConfigError(source, "data", "root", "kind 'imagefolder' needs root or index")
    if data is not None and data.kind == "shards" and not data.root:
        raise ConfigError(source, "data", "root", "kind 'shards' needs root (the shard folder)")
    if data is not None and data.decode == "gpu" and data.kind == "digits":
        raise ConfigError(
            source, "data", "decode", "'gpu' needs JPEG files; the digits are in memory"
        )
    space = _parse_space(raw["space"], source)
    problem = tables["experiment"].search_settings().space_problem(space)
    if problem is not None:
        raise ConfigError(source, "experiment", problem.key, problem.detail)
    return Experiment(
        source=source,
        text=text,
        experiment=tables["experiment"],
        space=space,
        model=model,
        data=data,
        train=tables.get("train", TrainConfig()),
        cluster=tables.get("cluster", ClusterConfig()),
        controller=tables.get("controller", ControllerConfig()),
    )


def _renamed(raw: Any, source: str, table: str) -> Any:
    """``raw`` with renamed keys under their new names, each with a deprecation message."""
    if not isinstance(raw, Mapping):
        return raw
    renamed = dict(raw)
    for (where, old), (new, reading) in _RENAMED.items():
        if where != table or old not in raw:
            continue
        if new in raw:
            raise ConfigError(source, table, old, f"renamed to {new}; give only {new}")
        log.warning("%s: [%s] %s is deprecated: rename it %s; %s", source, table, old, new, reading)
        renamed[new] = renamed.pop(old)
    return renamed


#: The largest experiment file read: the shipped ones are under 5 KiB, and a path given by a slip
#: (``/dev/zero``, a dataset) must not be read until memory runs out.
MAX_EXPERIMENT_BYTES = 1 << 20


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_EXPERIMENT_BYTES + 1)
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "-", None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "-", None, "not UTF-8 text") from None
    if len(data) > MAX_EXPERIMENT_BYTES:
        raise ConfigError(
            str(path),
            "-",
            None,
            f"larger than {MAX_EXPERIMENT_BYTES >> 20} MiB: not an experiment file",
        )
    return parse_experiment(text, str(path))


def section_from_dict(cls: type, raw: Mapping[str, Any], source: str, table: str) -> Any:
    """Build a dataclass declared with :func:`option` fields from a dict, validating it.

    Serves the experiment's tables stored in ``point.json`` and the schemas of
    the files a job exchanges with the controller, so every error reads alike.
    """
    return _parse_table(cls, raw, source, table)


def parse_params(text: str) -> dict[str, bool | int | float | str]:
    """Parse ``k=v,k=v`` from the command line; numbers become int or float."""
    params: dict[str, bool | int | float | str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"expected k=v, got {item!r}")
        if key in params:
            raise ValueError(f"parameter {key!r} given twice")
        params[key] = _parse_scalar(value)
    if not params:
        raise ValueError("expected at least one k=v pair")
    return params


def _parse_scalar(value: str) -> bool | int | float | str:
    """``true``/``false``, a number in plain notation (:func:`~nas.numbers.plain_number`),
    else the text itself (a categorical choice; the space refuses it where a number belongs)."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not plain_number(value):
        return value
    for convert in (int, float):
        try:
            number = convert(value)
        except ValueError:
            continue
        if not finite_number(number):
            raise ValueError(f"value {value!r} is not finite")
        return number
    return value
