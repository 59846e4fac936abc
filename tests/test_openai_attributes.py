"""Specification of flowjax.faces.openai_attributes: loading OpenAI's z_manipulate.npy."""

import json

import numpy as np
import pytest

from flowjax.transfer import latents
from flowjax.faces.openai_attributes import (
    CELEBA_ATTRIBUTES,
    OPENAI_FLAT_DIM,
    AttributeVectors,
    load_attribute_vectors,
)

N = len(CELEBA_ATTRIBUTES)
SHAPES = latents.latent_shapes(256, 6)  # OpenAI's CelebA-HQ model


@pytest.fixture(scope="module")
def openai_layout_file(tmp_path_factory):
    """Full-size fixture: entry [row, j] = row * D + j, exact in float32 (< 2**24)."""
    values = np.arange(N * OPENAI_FLAT_DIM, dtype=np.float32).reshape(N, OPENAI_FLAT_DIM)
    path = tmp_path_factory.mktemp("attributes") / "z_manipulate.npy"
    np.save(path, values)
    return path


def encoded(row, level, h, w, c):
    """The fixture's value for one latent entry, written out from OpenAI's layout."""
    offsets = [0, 98_304, 147_456, 172_032, 184_320, 190_464]
    _, width, channels = SHAPES[level]
    return row * OPENAI_FLAT_DIM + offsets[level] + (h * width + w) * channels + c


def small_file(tmp_path, array, name="z_manipulate.npy", allow_pickle=False):
    path = tmp_path / name
    np.save(path, array, allow_pickle=allow_pickle)
    return path


def test_celeba_attribute_order_is_standard():
    assert len(CELEBA_ATTRIBUTES) == 40
    assert CELEBA_ATTRIBUTES[:3] == ("5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive")
    expected = {
        "Blond_Hair": 9, "Male": 20, "Narrow_Eyes": 23, "No_Beard": 24, "Smiling": 31, "Young": 39
    }
    assert {name: CELEBA_ATTRIBUTES.index(name) for name in expected} == expected


def test_rows_apply_to_the_right_latent_levels_and_positions(openai_layout_file):
    vectors = load_attribute_vectors(openai_layout_file)
    smiling = latents.unflatten(vectors.get("Smiling"), SHAPES)
    assert [level.shape for level in smiling] == SHAPES
    positions = [(127, 5, 4), (63, 1, 11), (31, 2, 20), (2, 3, 47), (7, 7, 95), (3, 1, 383)]
    for level, (h, w, c) in enumerate(positions):
        assert smiling[level][h, w, c] == encoded(31, level, h, w, c)


def test_without_demo_edits_rows_are_unchanged(openai_layout_file):
    vectors = load_attribute_vectors(openai_layout_file)
    assert vectors.names == CELEBA_ATTRIBUTES and vectors.edits == ()
    np.testing.assert_array_equal(vectors.vectors, np.load(openai_layout_file))


def test_demo_edits_negate_and_rename_beard_and_age(openai_layout_file):
    raw = np.load(openai_layout_file)
    vectors = load_attribute_vectors(openai_layout_file, demo_edits=True)
    np.testing.assert_array_equal(vectors.get("Beard"), -raw[24])
    np.testing.assert_array_equal(vectors.get("Age"), -raw[39])
    assert vectors.names[24] == "Beard" and vectors.names[39] == "Age"


def test_demo_edits_scale_narrow_eyes_by_1_2(openai_layout_file):
    raw = np.load(openai_layout_file)
    vectors = load_attribute_vectors(openai_layout_file, demo_edits=True)
    np.testing.assert_array_equal(vectors.get("Narrow_Eyes"), np.float32(1.2) * raw[23])


def test_demo_edits_leave_other_rows_alone(openai_layout_file):
    raw = np.load(openai_layout_file)
    vectors = load_attribute_vectors(openai_layout_file, demo_edits=True)
    untouched = [i for i in range(N) if i not in (23, 24, 39)]
    np.testing.assert_array_equal(vectors.vectors[untouched], raw[untouched])


def test_demo_edits_are_recorded_for_the_manifest(openai_layout_file):
    vectors = load_attribute_vectors(openai_layout_file, demo_edits=True)
    record = json.loads(json.dumps(vectors.describe()))
    assert record["source"] == str(openai_layout_file) and record["shape"] == [40, OPENAI_FLAT_DIM]
    assert [(e["original_name"], e["name"], e["factor"]) for e in record["edits"]] == [
        ("No_Beard", "Beard", -1.0),
        ("Young", "Age", -1.0),
        ("Narrow_Eyes", "Narrow_Eyes", 1.2),
    ]


def test_vectors_are_read_only(tmp_path):
    path = small_file(tmp_path, np.ones((N, 4), np.float32))
    vectors = load_attribute_vectors(path, expected_dim=4)
    with pytest.raises(ValueError, match="read-only"):
        vectors.get("Smiling")[0] = 5.0


def test_lookup_forgives_case_and_spaces(tmp_path):
    path = small_file(tmp_path, np.zeros((N, 2), np.float32))
    vectors = load_attribute_vectors(path, expected_dim=2)
    assert vectors.index("narrow eyes") == 23 and vectors.index("BLOND-HAIR") == 9


def test_unknown_name_lists_close_names(tmp_path):
    path = small_file(tmp_path, np.zeros((N, 2), np.float32))
    vectors = load_attribute_vectors(path, expected_dim=2)
    with pytest.raises(KeyError, match=r"'Blonde_Hair'.*Close names: \['Blond_Hair'"):
        vectors.get("Blonde_Hair")


def test_renamed_name_points_to_its_new_name(tmp_path):
    path = small_file(tmp_path, np.zeros((N, 2), np.float32))
    vectors = load_attribute_vectors(path, demo_edits=True, expected_dim=2)
    with pytest.raises(KeyError, match="'No_Beard' was renamed 'Beard'"):
        vectors.get("No_Beard")


def test_wrong_shape_is_rejected_naming_the_file(tmp_path):
    path = small_file(tmp_path, np.zeros((N, 10), np.float32), "short.npy")
    expected = r"short\.npy: expected shape \(40, 196608\).*got \(40, 10\)"
    with pytest.raises(ValueError, match=expected):
        load_attribute_vectors(path)


def test_wrong_row_count_is_rejected_even_without_expected_dim(tmp_path):
    path = small_file(tmp_path, np.zeros((39, 10), np.float32), "rows.npy")
    with pytest.raises(ValueError, match=r"rows\.npy: expected shape \(40, 'D'\).*got \(39, 10\)"):
        load_attribute_vectors(path, expected_dim=None)


def test_pickled_object_array_is_rejected_naming_the_file(tmp_path):
    objects = np.empty((N, 2), dtype=object)
    path = small_file(tmp_path, objects, "pickled.npy", allow_pickle=True)
    with pytest.raises(ValueError, match=r"pickled\.npy: not a plain numeric \.npy array"):
        load_attribute_vectors(path, expected_dim=2)


def test_nan_is_rejected_naming_the_file_and_row(tmp_path):
    array = np.zeros((N, 8), np.float32)
    array[31, 5] = np.nan
    path = small_file(tmp_path, array, "nan.npy")
    with pytest.raises(ValueError, match=r"nan\.npy: 1 non-finite values.*\['Smiling'\]"):
        load_attribute_vectors(path, expected_dim=8)


def test_non_float32_is_rejected_naming_the_file(tmp_path):
    path = small_file(tmp_path, np.zeros((N, 8), np.float64), "double.npy")
    with pytest.raises(ValueError, match=r"double\.npy: expected dtype float32, got float64"):
        load_attribute_vectors(path, expected_dim=8)


def test_missing_file_is_reported_with_where_to_get_it(tmp_path):
    expected = r"absent\.npy: no such file.*glow-demo/z_manipulate\.npy"
    with pytest.raises(FileNotFoundError, match=expected):
        load_attribute_vectors(tmp_path / "absent.npy")


def test_names_and_vectors_must_agree():
    with pytest.raises(ValueError, match=r"2 names need vectors of shape \[2, D\]"):
        AttributeVectors(names=("a", "b"), vectors=np.zeros((3, 4), np.float32))
