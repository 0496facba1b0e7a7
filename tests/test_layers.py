"""The package's layers, read from the imports: who may import whom.

Each rule lists the ``nas`` modules or packages a layer may import besides
itself (``nas`` alone, for ``__version__``, is always allowed, and so is the
ground floor of :data:`GROUND`). Imports under ``if TYPE_CHECKING:`` count
too: a type is a dependency of the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nas"

#: The ground floor, which every layer may import: the user-error base class, the
#: name and line rules, the fields of a learning curve (the trainer's file and the
#: state's table) and what counts as a number in a file. It imports nothing of the
#: package itself.
GROUND = ("errors", "names", "curvefields", "numbers")

#: layer -> what it may import (besides itself and GROUND). A layer is a subpackage or
#: top-level module.
RULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(GROUND, ()),
    "search": (),
    "config": ("search.space", "search.settings"),
    "record": ("search.space",),
    "pointdir": ("config",),
    "cluster": ("config", "pointdir", "record.lock"),
    "models": (),
    "data": ("config",),
    "trial": ("pointdir",),
    "train": ("pointdir", "trial", "models", "data", "config"),
    "report": ("search", "record", "config"),
    "control": ("search", "record", "pointdir", "cluster", "config", "models"),
    "commands": (
        "search",
        "record",
        "pointdir",
        "cluster",
        "config",
        "models",
        "data",
        "train",
        "report",
        "control",
        "trial",
        "__main__",
    ),  # fmt: skip
    "__main__": ("commands",),
}


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def nas_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name below ``nas``) for every import of the package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "nas":
                names = [f"nas.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        found += [(node.lineno, n[4:]) for n in names if n.startswith("nas.")]
    return found


def allowed(layer: str, target: str) -> bool:
    if target == "__version__" or target.split(".")[0] == layer:
        return True
    if layer not in GROUND and target in GROUND:
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in RULES[layer])


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_layer_has_a_rule() -> None:
    layers = {layer_of(p) for p in MODULES}
    assert layers <= set(RULES), sorted(layers - set(RULES))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = layer_of(path)
    bad = [
        f"line {line}: nas.{target}"
        for line, target in nas_imports(path)
        if not allowed(layer, target)
    ]
    assert not bad, f"{layer} may import only {RULES[layer]}: {bad}"


def module_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from nas.x import y`` counts as nas.x)."""
    names = {}
    for path in MODULES:
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names[path] = ".".join(parts)
    known = set(names.values())
    graph = {}
    for path, name in names.items():
        targets = set()
        for _, target in nas_imports(path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def test_no_import_cycles() -> None:
    graph = module_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rules are not vacuous: a search module importing the state file is caught."""
    fake = tmp_path / "bad.py"
    fake.write_text("from nas.record.hdf5 import StateStore\nimport nas.search.space\n")
    targets = [t for _, t in nas_imports(fake)]
    assert targets == ["record.hdf5", "search.space"]
    assert not allowed("search", "record.hdf5")
    assert allowed("search", "search.space")
    assert allowed("cluster", "record.lock") and not allowed("cluster", "record.hdf5")
