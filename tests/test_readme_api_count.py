"""The README's Python API example says what it does: its design size, its best point and
how many measurements it takes, as the search makes them now."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from test_readme import README, section


def test_the_api_example_states_its_own_numbers(tmp_path: Path) -> None:
    body = section(README.read_text(encoding="utf-8"), "Python API")
    block = re.findall(r"^```python\n(.*?)^```", body, re.S | re.M)[0]
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    optimizer = runpy.run_path(str(script))["opt"]
    design = re.search(r"the d\+2 = (\d+) design points", block)
    stated = re.search(r"# \((\{.*\}), ([0-9.]+)\.\.\.\): (\d+) measurements", block)
    assert design and stated, "the example no longer states its design size and its result"
    assert len(optimizer.initial_design()) == int(design.group(1)) == optimizer.space.d + 2
    assert optimizer.n_measured == int(stated.group(3)) and optimizer.converged
    params, value = optimizer.best
    assert str(value).startswith(stated.group(2))
    shown = stated.group(1).replace("...", "")
    for name, text in re.findall(r"'(\w+)': ([0-9.]+)", shown):
        assert str(params[name]).startswith(text), (name, params[name], text)
