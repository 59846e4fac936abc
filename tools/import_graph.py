"""The import graph of the repository, and the rules it must keep.

``python -m tools.import_graph`` prints which flowjax package imports which
(each edge with the modules that make it) and then every broken rule; it exits
1 when there is one. ``tests/test_architecture.py`` runs the same checks.

The rules:

* a package of ``flowjax/`` imports only the packages its ``__init__``
  docstring names on its ``May import:`` line (and ``flowjax`` itself, for
  ``__version__`` and ``lazy_exports``), so the arrows point one way;
* ``flowjax`` never imports ``experiments``, ``tools``, ``weights`` or ``configs``;
* no module takes part in an import cycle, counting imports inside functions
  and under ``TYPE_CHECKING`` too (a cycle hidden in a function is still one);
* ``flowjax/`` holds at most ``MAX_TOP_LEVEL`` entries, and a module longer
  than ``MAX_LINES`` says why in its docstring (``Longer than ... because``).

Imports are read with :mod:`ast`: nothing is imported or executed.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("flowjax", "experiments", "tools", "weights", "configs", "run.py")
TOP_PACKAGES = ("flowjax", "experiments", "tools", "weights", "configs")
MAX_TOP_LEVEL = 12
MAX_LINES = 400
LENGTH_REASON = "Longer than"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of ``SOURCES``."""
    files = {}
    for source in SOURCES:
        path = root / source
        found = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
        for file in found:
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = file
    return files


def _resolve(target: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``target`` that is one of ``modules``."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def imports_of(name: str, file: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules ``name`` imports, anywhere in the file."""
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    is_package = file.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one.
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in TOP_PACKAGES:
                resolved = _resolve(target, modules)
                if resolved and resolved != name:
                    found.add(resolved)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(name, file, modules) for name, file in modules.items()}


def package_of(module: str) -> str:
    """``flowjax.models.glow`` -> ``flowjax.models``; the top package otherwise."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "flowjax" and len(parts) > 1 else parts[0]


def declared_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Each flowjax sub-package -> the packages its ``May import:`` line names."""
    rules = {}
    for init in sorted((root / "flowjax").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        match = re.search(r"^May import:(.*?)(?:\n\n|\Z)", doc, re.M | re.S)
        if match is None:
            raise ValueError(f"{init} has no 'May import:' line in its docstring")
        rules[f"flowjax.{init.parent.name}"] = set(re.findall(r"flowjax\.\w+", match.group(1)))
    return rules


def package_edges(graph: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the module imports that make the edge."""
    edges = defaultdict(list)
    for module, targets in graph.items():
        for target in targets:
            a, b = package_of(module), package_of(target)
            if a != b:
                edges[(a, b)].append(f"{module} -> {target}")
    return dict(sorted(edges.items()))


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def violations(root: Path = ROOT, graph: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Every broken rule, one line each (empty when the tree keeps them all).

    ``graph`` is ``import_graph(root)``, read here when not given.
    """
    graph = import_graph(root) if graph is None else graph
    rules = declared_imports(root)
    problems = []
    for (a, b), why in package_edges(graph).items():
        if a in rules and b != "flowjax" and b not in rules[a]:
            problems.append(f"{a} imports {b}, which its __init__'s 'May import:' line does not name "
                            f"({why[0]}{' and more' if len(why) > 1 else ''})")
        if a.startswith("flowjax") and not b.startswith("flowjax"):
            problems.append(f"{a} imports {b}: the library never imports the scripts around it ({why[0]})")
    for component in cycles(graph):
        problems.append("import cycle: " + " <-> ".join(component))
    entries = [p.name for p in (root / "flowjax").iterdir() if p.name != "__pycache__"]
    if len(entries) > MAX_TOP_LEVEL:
        problems.append(f"flowjax/ holds {len(entries)} entries (at most {MAX_TOP_LEVEL}): {sorted(entries)}")
    for file in module_files(root).values():
        text = file.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_LINES and LENGTH_REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            problems.append(f"{file.relative_to(root)} has {lines} lines (over {MAX_LINES}) and its "
                            f"docstring does not say why ('{LENGTH_REASON} {MAX_LINES} lines because ...')")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        from absl import app

        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    graph = import_graph()
    print("flowjax's packages and what they import (module imports counted):")
    for (a, b), why in package_edges(graph).items():
        if a.startswith("flowjax.") and b.startswith("flowjax."):
            print(f"  {a:20s} -> {b:20s} {len(why):3d}")
    problems = violations(graph=graph)
    for problem in problems:
        print("error:", problem)
    print(f"{len(graph)} modules; " + (f"{len(problems)} broken rules" if problems else "every rule kept"))
    return 1 if problems else 0


if __name__ == "__main__":
    from flowjax.runs import runtime

    runtime.run(main)
