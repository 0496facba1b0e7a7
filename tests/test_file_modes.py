"""Files the package writes take their permissions from the umask, as ``open`` gives them.

The atomic writer's temporary file is created 0600 and kept that mode, so in a
campaign folder shared by a team (umask 002 or 027) no teammate could read a
``point.json``, a checkpoint or an operator request, whatever the umask said.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.pointdir.jsonio import atomic_write_bytes, atomic_write_json, process_umask


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664),
                                                (0o077, 0o600)])  # fmt: skip
def test_an_atomic_file_has_the_mode_the_umask_gives(tmp_path, umask, mask, expected) -> None:
    os.umask(mask)
    assert process_umask() == mask
    atomic_write_json(tmp_path / "point.json", {"point_id": 1})
    assert mode_of(tmp_path / "point.json") == expected


def test_a_script_is_executable_within_the_umask(tmp_path, umask) -> None:
    os.umask(0o027)
    atomic_write_bytes(tmp_path / "job.sh", b"#!/bin/bash\n", mode=0o755)
    assert mode_of(tmp_path / "job.sh") == 0o750
