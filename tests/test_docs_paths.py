"""The README and docs/ name no folder of the machine they were written on.

A path like ``/work/main/weights/demo/glow`` or ``/home/me/...`` in a manual,
or in the text chunks of a screenshot's PNG, tells nothing to a reader on
another machine and shows where the author worked. Paths in the docs are
relative to the repository (``weights/demo/glow``); example commands use a
scratch folder (``--workdir=/tmp/...``), which is fine.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from flowjax import io as fio

ROOT = Path(__file__).resolve().parents[1]


def _folders_of_this_machine() -> list[str]:
    """The repository, the folder holding it and the home folder, as absolute paths, the
    longest first (so a match names the most of it). Left out: the filesystem root, which
    every path starts at, and the scratch folder (a checkout in /tmp must not forbid the
    docs' ``--workdir=/tmp/...``)."""
    folders = {ROOT, ROOT.parent, Path.home().resolve()}
    allowed = {Path("/tmp"), Path(tempfile.gettempdir()).resolve()}
    return sorted((str(f) for f in folders - allowed if f != f.parent), key=len, reverse=True)


# A path that starts at the root, not one inside a URL or a relative path ("a/work/b").
_START = r"(?<![\w.~/-])"
FORBIDDEN = re.compile(_START + "(?:" + "|".join(
    [re.escape(folder) + r"(?![\w.-])" for folder in _folders_of_this_machine()]
    + [r"/(?:work|root)/",                     # workspace and root's home folders
       r"/(?:home|Users)/[^/\s`'\"]+/"]) + ")")  # a user's home folder (Linux, macOS)


def _tracked_docs() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "README.md", "docs"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout ({error}): the tracked docs cannot be listed")
    return [ROOT / name for name in listed.split("\0") if name]


def _texts(path: Path) -> list[tuple[str, str]]:
    """``(where, text)`` pieces of a tracked file: its lines, a PNG's text chunks, or
    nothing for another binary file."""
    if path.suffix.lower() == ".png":
        return [(f"PNG text chunk {key!r}", value)
                for key, value in fio.read_png_provenance(path).items()]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return []
    return [(f"line {i}", line) for i, line in enumerate(lines, 1)]


def offending_paths(paths: list[Path], base: Path = ROOT) -> list[str]:
    """``file, where: path in text`` for every absolute path of this machine in ``paths``
    (files named relative to ``base``)."""
    found = []
    for path in paths:
        for where, text in _texts(path):
            for match in FORBIDDEN.finditer(text):
                found.append(f"{path.relative_to(base)}, {where}: {match.group(0)!r} in "
                             f"{text.strip()[:160]!r}")
    return found


def test_tracked_docs_name_no_folder_of_the_machine_they_were_written_on():
    docs = _tracked_docs()
    assert any(p.name == "README.md" for p in docs) and any(p.suffix == ".png" for p in docs)
    found = offending_paths(docs)
    assert not found, (
        "absolute paths of the machine the docs were written on (write them relative to the "
        "repository, e.g. weights/demo/glow, or use a scratch folder such as /tmp/run):\n"
        + "\n".join(found))


@pytest.mark.parametrize("text", [
    f"python run.py --config.checkpoint={ROOT}/weights/demo/glow",
    f"see `{ROOT}`",
    "model /work/wt/viewer/weights/demo/glow sha256:00",
    "cd /root/flowjax",
    "HOME is /home/alice/ here",
    "on a Mac: /Users/alice/flowjax",
], ids=["repository", "repository-alone", "workspace", "root-home", "linux-home", "mac-home"])
def test_an_absolute_path_of_this_machine_is_found(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\n{text}\n")
    assert len(offending_paths([page], tmp_path)) == 1


@pytest.mark.parametrize("text", [
    "python run.py --config=configs/transfer.py --workdir=/tmp/transfer-demo",
    "the shipped checkpoint weights/demo/glow (see ../README.md)",
    "https://github.com/openai/glow/tree/master/demo and https://example.org/home/x/y",
    "--workdir=/shared/glow on every host",
    "a relative path: runs/work/root/x",
], ids=["scratch-workdir", "relative", "urls", "shared-filesystem-example", "relative-nested"])
def test_scratch_relative_and_web_paths_are_fine(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(f"{text}\n")
    assert offending_paths([page], tmp_path) == []


def test_a_screenshot_naming_an_absolute_checkpoint_in_its_text_chunks_is_found(tmp_path):
    import numpy as np

    shot = tmp_path / "shot.png"
    fio.write_png(shot, np.zeros((2, 2, 3), np.uint8),
                  {"model": f"{ROOT}/weights/demo/glow sha256:00"})
    found = offending_paths([shot], tmp_path)
    assert len(found) == 1 and found[0].startswith("shot.png, PNG text chunk 'model': ")
