"""Specification of flowjax.faces.align (OpenAI demo face alignment without OpenCV) and of
flowjax.faces.detectors (MTCNN, detector specs)."""

import hashlib
import json
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from flowjax.faces import align, detectors, identity_folders

TX, TY = align.LEFT_EYE_TEMPLATE
# Half a pixel is the size of a pixel-convention bug; real errors are ~0.01 px.
CENTROID_TOLERANCE_PX = 0.1


def template_eyes(size):
    return np.array([[TX * size, TY * size], [(1 - TX) * size, TY * size]])


def random_similarity(rng, scale):
    """A 2x3 map from template space into a 640x500 source image."""
    theta = rng.uniform(-np.pi, np.pi)
    linear = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    shift = np.array([320.0, 250.0]) + rng.uniform(-15, 15, size=2) - linear @ [128.0, 128.0]
    return np.concatenate([linear, shift[:, None]], axis=1)


def draw_dots(height, width, centers, sigma):
    """uint8 RGB image with a Gaussian dot of width ``sigma`` at each (x, y)."""
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    dots = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in centers)
    gray = np.round(255 * np.clip(dots, 0, 1)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def dot_centroid(image, near, radius=8):
    x0, y0 = (int(round(v)) for v in near)
    window = image[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1, 0]
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    weights = window.astype(np.float64)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


def fake_detector(boxes, probs, landmarks, seen=None):
    def detect(image):
        if seen is not None:
            seen.append(image.shape)
        return np.asarray(boxes), np.asarray(probs), np.asarray(landmarks)

    return detect


# ---------------------------------------------------------------- geometry


def test_template_matches_openai_demo_numbers_at_256():
    matrix = align.similarity_from_eyes([10.0, 40.0], [90.0, 20.0], size=256)
    left, right = align.transform_points(matrix, [[10.0, 40.0], [90.0, 20.0]])
    assert right[0] - left[0] == pytest.approx(66.048)
    assert (left + right) / 2 == pytest.approx([128.0, 122.88])
    assert left[1] == pytest.approx(right[1])


@pytest.mark.parametrize("seed", range(5))
def test_similarity_inverts_a_known_random_similarity(seed):
    rng = np.random.default_rng(seed)
    placed = random_similarity(rng, scale=rng.uniform(0.3, 4.0))
    eyes = align.transform_points(placed, template_eyes(256))
    matrix = align.similarity_from_eyes(*eyes, size=256)
    # Any template point (eyes, nose, mouth...) comes back where it started.
    points = rng.uniform(0, 256, size=(10, 2))
    round_trip = align.transform_points(matrix, align.transform_points(placed, points))
    np.testing.assert_allclose(round_trip, points, atol=1e-9)


def test_upside_down_face_is_turned_upright():
    # The subject's right eye is image-left in an upright face; here it is on the right.
    matrix = align.similarity_from_eyes([200.0, 100.0], [100.0, 100.0], size=256)
    scale = (1 - 2 * TX) * 256 / 100.0
    np.testing.assert_allclose(matrix[:, :2], -scale * np.eye(2), atol=1e-12)


def test_geometry_scales_with_output_size():
    eyes = np.array([[50.0, 60.0], [110.0, 75.0]])
    for size in (64, 128, 256, 1024):
        matrix = align.similarity_from_eyes(*eyes, size=size)
        mapped = align.transform_points(matrix, eyes)
        np.testing.assert_allclose(mapped, template_eyes(size), atol=1e-9)


def test_transform_points_round_trips_through_invert_affine():
    matrix = align.similarity_from_eyes([12.0, 30.0], [70.0, 44.0])
    points = np.random.default_rng(0).uniform(-50, 300, size=(7, 2))
    inverse = align.invert_affine(matrix)
    back = align.transform_points(inverse, align.transform_points(matrix, points))
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_five_mtcnn_landmarks_use_the_first_two_as_eyes():
    points = np.array([[30.0, 40.0], [70.0, 42.0], [50.0, 60.0], [35.0, 80.0], [65.0, 81.0]])
    left, right = align.eye_centers(points)
    np.testing.assert_array_equal(left, points[0])
    np.testing.assert_array_equal(right, points[1])


def test_68_dlib_landmarks_use_the_eye_contour_means():
    points = np.zeros((68, 2))
    points[36:42] = [[10.0 + i, 20.0] for i in range(6)]
    points[42:48] = [[50.0 + i, 22.0] for i in range(6)]
    left, right = align.eye_centers(points)
    np.testing.assert_allclose(left, [12.5, 20.0])
    np.testing.assert_allclose(right, [52.5, 22.0])


def test_landmarks_of_unknown_layout_are_rejected():
    with pytest.raises(ValueError, match=r"\[5, 2\] \(MTCNN\).*got shape \(3, 2\)"):
        align.eye_centers(np.zeros((3, 2)))


def test_coincident_eyes_are_rejected():
    with pytest.raises(ValueError, match="eyes coincide"):
        align.similarity_from_eyes([5.0, 5.0], [5.0, 5.0])


# ---------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    "scale, size, antialias",
    [
        (0.5, 256, True),  # face enlarged 2x
        (1.3, 256, True),
        (3.7, 256, True),  # shrunk 3.7x: box reduction by 3, then the warp
        (3.7, 256, False),
        (1.3, 128, True),
    ],
)
def test_aligned_image_puts_the_eye_dots_on_the_template(scale, size, antialias):
    rng = np.random.default_rng(int(scale * 10) + size)
    placed = random_similarity(rng, scale=scale * 256 / size)
    eyes = align.transform_points(placed, template_eyes(size))
    sigma = 2.0 * scale * 256 / size  # ~2 px dots in the output
    photo = draw_dots(500, 640, eyes, sigma)
    aligned = align.align_image(photo, eyes, size=size, antialias=antialias)
    assert aligned.shape == (size, size, 3) and aligned.dtype == np.uint8
    for found, wanted in ((dot_centroid(aligned, t), t) for t in template_eyes(size)):
        assert np.abs(found - wanted).max() < CENTROID_TOLERANCE_PX, (found, wanted)


def test_area_outside_the_photo_is_black():
    photo = np.full((40, 40, 3), 255, np.uint8)
    aligned = align.align_image(photo, [[5.0, 20.0], [35.0, 20.0]], size=256)
    assert aligned[0, 0].tolist() == [0, 0, 0] and aligned[-1, -1].tolist() == [0, 0, 0]
    assert aligned[122, 128].tolist() == [255, 255, 255]


def test_align_image_rejects_non_uint8_rgb():
    with pytest.raises(ValueError, match=r"uint8 RGB.*float32"):
        align.align_image(np.zeros((10, 10, 3), np.float32), [[2.0, 5.0], [8.0, 5.0]])


# ---------------------------------------------------------------- photos

FACE_A = [[100.0, 120.0], [140.0, 120.0], [120, 140], [105, 160], [135, 160]]
FACE_B = [[300.0, 100.0], [380.0, 100.0], [340, 140], [310, 180], [370, 180]]
TWO_FACES = dict(
    boxes=[[80, 90, 160, 180], [270, 50, 410, 220]],  # B is larger
    probs=[0.999, 0.95],  # A is more confident
    landmarks=[FACE_A, FACE_B],
)


def photo_file(tmp_path, name="photo.png", mode="RGB", exif_orientation=None):
    path = tmp_path / name
    image = Image.new(mode, (480, 320))
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[0x0112] = exif_orientation
    image.save(path, exif=exif)
    return path


def test_photo_without_a_face_raises_naming_the_file(tmp_path):
    path = photo_file(tmp_path, "empty_room.png")
    no_face = fake_detector(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
    with pytest.raises(ValueError, match=r"empty_room\.png: no face found"):
        align.align_photo(path, detector=no_face)


def test_largest_face_is_chosen_by_default(tmp_path):
    _, info = align.align_photo(photo_file(tmp_path), detector=fake_detector(**TWO_FACES))
    assert (info.face_index, info.n_faces, info.multiple_faces) == (1, 2, "largest")
    assert info.landmarks == tuple(tuple(map(float, p)) for p in FACE_B)


def test_most_confident_face_is_chosen_on_request(tmp_path):
    _, info = align.align_photo(
        photo_file(tmp_path), detector=fake_detector(**TWO_FACES), multiple_faces="most_confident"
    )
    assert info.face_index == 0 and info.probability == pytest.approx(0.999)


def test_several_faces_raise_when_asked_naming_file_and_count(tmp_path):
    with pytest.raises(ValueError, match=r"group\.png: found 2 faces"):
        align.align_photo(
            photo_file(tmp_path, "group.png"),
            detector=fake_detector(**TWO_FACES),
            multiple_faces="error",
        )


def test_unknown_multiple_faces_policy_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="multiple_faces must be one of"):
        align.align_photo(
            photo_file(tmp_path), detector=fake_detector(**TWO_FACES), multiple_faces="first"
        )


def test_info_records_the_transform_and_is_json_ready(tmp_path):
    path = photo_file(tmp_path)
    _, info = align.align_photo(path, detector=fake_detector(**TWO_FACES), size=128)
    record = json.loads(json.dumps(info.to_dict()))
    assert record["source"] == str(path) and record["size"] == 128
    eyes = align.transform_points(np.array(record["matrix"]), np.array(FACE_B)[:2])
    np.testing.assert_allclose(eyes, template_eyes(128), atol=1e-9)
    aligned_eyes = np.array(record["aligned_landmarks"])[:2]
    np.testing.assert_allclose(aligned_eyes, template_eyes(128), atol=1e-9)


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    seen = []
    path = photo_file(tmp_path, "phone.png", exif_orientation=6)  # stored rotated 90 degrees
    _, info = align.align_photo(path, detector=fake_detector(**TWO_FACES, seen=seen))
    assert seen == [(480, 320, 3)] and info.source_size == (320, 480)
    assert "rotated/flipped per EXIF Orientation=6" in info.conversions


def test_non_rgb_photo_conversion_is_recorded(tmp_path):
    path = photo_file(tmp_path, "gray.png", mode="L")
    _, info = align.align_photo(path, detector=fake_detector(**TWO_FACES))
    assert info.conversions == ("grayscale L expanded to RGB",)


def test_unreadable_photo_raises_naming_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"broken\.jpg: cannot decode as PNG or JPEG"):
        align.align_photo(path, detector=fake_detector(**TWO_FACES))


def test_array_input_is_aligned_like_a_file(tmp_path):
    photo = np.asarray(Image.open(photo_file(tmp_path)).convert("RGB"))
    image, info = align.align_photo(photo, detector=fake_detector(**TWO_FACES))
    assert image.shape == (256, 256, 3) and info.source == "<array>"


# ---------------------------------------------------------------- MTCNN

MTCNN_ERROR = detectors.mtcnn_import_error()


@pytest.mark.skipif(MTCNN_ERROR is None, reason="facenet-pytorch MTCNN imports here")
def test_missing_mtcnn_is_reported_with_the_cause_and_the_fix():
    with pytest.raises(ImportError) as raised:
        detectors.mtcnn_detector()
    message = str(raised.value)
    assert MTCNN_ERROR in message and "install the torchvision" in message


@pytest.mark.skipif(MTCNN_ERROR is None, reason="facenet-pytorch MTCNN imports here")
def test_default_detector_spec_fails_with_the_mtcnn_import_error():
    with pytest.raises(ImportError) as raised:
        detectors.detector_from_spec(detectors.DEFAULT_DETECTOR_SPEC)
    assert MTCNN_ERROR in str(raised.value)


@pytest.mark.skipif(
    MTCNN_ERROR is not None, reason=f"facenet-pytorch MTCNN does not import: {MTCNN_ERROR}"
)
def test_mtcnn_finds_no_face_in_a_blank_photo(tmp_path):
    with pytest.raises(ValueError, match=r"blank\.png: no face found"):
        align.align_photo(photo_file(tmp_path, "blank.png"),
                          detector=detectors.mtcnn_detector())


class _FakeMTCNN:
    """Stands in for facenet_pytorch.MTCNN: one face on a bright photo, None on a dark one."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def detect(self, pil_image, landmarks=False):
        assert landmarks, "the adapter must ask MTCNN for the five landmarks"
        if np.asarray(pil_image).mean() < 128:
            return None, [None], None
        points = np.array([[[30.0, 40.0], [60.0, 40.0], [45.0, 55.0], [33.0, 70.0], [57.0, 70.0]]])
        return np.array([[10.0, 10.0, 80.0, 90.0]]), np.array([0.99]), points


def test_mtcnn_adapter_returns_the_detector_contract_and_none_as_no_face(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "facenet_pytorch", types.SimpleNamespace(MTCNN=_FakeMTCNN))
    monkeypatch.setattr(detectors, "mtcnn_import_error", lambda: None)
    detect = detectors.mtcnn_detector()
    boxes, probs, points = detect(np.full((100, 100, 3), 255, np.uint8))
    assert boxes.shape == (1, 4) and probs.shape == (1,) and points.shape == (1, 5, 2)
    assert points.dtype == np.float64 and points[0, 1, 0] == 60.0
    boxes, probs, points = detect(np.zeros((100, 100, 3), np.uint8))
    assert boxes.shape == (0, 4) and probs.shape == (0,) and points.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="no face found"):
        align.align_photo(np.zeros((100, 100, 3), np.uint8), detector=detect)


class _RecordingMTCNN:
    """Stands in for facenet_pytorch.MTCNN: records the image size it saw and reports,
    in that image's pixels, a face, a tiny box and an unlikely box."""

    seen: ClassVar[list] = []

    def __init__(self, keep_all=False, select_largest=True, device=None, thresholds=None):
        pass  # like MTCNN, an unknown keyword argument is a TypeError

    def detect(self, pil_image, landmarks=False):
        _RecordingMTCNN.seen.append(pil_image.size)
        points = np.array([[[300.0, 200.0], [400.0, 200.0], [350, 260], [310, 300], [390, 300]]])
        points = np.concatenate([points, points / 10, points + 1])
        boxes = np.array([[250.0, 120.0, 450.0, 360.0], [25.0, 12.0, 45.0, 36.0],
                          [250.0, 120.0, 450.0, 360.0]])
        return boxes, np.array([0.999, 0.99, 0.85]), points


@pytest.fixture
def recording_mtcnn(monkeypatch):
    import sys
    import types

    _RecordingMTCNN.seen = []
    monkeypatch.setitem(sys.modules, "facenet_pytorch",
                        types.SimpleNamespace(MTCNN=_RecordingMTCNN))
    monkeypatch.setattr(detectors, "mtcnn_import_error", lambda: None)
    return _RecordingMTCNN


def test_mtcnn_detects_on_a_copy_at_most_800_wide_and_maps_back(recording_mtcnn):
    detect = detectors.mtcnn_detector(min_face_size=0, min_score=0)
    boxes, _, points = detect(np.zeros((1000, 2000, 3), np.uint8))
    assert recording_mtcnn.seen == [(800, 400)]
    np.testing.assert_allclose(boxes[0], [625.0, 300.0, 1125.0, 900.0])
    # Pixel centres: photo = (copy + 0.5) * 2.5 - 0.5.
    np.testing.assert_allclose(points[0, :2], [[750.75, 500.75], [1000.75, 500.75]])
    detect(np.zeros((300, 400, 3), np.uint8))
    assert recording_mtcnn.seen[-1] == (400, 300), "a photo narrower than 800 is not resized"


def test_mtcnn_drops_faces_too_small_or_too_unlikely(recording_mtcnn):
    _, probs, _ = detectors.mtcnn_detector()(np.zeros((600, 800, 3), np.uint8))
    np.testing.assert_array_equal(probs, [0.999])  # defaults: 40 px, probability 0.95
    _, probs, _ = detectors.mtcnn_detector(min_face_size=10, min_score=0.8)(
        np.zeros((600, 800, 3), np.uint8))
    assert len(probs) == 3


def test_mtcnn_settings_are_recorded_in_the_alignment_info(recording_mtcnn):
    detect = detectors.detector_from_spec("mtcnn", options={"min_face_size": 60.0})
    _, info = align.align_photo(np.zeros((600, 800, 3), np.uint8), detector=detect,
                                multiple_faces="error")
    assert info.detector["min_face_size"] == 60.0 and info.detector["min_score"] == 0.95
    assert info.detector["max_width"] == 800
    assert json.loads(json.dumps(info.to_dict()))["detector"] == info.detector


def test_unknown_detector_options_are_named(recording_mtcnn):
    with pytest.raises(ValueError, match=r"does not take the detector options \['min_size'\]"):
        detectors.detector_from_spec("mtcnn", options={"min_size": 3})


@pytest.mark.parametrize("options", [{"min_score": 1.5}, {"min_face_size": -1},
                                     {"max_width": 0}])
def test_invalid_mtcnn_thresholds_are_rejected(recording_mtcnn, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        detectors.mtcnn_detector(**options)


def _one_face_detector(image):
    return np.array([[80.0, 90, 160, 180]]), np.array([0.99]), np.array([FACE_A])


def test_a_detector_without_settings_is_recorded_by_name(tmp_path):
    _, info = align.align_photo(photo_file(tmp_path, "one.png"), detector=_one_face_detector)
    assert info.detector == {"detector": f"{__name__}._one_face_detector"}


# ---------------------------------------------------------------- folders of photos

# The faces that ``write_photo`` drew, keyed by photo shape (unique per photo), for
# a detector that "finds" exactly them. Referenced by import path like a config's.
DRAWN_FACES = {}
DETECTOR_SPEC = f"{__name__}:drawn_faces_detector"
MODEL_SIZE = 64


def drawn_faces_detector():
    """Detector factory (zero arguments, as config.align_detector names one)."""

    def detect(image):
        faces = DRAWN_FACES.get(image.shape[:2], [])
        boxes = np.array([f[0] for f in faces]).reshape(-1, 4)
        probs = np.array([f[1] for f in faces]).reshape(-1)
        return boxes, probs, np.array([f[2] for f in faces]).reshape(-1, 5, 2)

    return detect


def write_photo(path, height, width, faces):
    """A photo of eye dots; ``faces`` are (eye midpoint (x, y), inter-eye distance,
    angle in radians). Registers each face's box and landmarks for the detector."""
    eyes, drawn = [], []
    for (cx, cy), distance, angle in faces:
        along = np.array([np.cos(angle), np.sin(angle)])
        down = np.array([-along[1], along[0]])
        mid = np.array([cx, cy])
        marks = [mid - along * distance / 2, mid + along * distance / 2, mid + down * distance / 2,
                 mid + down * distance - along * distance / 3,
                 mid + down * distance + along * distance / 3]
        box = [cx - distance, cy - distance, cx + distance, cy + 1.5 * distance]
        eyes += marks[:2]
        drawn.append((box, 0.99, marks))
    # ~2 px dots once aligned: the inter-eye distance becomes 0.258 * MODEL_SIZE.
    sigma = max((d for _, d, _ in faces), default=10.0) * 2.0 / ((1 - 2 * TX) * MODEL_SIZE)
    pixels = draw_dots(height, width, eyes, sigma) if eyes else np.zeros((height, width, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    assert (height, width) not in DRAWN_FACES, "photo shapes identify the photos"
    DRAWN_FACES[(height, width)] = drawn
    return path


@pytest.fixture(autouse=True)
def _forget_drawn_faces():
    yield
    DRAWN_FACES.clear()


@pytest.fixture
def photos(tmp_path):
    """Three one-face photos of different sizes, scales and rotations."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(folder / "a.png", 211, 260, [((120.0, 100.0), 60.0, 0.3)])
    write_photo(folder / "b.png", 150, 121, [((60.0, 70.0), 20.0, -0.5)])
    write_photo(folder / "c.jpg", 400, 333, [((170.0, 210.0), 140.0, 3.0)])  # upside down
    return folder


def test_folder_is_aligned_to_the_model_size_with_the_eyes_on_the_template(photos):
    aligned = align.load_aligned_images(photos, size=MODEL_SIZE, detector=drawn_faces_detector())
    assert aligned.images.shape == (3, MODEL_SIZE, MODEL_SIZE, 3)
    assert [p.name for p in aligned.paths] == ["a.png", "b.png", "c.jpg"]
    for image in aligned.images:
        for wanted in template_eyes(MODEL_SIZE):
            found = dot_centroid(image, wanted)
            assert np.abs(found - wanted).max() < CENTROID_TOLERANCE_PX, (found, wanted)


def test_records_keep_the_file_and_end_with_the_alignment(photos):
    aligned = align.load_aligned_images(photos, size=MODEL_SIZE, detector=drawn_faces_detector())
    record = aligned.records[0]
    assert record.sha256 == hashlib.sha256((photos / "a.png").read_bytes()).hexdigest()
    assert (record.original_height, record.original_width) == (211, 260)
    assert record.conversions[-1].startswith(
        "aligned to 64x64 (OpenAI CelebA-HQ layout): the only face found; eyes at")
    assert aligned.manifest_entries()[0]["conversions"][-1] == record.conversions[-1]
    info = aligned.alignment[0]
    assert info.source == str(photos / "a.png") and info.size == MODEL_SIZE
    json.dumps([i.to_dict() for i in aligned.alignment])


def test_identities_are_listed_by_data_rules_and_each_aligned(tmp_path):
    root = tmp_path / "people"
    for name in ("bob", "ann"):
        (root / name).mkdir(parents=True)
    write_photo(root / "ann" / "x.png", 90, 91, [((45.0, 40.0), 25.0, 0.0)])
    write_photo(root / "bob" / "y.png", 92, 93, [((45.0, 40.0), 25.0, 0.1)])
    (root / "bob" / "notes.txt").write_text("not an image")
    sets = align.load_aligned_identities(root, size=32, detector=drawn_faces_detector())
    assert list(sets) == list(identity_folders.identity_files(root)) == ["ann", "bob"]
    assert [s.paths for s in sets.values()] == [(root / "ann" / "x.png",), (root / "bob" / "y.png",)]
    assert all(s.images.shape == (1, 32, 32, 3) for s in sets.values())


def test_photo_without_a_face_is_named(photos):
    write_photo(photos / "nobody.png", 77, 78, [])
    with pytest.raises(ValueError, match=r"nobody\.png: no face found"):
        align.load_aligned_images(photos, size=MODEL_SIZE, detector=drawn_faces_detector())


TWO_DRAWN_FACES = [((60.0, 60.0), 30.0, 0.0), ((200.0, 120.0), 70.0, 0.2)]  # the second larger


def test_two_faces_under_error_policy_name_the_file_and_the_count(tmp_path):
    path = write_photo(tmp_path / "pair.png", 240, 300, TWO_DRAWN_FACES)
    with pytest.raises(ValueError, match=r"pair\.png: found 2 faces, expected 1"):
        align.load_aligned_images(path, size=MODEL_SIZE, detector=drawn_faces_detector(),
                                  multiple_faces="error")


def test_two_faces_align_the_larger_record_it_and_warn(tmp_path, caplog):
    path = write_photo(tmp_path / "pair.png", 240, 300, TWO_DRAWN_FACES)
    aligned = align.load_aligned_images(path, size=MODEL_SIZE, detector=drawn_faces_detector())
    assert (aligned.alignment[0].face_index, aligned.alignment[0].n_faces) == (1, 2)
    assert "face 2 of 2 chosen by largest box" in aligned.records[0].conversions[-1]
    assert "pair.png: found 2 faces" in caplog.text
    for wanted in template_eyes(MODEL_SIZE):
        assert np.abs(dot_centroid(aligned.images[0], wanted) - wanted).max() < 0.1


def test_transparent_photo_is_composited_over_white_by_default(tmp_path):
    path = tmp_path / "cutout.png"
    Image.new("RGBA", (120, 100), (0, 0, 0, 0)).save(path)
    detector = fake_detector([[0, 0, 120, 100]], [0.99], [[[40.0, 50], [80, 50], [60, 60],
                                                            [45, 75], [75, 75]]])
    image, info = align.align_photo(path, detector=detector, size=64)
    assert image[30, 32].tolist() == [255, 255, 255]
    assert "alpha composited over background (255, 255, 255) (alpha not opaque)" in info.conversions
    dropped, _ = align.align_photo(path, detector=detector, size=64, alpha="drop")
    assert dropped[30, 32].tolist() == [0, 0, 0]


# ---------------------------------------------------------------- detector specs


def test_detector_spec_names_a_factory_by_import_path():
    assert callable(detectors.detector_from_spec(DETECTOR_SPEC))


@pytest.mark.parametrize("spec", ["flowjax.faces.detectors.default_detector",
                                  "flowjax.faces.detectors:", "a:b:c", ""])
def test_malformed_detector_spec_is_rejected_with_the_expected_form(spec):
    with pytest.raises(ValueError, match=r"is not an import path 'module:factory' .* nor a "
                                         r"detector name \['dlib', 'mtcnn'\]"):
        detectors.detector_from_spec(spec, "config.align_detector")


def test_detector_spec_of_a_missing_module_names_it():
    with pytest.raises(ImportError, match=r"cannot import module 'no_such_module_xyz'"):
        detectors.detector_from_spec("no_such_module_xyz:factory")


def test_detector_spec_of_a_non_function_is_rejected():
    with pytest.raises(ValueError, match=r"flowjax.faces.align.DEFAULT_SIZE is int, expected a function"):
        detectors.detector_from_spec("flowjax.faces.align:DEFAULT_SIZE")


# ---------------------------------------------------------------- photos that cannot be aligned


def test_skip_leaves_out_a_photo_without_a_face_and_lists_it(photos, caplog):
    write_photo(photos / "nobody.png", 77, 78, [])
    aligned = align.load_aligned_images(photos, size=MODEL_SIZE, detector=drawn_faces_detector(),
                                        failures="skip")
    assert [p.name for p in aligned.paths] == ["a.png", "b.png", "c.jpg"]
    assert len(aligned.images) == len(aligned.records) == len(aligned.alignment) == 3
    (skipped,) = aligned.skipped
    assert skipped["source"] == str(photos / "nobody.png") and skipped["reason"] == "no face"
    assert skipped["source_size"] == [78, 77] and skipped["n_faces"] == 0
    assert skipped["sha256"] == hashlib.sha256((photos / "nobody.png").read_bytes()).hexdigest()
    assert skipped["message"].startswith(f"{photos / 'nobody.png'}: no face found in this 78x77")
    json.dumps(skipped)
    assert "left out (align_failures='skip')" in caplog.text and "nobody.png" in caplog.text


def test_skip_leaves_out_a_photo_with_several_faces_under_the_error_policy(tmp_path):
    write_photo(tmp_path / "pair.png", 240, 300, TWO_DRAWN_FACES)
    write_photo(tmp_path / "single.png", 90, 91, [((45.0, 40.0), 25.0, 0.0)])
    aligned = align.load_aligned_images(tmp_path, size=MODEL_SIZE,
                                        detector=drawn_faces_detector(), multiple_faces="error",
                                        failures="skip")
    assert [p.name for p in aligned.paths] == ["single.png"]
    assert [(s["reason"], s["n_faces"]) for s in aligned.skipped] == [("several faces", 2)]


def test_skip_refuses_a_set_left_with_no_photo_naming_it(tmp_path):
    write_photo(tmp_path / "nobody.png", 77, 78, [])
    with pytest.raises(ValueError, match=r"the negatives is left with no photo: none of its 1 "
                                         r"photo\(s\) could be aligned \(.*nobody\.png: no face\)"):
        align.load_aligned_images(tmp_path, size=MODEL_SIZE, detector=drawn_faces_detector(),
                                  failures="skip", label="the negatives")


def test_skip_refuses_an_identity_left_with_no_photo_naming_it(tmp_path):
    root = tmp_path / "people"
    for name in ("ann", "bob"):
        (root / name).mkdir(parents=True)
    write_photo(root / "ann" / "x.png", 90, 91, [((45.0, 40.0), 25.0, 0.0)])
    write_photo(root / "bob" / "profile.png", 92, 93, [])
    with pytest.raises(ValueError, match=r"identity 'bob' is left with no photo"):
        align.load_aligned_identities(root, size=32, detector=drawn_faces_detector(),
                                      failures="skip")


def test_unknown_failures_policy_is_rejected_before_any_photo_is_read(photos):
    with pytest.raises(ValueError, match=r"failures must be one of \('error', 'skip'\)"):
        align.load_aligned_images(photos, size=MODEL_SIZE, detector=drawn_faces_detector(),
                                  failures="ignore")


def test_no_face_names_a_settings_only_detector_and_its_settings(tmp_path):
    def nothing(image):
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))

    class Plain:
        settings: ClassVar = {"detector": "my detector", "threshold": 0.7, "nested": {"a": 1}}

        def __call__(self, image):
            return nothing(image)

    path = photo_file(tmp_path, "room.png")
    with pytest.raises(align.AlignmentError,
                       match=r"room\.png: no face found in this 480x320 \(WxH\) photo by my "
                             r"detector \(threshold 0\.7\)\."):
        align.align_photo(path, detector=Plain())
    with pytest.raises(align.AlignmentError, match=r"photo by test_align\.[\w.<>]*nothing\."):
        align.align_photo(path, detector=nothing)


def test_mtcnn_no_face_names_its_working_copy_and_thresholds(recording_mtcnn):
    detector = detectors.mtcnn_detector()
    text = detector.describe_search((1200, 1600, 3))
    assert "MTCNN on a copy resized to 800x600" in text
    assert f"probability >= {detectors.MTCNN_MIN_SCORE:g}" in text
    assert f"at least {detectors.MTCNN_MIN_FACE_SIZE:g} px" in text
    assert "the photo itself" in detector.describe_search((300, 400, 3))
