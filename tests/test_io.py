"""Specification of flowjax.io: atomic writes, PNG provenance, checksums, strips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import flowjax
from flowjax import io as fio

IMAGE = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- atomic writes ---------------------------------------------------------


def test_failure_mid_write_leaves_no_file_and_no_temp(tmp_path):
    with pytest.raises(RuntimeError, match="disk full"):
        with fio.atomic_open(tmp_path / "out.bin") as f:
            f.write(b"half of it")
            raise RuntimeError("disk full")
    assert _listing(tmp_path) == []


def test_failure_mid_write_keeps_the_previous_content(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fio.atomic_open(target, overwrite=True) as f:
            f.write(b"new but incomplete")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("overwrite, move", [(True, "replace"), (False, "link")])
def test_failed_rename_leaves_no_temp(tmp_path, monkeypatch, overwrite, move):
    def broken_move(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(fio.files.os, move, broken_move)
    with pytest.raises(OSError, match="rename failed"):
        fio.atomic_write_bytes(tmp_path / "out.bin", b"data", overwrite=overwrite)
    assert _listing(tmp_path) == []


def _race_for_one_name(target: Path, payloads: list[bytes]) -> list[BaseException | None]:
    """Writers of ``payloads`` to ``target``, each held inside atomic_open until all are in
    (past the quick existence check), then let go at once; each one's outcome."""
    import threading

    inside = threading.Barrier(len(payloads), timeout=30)
    outcomes: list[BaseException | None] = [None] * len(payloads)

    def write(k: int) -> None:
        try:
            with fio.atomic_open(target) as f:
                f.write(payloads[k])
                inside.wait()
        except BaseException as error:  # noqa: BLE001 (the outcome under test)
            outcomes[k] = error

    threads = [threading.Thread(target=write, args=(k,)) for k in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_of_two_writers_racing_for_a_new_name_exactly_one_wins(tmp_path):
    target = tmp_path / "edit_0001.png"
    payloads = [b"first writer " * 1000, b"second writer " * 1000]
    outcomes = _race_for_one_name(target, payloads)
    losers = [k for k, outcome in enumerate(outcomes) if outcome is not None]
    assert len(losers) == 1, outcomes  # a check-then-rename lets both "succeed"
    assert isinstance(outcomes[losers[0]], FileExistsError)
    assert "edit_0001.png already exists" in str(outcomes[losers[0]])
    assert target.read_bytes() == payloads[1 - losers[0]]  # the winner's bytes, whole
    assert _listing(tmp_path) == ["edit_0001.png"]  # no temp file left


def test_without_hard_links_a_new_name_is_still_claimed_once(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")  # as on FAT or some FUSE mounts

    monkeypatch.setattr(fio.files.os, "link", no_links)
    target = tmp_path / "out.bin"
    outcomes = _race_for_one_name(target, [b"a" * 5000, b"b" * 5000])
    assert sorted(type(o).__name__ for o in outcomes) == ["FileExistsError", "NoneType"]
    assert target.read_bytes() in (b"a" * 5000, b"b" * 5000)
    assert _listing(tmp_path) == ["out.bin"]


def test_unserialisable_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="object is not JSON-serialisable"):
        fio.atomic_write_json(tmp_path / "out.json", {"ok": 1, "bad": object()})
    assert _listing(tmp_path) == []


def test_existing_files_are_not_replaced_by_default(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match=r"out\.txt already exists; pass overwrite=True"):
        fio.atomic_write_text(target, "new")
    assert target.read_text() == "keep me"


def test_json_handles_paths_and_numpy_values(tmp_path):
    fio.atomic_write_json(tmp_path / "a.json", {"p": Path("x/y"), "v": np.float32(0.5),
                                               "a": np.arange(2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"p": "x/y", "v": 0.5, "a": [0, 1]}


# --- PNG provenance --------------------------------------------------------


def test_png_carries_software_and_synthetic_label(tmp_path):
    fio.write_png(tmp_path / "a.png", IMAGE)
    chunks = fio.read_png_provenance(tmp_path / "a.png")
    assert chunks["Software"] == f"flowjax {flowjax.__version__}"
    assert chunks["Synthetic"] == "true"
    assert chunks["Description"].startswith("SYNTHETIC image generated by flowjax")
    assert "deepfake research tool" in chunks["Description"]
    assert "SYNTHETIC" in chunks["Comment"]


def test_png_stores_each_caller_key_as_its_own_chunk(tmp_path):
    provenance = {"method": "expression_transfer", "alpha": 0.75, "target": "Zoë",
                  "model_sha256": "ab" * 32}
    fio.write_png(tmp_path / "a.png", IMAGE, provenance)
    chunks = fio.read_png_provenance(tmp_path / "a.png")
    assert chunks["method"] == "expression_transfer"
    assert json.loads(chunks["alpha"]) == 0.75
    assert chunks["target"] == "Zoë"
    assert chunks["model_sha256"] == "ab" * 32


def test_png_provenance_values_that_are_not_strings_read_back_equal_as_json(tmp_path):
    # Floats alone cannot tell JSON from str(): str(0.75) == json.dumps(0.75).
    provenance = {"config": {"method": "linear", "alphas": [0.0, 1.5], "ok": True},
                  "quantize": False, "checkpoint": None, "seed": 3}
    fio.write_png(tmp_path / "a.png", IMAGE, provenance)
    chunks = fio.read_png_provenance(tmp_path / "a.png")
    assert {key: json.loads(chunks[key]) for key in provenance} == provenance


def test_png_pixels_round_trip(tmp_path):
    fio.write_png(tmp_path / "a.png", IMAGE)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), IMAGE)


def test_provenance_cannot_override_the_synthetic_label(tmp_path):
    for key in ["Synthetic", "description", "Comment", "Software"]:
        with pytest.raises(ValueError, match=rf"key '{key}' is reserved.*generated=False"):
            fio.write_png(tmp_path / "a.png", IMAGE, {key: "a real photo"})
    assert _listing(tmp_path) == []


def test_copies_of_inputs_are_written_without_the_synthetic_label_only_when_asked(tmp_path):
    fio.write_png(tmp_path / "copy.png", IMAGE, {"source": "in/a.png"}, generated=False)
    chunks = fio.read_png_provenance(tmp_path / "copy.png")
    assert chunks["Synthetic"] == "false"
    assert "SYNTHETIC" not in json.dumps(chunks)
    assert chunks["source"] == "in/a.png"


def test_float_images_are_rejected_with_advice(tmp_path):
    expected = r"uint8 \[H, W, 3\] RGB, got float32 \[4, 6, 3\].*np\.clip"
    with pytest.raises(ValueError, match=expected):
        fio.write_png(tmp_path / "a.png", IMAGE.astype(np.float32))
    assert _listing(tmp_path) == []


def test_png_bytes_are_reproducible(tmp_path):
    assert fio.encode_png(IMAGE, {"alpha": 1}) == fio.encode_png(IMAGE, {"alpha": 1})


# --- checksums -------------------------------------------------------------


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    return root


def test_directory_checksum_depends_only_on_names_and_contents(tmp_path):
    a = _tree(tmp_path / "a", {"x/1.bin": b"one", "2.bin": b"two"})
    b = _tree(tmp_path / "b", {"2.bin": b"two", "x/1.bin": b"one"})  # other creation order
    os.utime(b / "2.bin", (0, 0))
    assert fio.sha256_dir(a) == fio.sha256_dir(b)


def test_directory_checksum_changes_with_content(tmp_path):
    a = _tree(tmp_path / "a", {"x/1.bin": b"one"})
    before = fio.sha256_dir(a)
    (a / "x/1.bin").write_bytes(b"One")
    assert fio.sha256_dir(a) != before


def test_directory_checksum_changes_when_a_file_moves(tmp_path):
    a = _tree(tmp_path / "a", {"x/1.bin": b"one"})
    b = _tree(tmp_path / "b", {"y/1.bin": b"one"})
    assert fio.sha256_dir(a) != fio.sha256_dir(b)


# --- strips ----------------------------------------------------------------


def test_strip_places_images_left_to_right_with_padding():
    first, second = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 7, np.uint8)
    strip = fio.make_strip([first, second], pad=2)
    assert strip.dtype == np.uint8 and strip.shape == (8, 2 + 2 * (6 + 2), 3)
    np.testing.assert_array_equal(strip[2:6, 2:8], first)
    np.testing.assert_array_equal(strip[2:6, 10:16], second)
    assert np.all(strip[:, 8:10] == 255)


def test_strip_labels_add_a_text_band_above_the_images():
    strip = fio.make_strip([IMAGE, IMAGE], labels=["target", "alpha=1"], pad=2)
    band = strip.shape[0] - IMAGE.shape[0] - 4
    assert band > 0
    np.testing.assert_array_equal(strip[2 + band : 2 + band + 4, 2:8], IMAGE)
    assert np.any(strip[2 : 2 + band, 2:8] < 255)  # some ink was drawn


def test_strip_rejects_images_of_different_shapes():
    expected = r"images\[1\] has shape \[4, 4, 3\], expected \[4, 6, 3\]"
    with pytest.raises(ValueError, match=expected):
        fio.make_strip([IMAGE, np.zeros((4, 4, 3), np.uint8)])
