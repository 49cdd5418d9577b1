"""The shape of the code that docs/ARCHITECTURE.md promises, checked on the source itself (no model is loaded).

Each rule has one owner: the run folder's file names are spelled in core/run.py, the task names in core/tasks/,
models and adapters are loaded in core/ only, and no two modules import each other, directly or around a loop.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core import tasks
from core.paths import REPO_ROOT

PACKAGES = ("core", "gui", "bench")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO_ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the project that ``path`` imports, at the top or inside a function (TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(body) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    add(a.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name if is_pkg else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in node.names:
                    full = f"{base}.{a.name}"
                    add(full if full in known else base)
            else:  # a function's body counts too: an import deferred to call time still closes a circle
                visit(list(ast.iter_child_nodes(node)))

    visit(tree.body)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
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
            strong(v)
    return out


def test_no_two_modules_import_each_other_even_around_a_loop():
    mods = _modules()
    known = set(mods)
    graph = {m: _imports(p, m, known) for m, p in mods.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_loop_of_three():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _code_of(path: Path) -> str:
    """The file without its docstrings and comments: what runs, not what explains."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body[0] = ast.Pass()
    return ast.unparse(tree)


def _sources(*packages: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {str(p.relative_to(REPO_ROOT)): _code_of(p) for pkg in packages for p in sorted((REPO_ROOT / pkg).rglob("*.py"))
            if not str(p.relative_to(REPO_ROOT)).startswith(skip)}


def test_the_gui_loads_no_model_and_no_adapter_itself():
    found = {f: m for f, code in _sources("gui").items() if (m := re.findall(r"from_pretrained|PeftModel", code))}
    assert found == {}


@pytest.mark.parametrize("filename", ["run.json", "config.yaml", "metrics.jsonl", "eval_report.json", "analysis.json"])
def test_a_run_folder_file_name_is_spelled_in_core_run_only(filename):
    pattern = re.compile(rf"['\"]{re.escape(filename)}['\"]")
    found = [f for f, code in _sources("core", "gui", "bench", "scripts").items()
             if f != "core/run.py" and pattern.search(code)]
    assert found == []


def _name_tests(code: str, names: set[str]) -> list[str]:
    """Comparisons (==, !=, in) of anything with a literal task name, or with a tuple/list/set holding one."""
    hits = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            hits += [i.value for i in items if isinstance(i, ast.Constant) and i.value in names]
    return hits


def test_a_task_name_is_tested_in_the_task_registry_only():
    """Comparing a template with a literal name outside core/tasks is a task decision made in the wrong place."""
    names = set(tasks.TASK_NAMES)
    found = {f: hits for f, code in _sources("core", "gui", "bench", skip=("core/tasks/",)).items()
             if (hits := _name_tests(code, names))}
    assert found == {}


def test_the_name_finder_sees_a_task_test_written_outside_the_registry():
    names = {"mcq_generation", "price_qa"}
    assert _name_tests("if template == 'mcq_generation': pass", names) == ["mcq_generation"]
    assert _name_tests("ok = t in ('price_qa', 'other')", names) == ["price_qa"]
    assert _name_tests("x = get('mcq_generation').takes_answer", names) == []
