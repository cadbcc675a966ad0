"""The package's layers (ARCHITECTURE.md, "Layers"): no import cycle, no import from a lower layer to a higher one,
and no function-level import of a package module (a cycle hidden inside a function is still a cycle).

Every module under ``src/transferlimits`` is parsed with :mod:`ast`; every ``import`` statement counts, at module
level, inside functions and under ``if TYPE_CHECKING:``. The layer table is read from ARCHITECTURE.md, so the
document and the test cannot drift apart. Importing a submodule also runs its parent packages' ``__init__``;
those implicit imports are not edges (a package that re-exports its submodules would otherwise form a cycle with
each of them): only the statements written in a file are.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "transferlimits"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
#: a row of the layer table: ``| 3 | tasks | `tasks`, `data.views` |`` (rank, name, module prefixes)
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([\w ]+?)\s*\|\s*(`[^|]+`)\s*\|")

#: Files outside this change's scope that still import a package module inside a function (issue 22 follow-ups:
#: move each import to the module top). Do not add to this list: a new entry fails the test below.
FUNCTION_LEVEL_KNOWN: set[str] = set()  # none left: every package import is at a module's top


def layer_table(text: str) -> dict[str, int]:
    """``{module prefix relative to the package ("" = the package itself): rank}`` from the "Layers" table."""
    table: dict[str, int] = {}
    for line in text.split("## Layers", 1)[1].splitlines():
        row = ROW.match(line)
        if row:
            for prefix in re.findall(r"`([^`]+)`", row.group(3)):
                table["" if prefix == PACKAGE else prefix] = int(row.group(1))
    return table


def modules() -> dict[str, Path]:
    """``{dotted name relative to the package: file}`` of every module and package ``__init__``."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC / PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(dotted: str, mods: dict[str, Path]) -> str | None:
    """The module ``dotted`` (relative to the package) names, or its longest existing parent (an attribute)."""
    while dotted not in mods and "." in dotted:
        dotted = dotted.rsplit(".", 1)[0]
    return dotted if dotted in mods else None


def _function_level(tree: ast.Module) -> set[int]:
    """Line numbers of the import statements inside a function (at any depth)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` of every import of a package module in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    inner = _function_level(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, one level up per extra dot
                up = package.split(".")[: max(0, len(package.split(".")) - node.level + 1)] if package else []
                base = ".".join([PACKAGE, *filter(None, up), *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            module = _resolve(target[len(PACKAGE) + 1:], mods) if target != PACKAGE else ""
            if module is not None and module != name:
                found.append((module, node.lineno, node.lineno in inner))
    return found


def rank(name: str, table: dict[str, int]) -> int | None:
    """The layer of module ``name``: the row of its longest matching prefix."""
    best = None
    for prefix, r in table.items():
        if prefix == name or (prefix and name.startswith(prefix + ".")) or (not prefix and not name):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, r)
    return None if best is None else best[1]


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    return mods, {name: imports(name, path, mods) for name, path in mods.items()}


def _where(name: str, mods: dict[str, Path], line: int | None = None) -> str:
    rel = mods[name].relative_to(ROOT)
    return f"{rel}:{line}" if line is not None else str(rel)


def test_the_layer_table_covers_every_module(graph):
    mods, _ = graph
    table = layer_table(ARCHITECTURE.read_text())
    assert table, "ARCHITECTURE.md has no '## Layers' table"
    assert [_where(n, mods) for n in mods if rank(n, table) is None] == []
    assert [p for p in table if p and _resolve(p, mods) != p] == [], "table rows naming no module"


def test_no_upward_import(graph):
    mods, edges = graph
    table = layer_table(ARCHITECTURE.read_text())
    bad = [f"{_where(name, mods, line)}: {name or PACKAGE} (layer {rank(name, table)}) imports {target} "
           f"(layer {rank(target, table)})"
           for name, found in edges.items() for target, line, _ in found if rank(target, table) > rank(name, table)]
    assert bad == []


def test_no_import_cycle(graph):
    mods, edges = graph
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[tuple[str, int]] = []
    cycles: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        for target, line, _ in edges[name]:
            stack.append((name, line))
            if state.get(target) == 1:
                start = next(i for i, (n, _) in enumerate(stack) if n == target)
                cycles.append(" -> ".join(f"{_where(n, mods, ln)}" for n, ln in stack[start:]) + f" -> {target}")
            elif target not in state:
                visit(target)
            stack.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)
    assert cycles == []


def test_no_function_level_import_of_a_package_module(graph):
    mods, edges = graph
    bad = sorted({_where(name, mods, line) for name, found in edges.items() for _, line, inner in found if inner
                  and str(mods[name].relative_to(SRC / PACKAGE)) not in FUNCTION_LEVEL_KNOWN})
    assert bad == [], "import package modules at the module top (a function-level import hides a cycle)"


def test_the_checks_see_what_they_must():
    """The parser finds module-level, function-level, relative and TYPE_CHECKING imports; the ranks nest."""
    mods = {"a": Path("a.py"), "b": Path("b.py"), "b.c": Path("b/c.py")}
    src = ("from typing import TYPE_CHECKING\nimport transferlimits.a\nif TYPE_CHECKING:\n    from .b import c\n"
           "def f():\n    from transferlimits.b.c import thing\n")
    tree_path = Path(__file__).parent / "_layers_probe.py"
    try:
        tree_path.write_text(src)
        found = imports("x", tree_path, mods)
    finally:
        tree_path.unlink()
    assert found == [("a", 2, False), ("b.c", 4, False), ("b.c", 6, True)]
    table = {"": 0, "b": 1, "b.c": 3}
    assert (rank("", table), rank("b", table), rank("b.c", table), rank("b.cd", table)) == (0, 1, 3, 1)
    assert layer_table("## Layers\n| 2 | x | `transferlimits`, `data.views` |\n") == {"": 2, "data.views": 2}
