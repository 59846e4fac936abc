"""docs/api.md lists the public API as it is: current, and every name importable."""

import importlib
import re
from pathlib import Path

from tools import api_doc

ROOT = Path(__file__).resolve().parents[1]


def _listed_names() -> list[str]:
    return re.findall(r"^\| `(flowjax(?:\.\w+)*)` \|", (ROOT / "docs" / "api.md").read_text(), re.M)


def test_every_name_docs_api_lists_imports():
    names = _listed_names()
    assert len(names) > 100
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), dotted


def test_docs_api_lists_every_public_name_of_every_package():
    listed = set(_listed_names())
    for package_name in api_doc.PACKAGES:
        package = importlib.import_module(package_name)
        missing = [name for name in package.__all__ if f"{package_name}.{name}" not in listed]
        assert not missing, f"{package_name}: {missing}"


def test_docs_api_is_what_the_generator_writes_today():
    assert (ROOT / "docs" / "api.md").read_text() == api_doc.render(), \
        "docs/api.md is stale: python -m tools.api_doc --write"


def test_every_package_has_a_current_readme_saying_what_it_may_import():
    readmes = api_doc.package_readmes()
    assert {path.parent.name for path in readmes} == {
        p.name for p in (ROOT / "flowjax").iterdir() if (p / "__init__.py").is_file()}
    for path, text in readmes.items():
        assert "May import:" in text, path
        assert path.read_text() == text, f"{path} is stale: python -m tools.api_doc --write"

