"""Specification of flowjax.evaluation.identity (FaceNet identity embeddings)
and flowjax.evaluation.facenet_weights (the network and its checked weights).

All networks here are randomly initialised (no download); a few images only,
since InceptionResnetV1 takes ~0.1 s per 160x160 image on a CPU.
"""

import hashlib
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from flowjax.evaluation import facenet_weights, identity
from flowjax.evaluation.identity import FaceEmbedder, FixedCrop


def _faces(n: int, size: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 RGB images (smooth so crops keep their content)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    smooth = [Image.fromarray(c).resize((size, size), Image.Resampling.BICUBIC) for c in coarse]
    return np.stack([np.asarray(image) for image in smooth])


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder.with_random_weights(seed=0, crop="fixed", device="cpu", batch_size=32)


@pytest.fixture(scope="module")
def random_state_dict(embedder) -> dict:
    return {k: v.clone() for k, v in embedder.network.state_dict().items()}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# --- import without torchvision -------------------------------------------------


def test_import_works_with_broken_torchvision_and_reports_the_real_mtcnn_error():
    # A fresh interpreter: nothing imported by other tests can hide an import.
    result = _run_python(
        """
        import json, sys, numpy as np
        import flowjax.evaluation.identity as identity
        clean = "torchvision" not in sys.modules and "facenet_pytorch" not in sys.modules
        e = identity.FaceEmbedder.with_random_weights(crop="fixed", device="cpu")
        shape = e.embed(np.zeros((1, 64, 64, 3), np.uint8)).shape
        clean = clean and "torchvision" not in sys.modules
        reason = identity.mtcnn_unavailable_reason()
        try:  # the ground truth: what importing facenet_pytorch itself raises
            import facenet_pytorch
            truth = None
        except Exception as error:
            truth = f"{type(error).__name__}: {error}"
        print(json.dumps([clean, list(shape), reason, truth]))
        """
    )
    assert result.returncode == 0, result.stderr
    clean, shape, reason, truth = json.loads(result.stdout.strip().splitlines()[-1])
    assert clean, "importing or using the embedder imported torchvision"
    assert shape == [1, 512]
    # On this machine and CI: "RuntimeError: operator torchvision::nms does not exist".
    assert reason == truth


# --- crop and standardisation ---------------------------------------------------


def test_fixed_crop_returns_uint8_160_squares():
    crops = identity.fixed_crop(_faces(2, size=256))
    assert crops.shape == (2, 160, 160, 3) and crops.dtype == np.uint8


def test_fixed_crop_takes_the_centred_square_unresampled_when_it_has_the_target_size():
    images = np.arange(200 * 200 * 3, dtype=np.uint32).reshape(1, 200, 200, 3).astype(np.uint8)
    crops = identity.fixed_crop(images, FixedCrop(0.5, 0.5, 0.8), size=160)
    np.testing.assert_array_equal(crops, images[:, 20:180, 20:180])


def test_fixed_crop_side_follows_the_shorter_side_and_centre_rounds_half_up():
    # H=200, W=100: side 0.5 * 100 = 50, top = 0.4 * 200 - 25 = 55, left = 25.
    images = np.random.default_rng(1).integers(0, 256, (1, 200, 100, 3), dtype=np.uint8)
    crops = identity.fixed_crop(images, FixedCrop(0.5, 0.4, 0.5), size=50)
    np.testing.assert_array_equal(crops, images[:, 55:105, 25:75])


def test_fixed_crop_is_shifted_inside_the_image_not_shrunk():
    assert identity.fixed_crop_bounds(100, 100, FixedCrop(0.5, 0.9, 0.6)) == (40, 20, 60)


def test_default_fixed_crop_of_256_image_is_the_documented_box():
    # side round(0.70 * 256) = 179, top = 0.60 * 256 - 89.5 = 64.1 -> 64, left 38.5 -> 39.
    assert identity.fixed_crop_bounds(256, 256) == (64, 39, 179)


def test_fixed_crop_resizes_with_pil_bilinear():
    images = _faces(1, size=256)
    top, left, side = identity.fixed_crop_bounds(256, 256)
    region = Image.fromarray(images[0, top : top + side, left : left + side])
    expected = np.asarray(region.resize((160, 160), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(identity.fixed_crop(images)[0], expected)


def test_standardize_is_fixed_image_standardization():
    x = np.array([0, 127, 128, 255], dtype=np.uint8)
    out = identity.standardize(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-0.99609375, -0.00390625, 0.00390625, 0.99609375])


def test_images_that_are_not_uint8_nhwc_rgb_are_rejected(embedder):
    with pytest.raises(ValueError, match=r"uint8 RGB \[N, H, W, 3\], got float32"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"images\[None\]"):
        embedder.embed(np.zeros((64, 64, 3), np.uint8))


# --- embeddings -------------------------------------------------------------------


def test_embeddings_are_512_d_and_unit_norm(embedder):
    out = embedder.embed(_faces(2))
    assert out.shape == (2, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_an_image_is_at_distance_zero_from_itself(embedder):
    image = _faces(1)
    a, b = embedder.embed(image), embedder.embed(image)
    assert np.linalg.norm(a - b) == 0.0


def test_distance_does_not_depend_on_batch_order(embedder):
    x, y = _faces(2, seed=3)
    ab = embedder.embed(np.stack([x, y]))
    ba = embedder.embed(np.stack([y, x]))
    np.testing.assert_allclose(
        np.linalg.norm(ab[0] - ab[1]), np.linalg.norm(ba[1] - ba[0]), atol=1e-5
    )


def test_batched_embedding_equals_one_by_one(embedder, monkeypatch):
    images = _faces(3, seed=4)
    one_by_one = np.concatenate([embedder.embed(images[i : i + 1]) for i in range(3)])
    monkeypatch.setattr(embedder, "batch_size", 2)  # batches of 2 + 1
    np.testing.assert_allclose(embedder.embed(images), one_by_one, atol=1e-5)


def test_random_weights_depend_only_on_the_seed_and_leave_the_global_rng_alone(embedder):
    state = torch.random.get_rng_state()
    again = FaceEmbedder.with_random_weights(seed=0, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    ours, theirs = again.network.state_dict(), embedder.network.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert again.weights_provenance.name == "random" and again.weights_provenance.seed == 0


# --- crop selection ----------------------------------------------------------------

BROKEN = "RuntimeError: operator torchvision::nms does not exist"


def test_crop_auto_falls_back_to_fixed_and_records_why(monkeypatch):
    monkeypatch.setattr(identity, "mtcnn_unavailable_reason", lambda: BROKEN)
    e = FaceEmbedder.with_random_weights(crop="auto", device="cpu")
    assert e.crop_method == "fixed"
    assert e.provenance()["crop"]["mtcnn_unavailable_reason"] == BROKEN
    json.dumps(e.provenance())  # goes into the manifest as is


def test_crop_mtcnn_without_mtcnn_fails_first_naming_the_cause(monkeypatch, tmp_path):
    monkeypatch.setattr(identity, "mtcnn_unavailable_reason", lambda: BROKEN)
    # Raised before the (here missing) weights file is looked at.
    with pytest.raises(RuntimeError, match=r"torchvision::nms.*crop='fixed'"):
        FaceEmbedder("vggface2", tmp_path / "absent.pt", crop="mtcnn", device="cpu")


def test_mtcnn_crops_are_used_and_misses_fall_back_to_the_fixed_crop(monkeypatch):
    face = torch.full((3, 160, 160), 200.0)

    class FakeMTCNN:  # a face in every image except the second
        def __call__(self, pil_images):
            assert all(isinstance(im, Image.Image) for im in pil_images)
            return [None if i == 1 else face for i in range(len(pil_images))]

    monkeypatch.setattr(identity, "mtcnn_unavailable_reason", lambda: None)
    monkeypatch.setattr(identity, "_make_mtcnn", lambda margin, device: FakeMTCNN())
    e = FaceEmbedder.with_random_weights(crop="auto", device="cpu")
    images = _faces(3, size=256)
    crops, methods = e.crop(images)
    assert e.crop_method == "mtcnn"
    assert methods == ["mtcnn", "fixed_no_face", "mtcnn"]
    assert np.all(crops[0] == 200) and np.all(crops[2] == 200)
    np.testing.assert_array_equal(crops[1], identity.fixed_crop(images[1:2])[0])


# --- weights files -------------------------------------------------------------------


def test_weights_file_with_matching_checksum_loads_those_weights(
    tmp_path, embedder, random_state_dict
):
    state = dict(random_state_dict)
    # Published files also carry the classifier over the 8631 VGGFace2 identities.
    state["logits.weight"] = torch.zeros(8631, 512)
    state["logits.bias"] = torch.zeros(8631)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    sha = _sha256(path)
    loaded = FaceEmbedder(
        "vggface2", path, crop="fixed", device="cpu", expected_sha256=sha
    )
    image = _faces(1, seed=6)
    np.testing.assert_array_equal(loaded.embed(image), embedder.embed(image))
    p = loaded.provenance()["weights"]
    assert (p["path"], p["sha256"], p["verified"]) == (str(path), sha, True)


def test_checksum_mismatch_names_file_expected_and_actual(tmp_path):
    path = tmp_path / "20180402-114759-vggface2.pt"
    path.write_bytes(b"not the published weights")
    with pytest.raises(ValueError) as info:
        FaceEmbedder("vggface2", path, crop="fixed", device="cpu")
    message = str(info.value)
    assert str(path) in message
    assert facenet_weights.PRETRAINED["vggface2"].sha256 in message
    assert _sha256(path) in message


def test_missing_weights_file_says_where_to_put_which_file_from_where(tmp_path):
    path = tmp_path / "weights" / "facenet.pt"
    with pytest.raises(FileNotFoundError) as info:
        FaceEmbedder("casia-webface", path, crop="fixed", device="cpu")
    message = str(info.value)
    assert str(path) in message
    assert "20180408-102900-casia-webface.pt" in message
    assert facenet_weights.PRETRAINED["casia-webface"].url in message


def test_without_weights_path_the_facenet_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "checkpoints" / "20180402-114759-vggface2.pt"
    assert facenet_weights.default_weights_path("vggface2") == expected
    with pytest.raises(FileNotFoundError, match=str(expected)):
        FaceEmbedder(crop="fixed", device="cpu", download=False)


def test_weights_without_known_checksum_record_their_actual_sha256(tmp_path, random_state_dict):
    assert facenet_weights.PRETRAINED["casia-webface"].sha256 is None
    path = tmp_path / "casia.pt"
    torch.save(random_state_dict, path)  # no logits layer: accepted
    _, w = facenet_weights.load_weights_file(path, "casia-webface")
    assert (w.sha256, w.expected_sha256, w.verified) == (_sha256(path), None, False)


class _TouchesAFileWhenUnpickled:
    """A pickle payload with a visible side effect: unpickling it creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_weights_file_is_loaded_without_unpickling_arbitrary_objects(tmp_path):
    # torch.load(weights_only=True) must refuse the payload before running it,
    # even when the caller vouches for the file's checksum.
    marker = tmp_path / "unpickled"
    path = tmp_path / "w.pt"
    torch.save({"payload": _TouchesAFileWhenUnpickled(marker)}, path)
    with pytest.raises(ValueError, match=r"could not be loaded as a torch state dict"):
        facenet_weights.load_weights_file(path, "vggface2", expected_sha256=_sha256(path))
    assert not marker.exists(), "loading the weights file executed pickled code"


def test_logits_layer_of_the_other_variant_is_rejected(tmp_path):
    path = tmp_path / "casia.pt"
    torch.save({"logits.weight": torch.zeros(10575, 512)}, path)
    with pytest.raises(ValueError, match=r"\(10575, 512\).*vggface2 weights classify 8631"):
        facenet_weights.load_weights_file(path, "vggface2", expected_sha256=_sha256(path))


def test_state_dict_with_wrong_keys_names_them(tmp_path, random_state_dict):
    state = dict(random_state_dict)
    del state["last_bn.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    expected = r"missing parameters \['last_bn.weight'\].*'extra.weight'"
    with pytest.raises(ValueError, match=expected):
        FaceEmbedder("casia-webface", path, crop="fixed", device="cpu")


# ---- the dlib backend (its real-photo tests are in test_real_photos.py) --------------


def test_dlib_backend_without_the_extra_says_how_to_install_it(monkeypatch):
    from flowjax.evaluation import scorers
    from flowjax.faces import dlib_models

    monkeypatch.setattr(dlib_models, "dlib_import_error",
                        lambda: "dlib does not import (ModuleNotFoundError); "
                                + dlib_models.INSTALL_HINT)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[faces\]'"):
        scorers.build_identity_embedder({"backend": "dlib"})


@pytest.mark.parametrize("option", [{"crop": "mtcnn"}, {"num_jitters": -1}, {"upsample": 1.5}])
def test_dlib_backend_rejects_invalid_options_before_loading_models(monkeypatch, option):
    from flowjax.evaluation.dlib_identity import DlibEmbedder
    from flowjax.faces import dlib_models

    monkeypatch.setattr(dlib_models, "require_dlib", lambda: pytest.fail("models loaded"))
    with pytest.raises(ValueError, match=next(iter(option))):
        DlibEmbedder(**option)
