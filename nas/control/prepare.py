"""Turning a point of the state into a point folder a scheduler can run.

Everything written here is derived from the experiment and the point alone,
so rewriting it for every submission changes nothing a running job reads:
``point.json`` keeps the same bytes (its hash ties the checkpoint to it) and
the job script is replaced atomically.

Relative paths in the experiment (``[cluster] env_file``, ``[data] root`` and
``index``) are resolved against the working directory of ``splinenas run``
and must exist; start the controller from the same directory every time.
The local backend runs the trainer with the controller's own interpreter
unless ``[cluster] python`` is given explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.cluster.render import render_job_script, write_job_script
from nas.config import ClusterConfig, ConfigError, DataConfig, Experiment, tomllib
from nas.pointdir import layout
from nas.pointdir.point import write_point_file
from nas.record.state import Point
from nas.search.space import Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSettings:
    """The experiment's tables with every path made absolute, ready for rendering."""

    experiment: Experiment
    cluster: ClusterConfig
    data: DataConfig

    @classmethod
    def from_experiment(cls, experiment: Experiment, cwd: Path) -> JobSettings:
        """Resolve paths against ``cwd`` and choose the interpreter.

        Raises:
            ConfigError: a missing ``[model]``/``[data]`` table, or a path that does not exist.
        """
        experiment.require_run_sections()
        assert experiment.data is not None  # for type checkers: checked just above
        cluster = experiment.cluster
        changes: dict[str, str] = {}
        if cluster.env_file is not None:
            changes["env_file"] = str(
                _existing(cwd, cluster.env_file, experiment.source, "cluster", "env_file")
            )
        if cluster.backend == "local" and not _python_given(experiment.text):
            changes["python"] = sys.executable
        data = experiment.data
        paths = {
            key: str(_existing(cwd, value, experiment.source, "data", key))
            for key in ("root", "index")
            if (value := getattr(data, key)) is not None
        }
        return cls(
            experiment=experiment,
            cluster=dataclasses.replace(cluster, **changes),
            data=dataclasses.replace(data, **paths),
        )

    def prepare(self, run: Path, point: Point) -> Path:
        """Write ``point.json`` and the job script of the submission ``point.job_name``."""
        model = self.experiment.model
        assert model is not None  # checked in from_experiment
        folder = layout.point_dir(run, point.id)
        cfg = self.experiment.experiment
        write_point_file(
            folder,
            point_id=point.id,
            experiment=cfg.name,
            family=model.family,
            params=point.params,
            fixed=model.fixed,
            num_classes=model.num_classes,
            data=self.data,
            train=self.experiment.train,
            seed=training_seed(self.experiment, point.extra),
            metric=cfg.metric,
        )
        layout.log_path(run, point.id, point.job_name).parent.mkdir(parents=True, exist_ok=True)
        return write_job_script(folder / layout.JOB_SCRIPT, self.script_text(run, point))

    def script_text(self, run: Path, point: Point) -> str:
        """The job script of the submission ``point.job_name``; writes nothing."""
        return render_job_script(
            self.cluster.backend,
            cluster=self.cluster,
            point_dir=str(layout.point_dir(run, point.id)),
            job_name=point.job_name,
            stdout_path=str(layout.log_path(run, point.id, point.job_name)),
        )


def readiness(experiment: Experiment, cwd: Path) -> tuple[list[ConfigError], list[str]]:
    """What would stop ``run`` from this folder, all at once, and what a person should check.

    Returns the problems (a missing ``[model]``/``[data]`` table, a path of
    ``[cluster] env_file`` or ``[data] root``/``index`` that does not exist,
    taken from ``cwd``) and warnings (a batch backend without ``[cluster]
    account``: many sites reject such jobs). An experiment for searching by
    hand (neither table) has none.
    """
    if experiment.model is None and experiment.data is None:
        return [], []
    problems: list[ConfigError] = []
    for table in ("model", "data"):
        if getattr(experiment, table) is None:
            problems.append(
                ConfigError(experiment.source, table, None, "missing table; `run` needs it")
            )
    paths = [("cluster", "env_file", experiment.cluster.env_file)]
    if experiment.data is not None:
        paths += [("data", key, getattr(experiment.data, key)) for key in ("root", "index")]
    for table, key, value in paths:
        if value is None:
            continue
        try:
            _existing(cwd, value, experiment.source, table, key)
        except ConfigError as exc:
            problems.append(exc)
    warnings = []
    cluster = experiment.cluster
    if cluster.backend in ("slurm", "lsf") and cluster.account is None:
        option = "--account" if cluster.backend == "slurm" else "-P"
        warnings.append(
            f"{experiment.source}: [cluster] account is not set: jobs go out without "
            f"{option}, which many sites reject"
        )
    return problems, warnings


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


def feasibility(experiment: Experiment) -> Callable[[Params], bool] | None:
    """The memory predicate of ``[cluster] max_gpu_memory_gib``; None when no limit is set.

    A candidate whose parameters describe no network counts as infeasible.

    Raises:
        ConfigError: the number of classes is unknown (set ``[model] num_classes``).
    """
    limit, margin = experiment.cluster.max_gpu_memory_gib, experiment.cluster.memory_margin
    if limit is None:
        return None
    model, data = experiment.model, experiment.data
    assert model is not None and data is not None  # run needs both tables
    classes = experiment.num_classes()
    if classes is None:
        raise ConfigError(
            experiment.source, "model", "num_classes", "needed by [cluster] max_gpu_memory_gib"
        )

    @functools.lru_cache(maxsize=4096)
    def fits_memory(key: tuple[tuple[str, object], ...]) -> bool:
        from nas.models import ModelConfigError
        from nas.models.cost import estimate, fits

        try:
            cost = estimate(
                model.family,
                {**model.fixed, **dict(key)},
                classes,
                resolution=data.resolution,
                batch_per_gpu=experiment.train.batch_per_gpu,
                amp=experiment.train.amp != "off",
            )
        except ModelConfigError as exc:
            log.info("candidate %s describes no network: %s", dict(key), exc)
            return False
        return fits(cost, limit, margin)

    return lambda params: fits_memory(tuple(sorted(params.items())))
