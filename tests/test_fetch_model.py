"""Specification of ``python -m tools.fetch_model``: OpenAI's model in one command, offline.

A threaded HTTP server on 127.0.0.1 plays OpenAI's host: it serves the OpenAI
fixture's 32x32 demo-form graph (``tests/fixtures/openai_glow_32``) as
``large3/graph_unoptimized.pb`` and a made-up ``z_manipulate.npy`` of the
fixture's flat size (float32 [40, 3072]), honours ``Range`` requests, and can
close a connection midway. The test table (:func:`_spec`) pins both files' exact
sizes and sha256; the astronaut is resized, not aligned (the fixture was not
trained on faces), so only the test of OpenAI's check photo needs dlib (skipped without it).

About 45 s on 2 busy cores, most of it compiling the fixture's encode and decode
once (the first successful fetch, ~25 s); every failure case stops before that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tools import fetch_model

ROOT = Path(__file__).resolve().parents[1]
GRAPH = (ROOT / "tests" / "fixtures" / "openai_glow_32" / "glow_demo_form.pb").read_bytes()
FIXTURE_MODEL = dict(image_size=32, n_levels=3, depth=3, width=32)  # build_info.json's hps
BASE = "/glow-demo/"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


VECTORS = _npy(np.random.default_rng(0).normal(0, 0.1, (40, 32 * 32 * 3)).astype(np.float32))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(graph: bytes = GRAPH, vectors: bytes = VECTORS, **graph_changes) -> fetch_model.ModelSpec:
    """The fixture's table; ``graph_changes`` replace fields of the graph's entry."""
    files = (
        fetch_model.PublishedFile(**{
            "name": "graph_unoptimized.pb", "path": "large3/graph_unoptimized.pb",
            "role": "graph", "min_bytes": len(graph), "max_bytes": len(graph),
            "sha256": _sha(graph), **graph_changes}),
        fetch_model.PublishedFile("z_manipulate.npy", "z_manipulate.npy", "attributes",
                                  len(vectors), len(vectors), _sha(vectors)),
    )
    return fetch_model.ModelSpec(name="openai-glow32-fixture", base_url="http://127.0.0.1:9/no/",
                                 files=files, model=FIXTURE_MODEL, allow=("random_uniform",),
                                 alignment="resize")


class Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with Range support (unless ``ignore_range``);
    ``cuts[path]`` lists, per coming request, after how many body bytes to close the
    connection (None: never)."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.cuts, self.requests = files, {}, []
        self.ignore_range = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{BASE}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        server: Server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        match = None if server.ignore_range else match
        if match and int(match[1]) >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if match:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", f'"{_sha(data)[:16]}"')
        self.end_headers()
        body = data[start:]
        cuts = server.cuts.get(self.path)
        cut = cuts.pop(0) if cuts else None
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True  # drop it midway: the client sees a short body

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(files: dict[str, bytes]):
    server = Server({BASE + name: data for name, data in files.items()})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server():
    with _serving({"large3/graph_unoptimized.pb": GRAPH, "z_manipulate.npy": VECTORS}) as s:
        yield s


def _fetch(spec, tmp_path, **options):
    options.setdefault("download_dir", tmp_path / "downloads")
    return fetch_model.fetch(spec, tmp_path / "celeba", backoff_s=0.0, stream=io.StringIO(),
                             **options)


def _nothing_written(tmp_path: Path) -> bool:
    """No --out and no staging folder beside it."""
    return not [p.name for p in tmp_path.iterdir() if "celeba" in p.name]


# ---------------------------------------------------------------- success


def test_a_fetch_gives_a_loadable_model_that_round_trips_a_real_photo_exactly(server, tmp_path):
    from flowjax.models import checkpoints, glow

    manifest = _fetch(_spec(), tmp_path, url=server.url)
    out = tmp_path / "celeba"
    model, variables = checkpoints.load_model(out)
    assert (model.image_size, model.n_levels, model.depth, model.width) == (32, 3, 3, 32)
    photo, _ = fetch_model.check_photo(32, "resize")
    encoding = glow.encode(model, variables, photo[None])
    decoded = np.asarray(glow.decode(model, variables, encoding.eps))[0]
    np.testing.assert_array_equal(decoded, photo >> 3 << 3)
    assert np.isfinite(encoding.bits_per_dim).all()
    check = manifest["check"]
    assert check["exact"] and check["values_differing"] == 0 and check["values"] == 3072
    assert check["bits_per_dim_mid_bin"] == pytest.approx(float(encoding.bits_per_dim[0]), rel=1e-6)
    # The conversion is the converter's (117 tensors, build_info.json), its sampler allowed.
    assert (manifest["conversion"]["tensor_count"], manifest["conversion"]["allowed"]) == (
        117, ["random_uniform"])
    # The attribute vectors travel as published, and every sha256 is recorded.
    assert (out / "z_manipulate.npy").read_bytes() == VECTORS
    recorded = json.loads((out / fetch_model.MANIFEST_NAME).read_text())
    assert {name: r["sha256"] for name, r in recorded["files"].items()} == {
        "graph_unoptimized.pb": _sha(GRAPH), "z_manipulate.npy": _sha(VECTORS)}
    assert recorded["files"]["graph_unoptimized.pb"]["url"] == server.url + \
        "large3/graph_unoptimized.pb"
    assert recorded["attribute_vectors"]["z_manipulate.npy"]["shape"] == [40, 3072]
    assert checkpoints.load_metadata(out)["openai_conversion"]["source"]["sha256"] == _sha(GRAPH)
    # Only the finished model is left: no staging folder, no .part file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["celeba", "downloads"]
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [
        "graph_unoptimized.pb", "z_manipulate.npy"]


def test_local_copies_with_from_are_verified_and_converted_without_a_request(server, tmp_path):
    from flowjax.models import checkpoints

    local = tmp_path / "glow-demo"
    local.mkdir()
    (local / "graph_unoptimized.pb").write_bytes(GRAPH)
    (local / "z_manipulate.npy").write_bytes(VECTORS)
    manifest = _fetch(_spec(), tmp_path, local=local)
    assert server.requests == []
    assert manifest["source"] == {"from": str(local)}
    assert manifest["files"]["graph_unoptimized.pb"]["path"] == str(local / "graph_unoptimized.pb")
    model, _ = checkpoints.load_model(tmp_path / "celeba")
    assert model.image_size == 32 and manifest["check"]["exact"]


# ---------------------------------------------------------------- resuming


def test_a_connection_closed_midway_resumes_with_a_range_request(server, tmp_path):
    half = len(GRAPH) // 2
    server.cuts[BASE + "large3/graph_unoptimized.pb"] = [half]
    file = _spec().graph()
    path, record = fetch_model.download(file, server.url + file.path, tmp_path, retries=2,
                                        backoff_s=0.0, stream=io.StringIO())
    assert path.read_bytes() == GRAPH
    assert server.requests == [(BASE + file.path, None), (BASE + file.path, f"bytes={half}-")]
    assert record["attempts"] == 2 and record["resumed_from"] == [half]
    assert record["sha256"] == _sha(GRAPH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph_unoptimized.pb"]


def test_an_interrupted_run_keeps_its_part_and_the_next_run_resumes_it(server, tmp_path):
    cut = 300_000
    server.cuts[BASE + "large3/graph_unoptimized.pb"] = [cut]
    with pytest.raises(fetch_model.FetchError,
                       match=rf"graph_unoptimized\.pb: the download from .* stopped at "
                             rf"{cut:,} bytes .* run the same command again to resume"):
        _fetch(_spec(), tmp_path, url=server.url, retries=0)
    assert _nothing_written(tmp_path)
    part = tmp_path / "downloads" / "graph_unoptimized.pb.part"
    assert part.read_bytes() == GRAPH[:cut]
    file = _spec().graph()
    path, record = fetch_model.download(file, server.url + file.path, tmp_path / "downloads",
                                        stream=io.StringIO())
    assert server.requests[-1] == (BASE + file.path, f"bytes={cut}-")
    assert path.read_bytes() == GRAPH and record["resumed_from"] == [cut]
    assert not part.exists()


def test_a_server_that_ignores_the_range_sends_the_whole_file_again(server, tmp_path):
    server.ignore_range = True
    server.cuts[BASE + "large3/graph_unoptimized.pb"] = [1000]
    file = _spec().graph()
    path, record = fetch_model.download(file, server.url + file.path, tmp_path, retries=1,
                                        backoff_s=0.0, stream=io.StringIO())
    assert server.requests[-1] == (BASE + file.path, "bytes=1000-")  # asked, got it all
    assert path.read_bytes() == GRAPH and record["resumed_from"] == []


def test_a_part_that_was_complete_is_verified_without_downloading_it_again(server, tmp_path):
    file = _spec().graph()
    url = server.url + file.path
    (tmp_path / "graph_unoptimized.pb.part").write_bytes(GRAPH)
    (tmp_path / "graph_unoptimized.pb.part.json").write_text(
        json.dumps({"url": url, "total": len(GRAPH)}))
    path, record = fetch_model.download(file, url, tmp_path, stream=io.StringIO())
    assert server.requests == [(BASE + file.path, f"bytes={len(GRAPH)}-")]  # answered 416
    assert path.read_bytes() == GRAPH and record["sha256"] == _sha(GRAPH)


def test_a_verified_download_is_reused_and_checked_again(server, tmp_path):
    file = _spec().graph()
    url = server.url + file.path
    fetch_model.download(file, url, tmp_path, stream=io.StringIO())
    path, record = fetch_model.download(file, url, tmp_path, stream=io.StringIO())
    assert len(server.requests) == 1 and record["reused"] == str(path)
    path.write_bytes(GRAPH[:-1] + b"!")  # damaged since
    with pytest.raises(fetch_model.FetchError,
                       match=r"graph_unoptimized\.pb: .*downloaded before; delete it .* has "
                             r"sha256 [0-9a-f]{64}, expected"):
        fetch_model.download(file, url, tmp_path, stream=io.StringIO())
    assert len(server.requests) == 1


def test_a_part_from_another_url_is_not_continued(server, tmp_path):
    file = _spec().graph()
    (tmp_path / "graph_unoptimized.pb.part").write_bytes(b"x" * 1000)
    (tmp_path / "graph_unoptimized.pb.part.json").write_text(
        json.dumps({"url": "http://elsewhere/graph.pb", "total": len(GRAPH)}))
    path, record = fetch_model.download(file, server.url + file.path, tmp_path,
                                        stream=io.StringIO())
    assert server.requests == [(BASE + file.path, None)]
    assert path.read_bytes() == GRAPH and record["resumed_from"] == []


# ---------------------------------------------------------------- wrong files


def test_a_file_of_the_wrong_size_stops_before_the_transfer_naming_both_sizes(server, tmp_path):
    spec = _spec(min_bytes=len(GRAPH) + 1, max_bytes=len(GRAPH) + 1)
    with pytest.raises(fetch_model.FetchError,
                       match=rf"graph_unoptimized\.pb: .*graph_unoptimized\.pb has {len(GRAPH):,} "
                             rf"bytes \(as the server declares\), expected {len(GRAPH) + 1:,} "
                             r"bytes; nothing was downloaded"):
        _fetch(spec, tmp_path, url=server.url)
    assert _nothing_written(tmp_path)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_local_copy_of_the_wrong_size_is_refused_and_kept(tmp_path):
    local = tmp_path / "glow-demo"
    local.mkdir()
    (local / "graph_unoptimized.pb").write_bytes(GRAPH[:-10])
    (local / "z_manipulate.npy").write_bytes(VECTORS)
    with pytest.raises(fetch_model.FetchError,
                       match=rf"graph_unoptimized\.pb: the local copy .* has {len(GRAPH) - 10:,} "
                             rf"bytes, expected {len(GRAPH):,} bytes"):
        _fetch(_spec(), tmp_path, local=local)
    assert _nothing_written(tmp_path)
    assert (local / "graph_unoptimized.pb").is_file()


def test_a_file_whose_sha256_is_wrong_stops_naming_both_and_is_deleted(server, tmp_path):
    other = _sha(b"another graph")
    with pytest.raises(fetch_model.FetchError,
                       match=rf"graph_unoptimized\.pb: the download from \S+ has sha256 "
                             rf"{_sha(GRAPH)}, expected {other}; the download was deleted"):
        _fetch(_spec(sha256=other), tmp_path, url=server.url)
    assert _nothing_written(tmp_path)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_attribute_vectors_of_the_wrong_shape_leave_no_model(tmp_path):
    wrong = _npy(np.zeros((40, 100), np.float32))
    local = tmp_path / "glow-demo"
    local.mkdir()
    (local / "graph_unoptimized.pb").write_bytes(GRAPH)
    (local / "z_manipulate.npy").write_bytes(wrong)
    with pytest.raises(ValueError, match=r"z_manipulate\.npy: expected shape \(40, 3072\)"):
        _fetch(_spec(vectors=wrong), tmp_path, local=local)
    assert _nothing_written(tmp_path)


def test_pickled_attribute_vectors_are_never_unpickled(tmp_path):
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"not": "numbers"}] * 40, dtype=object), allow_pickle=True)
    local = tmp_path / "glow-demo"
    local.mkdir()
    (local / "graph_unoptimized.pb").write_bytes(GRAPH)
    (local / "z_manipulate.npy").write_bytes(pickled.getvalue())
    with pytest.raises(ValueError, match=r"z_manipulate\.npy: not a plain numeric \.npy array.*"
                                          r"pickled data is never loaded"):
        _fetch(_spec(vectors=pickled.getvalue()), tmp_path, local=local)
    assert _nothing_written(tmp_path)


def test_a_round_trip_that_is_not_exact_leaves_no_model(server, tmp_path, monkeypatch):
    from flowjax.models import glow

    decode = glow.decode
    monkeypatch.setattr(glow, "decode", lambda *a, **k: decode(*a, **k) ^ np.uint8(8))
    with pytest.raises(fetch_model.FetchError,
                       match=r"does not reconstruct the astronaut exactly: 3072 of 3072 values "
                             r"differ at 5 bits \(max by 8\).*no model was written"):
        _fetch(_spec(), tmp_path, url=server.url)
    assert _nothing_written(tmp_path)


def test_a_missing_file_on_the_server_names_the_url(server, tmp_path):
    spec = _spec(path="large3/absent.pb")
    with pytest.raises(fetch_model.FetchError, match=r"HTTP 404 .* from \S+/large3/absent\.pb; "
                                                     r"pass --url=BASE_URL of a mirror"):
        _fetch(spec, tmp_path, url=server.url)
    assert _nothing_written(tmp_path)


def test_openais_check_photo_is_the_astronaut_aligned_with_dlib_as_flowjax_faces_does():
    from flowjax.faces import align, dlib_models

    if dlib_models.dlib_import_error() is not None:
        pytest.skip(f"dlib unavailable: {dlib_models.dlib_import_error()}")
    from skimage import data

    photo, record = fetch_model.check_photo(256, "dlib")
    expected, info = align.align_photo(data.astronaut(), detector=dlib_models.dlib_detector(),
                                       size=256)
    np.testing.assert_array_equal(photo, expected)
    assert record["alignment"].startswith("aligned with dlib") and info.n_faces == 1


# ---------------------------------------------------------------- the table


def test_the_built_in_table_is_openais_and_cannot_be_replaced_by_a_spec(tmp_path):
    spec = fetch_model.MODELS["openai-celeba256"]
    urls = [fetch_model.file_url(spec.base_url, f) for f in spec.files]
    assert urls == ["https://openaipublic.azureedge.net/glow-demo/large3/graph_unoptimized.pb",
                    "https://openaipublic.azureedge.net/glow-demo/z_manipulate.npy"]
    graph, vectors = spec.files
    assert graph.min_bytes == 175_099_620 * 4 and graph.max_bytes < 2**31
    assert vectors.min_bytes > 40 * 196_608 * 4 and vectors.max_bytes <= 40 * 196_608 * 4 + 4096
    assert spec.allow == ("random_uniform",) and spec.alignment == "dlib"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**dataclasses_json(_spec()), "name": "openai-celeba256"}))
    with pytest.raises(ValueError, match="names the built-in model 'openai-celeba256'"):
        fetch_model.spec_for("openai-celeba256", str(path))
    path.write_text(json.dumps(dataclasses_json(_spec())))
    assert fetch_model.spec_for("openai-glow32-fixture", str(path)) == _spec()


def dataclasses_json(spec: fetch_model.ModelSpec) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def test_the_command_answers_a_wrong_size_with_one_error_line(server, tmp_path):
    spec = dataclasses_json(_spec(min_bytes=10, max_bytes=20))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "tools.fetch_model", "openai-glow32-fixture",
         f"--spec={tmp_path / 'spec.json'}", f"--url={server.url}", f"--out={tmp_path / 'celeba'}",
         f"--download_dir={tmp_path / 'downloads'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
             "HOME": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: FetchError: graph_unoptimized.pb: ") and len(lines) == 1
    assert f"has {len(GRAPH):,} bytes (as the server declares), expected between 10 and 20" in \
        lines[-1]
    assert _nothing_written(tmp_path)
