"""The package's shape: no import cycle anywhere in ``pyg_tgl/`` (imports inside functions count
too: a cycle hidden in a function is still two modules that cannot be understood apart), and no
module over the size a reader takes in at once."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "pyg_tgl"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_names(tree: ast.Module) -> Dict[str, str]:
    """A package's ``_LAZY = {"Name": "pyg_tgl.module", ...}`` (attributes imported on first
    use): importing such a name depends on that module."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets) and \
                isinstance(node.value, ast.Dict):
            return {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
    return {}


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the ``pyg_tgl`` modules it imports (anywhere in its body)."""
    trees = {_module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    lazy = {name: _lazy_names(trees[name]) for name in packages}
    graph: Dict[str, Set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        base = name if name in packages else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    anchor = base.split(".")[:len(base.split(".")) - node.level + 1]
                    module = ".".join(anchor + ([module] if module else []))
                targets = []
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in trees:
                        targets.append(sub)
                    elif alias.name in lazy.get(module, {}):
                        targets.append(lazy[module][alias.name])
                    else:
                        targets.append(module)
            else:
                continue
            graph[name].update(t for t in targets if t in trees and t != name)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_walk_sees_function_level_and_lazy_imports():
    graph = import_graph()
    # pyg_tgl/run.py imports the trainer inside its functions only.
    assert "pyg_tgl.train.experiment" in graph["pyg_tgl.run"]
    # ``from pyg_tgl.data import load_dataset`` resolves through the package's lazy table.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_over_the_size_read_at_once():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    too_long = {path: n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not too_long, (f"modules over {MAX_LINES} lines (split them by concept): "
                          + ", ".join(f"{path} ({n})" for path, n in too_long.items()))
