"""The package's shape, as docs/architecture.md states it: which subpackage may import which, no import cycles
(function-level imports included), the read side never imports the writer, no module named like a standard-library
module, no module past 500 lines, and a doc that names exactly the subpackages the tree has.

Imports are read statically (ast), so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from typing import Dict, List, Set

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, "kfp_lineage")
MAX_MODULE_LINES = 500

# The subpackage (or top-level module group) each module belongs to, and what each may import. "base" is the
# handful of dependency-free top-level modules every layer shares (errors, redaction, digests, ...).
ALLOWED = {
    "base": {"base"},
    "ir": {"base", "ir"},
    "mlmd": {"base", "mlmd"},
    "engine": {"base", "ir", "mlmd", "engine"},
    "lineage": {"base", "mlmd", "lineage"},
    "expect": {"base", "ir", "mlmd", "lineage", "engine", "expect"},
    "remote": {"base", "ir", "mlmd", "remote"},
    "cli": {"base", "ir", "mlmd", "engine", "lineage", "expect", "remote", "cli"},
}
WRITER = "kfp_lineage.mlmd.recorder"
READ_SIDE = ("lineage", "expect")
# Modules of the read side that run pipelines on purpose (the pytest plugin's run_pipeline fixture) may reach the
# writer through the engine; they must still not import the writer themselves.


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, REPO)[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _modules() -> Dict[str, str]:
    found = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: str) -> Set[str]:
    """The kfp_lineage modules `module` imports anywhere in its body (a name imported from a package counts as the
    submodule when one exists)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.add(candidate if candidate in MODULES else base)
    return {t for t in targets if t == "kfp_lineage" or t.startswith("kfp_lineage.")}


GRAPH = {module: _imports(module, path) - {module} for module, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and os.path.isdir(os.path.join(PACKAGE_DIR, parts[1]))):
        return parts[1]
    return "base"


def test_every_module_is_in_a_known_layer():
    assert {_layer(m) for m in MODULES if m != "kfp_lineage"} <= set(ALLOWED)


def test_imports_point_one_way():
    wrong = []
    for module, targets in GRAPH.items():
        if module in ("kfp_lineage", "kfp_lineage.__main__"):
            continue  # the package's lazy export table and `python -m kfp_lineage`
        for target in targets:
            if target != "kfp_lineage" and _layer(target) not in ALLOWED[_layer(module)]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycles():
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index and module != "kfp_lineage":
            visit(module)
    assert cycles == []


def test_the_read_side_never_imports_the_writer():
    readers = [m for m in GRAPH if _layer(m) in READ_SIDE and WRITER in GRAPH[m]]
    assert readers == []


def test_only_the_engine_writes_runs():
    writers = sorted(m for m in GRAPH if WRITER in GRAPH[m] and _layer(m) not in ("engine", "mlmd"))
    assert writers == []


def test_no_module_shadows_the_standard_library():
    shadowing = sorted(m for m in MODULES if m.rpartition(".")[2] in sys.stdlib_module_names)
    assert shadowing == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    with open(MODULES[module], encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines; split it by purpose"


def test_the_architecture_page_names_every_subpackage():
    with open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8") as f:
        page = f.read()
    named = set(re.findall(r"`kfp_lineage/([a-z_/]+)/`", page))
    tree = {
        os.path.relpath(directory, PACKAGE_DIR).replace(os.sep, "/")
        for directory, _, files in os.walk(PACKAGE_DIR)
        if "__init__.py" in files and directory != PACKAGE_DIR
    }
    assert named == tree


def test_components_never_import_the_runner():
    offenders = []
    for directory, _, files in os.walk(os.path.join(REPO, "components")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                    if any(n == "kfp_lineage" or n.startswith("kfp_lineage.") for n in names):
                        offenders.append(os.path.relpath(path, REPO))
    assert offenders == []
