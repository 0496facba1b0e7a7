"""``init`` warns when many ranks per job would each scan an image tree without an index.

Without ``[data] index`` every rank lists every class folder of ``root`` at each
segment's start: on a parallel file system that is ranks x classes directory
listings per job, which one ``splinenas data index`` run turns into one file read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_support import experiment_text
from experiment_support import run

CLUSTER = {
    "backend": "slurm",
    "account": "proj",
    "env_file": "/gpfs/site/env.sh",
    "python": "/gpfs/venv/bin/python",
    "cores_per_node": 8,
}
DATA = {"kind": "imagefolder", "root": "/gpfs/data/imagenet 22k", "resolution": 16, "workers": 0}


def init_warnings(tmp_path: Path, capsys, cluster: dict, data: dict) -> list[str]:
    text = experiment_text(cluster={**CLUSTER, **cluster}, data=data, model={"num_classes": 10})
    (tmp_path / "cl.toml").write_text(text)
    code, _, err = run(capsys, "init", str(tmp_path / "cl.toml"), "--offline",
                       "--state", str(tmp_path / "cl.h5"))  # fmt: skip
    assert code == 0, err
    return [line for line in err.splitlines() if "[data] index is not set" in line]


def test_eight_ranks_scanning_the_tree_are_warned_of(tmp_path, capsys) -> None:
    (line,) = init_warnings(tmp_path, capsys, {"nodes": 2, "ranks_per_node": 4}, DATA)
    assert "each of the 8 ranks of every job lists every class folder" in line
    assert "splinenas data index '/gpfs/data/imagenet 22k' --out FILE" in line


@pytest.mark.parametrize(
    ("cluster", "data"),
    [
        ({"nodes": 1, "ranks_per_node": 4}, DATA),  # a few ranks: the scan is cheap enough
        ({"nodes": 2, "ranks_per_node": 4}, {**DATA, "index": "/gpfs/data/imagenet.h5"}),
    ],
)
def test_few_ranks_or_an_index_are_not_warned_of(tmp_path, capsys, cluster, data) -> None:
    assert init_warnings(tmp_path, capsys, cluster, data) == []
