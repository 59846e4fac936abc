"""A clean install from the outside (README, "Set-up"; docs/demo.md, "Installed with pip").

``pip install .`` (not ``-e``) copies the ``flowjax`` package only: ``run.py``,
``experiments/``, ``configs/`` and ``weights/`` stay in the clone, and
``python <clone>/run.py`` runs from any folder with the clone's own flowjax.
These tests hold the pieces of that: the package data is declared, the package
reaches outside itself only where it says so, and each unsupported layout is one
``error:`` line naming what to run. The slow test builds and installs a real
wheel and runs the main job's smoke variant from another folder.
"""

import configparser
import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from flowjax.evaluation import synthetic_scorers as ss

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flowjax"
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
# The places where flowjax's code names a path outside its own package, and why that holds
# for an installed copy too.
OUTSIDE_THE_PACKAGE = {
    # DEFAULT_WEIGHTS_DIR: the clone's weights/demo/scorers; an installed copy has none and
    # load_scorer / check_weights_dir say what to pass instead.
    "evaluation/synthetic_scorers.py",
    # REPOSITORY: only to show paths inside the clone short (display_path); nothing is read.
    "runs/names.py",
}


def _package_data() -> list[str]:
    """setup.cfg's [options.package_data] as path globs relative to flowjax/'s parent."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = []
    for package, patterns in cfg["options.package_data"].items():
        folder = package.replace(".", "/")
        globs += [f"{folder}/{p.strip()}" for p in patterns.split() if p.strip()]
    return globs


def test_every_file_the_package_ships_besides_its_modules_is_declared_package_data():
    # A file under flowjax/ that is neither a module nor a package's README is read at run
    # time (the viewer's and the editor's page assets): pip install . copies it only if
    # setup.cfg declares it, and an editable install would never show the difference.
    globs = _package_data()
    assert globs, "setup.cfg lost its [options.package_data]"
    data = [p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
            and p.suffix not in (".py", ".pyc") and p.name != "README.md"]
    assert data, "no page assets found under flowjax/ (did static/ move?)"
    undeclared = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not undeclared, f"declare these in setup.cfg [options.package_data]: {undeclared}"


def test_the_package_names_paths_outside_itself_only_where_listed():
    reaching = set()
    for path in PACKAGE.rglob("*.py"):
        depth = len(path.relative_to(PACKAGE).parts)  # parents[depth] is outside flowjax/
        for match in re.finditer(r"parents\[(\d+)\]", path.read_text(encoding="utf-8")):
            if int(match.group(1)) >= depth:
                reaching.add(path.relative_to(PACKAGE).as_posix())
    assert reaching <= OUTSIDE_THE_PACKAGE, (
        f"{sorted(reaching - OUTSIDE_THE_PACKAGE)} name a path outside the flowjax package, which "
        "a non-editable install does not have: put the file in the package (declared package "
        "data) or let the config or experiment that owns it pass the path")


def test_an_installed_copy_without_the_scorer_weights_says_where_they_are(tmp_path,
                                                                          monkeypatch):
    # As in site-packages: the folder two levels above the package has no weights/.
    monkeypatch.setattr(ss, "DEFAULT_WEIGHTS_DIR", tmp_path / "weights" / "demo" / "scorers")
    fix = r"weights_dir=<clone>/weights/demo/scorers"
    with pytest.raises(FileNotFoundError, match=rf"synthetic au scorer: .*clone.*{fix}"):
        ss.load_scorer(ss.DEFAULT_WEIGHTS_DIR, "au")
    with pytest.raises(FileNotFoundError, match=rf"synthetic scorers: .*{fix}"):
        ss.check_weights_dir()
    ss.check_weights_dir(ROOT / "weights" / "demo" / "scorers")  # a folder given: fine

    # The main job checks before its work, not when it scores the finished run.
    from experiments import transfer
    from flowjax.runs.runtime import config_module

    config = config_module("transfer", ROOT / "configs" / "transfer.py").get_config()
    with pytest.raises(FileNotFoundError, match=fix):
        transfer.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    for section in ("identity", "action_units", "detector"):
        config.evaluation[section].options.weights_dir = str(ROOT / "weights/demo/scorers")
    transfer._check_evaluation(config)  # noqa: SLF001  (the folder given: no error)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr[-3000:]
    return errors[0]


def test_run_py_without_its_clone_says_what_to_run(tmp_path):
    # run.py copied out of the clone (the installed package has no experiments/).
    (tmp_path / "alone").mkdir()
    shutil.copy(ROOT / "run.py", tmp_path / "alone" / "run.py")
    config = tmp_path / "config.py"
    config.write_text("import ml_collections\n\ndef get_config():\n"
                      "    return ml_collections.ConfigDict(dict(experiment='transfer'))\n")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "alone" / "run.py"), f"--config={config}",
         f"--workdir={tmp_path / 'run'}", "--compilation_cache="],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    line = _one_error_line(result)
    assert f"{tmp_path / 'alone'} has no experiments/ folder" in line
    assert "python <clone>/run.py --config=<clone>/configs/transfer.py" in line
    assert not (tmp_path / "run").exists()


def _can_build_wheels() -> bool:
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.slow  # ~1 min: a wheel built and installed, two smoke runs
def test_a_non_editable_install_runs_the_main_job_from_another_folder(tmp_path):
    if not _can_build_wheels():
        pytest.skip("building a wheel offline needs setuptools>=70.1 or the wheel package")
    # A wheel of the package as `pip install .` builds it, from a copy of its sources (a
    # build/ folder left in the clone by an earlier build must not leak into it).
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source / "flowjax",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300, env=ENV)
    (wheel,) = (tmp_path / "dist").glob("flowjax_glow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for asset in ("flowjax/evaluation/static/viewer.js", "flowjax/app/static/explore.js"):
        assert asset in names
    assert {n.split("/")[0] for n in names} == {"flowjax", wheel.name.split("-")[0] + "-"
                                               + wheel.name.split("-")[1] + ".dist-info"}
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300, env=ENV)
    env = {**ENV, "PYTHONPATH": str(site)}  # ahead of the editable install of the test run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(run_py: Path, config: str, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(run_py), f"--config={config}", *flags],
                              cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=600)

    # The supported layout: the clone's run.py and config, from another folder. The
    # clone's own flowjax runs (run.py's folder comes first on sys.path).
    result = run(ROOT / "run.py", f"{ROOT}/configs/transfer.py:smoke",
                 f"--workdir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"flowjax 0.1.0 from {PACKAGE}\n" in result.stderr
    assert len(list((tmp_path / "out" / "transfer").rglob("*.png"))) == 18

    # The installed copy itself, doing the same job: run.py, configs/ and experiments/ of
    # the clone beside it, and no flowjax/ folder.
    project = tmp_path / "project"
    for name in ("configs", "experiments"):
        shutil.copytree(ROOT / name, project / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "run.py", project / "run.py")
    result = run(project / "run.py", f"{project}/configs/transfer.py:smoke",
                 f"--workdir={tmp_path / 'out2'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"flowjax 0.1.0 from {site / 'flowjax'}\n" in result.stderr
    assert len(list((tmp_path / "out2" / "transfer").rglob("*.png"))) == 18

    # ... where the demo's scorer weights (weights/demo/scorers of a clone) are missing:
    # one line, before any work.
    result = run(project / "run.py", f"{project}/configs/transfer.py",
                 f"--workdir={tmp_path / 'out3'}")
    line = _one_error_line(result)
    assert line.startswith(f"error: FileNotFoundError: synthetic scorers: the default weights "
                           f"folder {site / 'weights' / 'demo' / 'scorers'} does not exist")
    assert not (tmp_path / "out3").exists()

    # A config naming no experiment.
    result = run(ROOT / "run.py", f"{ROOT}/configs/transfer.py:smoke",
                 "--config.experiment=nope", f"--workdir={tmp_path / 'out4'}")
    assert "config.experiment 'nope' names no experiment" in _one_error_line(result)
