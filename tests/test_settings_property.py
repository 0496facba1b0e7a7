"""Whatever ``init --validate-only`` accepts, ``init`` accepts and ``run --once --dry-run`` plans.

Experiments are generated from the declaration of the search settings
(:data:`nas.search.settings.SETTINGS`: each key ``[experiment]`` exposes, with
values inside and just outside its bounds and choices) over a small search of
the bundled digits, with one to three numeric dimensions and sometimes a
categorical one of one or two choices. For every file the two ``init`` runs
agree; a refusal is one line without a traceback and leaves no state; an
accepted file makes a state whose first dry run plans without an exception.

``SPLINENAS_PROPERTY_EXAMPLES`` sets the number of files (default 20).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiment_support import toml_value
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nas.commands.main import main
from nas.config import ExperimentConfig
from nas.search.settings import SETTINGS

#: The search settings an experiment file can hold.
EXPOSED = [f.name for f in dataclasses.fields(ExperimentConfig) if f.name in SETTINGS]
#: Searchable coordinates of the resnet family, and the fixed rest (as the demo).
NUMERIC = {"g1": (4, 32), "g2": (8, 64), "d1": (1, 3)}
FIXED = {"block": "basic", "stem": "conv7", "maxpool": False, "c1": 16, "g3": 32, "g4": 32,
         "d2": 1, "d3": 1, "d4": 1}  # fmt: skip
TABLES = """\
[model]
family = "resnet"
fixed = {fixed}
[data]
kind = "digits"
resolution = 16
workers = 0
[train]
epochs = 1
[cluster]
backend = "local"
ranks_per_node = 1
cores_per_node = 1
walltime_minutes = 10
signal_seconds = 30
"""


def values_of(meta: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values of one declared setting: legal ones and ones just past each bound or choice."""
    kinds = meta["kind"] if isinstance(meta["kind"], tuple) else (meta["kind"],)
    if meta["choices"] is not None:
        return st.sampled_from([*meta["choices"], "bogus"])
    low = meta["minimum"] if meta["minimum"] is not None else 0
    high = next((b for b in (meta["maximum"], meta.get("below")) if b is not None), low + 8)
    if float in kinds:
        numbers = st.floats(low - 0.5, high + 0.5, allow_nan=False, allow_infinity=False)
        numbers |= st.sampled_from([low, high])
    else:
        numbers = st.integers(int(low) - 1, int(high) + 1)
    return numbers | st.sampled_from(["auto", "loud"]) if str in kinds else numbers


@st.composite
def experiments(draw: st.DrawFn) -> str:
    """One experiment file's text."""
    keys = draw(st.lists(st.sampled_from(EXPOSED), unique=True, max_size=5))
    chosen = {key: draw(values_of(SETTINGS[key].metadata)) for key in keys}
    names = draw(st.lists(st.sampled_from(sorted(NUMERIC)), min_size=1, unique=True))
    space = {n: {"type": "int", "low": NUMERIC[n][0], "high": NUMERIC[n][1]} for n in names}
    fixed = {k: v for k, v in FIXED.items() if k not in names}
    choices = draw(st.sampled_from([0, 1, 2]))
    if choices:
        space["block"] = {"type": "categorical", "choices": ["basic", "bottleneck"][:choices]}
        del fixed["block"]
    fixed.update({n: NUMERIC[n][0] for n in NUMERIC if n not in names})
    lines = ["[experiment]", 'name = "prop"', "max_points = 30"]
    lines += [f"{key} = {toml_value(value)}" for key, value in chosen.items()]
    lines.append(TABLES.format(fixed="{ " + ", ".join(
        f"{k} = {toml_value(v)}" for k, v in fixed.items()) + " }"))  # fmt: skip
    for name, keys in space.items():
        lines += ["[[space]]", f"name = {toml_value(name)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def cli(*argv: str) -> tuple[int, str]:
    """``splinenas ARGV`` in this process: exit code and stderr (an exception fails the test)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


@settings(
    max_examples=int(os.environ.get("SPLINENAS_PROPERTY_EXAMPLES", "20")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=experiments())
def test_what_validation_accepts_init_and_the_first_dry_run_accept(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, state = Path(folder, "prop.toml"), Path(folder, "state", "prop.h5")
        path.write_text(text)
        valid, said = cli("init", str(path), "--validate-only", "--state", str(state))
        code, err = cli("init", str(path), "--state", str(state))
        assert "Traceback" not in said + err
        assert (code == 0) == (valid == 0), f"validate-only said {said!r}, init said {err!r}"
        event("refused" if valid else "accepted")
        if valid != 0:
            assert len(said.splitlines()) == 1 and said.startswith("splinenas init: error: ")
            assert err == said and not state.exists()
            return
        assert state.exists(), err
        code, err = cli("run", "--state", str(state), "--once", "--dry-run")
        assert code == 0 and "Traceback" not in err, err
