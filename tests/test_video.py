"""Specification of flowjax.io.video: labelled MP4s written atomically, read back checked."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from flowjax.io import video

pytest.importorskip("av", reason="PyAV is the video backend: pip install -e '.[test]'")


def _frames(n: int = 6, h: int = 32, w: int = 48) -> np.ndarray:
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, None, :, None]
    shade = (np.arange(n, dtype=np.float32) * 20)[:, None, None, None]
    return np.clip(np.broadcast_to(ramp + shade, (n, h, w, 3)), 0, 255).astype(np.uint8)


def test_a_written_video_reads_back_with_its_frame_count_size_fps_and_synthetic_label(tmp_path):
    frames = _frames()
    path = tmp_path / "clip.mp4"
    video.write_video(path, frames, fps=12, provenance={"target": "id00", "alpha": 1.0})
    back = video.read_video(path)
    assert back.frames.shape == frames.shape and back.frames.dtype == np.uint8
    assert back.fps == 12.0
    assert back.synthetic
    assert "SYNTHETIC" in back.metadata["title"] and "SYNTHETIC" in back.metadata["comment"]
    assert back.provenance == {"target": "id00", "alpha": 1.0}
    # H.264 is lossy, but at crf 18 a smooth ramp comes back within a few levels.
    assert np.abs(back.frames.astype(int) - frames).mean() < 3


def test_a_copy_of_an_input_is_labelled_not_generated(tmp_path):
    path = tmp_path / "input.mp4"
    video.write_video(path, _frames(), generated=False)
    back = video.read_video(path)
    assert not back.synthetic and back.metadata["synthetic"] == "false"


def test_the_synthetic_label_cannot_be_overridden_by_provenance():
    with pytest.raises(ValueError, match="reserved"):
        video.video_metadata({"Title": "a real recording"})


def test_writing_is_atomic_and_refuses_an_existing_file(tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        video.write_video(path, _frames(n=3))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left behind


def test_a_write_that_fails_at_the_end_leaves_neither_the_file_nor_a_temp_file(tmp_path,
                                                                             monkeypatch):
    from flowjax.io import files

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(files.os, "link", fail)  # putting the complete file in place fails
    with pytest.raises(OSError):
        video.write_video(tmp_path / "clip.mp4", _frames())
    assert not os.listdir(tmp_path)


def test_bad_frames_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match="even height and width"):
        video.write_video(path, _frames(h=31))
    with pytest.raises(ValueError, match="uint8 RGB"):
        video.write_video(path, _frames().astype(np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        video.write_video(path, np.zeros((0, 8, 8, 3), np.uint8))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50, None],
                         ids=["empty", "garbage", "truncated"])
def test_a_corrupt_video_is_one_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.mp4"
    if content is None:  # the first third of a real MP4
        data = video.encode_video(_frames())
        content = data[: len(data) // 3]
    path.write_bytes(content)
    with pytest.raises(video.VideoDataError, match="broken.mp4"):
        video.read_video(path)


def test_a_missing_video_is_named(tmp_path):
    with pytest.raises(video.VideoDataError, match="no such video file"):
        video.read_video(tmp_path / "nothing.mp4")


def test_the_visible_mark_darkens_only_a_small_bottom_left_box_and_writes_white_text():
    frames = np.full((2, 256, 256, 3), 128, np.uint8)
    marked = video.burn_mark(frames)
    changed = np.argwhere((marked != frames).any(axis=(0, -1)))
    (top, left), (bottom, right) = changed.min(0), changed.max(0)
    assert bottom == 255 and left == 0  # the corner
    assert (bottom - top + 1) * (right + 1) < 0.05 * 256 * 256  # a small mark
    assert (marked[:, top:, :right + 1] > 200).any()  # white letters on the dark box
    assert np.array_equal(frames, np.full_like(frames, 128))  # the input is not modified


def test_upscale_repeats_pixels():
    frames = _frames(n=1, h=2, w=2)
    big = video.upscale(frames, 3)
    assert big.shape == (1, 6, 6, 3)
    assert np.array_equal(big[:, ::3, ::3], frames)
