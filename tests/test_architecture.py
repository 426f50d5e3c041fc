"""The package's shape: no import cycles (counting imports inside functions too), no file over
500 lines, and no string comparison on a task, dataset or metric name outside the task modules."""

from __future__ import annotations

import ast
from pathlib import Path

import ganforge

PKG = Path(ganforge.__file__).resolve().parent
MAX_LINES = 500


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(mod: str, is_pkg: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """module -> ganforge modules it imports (anywhere in the file). ``from X import name`` counts
    as importing X.name when that is a module, else X; parent packages are not counted."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_graph_has_no_cycles():
    assert _cycles(import_graph()) == []


def test_cycle_detector_finds_a_planted_cycle():
    g = import_graph()
    g["ganforge.registry"] = g["ganforge.registry"] | {"ganforge.config.schema"}
    assert any("ganforge.registry" in c for c in _cycles(g))


def test_config_imports_no_subsystem():
    allowed = {"ganforge.errors", "ganforge.registry"}
    for mod, deps in import_graph().items():
        if mod == "ganforge.config" or mod.startswith("ganforge.config."):
            outside = {d for d in deps if not d.startswith("ganforge.config")} - allowed
            assert not outside, f"{mod} imports {outside}"


def test_no_file_over_500_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _names() -> set[str]:
    from ganforge.data import DATASETS
    from ganforge.evaluation import METRICS
    from ganforge.tasks import TASKS
    return set(DATASETS.keys()) | set(METRICS.keys()) | set(TASKS.keys())


def _string_comparisons(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for part in [node.left, *node.comparators]:
            consts = [part] if isinstance(part, ast.Constant) else \
                list(part.elts) if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else []
            for c in consts:
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in names:
                    hits.append((node.lineno, c.value))
    return hits


def test_no_branching_on_task_dataset_or_metric_names_outside_tasks():
    names = _names()
    found = {}
    for p in PKG.rglob("*.py"):
        if "tasks" in p.relative_to(PKG).parts:
            continue
        hits = _string_comparisons(ast.parse(p.read_text()), names)
        if hits:
            found[str(p.relative_to(PKG))] = hits
    assert found == {}


def test_the_name_check_catches_a_comparison():
    tree = ast.parse("if data.name == 'fashion-mnist' or m in ('fid', 'kid'):\n    pass\n")
    assert [v for _, v in _string_comparisons(tree, _names())] == ["fashion-mnist", "fid", "kid"]
