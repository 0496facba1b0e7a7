"""A job's log lands where the job script says, whatever the state path holds.

sbatch replaces ``%j``, ``%x``, ... in ``--output``/``--error`` (``%%`` is a
literal ``%``); bsub replaces ``%J`` and ``%I`` with no escape; Flux reads
``{{...}}`` as a template; PBS takes the path as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, write_fake_trainer
from scheduler_contract import finished, unique_name, wait_for
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.cluster import backend_class
from nas.cluster.render import ScriptError
from nas.config import ConfigError
from nas.control import policy
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.record.store import StateStore

FAKES = Path(__file__).parent / "fakes"


def test_sbatch_reads_every_percent_of_a_literal_path_as_itself() -> None:
    slurm = backend_class("slurm")
    assert slurm.literal_filename("/s/100%j %x/p.log") == "/s/100%%j %%x/p.log"
    assert slurm.literal_filename("/s/a\\b%j.log") == "/s/a\\b%j.log", "a backslash: taken as is"
    assert backend_class("pbs").literal_filename("/s/100%/p.log") == "/s/100%/p.log"


def prepared(folder: Path, backend: str) -> tuple[Path, Path]:
    """A state in ``folder`` whose point 0 is prepared for ``backend``: (its folder, its log)."""
    trainer = write_fake_trainer(folder.parent / "fake", {"sleep": 0.0})
    name = unique_name("pct")
    text = experiment_text(experiment={"name": name}, cluster={"backend": backend,
                           "python": str(trainer), "walltime_minutes": 10, "signal_seconds": 60})  # fmt: skip
    state_path = init_state(folder, text)
    run = layout.run_dir(state_path)
    with StateStore.open(state_path) as store:
        store.state.update_point(0, attempts=1, job_name=f"{name}-p0-r0a1s0")
        point = store.state.point(0)
        experiment = policy.experiment_of(store.state, str(state_path))
        JobSettings.from_experiment(experiment, folder, state_path).prepare(run, point)
    return layout.point_dir(run, 0), layout.log_path(run, 0, point.job_name)


def submit_and_wait(folder: Path, backend: str) -> Path:
    point_dir, log = prepared(folder, backend)
    scheduler = backend_class(backend)(timeout=60)
    job_id = scheduler.submit(point_dir / layout.JOB_SCRIPT, job_name=log.stem, cwd=point_dir)
    assert wait_for(scheduler, job_id, finished, 120).is_finished()
    return log


@pytest.mark.slurm
def test_slurm_writes_the_log_where_the_script_says(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    log = submit_and_wait(tmp_path / "runs 100%j %x %%", "slurm")
    assert log.is_file(), sorted(p.name for p in log.parent.iterdir())
    assert (log.parent.parent / layout.RESULT_FILE).exists()


def test_pbs_writes_the_log_where_the_script_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PBS_DIR", str(tmp_path / "pbs"))
    log = submit_and_wait(tmp_path / "runs 100%j %x", "pbs")
    assert log.is_file()


def test_lsf_and_flux_refuse_a_path_they_would_rewrite(tmp_path: Path) -> None:
    """Refused before any job is written, in one line naming the table."""
    with pytest.raises((ScriptError, ConfigError), match=r"\[cluster\].*LSF would replace %J"):
        prepared(tmp_path / "runs%J", "lsf")
    with pytest.raises((ScriptError, ConfigError), match=r"\[cluster\].*Flux would read"):
        prepared(tmp_path / "runs{{id}}", "flux")


@pytest.mark.parametrize("pattern", ["%U", "%G", "%P", "%H", "%EJ", "%EI"])
def test_lsf_refuses_a_working_folder_bsub_would_rewrite(tmp_path: Path, pattern: str) -> None:
    """bsub -cwd replaces these too (and creates the folder they name): the job would run
    in another folder than the one its files are in."""
    with pytest.raises((ScriptError, ConfigError), match=f"LSF would replace {pattern} in the "):
        prepared(tmp_path / f"runs{pattern}", "lsf")


def test_lsf_keeps_a_percent_that_is_no_pattern(tmp_path: Path) -> None:
    point_dir, _ = prepared(tmp_path / "runs 100% %x", "lsf")
    script = (point_dir / layout.JOB_SCRIPT).read_text()
    assert f'#BSUB -cwd "{point_dir}"\n' in script
