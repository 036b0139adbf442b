"""No import cycle inside the `wizard` package at run time.

Every module is parsed (not imported) and every import of a wizard module is an edge:
module level and inside functions alike, since a function-level import that closes a
cycle still runs, only later. Imports under `if TYPE_CHECKING:` are skipped: they never
run. The parent packages Python initialises on the way (`wizard.cli` for
`wizard.cli.common`) are not edges: a package's __init__ importing its own submodules is
how packages work, not a cycle. A cycle is reported as the modules of each strongly
connected component, with one path through them.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import wizard

ROOT = Path(wizard.__file__).resolve().parent
PACKAGE = "wizard"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))
            if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: `if TYPE_CHECKING:` bodies left out."""
    todo: deque[ast.AST] = deque([tree])
    while todo:
        node = todo.popleft()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)  # the else branch does run
            continue
        todo.extend(ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: set[str]) -> Iterator[str]:
    """The wizard modules an import statement loads (a `from x import y` may load x.y)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base.split(".")[0] != PACKAGE:
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:
            yield sub  # `from wizard.core import plan`: the submodule itself
        elif base in known:
            yield base


def _edges(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    tree = ast.parse(source)
    return {t for node in _run_time_imports(tree)
            for t in _targets(node, module, is_package, known) if t != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _edges(path.read_text(encoding="utf-8"), name, path.name == "__init__.py",
                         known)
            for name, path in modules.items()}


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest path from the component's first module back to itself."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    todo = deque([start])
    while todo:
        v = todo.popleft()
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w not in came_from:
                came_from[w] = v
                todo.append(w)
    return component


SAMPLE = """
from typing import TYPE_CHECKING
import json
import wizard.core.units
from wizard.core import files
from . import plan
from .journal import Journal
if TYPE_CHECKING:
    from wizard.core.discovery import Discovery
else:
    from wizard.core.names import Name
def later():
    from wizard.core.execute import run
"""
KNOWN = {"wizard", "wizard.core", "wizard.core.units", "wizard.core.files", "wizard.core.plan",
         "wizard.core.journal", "wizard.core.discovery", "wizard.core.names",
         "wizard.core.execute", "wizard.core.sample"}


def test_edges_include_function_level_imports_and_skip_type_checking() -> None:
    assert _edges(SAMPLE, "wizard.core.sample", False, KNOWN) == {
        "wizard.core.units", "wizard.core.files", "wizard.core.plan", "wizard.core.journal",
        "wizard.core.names", "wizard.core.execute"}


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _components(graph) == [["a", "b", "c"]]
    assert _a_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_the_real_graph_is_read() -> None:
    graph = import_graph()
    assert "wizard.core.connection" in graph["wizard.core.backup"]  # module level
    assert "wizard.ui.app" in graph["wizard.cli.gui"]  # inside a function


def test_no_import_cycle_at_run_time() -> None:
    graph = import_graph()
    cycles = [(c, _a_cycle(graph, c)) for c in _components(graph)]
    assert not cycles, "import cycles in wizard (modules; one path through them):\n" + \
        "\n".join(f"  {', '.join(c)}\n    {' -> '.join(path)}" for c, path in cycles)
