"""Specification of how runs fail: bad input and faults stop the run with one clear
error, before any work where possible, and leave nothing behind (issue #18, items
1, 3, 6, 7; docs/reliability.md lists every case).

The library-level guards have their own tests (tests/test_sweep.py: non-finite
points and alphas; tests/test_run_dirs.py: workdir checks, staging folder); these run
the transfer experiment and ``run.py`` as a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import common as config_common
from configs import transfer as transfer_config
from experiments import transfer
from flowjax import models, synthetic
from flowjax import io as fio
from flowjax.faces import identity_folders
from flowjax.models import glow
from flowjax.runs import experiment, run_dirs
from flowjax.transfer import sweep

ROOT = Path(__file__).resolve().parents[1]
MODEL = glow.Glow(image_size=16, n_levels=2, depth=2, width=8)
ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
ENV.pop("FLOWJAX_TRACEBACK", None)


def _faces(root: Path, size: int = 16) -> Path:
    synthetic.write_generated_faces(root, n_identities=3,
                                          expressions=("neutral", "smile"), size=size)
    return root


def _config(faces: Path, **overrides):
    config = transfer_config.get_config()
    config.data.identities = str(faces)
    config.source = "id00"
    config.alphas = (0.0, 0.5, 1.0)
    config.progress = False
    config.evaluation.enabled = False
    config.checkpoint = None
    config.random_init.enabled = True
    config.random_init.ddi = False
    config.model = config_common.model_config(image_size=16, n_levels=2, depth=2, width=8)
    config.update(overrides)
    return config


@pytest.fixture
def no_work(monkeypatch):
    """Makes any model work fail the test: a refusal must come before it."""
    def work(*args, **kwargs):
        pytest.fail("the run started work (read the model) before refusing")
    # The module that defines them, not the package that re-exports them: the
    # scaffold calls them by their module's names.
    monkeypatch.setattr(experiment, "model_geometry", work)
    monkeypatch.setattr(experiment, "load_model", work)


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory) -> Path:
    """A model export with one NaN among its weights (as a damaged file or diverged run)."""
    from flowjax.models import checkpoints

    variables = jax.tree.map(np.array, models.random_variables(MODEL, seed=3))
    variables["params"]["level_1"]["invconv"]["W"][0, 0, 1] = np.nan
    return checkpoints.save_model(tmp_path_factory.mktemp("nan") / "ckpt", MODEL, variables)


def _run_py(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=300, **kwargs)


# ---- item 1: non-finite values ----------------------------------------------------


@pytest.mark.slow  # ~10 s; the run.py test below covers the same run in the default suite
def test_nan_weight_in_the_checkpoint_stops_the_run_naming_the_parameter(tmp_path,
                                                                         nan_checkpoint):
    faces = _faces(tmp_path / "faces")
    config = _config(faces, checkpoint=str(nan_checkpoint))
    config.random_init.enabled = False
    with pytest.raises(sweep.NonFiniteError,
                       match=r"checkpoint .*ckpt: 1 parameter array\(s\) hold NaN or inf: "
                             r"\['params'\]\['level_1'\]\['invconv'\]\['W'\]"):
        transfer.main(config, str(tmp_path / "run"))
    assert [p.name for p in tmp_path.iterdir()] == ["faces"]  # no run, no staging folder


def test_run_py_reports_a_nan_checkpoint_in_one_line_and_writes_no_run(tmp_path,
                                                                      nan_checkpoint):
    faces = _faces(tmp_path / "faces")
    checkpoint = nan_checkpoint
    result = _run_py("--config=configs/transfer.py", f"--config.checkpoint={checkpoint}",
                     f"--config.data.identities={faces}", "--config.source=id00",
                     "--config.evaluation.enabled=False", f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: NonFiniteError: checkpoint ") and "['level_1']" in last
    assert "Traceback" not in result.stderr
    # orbax's INFO lines (a dozen per checkpoint load) are filtered from the log.
    assert "orbax-checkpoint version" not in result.stderr
    assert "load checkpoint" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_variance_transfer_that_overflows_names_expression_and_target_and_writes_nothing(
        tmp_path):
    faces = _faces(tmp_path / "faces")
    config = _config(faces, method="variance", var_eps=1e-30)
    config.data.identities = None
    # "solo" has one image: variance 0, so its latent is divided by var_eps alone.
    config.data.identity_map = {"id00": str(faces / "id00"), "id01": str(faces / "id01"),
                                "solo": str(faces / "id02" / "smile.png")}
    with pytest.raises(sweep.NonFiniteError,
                       match=r"transfer sweep \(variance, eps\): grid points: .*"
                             r"expression \d \('(neutral|smile)'\), target \d \('(id01|solo)'\)"
                             r".*var_eps=1e-30\): raise var_eps"):
        transfer.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["variance", "std_rescale"])
def test_zero_var_eps_with_a_variance_method_is_refused_before_any_work(tmp_path, no_work,
                                                                        method):
    config = _config(_faces(tmp_path / "faces"), method=method, var_eps=0.0)
    with pytest.raises(ValueError, match=rf"config.var_eps=0 with method '{method}'"):
        transfer.main(config, str(tmp_path / "run"))


@pytest.mark.parametrize("alphas", [(1e6,), (float("1e309"),), (0.5, float("nan"))])
def test_alphas_out_of_range_are_refused_before_any_work(tmp_path, no_work, alphas):
    config = _config(_faces(tmp_path / "faces"), alphas=alphas)
    with pytest.raises(ValueError, match=r"config.alphas \[.*\] out of range"):
        transfer.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ---- item 3: overwrite must not delete the run's own inputs ------------------------


def test_overwrite_with_the_inputs_inside_the_old_run_is_refused_before_any_work(
        tmp_path, no_work):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir):
        pass
    faces = _faces(workdir / "faces")  # the user kept the photos in the old run's folder
    config = _config(faces, overwrite=True)
    with pytest.raises(ValueError, match=r"config.data.identities = .*run/faces lies inside the "
                                         r"run directory"):
        transfer.main(config, str(workdir))
    assert len(list(faces.rglob("*.png"))) == 6


def test_overwrite_with_a_checkpoint_inside_the_old_run_is_refused(tmp_path, no_work):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("model/weights.txt", "stand-in for an exported model")
    config = _config(_faces(tmp_path / "faces"), overwrite=True,
                     checkpoint=str(workdir / "model"))
    config.random_init.enabled = False
    with pytest.raises(ValueError, match=r"config.checkpoint = .*run/model lies inside"):
        transfer.main(config, str(workdir))


def _old_run_with_inputs(workdir: Path, size: int = 16) -> list[Path]:
    """A finished run holding its inputs as a smoke run leaves them (inputs/<id>/*.png)."""
    with run_dirs.create_run_dir(workdir) as run:
        for path in sorted(_faces(workdir.parent / "generated", size).rglob("*.png")):
            rel = path.relative_to(workdir.parent / "generated").as_posix()
            run.write_bytes(f"inputs/{rel}", path.read_bytes())
    shutil.rmtree(workdir.parent / "generated")
    return sorted((workdir / "inputs").rglob("*.png"))


def _links_into(inputs: Path, links: Path, *, folders: bool = False) -> Path:
    """``links/<id>/`` for each ``inputs/<id>/``: a link to the folder itself, or a real
    folder of links to its files."""
    links.mkdir()
    for identity in sorted(inputs.iterdir()):
        if folders:
            (links / identity.name).symlink_to(identity, target_is_directory=True)
            continue
        (links / identity.name).mkdir()
        for image in sorted(identity.iterdir()):
            (links / identity.name / image.name).symlink_to(image)
    return links


@pytest.mark.parametrize("how", ["file_links", "folder_links", "links_through_a_linked_parent",
                                 "workdir_given_as_a_link"])
def test_overwrite_refuses_identities_that_link_into_the_old_run_before_any_work(
        tmp_path, no_work, how):
    """Issue #27, defect 1: the identity folders lie outside the run, but their images
    resolve into the old run's inputs/, which overwrite would delete."""
    real_run = tmp_path / "run"
    old_inputs = _old_run_with_inputs(real_run)
    workdir, inputs = real_run, real_run / "inputs"
    if how == "links_through_a_linked_parent":  # links made through another path to the run
        (tmp_path / "mnt").symlink_to(real_run, target_is_directory=True)
        inputs = tmp_path / "mnt" / "inputs"
    if how == "workdir_given_as_a_link":
        workdir = tmp_path / "current"
        workdir.symlink_to(real_run, target_is_directory=True)
    links = _links_into(inputs, tmp_path / "faces", folders=how == "folder_links")
    first = "id00" if how == "folder_links" else "id00/neutral.png"
    with pytest.raises(ValueError) as err:
        transfer.main(_config(links, overwrite=True), str(workdir))
    message = str(err.value)
    assert f"config.data.identities = {links} reads {links / first}, which resolves to " \
           f"{real_run / 'inputs' / first} inside the run directory {workdir}" in message
    assert "Copy the inputs out of" in message and "choose another workdir" in message
    assert "\n" not in message
    assert sorted((real_run / "inputs").rglob("*.png")) == old_inputs  # nothing deleted
    assert (real_run / "manifest.json").is_file()
    assert all(p.is_file() for p in links.rglob("*.png"))  # no link left dangling
    assert not list(tmp_path.glob("*.replaced-*"))  # the old run was not even renamed aside


@pytest.mark.slow  # a subprocess (~5-10 s); the test above covers the refusal by default
def test_run_py_refuses_the_issue_27_reproduction_in_one_line_and_keeps_the_old_run(tmp_path):
    """The issue's commands: a :smoke run into R (here built directly, with its inputs),
    identity folders of links to R/inputs/<id>/*.png, then overwrite with those identities."""
    workdir = tmp_path / "R"
    old_inputs = _old_run_with_inputs(workdir, size=32)  # the :smoke model's size
    links = _links_into(workdir / "inputs", tmp_path / "L")
    result = _run_py("--config=configs/transfer.py:smoke", "--config.data.generated.enabled=False",
                     f"--config.data.identities={links}", "--config.overwrite=True",
                     f"--workdir={workdir}")
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"reads {links / 'id00' / 'neutral.png'}, which resolves to " in errors[0]
    assert sorted((workdir / "inputs").rglob("*.png")) == old_inputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L", "R"]


# ---- item 6: refuse before computing ---------------------------------------------


def test_overwrite_of_a_folder_flowjax_did_not_create_is_refused_before_any_work(
        tmp_path, no_work):
    workdir = tmp_path / "home"
    workdir.mkdir()
    (workdir / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="was not created by flowjax"):
        transfer.main(_config(_faces(tmp_path / "faces"), overwrite=True), str(workdir))
    assert [p.name for p in workdir.iterdir()] == ["thesis.tex"]


_READ_ONLY_RUN = """
import sys, time
from configs import transfer as transfer_config
from experiments import transfer
start = time.perf_counter()
try:
    transfer.main(transfer_config.get_config(), sys.argv[1])  # the default demo run
except PermissionError as err:
    print(f"REFUSED {time.perf_counter() - start:.2f} s: {err}")
"""


@pytest.mark.slow  # a subprocess (~6 s); test_run_dirs.py checks the refusal itself by default
@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="as root, needs setpriv to run as an unprivileged user")
def test_read_only_workdir_is_refused_within_a_second_with_the_default_config():
    parent = Path(tempfile.mkdtemp(prefix="flowjax-ro-test-"))  # pytest's tmp is 0700
    try:
        parent.chmod(0o755)
        (parent / "ro").mkdir()
        (parent / "ro").chmod(0o555)
        command = [sys.executable, "-c", _READ_ONLY_RUN, str(parent / "ro" / "run")]
        if os.geteuid() == 0:  # root ignores permission bits
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "REFUSED" in result.stdout and "cannot write in" in result.stdout, result.stdout
        assert float(result.stdout.split()[1]) < 1.0  # it was ~100 s of work before
    finally:
        (parent / "ro").chmod(0o755)
        shutil.rmtree(parent)


def test_broken_symlink_among_the_images_is_an_error_naming_it(tmp_path):
    faces = _faces(tmp_path / "faces")
    (faces / "id01" / "frown.png").symlink_to(tmp_path / "moved" / "frown.png")
    with pytest.raises(fio.ImageDataError,
                       match=r"id01/frown.png is a broken symbolic link \(it points to "
                             r".*moved/frown.png"):
        identity_folders.load_identities(faces, size=16)
    with pytest.raises(fio.ImageDataError, match="frown.png is a broken symbolic link"):
        transfer.main(_config(faces), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_broken_symlink_in_place_of_an_identity_folder_is_an_error_naming_it(tmp_path):
    faces = _faces(tmp_path / "faces")
    (faces / "id03").symlink_to(tmp_path / "unmounted" / "id03")
    with pytest.raises(fio.ImageDataError, match=r"faces/id03 is a broken symbolic link"):
        identity_folders.load_identities(faces, size=16)


def test_broken_symlink_in_a_training_folder_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "train" / "sub"
    folder.mkdir(parents=True)
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(fio.ImageDataError, match=r"sub/gone.jpg is a broken symbolic link"):
        fio.list_image_files_recursive(tmp_path / "train")


# ---- item 7: errors a person can read --------------------------------------------


def test_run_py_bad_config_is_one_line_with_non_zero_exit_and_no_traceback():
    result = _run_py("--config=configs/transfer.py:bogus")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: flag --config=configs/transfer.py:bogus: Error whilst parsing config file: "
        "ValueError: unknown variant(s) ['bogus']; choose from ['fine', 'repo', 'smoke', "
        "'std_rescale', 'subspace', 'thesis_half', 'variance', 'z'] (see --helpshort) "
        "(traceback: --verbosity=1 or FLOWJAX_TRACEBACK=1)"]


def test_run_py_shows_the_traceback_only_when_asked(tmp_path):
    # Without the flag: one line and no traceback (also the NaN checkpoint test above).
    loud = _run_py("--config=configs/transfer.py:smoke", "--config.alphas=(0.5,0.5)",
                   f"--workdir={tmp_path / 'run'}", "--verbosity=1")
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr
    # (with --verbosity=1 absl logs a few more lines at exit)
    assert "\nerror: ValueError: config.alphas [0.5, 0.5] has repeated values" in loud.stderr
    assert not (tmp_path / "run").exists()


def test_run_py_shows_the_traceback_with_the_environment_variable():
    result = _run_py("--config=configs/transfer.py:bogus", env={**ENV, "FLOWJAX_TRACEBACK": "1"})
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: flag --config=")


@pytest.mark.slow  # two more run.py starts (~5 s); the bad-variant test covers the path
def test_run_py_misspelt_config_field_and_missing_config_file_are_one_line():
    misspelt = _run_py("--config=configs/transfer.py", "--config.alpha=(0.5,)")
    assert misspelt.returncode == 1 and "Traceback" not in misspelt.stderr
    assert misspelt.stderr.strip().splitlines() == [
        "error: a --config.<field> override names a field the config does not have: 'alpha' "
        'Did you mean "alphas" instead of "alpha"? (overrides given: --config.alpha=(0.5,)) '
        "(traceback: --verbosity=1 or FLOWJAX_TRACEBACK=1)"]
    missing = _run_py("--config=configs/nothere.py")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith(
        "error: cannot load the config: [Errno 2] No such file or directory: "
        "'configs/nothere.py'")


def test_a_terminated_run_leaves_no_temporary_folder_behind(tmp_path):
    own_tmp = tmp_path / "tmp"  # TMPDIR of the run: other processes' files are not counted
    own_tmp.mkdir()
    workdir = tmp_path / "out" / "run"
    process = subprocess.Popen(
        [sys.executable, "run.py", "--config=configs/transfer.py:smoke", f"--workdir={workdir}"],
        cwd=ROOT, env={**ENV, "TMPDIR": str(own_tmp)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        staged = list(own_tmp.glob("flowjax-generated-*")) + list(
            workdir.parent.glob(".run.staging-*") if workdir.parent.exists() else [])
        if staged and any(p.rglob("*.png") for p in staged):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be terminated"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert list(own_tmp.iterdir()) == [], stderr[-2000:]
    assert not list(workdir.parent.glob(".run.staging-*")), stderr[-2000:]
    if (workdir / "manifest.json").exists():  # the run may have started writing
        assert '"status": "failed"' in (workdir / "manifest.json").read_text()
