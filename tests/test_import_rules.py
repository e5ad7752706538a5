"""The package's layering, read from the source (no imports run):

- ``core`` is NumPy/SciPy only: it imports neither the models, the widgets, the
  napari adapters, napari, Qt nor magicgui (not even inside a function);
- ``models`` never import the widgets or the napari adapters;
- module-level imports between the package's modules form no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "napari_atombench"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")
FORBIDDEN = {
    f"{PACKAGE}.core": (f"{PACKAGE}.models", f"{PACKAGE}.widgets", f"{PACKAGE}._napari", f"{PACKAGE}.cli",
                        f"{PACKAGE}.bench_cli", *GUI),
    f"{PACKAGE}.models": (f"{PACKAGE}.widgets", f"{PACKAGE}._napari", *GUI),
    f"{PACKAGE}._types": (f"{PACKAGE}.",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str, tree: ast.AST, module_level: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``tree``; with ``module_level`` only
    those that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name if _is_package(name) else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        base = base.rpartition(".")[0]
                    target = f"{base}.{child.module}" if child.module else base
                else:
                    target = child.module or ""
                found.append((target, child.lineno))
                # ``from pkg import sub`` imports the submodule pkg.sub
                found.extend((f"{target}.{alias.name}", child.lineno) for alias in child.names
                             if f"{target}.{alias.name}" in MODULES)
            visit(child)

    visit(tree)
    return found


TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def test_the_package_is_found():
    assert f"{PACKAGE}.core.metrics" in MODULES and f"{PACKAGE}.models.registry" in MODULES


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_nothing_above_them(layer):
    bad = []
    for name, tree in TREES.items():
        if name != layer and not name.startswith(layer + "."):
            continue
        for target, line in _imports(name, tree, module_level=False):
            if any(target == f or target.startswith(f if f.endswith(".") else f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, tree in TREES.items():
        edges = set()
        for target, _ in _imports(name, tree, module_level=True):
            # the deepest package module the import names (``a.b.func`` -> ``a.b``)
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
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

    for v in graph:
        if v not in index:
            strongconnect(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_package_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
