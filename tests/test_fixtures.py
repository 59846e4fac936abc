"""The repository stands alone: its test fixtures are inside it, whole, and nothing reads outside it.

``tests/fixtures/`` holds small Glows made by OpenAI's and rosinality's own code
(README there). ``SHA256SUMS`` pins every data file, so a damaged or swapped
fixture fails here by name rather than as a puzzling converter mismatch.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from flowjax.io import sha256_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DOCUMENTATION = {"README.md", "SHA256SUMS"}
# How a path to a folder beside the clone is spelled in Python or in a shell line.
OUTSIDE_THE_CLONE = re.compile(r"""\.\./shared|parents?\[?\d*\]?\s*/\s*["']shared["']|["']\.\.["']\s*/\s*["']shared["']""")


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        pins[name] = digest
    return pins


def test_every_fixture_file_is_pinned_and_matches_its_sha256():
    present = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
               if p.is_file() and p.name not in DOCUMENTATION}
    pins = _pinned()
    assert present == set(pins), (
        f"tests/fixtures and SHA256SUMS disagree: unpinned {sorted(present - set(pins))}, "
        f"missing {sorted(set(pins) - present)}")
    wrong = [name for name, digest in pins.items() if sha256_file(FIXTURES / name) != digest]
    assert not wrong, f"fixture files whose sha256 is not the pinned one: {wrong}"


def test_the_converter_fixtures_are_there():
    # The fixture tests must run, not skip, in a plain clone.
    for folder, files in {"openai_glow_32": ["glow_demo_form.pb", "reference_tf.npz"],
                          "rosinality_glow_32": ["state_dict.pt", "reference.npz"]}.items():
        for name in files:
            assert (FIXTURES / folder / name).is_file(), f"tests/fixtures/{folder}/{name} is missing"


def _tracked_python_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (git ls-files failed): the tracked files are unknown")
    return [ROOT / name for name in listed]


def test_no_test_or_tool_reads_a_folder_beside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in _tracked_python_files()
                 if path.is_file() and path != Path(__file__).resolve()  # its own examples
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if OUTSIDE_THE_CLONE.search(line)]
    assert not offenders, "code that reads outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", [
    'FIXTURE = ROOT.parent / "shared" / "fixtures"',
    "path = '../shared/fixtures/x.pb'",
    'REAL = ROOT / ".." / "shared" / "a.pb"',
    'HERE.parents[2] / "shared"',
])
def test_the_outside_pattern_catches_the_ways_it_was_spelled(line):
    assert OUTSIDE_THE_CLONE.search(line)
