"""The modules of np_draw import each other without a cycle, counting every import: at module level, inside
functions and under TYPE_CHECKING. A cycle would mean two modules that cannot be read (or changed) one at a time."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "np_draw"


def imports(path: Path) -> set[str]:
    """The np_draw modules ``path`` imports; ``from . import name`` counts as the module ``name`` when there is one,
    else as the package itself."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("np_draw")):
            module = (node.module or "").removeprefix("np_draw").lstrip(".").split(".")[0]
            if module:
                found.add(module)
            else:
                found |= {alias.name if alias.name in modules else "__init__" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("np_draw.")}
    return found - {path.stem}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                return [*path[path.index(other):], other]
            if other not in state and (found := visit(other, [*path, other])):
                return found
        state[node] = "done"
        return None

    return next((found for node in sorted(graph) if node not in state and (found := visit(node, [node]))), None)


def test_the_package_has_no_import_cycle():
    graph = {path.stem: imports(path) for path in PACKAGE.glob("*.py")}
    assert graph["model"] and graph["training"], "the import scan found nothing: it is broken"
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_check_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
