"""A live editor in the browser: upload a face, move it through Glow's latent space.

:class:`Editor` holds a loaded model and a set of named faces and directions,
all flat latents in one space (``eps`` by default, as OpenAI's demo):

* **faces**: identity mean faces, the source's expression images, uploads;
* **expressions**: ``s_e - m_s`` of each source expression image (the linear
  transfer's expression vector, Valenzuela et al. 2021);
* **attributes**: directions from labelled images
  (``flowjax.transfer.latents.attribute_vector``) or rows of OpenAI's
  ``z_manipulate.npy`` (``flowjax.faces.openai_attributes``).

Three edits, each computed on the host and shown through **one jitted decode**
(``flowjax.transfer.sweep.decode_latents`` of one latent; compiled once, then reused):

* ``attributes``: ``z_face + sum_i alpha_i v_i``;
* ``transfer``: ``m_t + alpha (s_e - m_s)``, the expression ``e`` onto the
  target ``t`` (a mean face or an upload);
* ``mix``: ``(1 - w) z_a + w z_b``.

:func:`create_app` serves the editor with Flask: the page and its icon
(:mod:`flowjax.app.assets`), a JSON API and PNG images. The page shows what
``/api/state`` says: the model and, when its checkpoint records synthetic
training faces, a note saying so (:mod:`flowjax.app.trained_on`); the "align"
option only where a detector loaded, else why not
(:mod:`flowjax.app.align_choice`). Every PNG it serves or saves is written by
:func:`flowjax.io.encode_png`, so it carries the SYNTHETIC provenance labels
and the edit that made it. What a request may be is :mod:`flowjax.app.guards`'
(its Host and Origin, JSON depth, field types, upload file names, rate); the
upload size is Flask's
``MAX_CONTENT_LENGTH`` (413) and the photo's pixel count is checked before
decoding. Every error, on every route, is one JSON ``{"error": message}``:
400 for a bad request (naming the file or field, what was expected and what
to do), 403 for another site's, 413, 429, and 500 for a bug (its traceback
goes to the server's log only). Concurrent requests: encodes and decodes take
turns (one lock); the faces and their names have their own, so an upload's
name is reserved before its slow encode and never given twice; saves are
:mod:`flowjax.app.saved`'s.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flowjax import io as fio
from flowjax.app import assets, guards
from flowjax.app.guards import MAX_ALPHA, EditError, Limits, RateLimiter, shown
from flowjax.app.saved import SavedEdits
from flowjax.faces import openai_attributes
from flowjax.runs import run_dirs
from flowjax.runs.names import display_path
from flowjax.transfer import latents, sweep

PNG = "image/png"
EXAMPLE = '{"kind": "mix", "face": "id01", "other": "id02", "weight": 0.5}'


class Editor:
    """A model and named flat latents; every edit is one decode (see the module docstring).

    Args:
      model, variables: the Glow and its weights.
      model_label: provenance text naming the model (checkpoint and sha256).
      space: ``"eps"`` or ``"z"``, the space of every latent here.
      chunk_size: the encode batch (uploads are padded to it: one compile).
      aligner: ``uint8 [H, W, 3] -> uint8 [S, S, 3]`` for uploads sent with
        ``align``; None refuses such uploads with a message.
      align_note: what the page says of alignment: the detector, or why there is none
        (:mod:`flowjax.app.align_choice`).
      model_note: a warning shown by the model line, e.g. that it knows only synthetic
        faces (:mod:`flowjax.app.trained_on`); None for none.
    """

    def __init__(self, model: Any, variables: Any, model_label: str, *, space: str = "eps",
                 chunk_size: int = 8,
                 aligner: Callable[[np.ndarray], np.ndarray] | None = None,
                 align_note: str = "", model_note: str | None = None) -> None:
        self.model, self.variables, self.model_label = model, variables, model_label
        self.align_note = align_note or ("" if aligner else "no face detector on this server")
        self.model_note = model_note
        self.space = latents.check_space(space)
        self.chunk_size = int(chunk_size)
        self.aligner = aligner
        self.size = int(model.image_size)
        self.faces: dict[str, np.ndarray] = {}
        self.kinds: dict[str, str] = {}
        self.expressions: dict[str, np.ndarray] = {}
        self.attributes: dict[str, np.ndarray] = {}
        self.origins: dict[str, str] = {}
        self._uploads: collections.deque[str] = collections.deque()  # the live ones, oldest first
        self._upload_names: set[str] = set()  # every name given to an upload: never reused
        self._lock = threading.Lock()  # one encode or decode at a time: JAX is not re-entrant
        self._names = threading.Lock()  # the faces and their names, which uploads change

    # ---- latents ------------------------------------------------------------------

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Flat latents ``[N, D]`` in ``self.space`` of uint8 images ``[N, S, S, 3]``."""
        with self._lock:
            encoding = sweep.encode_images(self.model, self.variables, np.asarray(images),
                                           chunk_size=self.chunk_size, progress=False)
        return np.asarray(latents.flatten(list(latents.in_space(encoding, self.space))))

    def decode(self, flat: np.ndarray) -> np.ndarray:
        """One jitted decode of one flat latent ``[D]`` -> uint8 ``[S, S, 3]``."""
        if not np.isfinite(flat).all():
            raise EditError("the edited latent has non-finite values; use smaller alphas")
        with self._lock:
            image = sweep.decode_latents(self.model, self.variables, np.asarray(flat)[None],
                                         space=self.space, chunk_size=1, progress=False)
        return np.asarray(image[0])

    def warm_up(self) -> None:
        """Compiles the decode once before serving, so the first edit is as fast as the rest."""
        if self.faces:
            self.decode(next(iter(self.faces.values())))

    def add_identity(self, name: str, images: np.ndarray) -> None:
        """A face: the mean latent of one identity's images."""
        self.faces[name] = self.encode(images).mean(axis=0)
        self.kinds[name] = "identity mean"

    def add_source(self, source: str, images: np.ndarray, expressions: Mapping[str, int]) -> None:
        """The source identity: its mean face, and ``s_e - m_s`` for each expression image
        ``images[expressions[e]]`` (the mean is over all its images, as the transfer takes it)."""
        flat = self.encode(images)
        mean = flat.mean(axis=0)
        self.faces[source] = mean
        self.kinds[source] = "identity mean"
        for name, index in expressions.items():
            self.faces[f"{source}:{name}"] = flat[index]
            self.kinds[f"{source}:{name}"] = "source expression"
            self.expressions[name] = flat[index] - mean

    def add_attribute(self, name: str, vector: np.ndarray, origin: str) -> None:
        """A direction ``[D]`` for the attribute sliders."""
        vector = np.asarray(vector, np.float32).reshape(-1)
        if vector.shape[0] != self.dimension or not np.isfinite(vector).all():
            raise ValueError(f"attribute {name!r} ({origin}): expected a finite flat vector of "
                             f"{self.dimension} values for this model, got {vector.shape}")
        self.attributes[name], self.origins[name] = vector, origin

    def add_attribute_from_images(self, name: str, positive: np.ndarray, negative: np.ndarray,
                                  origin: str, scale: float = 1.0) -> None:
        """``scale * (mean(z | positive) - mean(z | negative))`` from labelled images."""
        both = self.encode(np.concatenate([positive, negative]))
        vector = latents.attribute_vector(both[: len(positive)], both[len(positive):], scale)
        self.add_attribute(name, np.asarray(vector), origin)

    def add_openai_attributes(self, path: fio.PathLike, names: Sequence[str]) -> None:
        """Rows ``names`` of OpenAI's ``z_manipulate.npy`` (with the demo's edits: Beard, Age,
        Narrow_Eyes x1.2), checked against this model's latent size; eps space only."""
        if self.space != "eps":
            raise ValueError(f"{path} holds eps-space directions; this editor works in "
                             f"{self.space!r} (set config.space='eps')")
        vectors = openai_attributes.load_attribute_vectors(path, demo_edits=True,
                                                           expected_dim=self.dimension)
        for name in names:
            self.add_attribute(name, np.asarray(vectors.get(name)),
                               f"{path} (OpenAI z_manipulate, demo edits)")

    @property
    def dimension(self) -> int:
        return latents.flat_size(self.model.latent_shapes)

    # ---- uploads ------------------------------------------------------------------

    def read_upload(self, payload: bytes, filename: str, align: bool,
                    max_pixels: int) -> np.ndarray:
        """A photo's bytes -> the model-sized uint8 face, or an EditError saying why not."""
        name = guards.upload_filename(filename)
        if not payload:
            raise EditError(f"{name}: the file is empty; choose a PNG or JPEG photo")
        try:
            with Image.open(io.BytesIO(payload)) as peek:
                width, height = peek.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise EditError(f"{name}: not a PNG or JPEG image ({type(error).__name__}); choose "
                            "a photo file") from None
        if width * height > max_pixels:
            raise EditError(f"{name}: {width}x{height} pixels is larger than the limit of "
                            f"{max_pixels} pixels; scale the photo down first")
        with tempfile.TemporaryDirectory(prefix="flowjax-upload-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(payload)
            try:
                image, _ = fio.load_image(path)
            except ValueError as error:
                raise EditError(str(error).replace(str(path), name)) from None
        if align:
            if self.aligner is None:
                raise EditError(f"{name}: alignment is not available on this server "
                                f"({self.align_note}); upload an aligned {self.size}x{self.size} "
                                "face instead")
            try:
                image = self.aligner(image)
            except ValueError as error:
                raise EditError(str(error).replace("<array>", name)) from None
        elif image.shape[:2] != (self.size, self.size):
            raise EditError(f"{name}: the photo is {image.shape[1]}x{image.shape[0]}, this model "
                            f"takes aligned faces of {self.size}x{self.size}; tick 'align' to "
                            f"detect and align the face, or crop it to {self.size}x{self.size}")
        return image

    def add_upload(self, image: np.ndarray, filename: str, max_uploads: int) -> str:
        """Encodes an uploaded face, named after its file (``guards.face_name``: unique, and
        never given twice); the oldest upload goes when there are more than ``max_uploads``."""
        with self._names:  # reserved before the slow encode: a concurrent upload gets another
            name = guards.face_name(filename, self.faces.keys() | self._upload_names)
            self._upload_names.add(name)
        flat = self.encode(image[None])[0]
        with self._names:
            self.faces[name], self.kinds[name] = flat, "upload"
            self._uploads.append(name)
            while len(self._uploads) > max_uploads:
                oldest = self._uploads.popleft()
                del self.faces[oldest], self.kinds[oldest]
        return name

    # ---- edits --------------------------------------------------------------------

    def _face(self, request: Mapping[str, Any], key: str, what: str) -> np.ndarray:
        name = guards.name_field(request, key, what)
        with self._names:
            face, choices = self.faces.get(name), sorted(self.faces)
        if face is None:
            raise EditError(f"{what} {shown(name)} is not a face here; choose one of {choices}")
        return face

    def edit_latent(self, request: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """The flat latent of an edit request (fields checked by type) and its record."""
        kind = request.get("kind")
        if kind == "attributes":
            z = self._face(request, "face", "face").copy()
            alphas = request.get("alphas") or {}
            if not isinstance(alphas, Mapping):
                raise EditError(f"alphas must be an object {{attribute: alpha}}, got "
                                f"{shown(alphas)}")
            used = {}
            for name, alpha in alphas.items():
                if name not in self.attributes:
                    raise EditError(f"attribute {shown(name)} is not loaded; choose from "
                                    f"{sorted(self.attributes)}")
                used[name] = guards.number(alpha, f"alpha of {name!r}")
                z = z + used[name] * self.attributes[name]
            record = {"edit": "attributes: z_face + sum alpha_i v_i", "face": request["face"],
                      "alphas": used, "directions": {n: self.origins[n] for n in used}}
        elif kind == "transfer":
            expression = guards.name_field(request, "expression", "expression")
            if expression not in self.expressions:
                raise EditError(f"expression {shown(expression)} is not loaded; choose from "
                                f"{sorted(self.expressions)}")
            target = self._face(request, "target", "target")
            alpha = guards.number(request.get("alpha", 1.0), "alpha")
            z = target + alpha * self.expressions[expression]
            record = {"edit": "transfer (linear): m_t + alpha (s_e - m_s)",
                      "expression": expression, "target": request["target"], "alpha": alpha}
        elif kind == "mix":
            a, b = self._face(request, "face", "face"), self._face(request, "other", "other face")
            weight = guards.number(request.get("weight", 0.5), "weight")
            z = (1.0 - weight) * a + weight * b
            record = {"edit": "mix: (1 - w) z_a + w z_b", "face": request["face"],
                      "other": request["other"], "weight": weight}
        else:
            raise EditError(f"unknown edit kind {shown(kind)}; use attributes, transfer or mix")
        record.update(space=self.space, model=self.model_label)
        return z, record

    def render(self, request: Mapping[str, Any]) -> bytes:
        """PNG bytes (with provenance) of an edit: one decode."""
        z, record = self.edit_latent(request)
        return fio.encode_png(self.decode(z), {"flowjax_explore": record})

    def state(self) -> dict[str, Any]:
        """What the page offers: faces (and their kinds), expressions, attributes."""
        with self._names:
            faces = [{"name": n, "kind": self.kinds[n]} for n in self.faces]
        return {"model": self.model_label, "model_note": self.model_note,
                "image_size": self.size, "space": self.space,
                "faces": faces, "expressions": list(self.expressions),
                "attributes": [{"name": n, "origin": self.origins[n]} for n in self.attributes],
                "align": self.aligner is not None, "align_note": self.align_note,
                "max_alpha": MAX_ALPHA}


def create_app(editor: Editor, limits: Limits = Limits(),
               save_to: run_dirs.RunDir | None = None, *, host: str = "127.0.0.1",
               port: int | None = None) -> Any:
    """The Flask app serving ``editor`` (see the module docstring for the routes' rules).

    ``host``, ``port``: the address it is served on, which every request's ``Host`` and
    ``Origin`` must name (``guards.check_host_and_origin``); ``port=None`` takes the port of
    the socket that accepted the request (a test server on port 0)."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    app = Flask("flowjax.app.explore")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_upload_bytes
    limiter = RateLimiter(limits.requests_per_minute)
    saved = SavedEdits(save_to) if save_to is not None else None

    def error(message: str, status: int):
        return jsonify({"error": message}), status

    def png(payload: bytes):
        return app.response_class(payload, mimetype=PNG, headers={"Cache-Control": "no-store"})

    @app.before_request
    def guard():
        guards.check_host_and_origin(request.headers.get("Host"), request.headers.get("Origin"),
                                     host, port or int(request.environ.get("SERVER_PORT", 80)))
        if request.path.startswith("/api/") and not limiter.allow(request.remote_addr or "?"):
            return error(f"too many requests: at most {limits.requests_per_minute} per minute "
                         "from one client; wait a moment and try again", 429)
        return None

    @app.errorhandler(EditError)
    def refused(exc: EditError):
        return error(str(exc), exc.status)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_):
        return error(f"the upload is larger than the limit of "
                     f"{limits.max_upload_bytes / 2 ** 20:.1f} MB; choose a smaller photo", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error(f"{exc.name}: {exc.description}", exc.code or 500)

    @app.errorhandler(Exception)
    def bug(exc: Exception):
        app.logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return error(f"the editor failed on this request ({type(exc).__name__}), a bug; the "
                     "server's log has the details", 500)

    @app.get("/")
    def index():
        return app.response_class(assets.page(), mimetype="text/html")

    @app.get("/favicon.ico")
    def favicon():
        return app.response_class(assets.favicon(), mimetype=PNG,
                                  headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/state")
    def state():
        return jsonify({**editor.state(), "saving": save_to is not None,
                        "limits": dataclasses.asdict(limits)})

    @app.post("/api/upload")
    def upload():
        file = request.files.get("photo")
        if file is None:
            raise EditError("no photo in the upload: send the file in the form field 'photo'")
        align = request.form.get("align", "false").lower() in ("1", "true", "on", "yes")
        filename = guards.upload_filename(file.filename)
        image = editor.read_upload(file.read(), filename, align, limits.max_pixels)
        name = editor.add_upload(image, filename, limits.max_uploads)
        return jsonify({"name": name, "faces": editor.state()["faces"]})

    def edit_request() -> Mapping[str, Any]:
        if not request.is_json:
            raise EditError(f"send the edit as JSON (Content-Type: application/json), e.g. "
                            f"{EXAMPLE}")
        return guards.json_object(request.get_data(cache=False), EXAMPLE)

    @app.post("/api/edit")
    def edit():
        return png(editor.render(edit_request()))

    @app.post("/api/save")
    def save():
        if saved is None:
            raise EditError("this server was started without a run directory to save into")
        path = saved.save(editor.render(edit_request()))  # the PNG as served, with provenance
        # "saved" for programs on this machine; the page shows "shown" (no absolute path).
        return jsonify({"saved": str(path), "shown": display_path(path, saved.run.path)})

    return app


def serve(app: Any, host: str, port: int) -> None:
    """Runs the app on ``host:port`` (werkzeug's threaded server, as ``flask run``)."""
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False)
