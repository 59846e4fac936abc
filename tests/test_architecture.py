"""The layout keeps its rules: imports point one way, no cycles, a small top level.

The checks themselves are ``tools/import_graph.py`` (``python -m tools.import_graph``
prints the package graph); these tests run them on the repository and show
that they catch what they are for.
"""

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_keeps_every_rule_of_its_import_graph():
    assert import_graph.violations() == []


def test_every_package_declares_what_it_may_import_and_the_declarations_form_no_cycle():
    rules = import_graph.declared_imports()
    packages = {p.name for p in (ROOT / "flowjax").iterdir() if (p / "__init__.py").is_file()}
    assert set(rules) == {f"flowjax.{name}" for name in packages}
    assert import_graph.cycles(rules) == []
    assert rules["flowjax.flows"] == set() and rules["flowjax.io"] == set()


def _copy_sources(tmp_path: Path) -> Path:
    for source in import_graph.SOURCES:
        src = ROOT / source
        if src.is_file():
            shutil.copy(src, tmp_path / source)
        else:
            shutil.copytree(src, tmp_path / source, ignore=shutil.ignore_patterns("__pycache__", "*.png",
                                                                                "*.css", "*.js"))
    return tmp_path


def test_an_upward_import_hidden_in_a_function_is_named(tmp_path):
    root = _copy_sources(tmp_path)
    layers = root / "flowjax" / "flows" / "layers.py"
    layers.write_text(layers.read_text() + "\n\ndef _late():\n    from flowjax.models import glow\n")
    problems = import_graph.violations(root)
    assert any(p.startswith("flowjax.flows imports flowjax.models") for p in problems), problems
    # glow imports the flows, so the same line also closes a cycle
    assert any(p.startswith("import cycle:") and "flowjax.flows.layers" in p for p in problems), problems


def test_a_cycle_between_two_scripts_is_named(tmp_path):
    root = _copy_sources(tmp_path)
    tables = root / "experiments" / "synthetic_benchmark_tables.py"
    tables.write_text(tables.read_text() + "\nfrom experiments import synthetic_benchmark  # noqa\n")
    problems = import_graph.violations(root)
    assert "import cycle: experiments.synthetic_benchmark <-> experiments.synthetic_benchmark_tables" in problems


def test_the_library_importing_a_script_is_named(tmp_path):
    root = _copy_sources(tmp_path)
    io_files = root / "flowjax" / "io" / "files.py"
    io_files.write_text(io_files.read_text() + "\nimport tools.benchmark  # noqa\n")
    assert any("the library never imports the scripts around it" in p
               for p in import_graph.violations(root))


def test_a_crowded_top_level_and_a_long_module_without_a_reason_are_named(tmp_path):
    root = _copy_sources(tmp_path)
    (root / "flowjax" / "extra.py").write_text('"""One module too many."""\n' + "x = 1\n" * 401)
    problems = import_graph.violations(root)
    assert any(p.startswith("flowjax/ holds 13 entries") for p in problems), problems
    assert any(p.startswith("flowjax/extra.py has 402 lines") for p in problems), problems


def test_cycles_finds_each_strongly_connected_group_once():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": {"e"}, "f": set()}
    assert sorted(import_graph.cycles(graph)) == [["a", "b", "c"], ["e", "e2"]]


def test_no_package_name_hides_one_of_its_modules():
    """A re-exported function named like its module (``training.train``) would
    make ``from flowjax.training import train`` return the function."""
    for init in sorted((ROOT / "flowjax").glob("*/__init__.py")):
        package = importlib.import_module(f"flowjax.{init.parent.name}")
        for file in sorted(init.parent.glob("*.py")):
            if file.stem != "__init__":
                module = importlib.import_module(f"{package.__name__}.{file.stem}")
                assert getattr(package, file.stem) is module, f"{package.__name__}.{file.stem}"


@pytest.mark.parametrize("statement, must_not_load", [
    ("import flowjax", ("jax", "flax", "orbax", "torch")),
    ("from flowjax.runs import runtime", ("flax", "orbax", "torch", "flowjax.models", "flowjax.faces")),
    ("import flowjax.evaluation", ("torch", "jax")),
])
def test_light_imports_stay_light(statement, must_not_load):
    """``run.py`` imports the runtime before JAX's multi-host start, every config
    imports it too, and ``import flowjax`` must not cost a JAX start-up."""
    code = f"import sys; {statement}; print(sorted(m for m in {must_not_load!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_docs_architecture_states_the_rules_the_packages_declare():
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|$", text, re.M))
    documented = {f"flowjax.{package}": {f"flowjax.{name}" for name in re.findall(r"`(\w+)`", allowed)}
                  for package, allowed in table.items()}
    assert documented == import_graph.declared_imports()
