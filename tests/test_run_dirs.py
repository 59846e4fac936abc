"""Specification of flowjax.runs.run_dirs: workdir checks, staging folders, run
directories and the manifests that record their outputs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowjax import io as fio
from flowjax.runs import run_dirs

ROOT = Path(__file__).resolve().parents[1]
IMAGE = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- run directories -------------------------------------------------------


def test_existing_non_empty_workdir_is_refused_naming_dir_and_flag(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "results.csv").write_text("precious")
    with pytest.raises(FileExistsError, match=rf"{workdir} already exists.*overwrite=True"):
        run_dirs.create_run_dir(workdir)
    assert _listing(workdir) == ["results.csv"]


def test_workdir_error_names_the_real_config_option(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "results.csv").write_text("precious")
    with pytest.raises(FileExistsError, match=r"pass --config\.overwrite=True \(overwrite=True"):
        run_dirs.check_workdir(workdir)


def test_overwrite_is_refused_when_an_input_lies_inside_the_run_to_replace(tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("faces/a/1.png", "an input someone kept in the old run")
    with pytest.raises(ValueError, match=r"config.data.identities = .*run/faces lies inside the "
                                         r"run directory .*which overwrite=True would replace"):
        run_dirs.check_workdir(workdir, True, {"config.data.identities": workdir / "faces"})
    run_dirs.check_workdir(workdir, True, {"config.checkpoint": tmp_path})  # outside: fine
    assert (workdir / "faces/a/1.png").is_file()


def test_an_input_reached_through_a_symlink_into_the_run_is_refused(tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("model/weights.bin", "w")
    (tmp_path / "link").symlink_to(workdir / "model")
    with pytest.raises(ValueError, match="lies inside the run directory"):
        run_dirs.check_workdir(workdir, True, {"config.checkpoint": tmp_path / "link"})


def test_a_link_loop_in_an_input_folder_ends_and_links_through_linked_folders_are_followed(
        tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("inputs/a/1.png", "an input the old run copied")
    faces = tmp_path / "faces"
    (faces / "a").mkdir(parents=True)
    (faces / "a" / "loop").symlink_to(faces, target_is_directory=True)
    (faces / "a" / "own.png").write_text("a file of its own")
    run_dirs.check_workdir(workdir, True, {"config.data.identities": faces})  # ends; fine
    (tmp_path / "elsewhere").mkdir()  # a folder outside both, reached through a link
    (tmp_path / "elsewhere" / "1.png").symlink_to(workdir / "inputs" / "a" / "1.png")
    (faces / "b").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match=r"faces reads .*faces/b/1.png, which resolves to "
                                         r".*run/inputs/a/1.png inside the run directory"):
        run_dirs.check_workdir(workdir, True, {"config.data.identities": faces})


def test_an_input_folder_holding_the_run_is_fine_unless_something_in_it_links_into_the_run(
        tmp_path):
    """A data folder that also holds its runs: the run inside it is no input, but a file
    elsewhere in it that resolves into the run is."""
    data = tmp_path / "data"
    workdir = data / "runs" / "transfer"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("inputs/a/1.png", "an input the old run copied")
    (data / "faces" / "a").mkdir(parents=True)
    (data / "faces" / "a" / "2.png").write_text("a real photo")
    run_dirs.check_workdir(workdir, True, {"config.data.base_dir": data})
    (data / "faces" / "a" / "1.png").symlink_to(workdir / "inputs" / "a" / "1.png")
    with pytest.raises(ValueError, match=r"data/faces/a/1.png, which resolves to"):
        run_dirs.check_workdir(workdir, True, {"config.data.base_dir": data})


_READ_ONLY_SCRIPT = """
import sys, time
from flowjax.runs import run_dirs
start = time.perf_counter()
try:
    run_dirs.check_workdir(sys.argv[1])
except PermissionError as err:
    print("REFUSED", f"{time.perf_counter() - start:.3f}", err)
"""


def _as_unprivileged(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs ``script`` as an unprivileged user when we are root (root ignores permission
    bits, so a chmod-ed folder is read-only only for others)."""
    command = [sys.executable, "-c", script, *args]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def read_only_folder():
    # Not under tmp_path: pytest's root folder is private (0700) to its owner.
    parent = Path(tempfile.mkdtemp(prefix="flowjax-ro-test-"))
    parent.chmod(0o755)
    (parent / "ro").mkdir(mode=0o555)
    (parent / "ro").chmod(0o555)
    yield parent / "ro"
    (parent / "ro").chmod(0o755)
    shutil.rmtree(parent)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="as root, needs setpriv to run as an unprivileged user")
def test_read_only_workdir_is_refused_before_any_work(read_only_folder):
    for workdir in (read_only_folder / "run", read_only_folder):  # to create / existing empty
        result = _as_unprivileged(_READ_ONLY_SCRIPT, str(workdir))
        assert result.returncode == 0, result.stderr[-2000:]
        assert "REFUSED" in result.stdout, result.stdout
        assert f"cannot write in {read_only_folder} (Permission denied)" in result.stdout


def test_workdir_under_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"notes.txt is a file, not a folder"):
        run_dirs.check_workdir(tmp_path / "notes.txt" / "run")


def test_staging_dir_lies_beside_the_workdir_and_is_removed_on_exit(tmp_path):
    with pytest.raises(RuntimeError):
        with run_dirs.staging_dir(tmp_path / "run") as staging:
            assert staging.parent == tmp_path and staging.name.startswith(".run.staging-")
            (staging / "faces").mkdir()
            raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == []


def test_staging_dir_removes_what_a_killed_run_left_behind(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".run.staging-{dead}-abc123" / "faces").mkdir(parents=True)
    (tmp_path / f".run.staging-{os.getpid()}-live00").mkdir()  # a live process: kept
    with run_dirs.staging_dir(tmp_path / "run"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == [f".run.staging-{os.getpid()}-live00"]


def test_existing_empty_workdir_is_used(tmp_path):
    (tmp_path / "run").mkdir()
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        run.write_text("a.txt", "x")
    assert "a.txt" in _listing(tmp_path / "run")


def test_overwrite_refuses_a_folder_flowjax_did_not_create(tmp_path):
    workdir = tmp_path / "home"
    workdir.mkdir()
    (workdir / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match=r"was not created by flowjax"):
        run_dirs.create_run_dir(workdir, overwrite=True)
    assert _listing(tmp_path) == ["home", "home/thesis.tex"]


def test_overwrite_deletes_the_old_run_only_at_commit(tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("old.txt", "old")
    run = run_dirs.create_run_dir(workdir, overwrite=True)
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert (kept / "old.txt").read_text() == "old"
    run.write_text("new.txt", "new")
    run.commit()
    assert not kept.exists()
    assert "old.txt" not in _listing(workdir) and "new.txt" in _listing(workdir)


def test_overwriting_through_a_symbolic_link_replaces_the_run_it_points_to(tmp_path):
    real, link = tmp_path / "store" / "run", tmp_path / "run-link"
    with run_dirs.create_run_dir(real) as run:
        run.write_text("old.txt", "old")
    link.symlink_to(real, target_is_directory=True)
    with run_dirs.create_run_dir(link, overwrite=True) as run:
        run.write_text("new.txt", "new")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert "new.txt" in _listing(real) and "old.txt" not in _listing(real)
    assert [p.name for p in real.parent.iterdir()] == ["run"]  # the old run is gone, not kept aside


def test_failed_run_writes_a_failed_manifest_and_keeps_the_old_run(tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_text("old.txt", "old")
    with pytest.raises(ZeroDivisionError):
        with run_dirs.create_run_dir(workdir, overwrite=True) as run:
            run.write_text("partial.txt", "p")
            1 / 0
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("ZeroDivisionError")
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert (kept / "old.txt").read_text() == "old"


def _disk_full(*args, **kwargs):
    # What a write on a full disk raises: errno 28 and no file name.
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_error_names_the_file_being_written(tmp_path, monkeypatch):
    run = run_dirs.create_run_dir(tmp_path / "run")
    monkeypatch.setattr(run_dirs, "atomic_write_bytes", _disk_full)
    expected = r"\[Errno 28\] No space left on device .*images/a\.png"
    with pytest.raises(OSError, match=expected) as error:
        run.write_png("images/a.png", IMAGE)
    assert error.value.errno == errno.ENOSPC
    assert error.value.filename == str(tmp_path / "run" / "images" / "a.png")


def test_a_failed_manifest_that_cannot_be_written_keeps_the_first_error(tmp_path, monkeypatch,
                                                                        caplog):
    with pytest.raises(ZeroDivisionError) as error:
        with run_dirs.create_run_dir(tmp_path / "run") as run:
            monkeypatch.setattr(run_dirs, "atomic_write_json", _disk_full)
            1 / 0
    note = "".join(error.value.__notes__)
    assert "marking the run failed did not work either" in note
    assert f"{tmp_path / 'run' / 'manifest.json'}" in note and "Errno 28" in note
    assert "has no manifest.json" in caplog.text
    # a full disk fails the write and then the manifest: the write's error is raised
    with pytest.raises(OSError, match=r"a\.txt") as error:
        with run_dirs.create_run_dir(tmp_path / "run2") as run:
            monkeypatch.setattr(run_dirs, "atomic_write_bytes", _disk_full)
            run.write_text("a.txt", "x")
    assert "manifest.json" in "".join(error.value.__notes__)


def test_outputs_cannot_escape_the_run_directory(tmp_path):
    run = run_dirs.create_run_dir(tmp_path / "run")
    for bad in ["../x.txt", "/tmp/x.txt", "a/../../x.txt", "manifest.json"]:
        with pytest.raises(ValueError):
            run.write_text(bad, "x")


def test_an_output_cannot_be_written_twice(tmp_path):
    run = run_dirs.create_run_dir(tmp_path / "run")
    run.write_text("a.txt", "first")
    with pytest.raises(FileExistsError, match=r"a\.txt already exists"):
        run.write_text("a.txt", "second")
    assert (tmp_path / "run" / "a.txt").read_text() == "first"


def test_committed_run_accepts_no_more_writes(tmp_path):
    run = run_dirs.create_run_dir(tmp_path / "run")
    run.commit()
    with pytest.raises(RuntimeError, match="already committed"):
        run.write_text("late.txt", "x")


def test_every_png_written_by_the_run_dir_carries_provenance(tmp_path):
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        run.write_png("transfer/a.png", IMAGE, {"method": "transfer", "alpha": 0.5})
        run.write_png("strips/s.png", fio.make_strip([IMAGE, IMAGE], ["mean", "0.5"]))
    pngs = sorted((tmp_path / "run").rglob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        chunks = fio.read_png_provenance(png)
        assert chunks["Synthetic"] == "true" and "SYNTHETIC" in chunks["Description"]
        assert chunks["Software"].startswith("flowjax ")
    assert fio.read_png_provenance(pngs[1])["method"] == "transfer"


def test_manifest_lists_every_output_with_its_checksum(tmp_path):
    workdir = tmp_path / "run"
    with run_dirs.create_run_dir(workdir) as run:
        run.write_png("images/a.png", IMAGE, {"method": "transfer"})
        run.write_json("metrics.json", {"bpd": 3.5})
        run.write_text("report.md", "# Report\n")
        run.write_csv("table.csv", [{"alpha": 0.5, "distance": 0.7}])
        run.write_bytes("raw.bin", b"\x00\x01")
        (run.path_for("ckpt/0/state")).write_bytes(b"weights")
        run.record_output("ckpt")
    manifest = json.loads((workdir / "manifest.json").read_text())
    listed = {o["path"]: o for o in manifest["outputs"]}
    on_disk = set(_listing(workdir)) - {"manifest.json", ".flowjax-run"}
    files = {p for p in on_disk if (workdir / p).is_file() and not p.startswith("ckpt/")}
    assert set(listed) == files | {"ckpt"}
    for path in files:
        content = (workdir / path).read_bytes()
        assert listed[path]["sha256"] == hashlib.sha256(content).hexdigest()
        assert listed[path]["size_bytes"] == len(content)
    assert listed["ckpt"]["sha256"] == fio.sha256_dir(workdir / "ckpt")


def test_manifest_records_config_versions_model_inputs_and_timings(tmp_path):
    Image.fromarray(IMAGE).save(tmp_path / "face.png")
    checkpoint = tmp_path / "model.npz"
    checkpoint.write_bytes(b"params")
    image_set = fio.load_images(tmp_path / "face.png")
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        run.manifest.set_config({"alphas": (0.5, 1.0), "data": {"size": 4}})
        run.manifest.set_model(checkpoint)
        run.manifest.add_inputs(image_set.manifest_entries())
        run.manifest.add_inputs(image_set.manifest_entries())  # repeats are skipped
        with run.timed("decode"):
            pass
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"] == {"alphas": [0.5, 1.0], "data": {"size": 4}}
    assert manifest["model"]["sha256"] == hashlib.sha256(b"params").hexdigest()
    assert [i["sha256"] for i in manifest["inputs"]] == [image_set.records[0].sha256]
    wanted = {"flowjax", "jax", "jaxlib", "flax", "numpy", "optax", "torch"}
    assert set(manifest["versions"]) >= wanted
    assert manifest["platform"]["python"]
    assert manifest["timings"]["decode"]["calls"] == 1


def test_timed_accumulates_repeated_blocks_and_counts_failures():
    manifest = run_dirs.Manifest()
    for _ in range(2):
        with manifest.timed("step"):
            pass
    with pytest.raises(KeyError), manifest.timed("step"):
        raise KeyError
    assert manifest.timings["step"]["calls"] == 3


def test_unserialisable_config_fails_when_set_not_at_commit():
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        run_dirs.Manifest().set_config({"fn": lambda x: x})


def test_a_process_told_to_stop_removes_its_staging_and_stages_nothing_more(tmp_path,
                                                                         monkeypatch):
    """A SIGTERM whose SystemExit Python swallowed (in a gc callback) must not let the run
    stage a folder that the forced exit after the grace period would leave behind."""
    monkeypatch.setattr(run_dirs, "_STOPPING", [])
    workdir = tmp_path / "run"
    with run_dirs.staging_dir(workdir) as folder:
        (folder / "part.png").write_bytes(b"x")
        run_dirs.stop_staging(143)
        assert not folder.exists()
    with pytest.raises(SystemExit) as stopped:
        with run_dirs.staging_dir(workdir):
            pass
    assert stopped.value.code == 143
    assert not list(tmp_path.glob(".run.staging-*"))
