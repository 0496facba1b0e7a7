"""README.md agrees with the code: commands, config keys, exit codes and the API example.

The configuration reference is checked cell by cell against the dataclass
fields of :mod:`nas.config`: the type column and the default column are what
:func:`type_cell` and :func:`default_cell` make of each field's metadata, so
a key added, renamed or re-defaulted in the code fails here until the README
says the same. A failure prints the expected row to paste.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import runpy
from pathlib import Path

import pytest

from nas import config
from nas.commands import common, main
from nas.pointdir import layout

README = Path(__file__).resolve().parent.parent / "README.md"

#: Dataclass of every table of the configuration reference, by table name.
TABLES: dict[str, type] = {**config._TABLES, "space": config.DimConfig}

_TYPE_WORDS = {str: "string", int: "integer", float: "number", bool: "boolean"}
_TYPE_WORDS.update({dict: "table", list: "list"})
_HEADING = re.compile(r"^#+ ")
_CONFIG_HEADING = re.compile(r"^### `\[{1,2}(\w+)\]{1,2}`")
_ROW = re.compile(r"^\| `([^`]+)` \|(.*)\|\s*$")


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text(encoding="utf-8")


def _number(value: float) -> str:
    return f"{value:g}"


def toml_literal(value: object) -> str:
    """``value`` as it would be written in an experiment file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    return repr(value)


def type_cell(field: dataclasses.Field) -> str:
    """The type column: the TOML type or the allowed values, then the range."""
    meta = field.metadata
    kinds = meta["kind"] if isinstance(meta["kind"], tuple) else (meta["kind"],)
    if meta["choices"] is not None:
        cell = " or ".join(f"`{toml_literal(c)}`" for c in meta["choices"])
    else:
        cell = "number" if float in kinds else _TYPE_WORDS[kinds[0]]
    low, high, below = meta["minimum"], meta["maximum"], meta.get("below")
    if low is not None and (high is not None or below is not None):
        end = f"{_number(high)}]" if high is not None else f"{_number(below)})"
        cell += f" in [{_number(low)}, {end}"
    elif low is not None:
        cell += f" ≥ {_number(low)}"
    elif high is not None:
        cell += f" ≤ {_number(high)}"
    elif below is not None:
        cell += f" < {_number(below)}"
    return cell


def default_cell(field: dataclasses.Field) -> str:
    """The default column: ``required``, ``unset`` or the default as TOML."""
    if field.default_factory is not dataclasses.MISSING:
        return f"`{toml_literal(field.default_factory())}`"
    if field.default is dataclasses.MISSING:
        return "required"
    if field.default is None:
        return "unset"
    return f"`{toml_literal(field.default)}`"


def config_rows(text: str) -> dict[str, dict[str, list[str]]]:
    """``{table: {key: [type, default, meaning]}}`` from the configuration reference."""
    tables: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        heading = _CONFIG_HEADING.match(line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        elif _HEADING.match(line):
            current = None
        elif current is not None and (row := _ROW.match(line)):
            cells = [cell.strip() for cell in row.group(2).split(" | ")]
            assert row.group(1) not in current, f"key {row.group(1)} listed twice"
            current[row.group(1)] = cells
    return tables


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_rows(text: str) -> dict[str, str]:
    """``{"init": row, "controller submit": row, ...}`` of the command reference table."""
    rows = {}
    for line in section(text, "Command reference").splitlines():
        row = _ROW.match(line)
        if row and row.group(1).startswith("splinenas "):
            rows[row.group(1).removeprefix("splinenas ")] = line
    return rows


def parser_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command of ``splinenas --help``; a group's actions as ``"group action"``."""
    commands = {}
    for name, parser in subcommands(main.build_parser()).items():
        actions = subcommands(parser)
        commands.update(
            {f"{name} {a}": p for a, p in actions.items()} if actions else {name: parser}
        )
    return commands


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]


# ---------------------------------------------------------------------------- commands


def test_command_reference_lists_exactly_the_commands_of_the_parser(text: str) -> None:
    commands = parser_commands()
    assert len(commands) > 10, "the parser lost its sub-commands"
    assert sorted(command_rows(text)) == sorted(commands)


def test_every_long_option_appears_in_its_command_row(text: str) -> None:
    rows = command_rows(text)
    for name, parser in parser_commands().items():
        missing = [o for o in _long_options(parser) if o not in rows.get(name, "")]
        assert not missing, f"`splinenas {name}`: options {missing} are not in its row"


# ---------------------------------------------------------------------------- configuration


def test_config_reference_lists_exactly_the_tables_of_the_code(text: str) -> None:
    assert set(config_rows(text)) == set(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_config_reference_rows_match_the_dataclass_fields(text: str, table: str) -> None:
    rows = config_rows(text).get(table, {})
    fields = {f.name: f for f in dataclasses.fields(TABLES[table])}
    assert sorted(rows) == sorted(fields), f"[{table}]: README keys differ from the code"
    for name, field in fields.items():
        expected = [type_cell(field), default_cell(field)]
        got = rows[name]
        assert len(got) == 3, f"[{table}] {name}: expected 4 columns, got {got}"
        assert got[:2] == expected, (
            f"[{table}] {name}: expected the row | `{name}` | {expected[0]} | {expected[1]} | ... |"
        )
        assert got[2], f"[{table}] {name}: the meaning column is empty"


# ---------------------------------------------------------------------------- exit codes


def test_trainer_exit_codes_match_nas_train(text: str) -> None:
    body = section(text, "The trainer")
    codes = {name: value for name, value in vars(layout).items() if name.startswith("EXIT_")}
    assert len(codes) == 6
    for name, value in codes.items():
        assert re.search(rf"^\| {value} \| `{name}` \|", body, re.M), f"{name} = {value}"


def test_cli_exit_codes_match_nas_cli(text: str) -> None:
    body = section(text, "Exit codes")
    for name in ("EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE"):
        assert re.search(rf"^\| {getattr(common, name)} \|", body, re.M), name


# ---------------------------------------------------------------------------- the API example


def test_python_api_example_runs_and_converges(text: str, tmp_path: Path) -> None:
    body = section(text, "Python API")
    blocks = re.findall(r"^```python\n(.*?)^```", body, re.S | re.M)
    assert blocks, "no python example in the Python API section"
    script = tmp_path / "example.py"
    script.write_text(blocks[0], encoding="utf-8")
    names = runpy.run_path(str(script))
    optimizer = names["opt"]
    assert optimizer.converged
    params, value = optimizer.best
    assert value == max(r.value for r in optimizer.history)
    assert optimizer.n_measured < 40  # the example's own cap: it stopped by the rule before


def test_quick_start_says_what_the_tests_need_and_how_to_activate(text: str) -> None:
    quick = text.split("## Quick start", 1)[1].split("## Contents", 1)[0]
    assert "source .venv/bin/activate" in quick
    assert "root and apt" in quick and "slurmctld" in quick and "chromium" in quick


def test_walk_through_names_the_paths_the_commands_write(text: str) -> None:
    from nas.commands.demo import DemoPaths
    from nas.config import load_experiment

    walk = text.split("## Walk-through", 1)[1].split("## Command reference", 1)[0]
    name = load_experiment(README.parent / "jobs" / "demo-digits.toml").experiment.name
    demo_state = DemoPaths.of(Path("state") / "demo", name).state.relative_to(Path.cwd())
    assert f"`{demo_state}`" in walk  # where `splinenas demo` (default --out) keeps its state
    assert f"# -> state/{name}.h5" in walk  # where `init` puts it
    used = set(re.findall(r"--state (state/\S+\.h5)", walk))
    assert used <= {str(demo_state), f"state/{name}.h5"}, used
