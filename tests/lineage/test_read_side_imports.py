"""The read side's imports, read statically (function-level imports included): lineage/ and expect/ never import
the writer (mlmd/recorder.py), and the modules reading and naming MLMD records import each other without cycles."""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set

import kfp_lineage

PACKAGE = pathlib.Path(kfp_lineage.__file__).parent
WRITER = "kfp_lineage.mlmd.recorder"
# Modules that only read a store (the pytest plugin runs pipelines too, so it is not one of them).
READ_SIDE = ("kfp_lineage.lineage", "kfp_lineage.expect.spec", "kfp_lineage.expect.record",
             "kfp_lineage.expect.check", "kfp_lineage.task_paths")
# Where these rules are checked for cycles.
CHECKED = ("kfp_lineage.lineage", "kfp_lineage.expect", "kfp_lineage.mlmd", "kfp_lineage.task_paths")


def module_files() -> Dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("kfp_lineage",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: pathlib.Path, modules: Dict[str, pathlib.Path]) -> Set[str]:
    """The kfp_lineage modules `name` imports anywhere in its body (`from package import module` counts as the
    module)."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> Dict[str, Set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def in_scope(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module, or a module importing itself through others."""
    return [sorted(group) for group in {frozenset(m for m in reachable(graph, n) if n in reachable(graph, m)) | {n}
                                        for n in graph if n in reachable(graph, n)}]


def test_the_read_side_never_imports_the_writer():
    graph = import_graph()
    readers = [name for name in graph if in_scope(name, READ_SIDE)]
    assert "kfp_lineage.lineage.reader" in readers and "kfp_lineage.expect.record" in readers
    assert {name for name in readers if WRITER in reachable(graph, name)} == set()
    assert WRITER not in reachable(graph, "kfp_lineage.mlmd.recovery")  # it writes, with the vocabulary only


def test_no_import_cycles_among_the_modules_that_read_and_name_mlmd_records():
    graph = import_graph()
    assert cycles({n: {m for m in targets if in_scope(m, CHECKED)}
                   for n, targets in graph.items() if in_scope(n, CHECKED)}) == []


def test_the_check_sees_function_level_imports_and_cycles():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    modules = module_files()
    # pytest_plugin imports the runner only inside a fixture.
    plugin = imports_of("kfp_lineage.expect.pytest_plugin", modules["kfp_lineage.expect.pytest_plugin"], modules)
    assert "kfp_lineage.engine.run" in plugin
