"""Specification of flowjax.io.images (loading, conversion records and validation) and of
flowjax.faces.identity_folders, which groups the same loading by identity."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowjax import io as fio
from flowjax.faces import identity_folders
from flowjax.io.images import ImageDataError

RNG = np.random.default_rng(0)


def _rgb(h: int = 4, w: int = 4) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, **kwargs)
    return path


def _png16(path: Path, samples: np.ndarray, color_type: int) -> Path:
    """A 16-bit PNG written by hand: Pillow cannot write 16-bit colour PNGs."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


# --- modes and their recorded conversions ---------------------------------


def test_rgb_png_loads_unchanged_with_no_conversions(tmp_path):
    pixels = _rgb()
    image, record = fio.load_image(_save(tmp_path / "a.png", pixels))
    assert image.dtype == np.uint8 and image.shape == (4, 4, 3)
    np.testing.assert_array_equal(image, pixels)
    assert record.conversions == () and record.original_mode == "RGB"


def test_rgba_is_composited_over_white_by_default(tmp_path):
    rgba = np.array([[[0, 0, 0, 0], [100, 50, 200, 255], [0, 0, 0, 128]]], np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(image[0, 1], [100, 50, 200])
    assert np.all(np.abs(image[0, 2].astype(int) - 127) <= 1)
    assert record.original_mode == "RGBA"
    assert record.conversions == (
        "alpha composited over background (255, 255, 255) (alpha not opaque)",
    )


def test_rgba_composite_uses_the_configured_background(tmp_path):
    rgba = np.zeros((1, 1, 4), np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", rgba), background=(0, 128, 255))
    np.testing.assert_array_equal(image[0, 0], [0, 128, 255])
    assert "(0, 128, 255)" in record.conversions[0]


def test_rgba_drop_keeps_the_stored_colour_under_transparent_pixels(tmp_path):
    rgba = np.array([[[10, 20, 30, 0]]], np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", rgba), alpha="drop")
    np.testing.assert_array_equal(image[0, 0], [10, 20, 30])
    assert record.conversions == ("alpha dropped (alpha not opaque)",)


def test_fully_opaque_alpha_is_recorded_as_leaving_pixels_unchanged(tmp_path):
    rgb = _rgb()
    rgba = np.concatenate([rgb, np.full((4, 4, 1), 255, np.uint8)], axis=-1)
    image, record = fio.load_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(image, rgb)
    assert "alpha fully opaque, pixels unchanged" in record.conversions[0]


def test_la_is_expanded_then_composited(tmp_path):
    la = np.array([[[90, 255], [90, 0]]], np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", la))
    np.testing.assert_array_equal(image[0], [[90, 90, 90], [255, 255, 255]])
    assert record.original_mode == "LA"
    assert record.conversions[0] == "grayscale LA expanded to RGBA"
    assert record.conversions[1].startswith("alpha composited over background")


def test_grayscale_l_is_expanded_to_rgb(tmp_path):
    gray = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", gray))
    np.testing.assert_array_equal(image, np.repeat(gray[..., None], 3, axis=-1))
    assert record.conversions == ("grayscale L expanded to RGB",)


def test_bilevel_1_maps_to_black_and_white(tmp_path):
    bits = np.array([[0, 255]], np.uint8)
    image, record = fio.load_image(_save(tmp_path / "a.png", bits, mode="1"))
    np.testing.assert_array_equal(image[0], [[0, 0, 0], [255, 255, 255]])
    assert record.original_mode == "1"
    assert record.conversions == ("bilevel 1 expanded to RGB (0 -> 0, 1 -> 255)",)


def test_palette_is_looked_up(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    palette_image.putpixel((1, 0), 1)
    palette_image.save(tmp_path / "a.png")
    image, record = fio.load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image[0], [[0, 0, 0], [200, 10, 30]])
    assert record.conversions == ("palette P expanded to RGB",)


def test_palette_transparency_is_composited(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    palette_image.putpixel((1, 0), 1)
    palette_image.save(tmp_path / "a.png", transparency=0)
    image, record = fio.load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image[0], [[255, 255, 255], [200, 10, 30]])
    assert record.conversions[0] == "palette P expanded to RGBA"
    assert record.conversions[1].startswith("alpha composited")


def test_16bit_grayscale_is_scaled_by_keeping_the_high_byte(tmp_path):
    samples = np.array([[0, 200, 40000, 65535]], np.uint16)  # 200: x >> 8 = 0, round(x / 257) = 1
    image, record = fio.load_image(_png16(tmp_path / "a.png", samples, color_type=0))
    np.testing.assert_array_equal(image[0, :, 0], samples[0] >> 8)
    assert record.original_mode == "I;16" and record.bit_depth == 16
    assert record.conversions == (
        "16-bit grayscale I;16 scaled to 8-bit by x >> 8",
        "grayscale L expanded to RGB",
    )


def test_16bit_rgb_is_scaled_by_keeping_the_high_byte(tmp_path):
    samples = np.array([[[0, 257, 65535], [300, 40000, 65280]]], np.uint16)
    image, record = fio.load_image(_png16(tmp_path / "a.png", samples, color_type=2))
    np.testing.assert_array_equal(image, samples >> 8)
    assert record.bit_depth == 16
    assert record.conversions == (
        "16-bit RGB;16B samples scaled to 8-bit by x >> 8 (decoded as RGB)",
    )


def test_jpeg_with_uppercase_extension_loads(tmp_path):
    image, record = fio.load_image(_save(tmp_path / "a.JPG", _rgb(8, 8)))
    assert image.shape == (8, 8, 3) and record.format == "JPEG"


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(tmp_path / "a.jpg", _rgb(8, 16), exif=exif.tobytes())
    image, record = fio.load_image(path)
    assert image.shape == (16, 8, 3)
    assert record.original_height == 8 and record.original_width == 16
    assert record.conversions == ("rotated/flipped per EXIF Orientation=6",)


def test_cmyk_is_rejected_with_advice(tmp_path):
    path = _save(tmp_path / "a.jpg", _rgb(), mode="CMYK")
    expected = r"a\.jpg: unsupported image mode 'CMYK'.*colour-managed"
    with pytest.raises(ImageDataError, match=expected):
        fio.load_image(path)


def test_record_holds_file_sha256_format_and_original_size(tmp_path):
    path = _save(tmp_path / "a.png", _rgb(3, 5))
    _, record = fio.load_image(path)
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (record.path, record.format) == (str(path), "PNG")
    assert (record.original_height, record.original_width, record.bit_depth) == (3, 5, 8)


def test_manifest_entries_are_json_ready(tmp_path):
    _save(tmp_path / "a.png", np.zeros((2, 2, 4), np.uint8))
    entries = fio.load_images(tmp_path).manifest_entries()
    assert json.loads(json.dumps(entries)) == entries
    assert entries[0]["conversions"][0].startswith("alpha composited")


# --- validation ------------------------------------------------------------


def test_truncated_png_is_rejected_naming_the_file(tmp_path):
    path = _save(tmp_path / "bad.png", _rgb(32, 32))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageDataError, match=r"bad\.png: cannot decode as PNG or JPEG.*corrupt"):
        fio.load_images(tmp_path)


def test_non_image_bytes_with_a_png_name_are_rejected(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageDataError, match=r"notes\.png: cannot decode"):
        fio.load_image(tmp_path / "notes.png")


def test_other_formats_named_png_are_rejected(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png", format="GIF")
    with pytest.raises(ImageDataError, match=r"a\.png: cannot decode as PNG or JPEG"):
        fio.load_image(tmp_path / "a.png")


def test_empty_folder_is_rejected_naming_the_folder(tmp_path):
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "README.txt").write_text("x")
    with pytest.raises(ImageDataError, match=r"faces has no images.*README\.txt"):
        fio.load_images(tmp_path / "faces")


def test_missing_folder_is_rejected_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist"):
        fio.load_images(tmp_path / "nowhere")


def test_wrong_size_is_rejected_naming_file_expected_and_actual(tmp_path):
    _save(tmp_path / "ok.png", _rgb(8, 8))
    _save(tmp_path / "small.png", _rgb(4, 4))
    expected = r"small\.png: size 4x4 \(HxW\), expected 8x8.*resize="
    with pytest.raises(ImageDataError, match=expected):
        fio.load_images(tmp_path, size=8)


def test_resize_uses_the_named_filter_and_records_it(tmp_path):
    pixels = _rgb(4, 4)
    image, record = fio.load_image(_save(tmp_path / "a.png", pixels), size=8, resize="bicubic")
    expected = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(image, expected)
    assert record.conversions == ("resized 4x4 -> 8x8 (HxW) with bicubic",)


def test_non_square_image_is_rejected_for_a_square_size_even_with_resize(tmp_path):
    path = _save(tmp_path / "wide.png", _rgb(4, 8))
    with pytest.raises(ImageDataError, match=r"wide\.png: size 4x8.*square size 4x4.*aspect ratio"):
        fio.load_image(path, size=4, resize="lanczos")


def test_mixed_sizes_without_a_size_are_rejected(tmp_path):
    _save(tmp_path / "a.png", _rgb(4, 4))
    _save(tmp_path / "b.png", _rgb(6, 6))
    with pytest.raises(ImageDataError, match=r"b\.png: size 6x6.*differs from.*a\.png"):
        fio.load_images(tmp_path)


def test_invalid_options_are_rejected_before_any_file_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"alpha must be one of"):
        fio.load_images(tmp_path / "nowhere", alpha="premultiply")
    with pytest.raises(ValueError, match=r"resize='lanczos' needs a target size"):
        fio.load_images(tmp_path / "nowhere", resize="lanczos")


# --- order and grouping ----------------------------------------------------


def test_folder_order_is_sorted_by_name_with_extensions_case_insensitive(tmp_path):
    for name in ["c.PNG", "a.jpeg", "b.png"]:
        _save(tmp_path / name, _rgb())
    _save(tmp_path / "._b.png", _rgb())  # macOS resource-fork file: skipped
    (tmp_path / "notes.txt").write_text("skipped")
    image_set = fio.load_images(tmp_path)
    assert [p.name for p in image_set.paths] == ["a.jpeg", "b.png", "c.PNG"]
    assert image_set.images.shape == (3, 4, 4, 3)


def test_explicit_lists_keep_the_callers_order(tmp_path):
    first, second = _rgb(), _rgb()
    b = _save(tmp_path / "b.png", first)
    a = _save(tmp_path / "a.png", second)
    image_set = fio.load_images([b, a])
    assert image_set.paths == (b, a)
    np.testing.assert_array_equal(image_set.images[0], first)


def test_identities_from_folder_layout_are_sorted_by_name(tmp_path):
    for identity in ["zoe", "adam"]:
        _save(tmp_path / identity / "1.png", _rgb())
        _save(tmp_path / identity / "2.png", _rgb())
    sets = identity_folders.load_identities(tmp_path)
    assert list(sets) == ["adam", "zoe"]
    assert sets["zoe"].images.shape == (2, 4, 4, 3)


def test_identities_from_a_mapping_resolve_relative_to_base_dir(tmp_path):
    _save(tmp_path / "x" / "1.png", _rgb())
    _save(tmp_path / "y.png", _rgb())
    sets = identity_folders.load_identities({"p2": "x", "p1": ["y.png", "x/1.png"]}, base_dir=tmp_path)
    assert list(sets) == ["p2", "p1"]
    assert [p.name for p in sets["p1"].paths] == ["y.png", "1.png"]


def test_empty_identity_folder_is_rejected_naming_it(tmp_path):
    _save(tmp_path / "adam" / "1.png", _rgb())
    (tmp_path / "eve").mkdir()
    with pytest.raises(ImageDataError, match=r"eve has no images"):
        identity_folders.load_identities(tmp_path)


def test_image_outside_identity_folders_is_rejected(tmp_path):
    _save(tmp_path / "adam" / "1.png", _rgb())
    _save(tmp_path / "loose.png", _rgb())
    with pytest.raises(ImageDataError, match=r"loose\.png lies directly in the identity root"):
        identity_folders.load_identities(tmp_path)


def test_identities_must_share_one_size(tmp_path):
    _save(tmp_path / "adam" / "1.png", _rgb(4, 4))
    _save(tmp_path / "eve" / "1.png", _rgb(8, 8))
    with pytest.raises(ImageDataError, match=r"identity 'eve' has images of size 8x8"):
        identity_folders.load_identities(tmp_path)
