"""The live editor (flowjax/app/explore.py, experiments/explore.py, configs/explore.py).

One editor for the module: configs/explore.py's smoke variant shrunk to a
16x16 random-init Glow on generated faces (seconds), built by
``experiments.explore.build_editor`` as ``run.py`` builds it. The API is checked
through Flask's test client; the page in a headless Chromium (conftest's
``browser``) against a real server on 127.0.0.1. Set
FLOWJAX_UPDATE_SCREENSHOTS=1 to write the screenshot into docs/.
"""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import common as config_common
from configs import explore as explore_config
from flowjax import io as fio
from flowjax.app import explore, guards
from flowjax.runs import run_dirs
from flowjax.transfer import sweep

pytest.importorskip("flask", reason="the live editor needs flask (pip install -e '.[explore]')")

SIZE = 16
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weights" / "demo" / "glow"


def tiny_config():
    config = explore_config.get_config("smoke")
    config.model = config_common.model_config(image_size=SIZE, n_levels=2, depth=1, width=4)
    config.random_init.ddi = False
    config.progress = False
    return config


@pytest.fixture(scope="module")
def editor() -> explore.Editor:
    from experiments import explore as experiment

    return experiment.build_editor(tiny_config())[0]


@pytest.fixture
def client(editor):
    return explore.create_app(editor).test_client()


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory) -> list[Path]:
    """Faces flowjax.synthetic renders at the model's size, of identities the editor has not
    seen (another seed; the same batch shape as the editor's faces, so no new compile)."""
    from flowjax import synthetic

    generated = tiny_config().data.generated
    faces = synthetic.write_generated_faces(tmp_path_factory.mktemp("uploads"),
                                         generated.n_identities, generated.expressions, SIZE,
                                         seed=generated.seed + 7)
    return [path for paths in faces.values() for path in paths]


def png_pixels(payload: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))


# ---- the API -------------------------------------------------------------------------


def test_an_edit_is_a_png_labelled_synthetic_with_the_edit_that_made_it(client):
    response = client.post("/api/edit", json={"kind": "transfer", "expression": "smile",
                                              "target": "id01", "alpha": 0.5})
    assert response.status_code == 200 and response.mimetype == "image/png"
    labels = fio.read_png_provenance(io.BytesIO(response.data))
    assert labels["Synthetic"] == "true" and "SYNTHETIC" in labels["Description"]
    record = json.loads(labels["flowjax_explore"])
    assert (record["expression"], record["target"], record["alpha"]) == ("smile", "id01", 0.5)
    assert "RANDOM INIT" in record["model"]
    assert png_pixels(response.data).shape == (SIZE, SIZE, 3)


def test_transfer_at_alpha_zero_is_the_target_mean_face(client, editor):
    edited = client.post("/api/edit", json={"kind": "transfer", "expression": "surprise",
                                            "target": "id02", "alpha": 0.0})
    np.testing.assert_array_equal(png_pixels(edited.data), editor.decode(editor.faces["id02"]))


def test_transfer_adds_the_expression_vector_to_the_target(editor):
    z, _ = editor.edit_latent({"kind": "transfer", "expression": "smile", "target": "id01",
                               "alpha": 0.7})
    source_mean = editor.faces["id00"]
    expected = editor.faces["id01"] + 0.7 * (editor.faces["id00:smile"] - source_mean)
    np.testing.assert_allclose(z, expected, rtol=1e-6, atol=1e-6)


def test_mix_interpolates_two_faces_and_attributes_add_directions(editor):
    z, _ = editor.edit_latent({"kind": "mix", "face": "id01", "other": "id02", "weight": 0.25})
    np.testing.assert_allclose(z, 0.75 * editor.faces["id01"] + 0.25 * editor.faces["id02"],
                               rtol=1e-6, atol=1e-6)
    z, _ = editor.edit_latent({"kind": "attributes", "face": "id02", "alphas": {"smile": -1.5}})
    np.testing.assert_allclose(z, editor.faces["id02"] - 1.5 * editor.attributes["smile"],
                               rtol=1e-6, atol=1e-6)


def test_each_edit_is_one_decode_compiled_once(client):
    client.post("/api/edit", json={"kind": "mix", "face": "id01", "other": "id02", "weight": 0.1})
    compiled = sweep._decode_chunk._cache_size()
    for weight in (0.2, 0.9):
        client.post("/api/edit", json={"kind": "mix", "face": "id01", "other": "id00",
                                       "weight": weight})
    client.post("/api/edit", json={"kind": "attributes", "face": "id01", "alphas": {"smile": 1}})
    assert sweep._decode_chunk._cache_size() == compiled


def test_an_unknown_face_or_a_wild_alpha_is_refused_with_the_choices(client):
    answer = client.post("/api/edit", json={"kind": "transfer", "expression": "smile",
                                            "target": "nobody", "alpha": 1})
    assert answer.status_code == 400 and "'nobody' is not a face here" in answer.json["error"]
    answer = client.post("/api/edit", json={"kind": "mix", "face": "id01", "other": "id02",
                                            "weight": "nan"})
    assert answer.status_code == 400 and "finite number" in answer.json["error"]


def test_an_uploaded_synthetic_face_is_encoded_and_editable(client, synthetic_faces):
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(
        synthetic_faces[0].read_bytes()), "me.png")})
    assert answer.status_code == 200, answer.json
    name = answer.json["name"]
    assert name in [f["name"] for f in answer.json["faces"]]
    edited = client.post("/api/edit", json={"kind": "transfer", "expression": "surprise",
                                            "target": name, "alpha": 1.0})
    assert edited.status_code == 200 and png_pixels(edited.data).shape == (SIZE, SIZE, 3)


def test_a_file_that_is_not_an_image_gets_a_message_naming_it(client):
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(b"plain text"), "notes.txt")})
    assert answer.status_code == 400
    assert answer.json["error"].startswith("notes.txt: not a PNG or JPEG image")


def test_a_photo_of_the_wrong_size_says_what_the_model_takes(client):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="PNG")
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(buffer.getvalue()), "big.png")})
    assert answer.status_code == 400
    assert f"big.png: the photo is 40x30, this model takes aligned faces of {SIZE}x{SIZE}" in \
        answer.json["error"]


def test_an_upload_over_the_size_limit_gets_413_with_a_message(editor):
    client = explore.create_app(editor, explore.Limits(max_upload_bytes=1000)).test_client()
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(b"x" * 5000), "huge.png")})
    assert answer.status_code == 413 and "larger than the limit" in answer.json["error"]


def test_a_photo_with_too_many_pixels_is_refused_before_decoding(editor, synthetic_faces):
    client = explore.create_app(editor, explore.Limits(max_pixels=100)).test_client()
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(
        synthetic_faces[0].read_bytes()), "face.png")})
    assert answer.status_code == 400 and "16x16 pixels is larger than the limit of 100" in \
        answer.json["error"]


def test_too_many_requests_from_one_client_get_429(editor):
    client = explore.create_app(editor, explore.Limits(requests_per_minute=2)).test_client()
    codes = [client.get("/api/state").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_saved_edit_is_the_served_png_in_the_run_directory(editor, tmp_path):
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        client = explore.create_app(editor, save_to=run).test_client()
        body = {"kind": "mix", "face": "id01", "other": "id02", "weight": 0.5}
        answer = client.post("/api/save", json=body).json
        saved = Path(answer["saved"])
        assert saved.read_bytes() == client.post("/api/edit", json=body).data
    assert answer["shown"] == "run/saved/edit_0001.png"  # what the page says: no absolute path
    assert fio.read_png_provenance(saved)["Synthetic"] == "true"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "saved/edit_0001.png" in {o["path"] for o in manifest["outputs"]}


# ---- concurrent requests (issue #27) ---------------------------------------------------


def _served(app):
    """``app`` on a free loopback port (werkzeug's threaded server, as ``serve`` runs it)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _post_json(url: str, body: dict) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_concurrent_saves_write_distinct_files_each_matching_the_manifest(editor, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    n = 40
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        server, url = _served(explore.create_app(editor, save_to=run))
        try:
            with ThreadPoolExecutor(n) as pool:
                answers = list(pool.map(lambda k: _post_json(f"{url}/api/save", {
                    "kind": "mix", "face": "id01", "other": "id02", "weight": k / n}), range(n)))
        finally:
            server.shutdown()
    assert [code for code, _ in answers] == [200] * n, answers
    saved = sorted(json.loads(payload)["saved"] for _, payload in answers)
    assert len(set(saved)) == n  # before: 13 distinct files of 40
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    recorded = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    assert manifest["status"] == "complete" and len(recorded) == n
    weights = set()
    for path in map(Path, saved):
        assert fio.sha256_file(path) == recorded[f"saved/{path.name}"], path.name
        weights.add(json.loads(fio.read_png_provenance(path)["flowjax_explore"])["weight"])
    assert len(weights) == n  # each file is its own save's edit


def test_concurrent_uploads_get_distinct_names_and_each_edits_its_own_face(
        editor, client, synthetic_faces, monkeypatch):
    """Both uploads are held inside their encode together: the window in which the name
    used to be picked but not yet taken."""
    from concurrent.futures import ThreadPoolExecutor

    both_encoding = threading.Barrier(2, timeout=60)
    encode = editor.encode

    def encode_together(images):
        if len(images) == 1:  # an upload's
            both_encoding.wait()
        return encode(images)

    monkeypatch.setattr(editor, "encode", encode_together)
    files = synthetic_faces[1:3]

    def upload(path):  # one test client per thread, as two browsers
        return explore.create_app(editor).test_client().post("/api/upload", data={
            "photo": (io.BytesIO(path.read_bytes()), "concurrent.png")})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(upload, files))
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    names = [a.json["name"] for a in answers]
    assert len(set(names)) == 2, names  # before: both "upload-1"
    assert set(names) == {"concurrent", "concurrent-2"}  # named by the file, made unique
    monkeypatch.undo()
    own = [editor.encode(fio.load_image(path)[0][None])[0] for path in files]
    assert np.abs(own[0] - own[1]).max() > 0.1  # two different faces
    for name, latent in zip(names, own):
        np.testing.assert_allclose(editor.faces[name], latent, rtol=1e-5, atol=1e-5)
        shown = client.post("/api/edit", json={"kind": "mix", "face": name, "other": name,
                                               "weight": 0.0})
        np.testing.assert_array_equal(png_pixels(shown.data), editor.decode(editor.faces[name]))


# ---- bad requests and foreign pages (issue #27) ----------------------------------------


def test_an_upload_is_named_by_its_file_made_unique_and_safe(client, synthetic_faces):
    def upload(filename):
        answer = client.post("/api/upload", data={"photo": (io.BytesIO(
            synthetic_faces[3].read_bytes()), filename)})
        assert answer.status_code == 200, answer.json
        return answer.json["name"]

    first = upload("neutral.png")
    assert first.startswith("neutral")  # "neutral" unless an earlier test took it
    assert upload("neutral.png") != first
    assert upload("id01.png") == "id01-2"  # never an identity's name
    odd = upload("..my photo (2)\u00e9.PNG")
    assert odd.startswith("my-photo-2-\u00e9") and "/" not in odd and not odd.startswith(".")


BAD_UPLOAD_NAMES = {"dot-dot": "..", "300-chars": "a" * 296 + ".png"}


@pytest.mark.parametrize("filename", BAD_UPLOAD_NAMES.values(), ids=BAD_UPLOAD_NAMES.keys())
def test_an_upload_whose_name_is_not_a_file_name_gets_400_json(client, synthetic_faces,
                                                               filename):
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(
        synthetic_faces[0].read_bytes()), filename)})
    assert (answer.status_code, answer.mimetype) == (400, "application/json"), answer.data[:80]
    assert "is not a file name" in answer.json["error"] and len(answer.json["error"]) < 300


DEEP = "[" * 100_000 + "]" * 100_000
BAD_EDITS = {
    "face-is-an-object": '{"kind": "mix", "face": {}, "other": "id02", "weight": 0.5}',
    "expression-is-a-list": '{"kind": "transfer", "expression": [1], "target": "id01"}',
    "other-is-a-list": '{"kind": "mix", "face": "id01", "other": ["id02"], "weight": 0.5}',
    "target-is-an-object": '{"kind": "transfer", "expression": "smile", "target": {"a": 1}}',
    "weight-of-400-digits": '{"kind": "mix", "face": "id01", "other": "id02", "weight": 1'
                            + "0" * 400 + "}",
    "nested-100000-deep": DEEP,
    "nested-deep-in-a-field": '{"kind": "mix", "face": ' + DEEP + "}",
}


@pytest.mark.parametrize("body", BAD_EDITS.values(), ids=BAD_EDITS.keys())
@pytest.mark.parametrize("route", ["/api/edit", "/api/save"])
def test_a_malformed_edit_gets_400_json_naming_the_problem(editor, tmp_path, route, body):
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        client = explore.create_app(editor, save_to=run).test_client()
        answer = client.post(route, data=body, content_type="application/json")
    assert (answer.status_code, answer.mimetype) == (400, "application/json"), answer.data[:80]
    assert len(answer.json["error"]) < 400  # the body is not echoed whole
    assert not list((tmp_path / "run").glob("saved/*"))


def test_a_bug_gets_500_json_without_a_traceback(editor, client, monkeypatch):
    def broken(request):
        raise KeyError("internal detail")

    monkeypatch.setattr(editor, "render", broken)
    answer = client.post("/api/edit", json={"kind": "mix"})
    assert (answer.status_code, answer.mimetype) == (500, "application/json")
    assert "KeyError" in answer.json["error"] and "internal detail" not in answer.json["error"]
    assert "Traceback" not in answer.get_data(as_text=True)
    missing = client.get("/no/such/page")
    assert (missing.status_code, missing.mimetype) == (404, "application/json")


@pytest.mark.parametrize("host", ["evil.example:80", "evil.example", "localhost:8050",
                                  "127.0.0.1.evil.example", "evil.example@localhost", ""])
def test_a_request_for_a_foreign_host_name_gets_403_json(client, host):
    """DNS rebinding: another site's name resolving to 127.0.0.1 reaches the editor."""
    answer = client.get("/api/state", headers={"Host": host})
    assert (answer.status_code, answer.mimetype) == (403, "application/json"), host
    assert "does not name this editor" in answer.json["error"] or \
        "the editor serves 127.0.0.1:80" in answer.json["error"]


@pytest.mark.parametrize("origin", ["http://evil.example", "http://evil.example:80", "null",
                                    "http://localhost:8050", "https://127.0.0.1"])
def test_a_post_from_another_sites_page_gets_403_json(client, origin):
    answer = client.post("/api/edit", headers={"Origin": origin}, json={
        "kind": "mix", "face": "id01", "other": "id02", "weight": 0.5})
    assert (answer.status_code, answer.mimetype) == (403, "application/json"), origin
    assert "may not use this editor" in answer.json["error"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:80", "[::1]", "LOCALHOST:80"])
def test_the_editors_own_page_at_a_loopback_name_is_served(client, host):
    answer = client.post("/api/edit", headers={"Host": host, "Origin": f"http://{host}"},
                         json={"kind": "mix", "face": "id01", "other": "id02", "weight": 0.5})
    assert answer.status_code == 200, answer.json


def test_the_configured_host_and_port_are_the_ones_checked(editor):
    client = explore.create_app(editor, host="192.168.0.7", port=8050).test_client()
    assert client.get("/api/state", headers={"Host": "192.168.0.7:8050"}).status_code == 200
    assert client.get("/api/state", headers={"Host": "localhost:8050"}).status_code == 200
    assert client.get("/api/state", headers={"Host": "192.168.0.7:80"}).status_code == 403
    remote = explore.create_app(editor, host="0.0.0.0", port=8050).test_client()
    assert remote.get("/api/state", headers={"Host": "my-box:8050"}).status_code == 200
    rebound = {"Host": "my-box:8050", "Origin": "http://evil.example:8050"}
    assert remote.get("/api/state", headers=rebound).status_code == 403


def test_openai_attribute_rows_become_sliders_with_the_demo_edits(editor, tmp_path):
    from flowjax.faces import openai_attributes

    rows = np.random.default_rng(0).standard_normal(
        (len(openai_attributes.CELEBA_ATTRIBUTES), editor.dimension)).astype(np.float32)
    np.save(tmp_path / "z_manipulate.npy", rows)
    editor.add_openai_attributes(tmp_path / "z_manipulate.npy", ("Smiling", "Age"))
    added = {n: editor.attributes.pop(n) for n in ("Smiling", "Age")}  # keep the module's editor
    young = openai_attributes.CELEBA_ATTRIBUTES.index("Young")
    smiling = openai_attributes.CELEBA_ATTRIBUTES.index("Smiling")
    np.testing.assert_array_equal(added["Smiling"], rows[smiling])
    np.testing.assert_array_equal(added["Age"], -rows[young])  # the demo's edit


def test_vectors_for_another_model_size_are_refused_naming_the_file(editor, tmp_path):
    np.save(tmp_path / "z_manipulate.npy", np.zeros((40, 12), np.float32))
    with pytest.raises(ValueError, match=r"z_manipulate\.npy: expected shape \(40, 768\)"):
        editor.add_openai_attributes(tmp_path / "z_manipulate.npy", ("Smiling",))


def test_align_without_a_detector_says_so(editor, client, synthetic_faces, monkeypatch):
    monkeypatch.setattr(editor, "aligner", None)
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(
        synthetic_faces[0].read_bytes()), "me.png"), "align": "true"})
    assert answer.status_code == 400 and "alignment is not available" in answer.json["error"]


def test_an_upload_sent_with_align_goes_through_the_aligner(editor, client, monkeypatch):
    seen = []

    def aligner(image):  # a stand-in for flowjax.faces.align with a detector
        seen.append(image.shape)
        return np.full((SIZE, SIZE, 3), 128, np.uint8)

    monkeypatch.setattr(editor, "aligner", aligner)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="PNG")
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(buffer.getvalue()),
                                                        "photo.png"), "align": "true"})
    assert answer.status_code == 200 and seen == [(30, 40, 3)]


def test_a_non_loopback_host_is_refused_unless_allowed():
    with pytest.raises(ValueError, match="no authentication"):
        guards.ensure_loopback("0.0.0.0", allow_remote=False)
    guards.ensure_loopback("0.0.0.0", allow_remote=True)


# ---- the editor as a new user sees it (issue #27): detector, model note, icon ----------


class FakeDetector:
    settings = {"detector": "fake"}

    def __call__(self, image):
        raise AssertionError("not called here")


@pytest.fixture
def detectors_that_load(monkeypatch):
    """``detectors_that_load(*names)``: only these detector names build (without their
    packages); the others fail with a cause naming them. Returns the names tried."""
    from flowjax.faces import detectors, dlib_models

    tried = []

    def install(*names):
        def cause(name):
            return None if name in names else f"{name} is broken here"

        def build(spec, what, options=None):
            tried.append(spec)
            if spec not in names:
                raise ImportError(f"{spec} does not build")
            return FakeDetector()

        monkeypatch.setattr(dlib_models, "dlib_import_error", lambda: cause("dlib"))
        monkeypatch.setattr(detectors, "mtcnn_import_error", lambda: cause("mtcnn"))
        monkeypatch.setattr(detectors, "detector_from_spec", build)
        return tried

    return install


def test_auto_takes_dlib_when_it_loads(detectors_that_load):
    from flowjax.app import align_choice

    tried = detectors_that_load("dlib", "mtcnn")
    choice = align_choice.choose_detector("auto")
    assert (choice.name, tried) == ("dlib", ["dlib"])  # MTCNN not even tried
    assert isinstance(choice.detector, FakeDetector) and "dlib" in choice.note
    assert choice.aligner(SIZE) is not None


def test_auto_takes_mtcnn_when_dlib_does_not_load(detectors_that_load):
    from flowjax.app import align_choice

    detectors_that_load("mtcnn")
    choice = align_choice.choose_detector("auto")
    assert choice.name == "mtcnn" and "MTCNN" in choice.note


def test_when_no_detector_loads_there_is_no_align_option_and_the_reason(
        detectors_that_load, editor, client, monkeypatch, synthetic_faces):
    from flowjax.app import align_choice

    tried = detectors_that_load()
    choice = align_choice.choose_detector("auto")
    assert (choice.detector, choice.aligner(SIZE), tried) == (None, None, [])  # causes known
    assert choice.note == ("no face detector loads on this server (dlib: dlib is broken here; "
                           "mtcnn: mtcnn is broken here)")
    monkeypatch.setattr(editor, "aligner", None)
    monkeypatch.setattr(editor, "align_note", choice.note)
    state = client.get("/api/state").json
    assert (state["align"], state["align_note"]) == (False, choice.note)
    answer = client.post("/api/upload", data={"photo": (io.BytesIO(
        synthetic_faces[0].read_bytes()), "me.png"), "align": "true"})
    assert answer.status_code == 400 and choice.note in answer.json["error"]


def test_a_configured_detector_that_does_not_load_is_named_and_not_replaced():
    from flowjax.app import align_choice

    choice = align_choice.choose_detector("flowjax_no_such_module:detector")
    assert choice.detector is None  # not dlib behind the user's back
    assert choice.note.startswith("the face detector 'flowjax_no_such_module:detector' "
                                  "(config.align_detector) does not load (")
    assert "cannot import module 'flowjax_no_such_module'" in choice.note


def test_a_malformed_detector_spec_is_an_error_at_start():
    from flowjax.app import align_choice

    with pytest.raises(ValueError, match="is not an import path"):
        align_choice.choose_detector("not a detector")
    config = tiny_config()
    config.align_detector = "not a detector"
    from experiments import explore as experiment

    with pytest.raises(ValueError, match="config.align_detector 'not a detector'"):
        experiment.build_editor(config)


def test_the_editor_config_offers_align_with_dlib_where_it_is_installed(editor):
    from flowjax.faces import dlib_models

    if dlib_models.dlib_import_error() is not None:
        pytest.skip(f"dlib is not installed: {dlib_models.dlib_import_error()}")
    assert explore_config.get_config().align_detector == "auto"
    state = explore.create_app(editor).test_client().get("/api/state").json
    assert state["align"] is True
    assert state["align_note"].startswith("faces detected with dlib")


def test_the_demo_checkpoint_gets_a_note_that_it_knows_only_synthetic_faces():
    from flowjax.app import trained_on

    note = trained_on.synthetic_note({"checkpoint": str(DEMO), "random_init": False})
    assert note.startswith("This model was trained only on synthetic cartoon faces")
    assert "data.source='synthetic' in weights/demo/glow/metadata.json" in note
    assert str(ROOT) not in note


def _export(path: Path, source: str | None, where: str = "metadata.json") -> Path:
    """A checkpoint folder whose training record says ``data.source=source``."""
    path.mkdir(parents=True)
    if source is not None:
        config = {"data": {"source": source, "synthetic_setting": "hard"}}
        record = {"training_config": config} if where == "metadata.json" else config
        (path / where).write_text(json.dumps(record))
    return path


def test_the_note_follows_the_recorded_training_data_not_the_path(tmp_path):
    from flowjax.app import trained_on

    def note(path):
        return trained_on.synthetic_note({"checkpoint": str(path), "random_init": False})

    copy = tmp_path / "weights" / "demo" / "glow"  # the demo's path, a photo model's record
    copy.mkdir(parents=True)
    record = json.loads((DEMO / "metadata.json").read_text())
    record["training_config"]["data"]["source"] = "folder"
    (copy / "metadata.json").write_text(json.dumps(record))
    assert note(copy) is None
    assert note(_export(tmp_path / "unrecorded", None)) is None  # e.g. converted weights
    assert "data.source='generated', setting 'hard'" in note(
        _export(tmp_path / "elsewhere", "generated"))
    workdir = _export(tmp_path / "train-1", "synthetic", where="config.json")
    (workdir / "checkpoints" / "500").mkdir(parents=True)
    assert "train-1/config.json" in note(workdir)
    assert "train-1/config.json" in note(workdir / "checkpoints" / "500")
    assert trained_on.synthetic_note({"checkpoint": None, "random_init": True}) is None


def test_the_favicon_is_a_small_png_the_page_links(client):
    answer = client.get("/favicon.ico")
    assert (answer.status_code, answer.mimetype) == (200, "image/png")
    assert Image.open(io.BytesIO(answer.data)).size == (32, 32)
    assert '<link rel="icon" type="image/png" href="favicon.ico">' in \
        client.get("/").get_data(as_text=True)


# ---- the page in a headless Chromium --------------------------------------------------


@pytest.fixture(scope="module")
def live_url(editor):
    """The editor served on a free loopback port by werkzeug, in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, explore.create_app(editor), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture
def page(browser, live_url):
    context = browser.new_context(viewport={"width": 1100, "height": 620})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto(live_url)
    tab.wait_for_selector('#transfer-result[data-loads="1"]')
    yield tab
    assert tab.errors == []
    context.close()


def loaded_edit(page, selector: str) -> dict:
    return json.loads(page.get_attribute(selector, "data-edit"))


def test_live_page_returns_an_edited_image_for_an_uploaded_synthetic_face(page,
                                                                         synthetic_faces):
    page.set_input_files("#photo", str(synthetic_faces[4]))
    page.click("#upload-button")
    from playwright.sync_api import expect

    # (the page's CSP forbids eval, so waits use selectors, not wait_for_function)
    expect(page.locator("#message")).to_have_text(re.compile("^uploaded as "))
    name = page.text_content("#message").removeprefix("uploaded as ")
    expect(page.locator("#transfer-result")).to_have_attribute(
        "data-edit", re.compile(re.escape(f'"target":"{name}"')))
    loads = int(page.get_attribute("#transfer-result", "data-loads"))
    page.focus("#transfer-alpha")
    page.keyboard.press("Home")  # alpha 0: the uploaded face itself
    page.wait_for_selector(f'#transfer-result[data-loads="{loads + 1}"]')
    assert loaded_edit(page, "#transfer-result") == {
        "kind": "transfer", "expression": "neutral", "target": name, "alpha": 0}
    assert page.evaluate("document.getElementById('transfer-result').naturalWidth") == SIZE


def test_a_bad_upload_gets_a_clear_message_on_the_page(page, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is not a jpeg")
    page.set_input_files("#photo", str(bad))
    page.click("#upload-button")
    page.wait_for_selector("#message.error")
    assert page.text_content("#message").startswith("holiday.jpg: not a PNG or JPEG image")


def test_live_page_screenshot(page, save_screenshot):
    page.wait_for_selector('#mix-result[data-loads="1"]')
    page.wait_for_selector('#attributes-result[data-loads="1"]')
    shot = save_screenshot(page, "explore_test.png", "flowjax live editor (test model)")
    assert shot.shape == (620, 1100, 3) and len(np.unique(shot.reshape(-1, 3), axis=0)) > 20


# ---- the page as a new user sees it (issue #27) ----------------------------------------


def _open(browser, live_url):
    """A fresh tab on the editor (for tests that change the editor before the page loads)."""
    tab = browser.new_context(viewport={"width": 1100, "height": 620}).new_page()
    tab.errors = []
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto(live_url)
    tab.wait_for_selector('#transfer-result[data-loads="1"]')
    return tab


def test_every_control_on_the_editor_page_has_an_accessible_name(page):
    from accessible_names import shown_controls, unnamed_controls

    assert unnamed_controls(page) == []  # before: 5 menus and 2 sliders without a name
    names = shown_controls(page)
    assert {names[f"select[id={i}]"] for i in ("face", "expression", "target", "mix-a",
                                                "mix-b")} == {"face", "expression", "onto", "with"}
    assert names["input[id=transfer-alpha][type=range]"] == "alpha"
    assert names["input[id=mix-weight][type=range]"] == "weight"
    assert names["input[id=attr-0][type=range]"] == "smile"  # the attribute, not its origin
    assert names["input[id=photo][type=file]"] == "photo"
    assert names["input[id=align][type=checkbox]"] == "align (detect the face)"


def test_without_a_detector_the_page_offers_no_align_and_says_why(browser, live_url, editor,
                                                                   monkeypatch):
    from accessible_names import unnamed_controls

    monkeypatch.setattr(editor, "aligner", None)
    monkeypatch.setattr(editor, "align_note", "no face detector loads on this server (dlib: x)")
    tab = _open(browser, live_url)
    assert tab.locator("#align").count() == 0  # before: a disabled checkbox, no reason
    assert tab.text_content("#align-note") == (
        'no "align" option: no face detector loads on this server (dlib: x); upload an '
        f"aligned {SIZE}x{SIZE} face")
    assert unnamed_controls(tab) == [] and tab.errors == []
    tab.context.close()


def _slide(page, selector: str, key: str, times: int = 1) -> None:
    page.focus(selector)
    for _ in range(times):
        page.keyboard.press(key)


def _expect_edit(page, panel: str, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(f"#{panel}-result")).to_have_attribute("data-edit", re.compile(pattern))


def test_reset_puts_each_panels_sliders_back(page):
    _slide(page, "#attr-0", "ArrowRight", 4)
    _slide(page, "#transfer-alpha", "Home")
    _slide(page, "#mix-weight", "End")
    _expect_edit(page, "attributes", '"smile":0.2,')
    _expect_edit(page, "transfer", '"alpha":0}')
    _expect_edit(page, "mix", '"weight":1}')
    for panel in ("attributes", "transfer", "mix"):
        page.click(f"#reset-{panel}")
    assert [page.input_value(s) for s in ("#attr-0", "#transfer-alpha", "#mix-weight")] == \
        ["0", "1", "0.5"]
    assert page.text_content("#attr-0-value") == "0.00"
    _expect_edit(page, "attributes", '"alphas":{"smile":0,"surprise":0}')  # the shown image too
    _expect_edit(page, "transfer", '"alpha":1}')
    _expect_edit(page, "mix", '"weight":0.5}')


def test_a_newly_chosen_face_starts_with_its_attribute_sliders_at_zero(page):
    _slide(page, "#attr-1", "ArrowLeft", 3)
    _expect_edit(page, "attributes", '"face":"id00","alphas":{"smile":0,"surprise":-0.15}')
    page.select_option("#face", "id02")
    assert page.input_value("#attr-1") == "0"  # before: -0.15, carried to the new face
    _expect_edit(page, "attributes", '"face":"id02","alphas":{"smile":0,"surprise":0}')


def test_an_uploaded_face_starts_with_every_slider_reset(page, synthetic_faces):
    from playwright.sync_api import expect

    _slide(page, "#attr-0", "ArrowRight", 2)
    _slide(page, "#transfer-alpha", "Home")
    _slide(page, "#mix-weight", "End")
    _expect_edit(page, "mix", '"weight":1}')
    page.set_input_files("#photo", str(synthetic_faces[5]))
    page.click("#upload-button")
    expect(page.locator("#message")).to_have_text(re.compile("^uploaded as "))
    name = page.text_content("#message").removeprefix("uploaded as ")
    assert [page.input_value(s) for s in ("#attr-0", "#transfer-alpha", "#mix-weight")] == \
        ["0", "1", "0.5"]
    _expect_edit(page, "attributes", re.escape(f'"face":"{name}","alphas":{{"smile":0,'))
    _expect_edit(page, "transfer", re.escape(f'"target":"{name}","alpha":1}}'))


def test_the_model_note_is_shown_by_the_model_line(browser, live_url, editor, monkeypatch):
    note = "This model was trained only on synthetic cartoon faces (test)."
    monkeypatch.setattr(editor, "model_note", note)
    tab = _open(browser, live_url)
    assert tab.text_content("header .meta + #model-note") == note
    assert tab.get_attribute("#model-note", "role") == "note"
    tab.context.close()
    monkeypatch.undo()
    tab = _open(browser, live_url)  # the random-init test model records no training data
    assert tab.locator("#model-note").count() == 0
    tab.context.close()


def test_the_page_and_its_icon_load_without_a_failed_request(browser, editor):
    """What the browser asks for by itself (the icon) is seen by the server, not the page."""
    app = explore.create_app(editor)
    answered, wsgi = [], app.wsgi_app

    def recording(environ, start_response):
        def start(status, headers, *rest):
            answered.append((environ["PATH_INFO"], int(status.split()[0])))
            return start_response(status, headers, *rest)
        return wsgi(environ, start)

    app.wsgi_app = recording
    server, url = _served(app)
    try:
        tab = browser.new_page()
        tab.goto(url + "/")
        tab.wait_for_selector('#transfer-result[data-loads="1"]')
        for _ in range(100):  # the icon is fetched after the page, when the browser likes
            if any(path == "/favicon.ico" for path, _ in answered):
                break
            tab.wait_for_timeout(50)
        tab.close()
    finally:
        server.shutdown()
    assert ("/favicon.ico", 200) in answered  # before: 404 on every load
    assert [a for a in answered if a[1] >= 400] == []


def test_ticking_align_on_a_real_photo_edits_the_aligned_face(page, editor, tmp_path):
    """With the detector the editor chose at start (dlib here, ~2.5 s an align); skipped
    with the reason where none loads."""
    from playwright.sync_api import expect

    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the test photo)")
    if editor.aligner is None:
        pytest.skip(f"no align option: {editor.align_note}")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    page.set_input_files("#photo", str(photo))
    page.check("#align")
    page.click("#upload-button")
    expect(page.locator("#message")).to_have_text("uploaded as astronaut", timeout=60_000)
    _expect_edit(page, "transfer", '"target":"astronaut"')
    aligned = editor.aligner(skimage_data.astronaut())  # what the upload encoded
    assert aligned.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(editor.faces["astronaut"], editor.encode(aligned[None])[0],
                               rtol=1e-5, atol=1e-5)


# ---- the shipped demo Glow (slow: encoding the study and compiling take ~1 minute) ---------


@pytest.mark.slow
def test_demo_editor_edits_an_uploaded_face(browser, tmp_path, save_screenshot):
    """The default config (demo Glow, synthetic study) in the page; its screenshot goes to
    docs/explore.png with FLOWJAX_UPDATE_SCREENSHOTS=1 (the one in docs/viewer.md)."""
    from flowjax import synthetic
    from experiments import explore as experiment

    config = explore_config.get_config()
    config.progress = False
    editor = experiment.build_editor(config)[0]
    editor.warm_up()
    faces = synthetic.write_generated_faces(tmp_path / "faces", 1, ("neutral",), 64, seed=11)
    with run_dirs.create_run_dir(tmp_path / "explore-demo") as run:  # as main() serves it
        _edit_upload_and_save(browser, explore.create_app(editor, save_to=run), faces,
                              save_screenshot)
    assert (tmp_path / "explore-demo" / "saved" / "edit_0001.png").is_file()


def _edit_upload_and_save(browser, app, faces, save_screenshot) -> None:
    """The demo page's steps: upload, edit in each panel, save the transfer; the screenshot."""
    from playwright.sync_api import expect
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # A short viewport: the full-page screenshot is then as tall as the page, not taller.
        context = browser.new_context(viewport={"width": 1440, "height": 300})
        tab = context.new_page()
        tab.goto(f"http://127.0.0.1:{server.server_port}/")
        assert re.match(r"model weights/demo/glow sha256:[0-9a-f]{64};",
                        tab.text_content("header .meta"))
        note = tab.text_content("header .meta + #model-note")  # from its metadata.json
        assert note.startswith("This model was trained only on synthetic cartoon faces") and \
            "weights/demo/glow/metadata.json" in note
        tab.set_input_files("#photo", str(faces["id00"][0]))
        tab.click("#upload-button")
        # the upload is named by its file, id00/neutral.png
        expect(tab.locator("#message")).to_have_text("uploaded as neutral", timeout=60_000)
        tab.select_option("#expression", "smile")
        expect(tab.locator("#transfer-result")).to_have_attribute(
            "data-edit", re.compile('"expression":"smile","target":"neutral"'))
        slider = tab.locator("#attr-0")
        slider.focus()
        for _ in range(10):
            tab.keyboard.press("ArrowRight")
        expect(tab.locator("#attributes-result")).to_have_attribute(
            "data-edit", re.compile('"smile":0.5'))
        tab.select_option("#mix-b", "id03")
        expect(tab.locator("#mix-result")).to_have_attribute("data-edit",
                                                             re.compile('"other":"id03"'))
        tab.locator("button.save").nth(1).click()  # the transfer panel's
        expect(tab.locator("#message")).to_have_text("saved explore-demo/saved/edit_0001.png")
        from accessible_names import unnamed_controls

        assert unnamed_controls(tab) == []  # the save buttons too
        save_screenshot(tab, "explore.png", "flowjax live editor with the demo Glow",
                        full_page=True)
        context.close()
    finally:
        server.shutdown()
