"""``[train] command`` with two ranks under every launcher: LSF/jsrun, PBS/PALS and Flux
doubles (tests/fakes), the real Slurm cluster, and torchrun on the local backend.

The command is a shell probe: each rank writes the contract's variables it
sees, rank 0 also the result. Both ranks must agree on the rendezvous
(address, port, world size) and the deadline; the heavier runs of the
examples through the same launchers are marked ``slow``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.commands.main import main

FAKES = Path(__file__).resolve().parent / "fakes"
REPO = Path(__file__).resolve().parent.parent
#: The variables a rank's command must find set.
CONTRACT = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "SPLINENAS_POINT_DIR", "SPLINENAS_DEADLINE", "SPLINENAS_CONTRACT")  # fmt: skip
PROBE = textwrap.dedent(
    """\
    #!/bin/sh
    # A rank of the contract probe: write what this rank sees; rank 0 writes the result.
    set -eu
    out=$SPLINENAS_POINT_DIR/rank-$RANK.env
    for name in {names}; do eval "printf '%s=%s\\n' $name \\"\\${{$name:-}}\\""; done >"$out.tmp"
    mv "$out.tmp" "$out"
    if [ "$RANK" = 0 ]; then
        awk -v lr="$1" 'BEGIN {{ printf "{{\\"metrics\\": {{\\"score\\": %.12g}}}}\\n", -(log(lr) / log(10) + 2) ^ 2 }}' \\
            >"$SPLINENAS_POINT_DIR/result.tmp"
        mv "$SPLINENAS_POINT_DIR/result.tmp" "$SPLINENAS_POINT_DIR/result.json"
    fi
    """
).format(names=" ".join(CONTRACT))


def two_rank_experiment(backend: str, probe: Path, **cluster: object) -> str:
    settings = {"backend": backend, "nodes": 1, "ranks_per_node": 2, "cores_per_node": 2,
                "python": sys.executable, "walltime_minutes": 10, "signal_seconds": 60,
                "max_concurrent_jobs": 2, **cluster}  # fmt: skip
    return command_experiment(f"probe-{backend}", [str(probe), "{lr}"], {"lr": LOG_LR},
                              cluster=settings, metric="score", max_points=2,
                              design="space-filling", design_points=2)  # fmt: skip


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def probe_search(tmp_path: Path, capsys: pytest.CaptureFixture, backend: str, **cluster: object):
    """init + run a 2-point search of the probe; the status document and the run folder."""
    probe = tmp_path / "probe.sh"
    probe.write_text(PROBE)
    probe.chmod(0o755)
    (tmp_path / "probe.toml").write_text(two_rank_experiment(backend, probe, **cluster))
    assert main(["init", "probe.toml"]) == 0, capsys.readouterr().err
    state = tmp_path / "state" / f"probe-{backend}.h5"
    main(["run", "--state", str(state), "--poll", "0.2"])
    capsys.readouterr()
    assert main(["status", "--state", str(state), "--json"]) == 0
    return json.loads(capsys.readouterr().out), tmp_path / "state" / f"probe-{backend}"


def assert_ranks_agree(document: dict, run: Path) -> None:
    """Every point measured with the probe's value; its two ranks saw one rendezvous."""
    assert [p["status"] for p in document["points"]] == ["done", "done"], document["points"]
    for point in document["points"]:
        lr = point["params"]["lr"]
        assert point["value"] == pytest.approx(-((math.log10(lr) + 2) ** 2), abs=1e-9)
        folder = run / "points" / str(point["id"])
        ranks = [read_env(folder / f"rank-{r}.env") for r in (0, 1)]
        assert [env["RANK"] for env in ranks] == ["0", "1"]
        assert sorted(env["LOCAL_RANK"] for env in ranks) == ["0", "1"]
        for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                     "SPLINENAS_DEADLINE", "SPLINENAS_POINT_DIR", "SPLINENAS_CONTRACT"):  # fmt: skip
            assert ranks[0][name] == ranks[1][name] != "", (name, ranks)
        assert ranks[0]["WORLD_SIZE"] == ranks[0]["LOCAL_WORLD_SIZE"] == "2"
        assert 1024 <= int(ranks[0]["MASTER_PORT"]) < 65536
        assert Path(ranks[0]["SPLINENAS_POINT_DIR"]) == folder
        assert ranks[0]["SPLINENAS_CONTRACT"] == "1"


#: What a backend needs beyond the common settings.
SITE = {"pbs": {"filesystems": "home"}}


@pytest.fixture
def fakes_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    for name in ("LSF", "PBS", "FLUX"):
        monkeypatch.setenv(f"FAKE_{name}_DIR", str(tmp_path / f"fake-{name.lower()}"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("backend", ["lsf", "pbs", "flux", "local"])
def test_two_ranks_of_a_command_share_one_rendezvous(
    tmp_path: Path, capsys: pytest.CaptureFixture, fakes_on_path: None, backend: str
) -> None:
    document, run = probe_search(tmp_path, capsys, backend, **SITE.get(backend, {}))
    assert_ranks_agree(document, run)


@pytest.mark.slurm
def test_two_ranks_of_a_command_share_one_rendezvous_on_slurm(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    document, run = probe_search(tmp_path, capsys, "slurm")
    assert_ranks_agree(document, run)
