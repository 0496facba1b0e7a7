"""Experiment files: every error names the file, the table and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nas.config import ConfigError, load_experiment, parse_experiment, parse_params

SOURCE = "exp.toml"
VALID = """
[experiment]
name = "toy"
goal = "maximize"
tolerance = 0.5
[[space]]
name = "width"
type = "int"
low = 8
high = 64
[[space]]
name = "block"
type = "categorical"
choices = ["basic", "bottleneck"]
[train]
epochs = 3
"""


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_experiment(text, SOURCE)
    return info.value


def test_a_valid_file_parses_with_defaults() -> None:
    exp = parse_experiment(VALID, SOURCE)
    assert (exp.experiment.name, exp.experiment.tolerance, exp.train.epochs) == ("toy", 0.5, 3)
    assert exp.space.names == ("width", "block")
    assert exp.text == VALID
    assert exp.model is None and exp.cluster.backend == "local"
    with pytest.raises(ConfigError, match=r"exp.toml: \[model\]: missing table; `run` needs it"):
        exp.require_run_sections()


# One case per error class: (edit of the valid file, table, key, what was expected).
CASES = {
    "unknown table": (
        VALID + "[trian]\nepochs = 3\n",
        "trian",
        None,
        "unknown table; valid tables are",
    ),
    "unknown key": (
        VALID.replace("goal =", "gaol ="),
        "experiment",
        "gaol",
        "unknown key; valid keys are .*goal",
    ),
    "wrong type": (
        VALID.replace("epochs = 3", 'epochs = "3"'),
        "train",
        "epochs",
        "expected an integer, got str '3'",
    ),
    "bool is not a number": (
        VALID.replace("tolerance = 0.5", "tolerance = true"),
        "experiment",
        "tolerance",
        "expected a number, got bool True",
    ),
    "bad choice": (
        VALID.replace('goal = "maximize"', 'goal = "max"'),
        "experiment",
        "goal",
        "expected one of 'maximize', 'minimize', got 'max'",
    ),
    "out of range": (
        VALID.replace("epochs = 3", "epochs = 0"),
        "train",
        "epochs",
        "expected at least 1, got 0",
    ),
    "missing key": (
        VALID.replace('name = "toy"', ""),
        "experiment",
        "name",
        "missing required key",
    ),
    "missing dim key": (
        VALID.replace("high = 64\n", ""),
        "space.width",
        "high",
        "missing required key of a int dimension",
    ),
    "bad dim": (
        VALID.replace("high = 64", "high = 8"),
        "space.width",
        None,
        "dimension 'width': low = 8 must be < high = 8",
    ),
    "empty choices": (
        VALID.replace('["basic", "bottleneck"]', "[]"),
        "space.block",
        "choices",
        r"categorical dimension 'block' needs at least 2 choices, got \[\]",
    ),
    "choice with a line break": (
        VALID.replace('"bottleneck"', r'"bottle\nneck"'),
        "space.block",
        "choices",
        r"choice 1: expected one line without control characters, got 'bottle\\nneck'",
    ),
    "bad dim type": (
        VALID.replace('type = "int"', 'type = "integer"'),
        "space.0",
        "type",
        "expected one of 'int', 'float', 'categorical'",
    ),
    "dot-dot name": (
        VALID.replace('name = "toy"', 'name = ".."'),
        "experiment",
        "name",
        "must start with a letter or digit, got '..'",
    ),
    "long name": (
        VALID.replace('name = "toy"', f'name = "{"n" * 300}"'),
        "experiment",
        "name",
        "at most 64 characters, got 300",
    ),
    "duplicate dims": (
        VALID.replace('name = "block"', 'name = "width"'),
        "space",
        None,
        r"duplicate dimension names: \['width'\]",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_names_file_table_and_key(case: str) -> None:
    text, table, key, expected = CASES[case]
    error = error_for(text)
    assert (error.source, error.table, error.key) == (SOURCE, table, key)
    where = re.escape(f"{SOURCE}: [{table}]" + (f" {key}" if key else "") + ": ")
    assert re.match(where + expected, str(error)), str(error)


def test_required_tables() -> None:
    assert error_for(VALID.split("[[space]]")[0]).table == "space"
    without_experiment = "[[space]]" + VALID.split("[[space]]", 1)[1]
    assert str(error_for(without_experiment)) == f"{SOURCE}: [experiment]: missing required table"


def test_not_toml_and_unreadable_files(tmp_path: Path) -> None:
    assert "not valid TOML" in str(error_for("[experiment\n"))
    with pytest.raises(ConfigError, match=r"missing.toml: \[-\]: cannot read"):
        load_experiment(tmp_path / "missing.toml")
    path = tmp_path / "exp.toml"
    path.write_text(VALID)
    assert load_experiment(path).source == str(path)


def test_parse_params() -> None:
    assert parse_params("width=16, mult=0.5,block=basic,amp=true") == {
        "width": 16,
        "mult": 0.5,
        "block": "basic",
        "amp": True,
    }
    for text, message in [("a", "expected k=v"), ("a=1,a=2", "given twice"), ("", "at least one")]:
        with pytest.raises(ValueError, match=message):
            parse_params(text)
    with pytest.raises(ValueError, match="not finite"):
        parse_params("a=nan")


def test_a_directive_value_no_quoting_can_carry_is_refused() -> None:
    error = error_for(VALID + '[cluster]\nconstraint = "a100&$(touch pwned)"\n')
    assert str(error) == (
        "exp.toml: [cluster] constraint: cannot go into a job-script directive: contains '$'"
    )


def test_gpu_memory_is_in_gib_and_the_old_key_is_read_as_gib_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    new = parse_experiment(VALID + "[cluster]\nmax_gpu_memory_gib = 16\n", SOURCE).cluster
    assert (new.max_gpu_memory_gib, new.memory_margin) == (16.0, 0.9)
    with caplog.at_level("WARNING"):
        old = parse_experiment(VALID + "[cluster]\nmax_gpu_memory_gb = 16\n", SOURCE).cluster
    assert old.max_gpu_memory_gib == 16.0
    assert f"{SOURCE}: [cluster] max_gpu_memory_gb is deprecated" in caplog.text
    assert "read as GiB" in caplog.text
    both = "[cluster]\nmax_gpu_memory_gb = 16\nmax_gpu_memory_gib = 16\n"
    assert "renamed to max_gpu_memory_gib" in str(error_for(VALID + both))
    assert "memory_margin: expected at most 1.0" in str(
        error_for(VALID + "[cluster]\nmemory_margin = 1.5\n")
    )


def test_hostile_toml_is_one_config_error() -> None:
    deep = "[experiment]\nname = 'x'\na = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError, match=r"exp.toml: \[-\]: not valid TOML: nested too deeply"):
        parse_experiment(deep, SOURCE)
    wide = (
        "[experiment]\nname = 'x'\n[[space]]\nname = 'w'\ntype = 'float'\n"
        "low = -1.7e308\nhigh = 1.7e308\n"
    )
    with pytest.raises(ConfigError, match=r"\[space\.w\].*too wide to compute with"):
        parse_experiment(wide, SOURCE)
