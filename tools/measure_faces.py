"""Measure the real-face components on scikit-image's bundled photographs.

Prints, as JSON: per-photo wall times of dlib alignment (``flowjax.faces.align`` with
the ``dlib`` detector), dlib identity embedding and MTCNN detection, and how
MTCNN's two eye landmarks differ from dlib's 68-point eye centres on the same
faces (inter-eye distance ratio; midpoint offset across and down the face, in
units of dlib's inter-eye distance). The numbers in ``flowjax.faces.align``'s
``MtcnnDetector`` docstring come from the first command, the README's
times per photo from the second (run where MTCNN imports)::

    python -m tools.measure_faces --mtcnn_numpy_nms
    python -m tools.measure_faces --repeats=5 --nocompare_eyes

Photos: ``skimage.data.astronaut()`` (512 px) at 512, 1024 and 2048 px, and
the faces of ``skimage.data.lfw_subset()`` (25 px crops) enlarged to 200 px.

``--mtcnn_numpy_nms``: where facenet-pytorch's MTCNN does not import because
torchvision's compiled ops do not match torch, MTCNN's one torchvision op
(``batched_nms``) is replaced, in this process only, by facenet-pytorch's own
numpy NMS (IoU "Union"); the networks and weights are MTCNN's own. Without the
flag, MTCNN is measured only where it imports.
"""

from __future__ import annotations

import json
import sys
import time
import types

import numpy as np
from absl import flags

from flowjax.runs import runtime
from PIL import Image

_NUMPY_NMS = flags.DEFINE_bool("mtcnn_numpy_nms", False, "Run MTCNN with facenet-pytorch's "
                                "numpy NMS where torchvision's ops do not load.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per measurement (median).")
_COMPARE_EYES = flags.DEFINE_bool("compare_eyes", True, "Also compare MTCNN's eyes with "
                                  "dlib's on the astronaut and 100 LFW faces (minutes).")


def _install_numpy_nms() -> None:
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        raise ImportError("facenet-pytorch is not installed: pip install facenet-pytorch==2.5.3")
    boxes = types.ModuleType("torchvision.ops.boxes")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = types.SimpleNamespace()
    sys.modules.update({"torchvision": types.ModuleType("torchvision"),
                        "torchvision.ops": types.ModuleType("torchvision.ops"),
                        "torchvision.ops.boxes": boxes, "torchvision.transforms": transforms})

    def batched_nms(b, s, i, threshold):
        from facenet_pytorch.models.utils import detect_face

        return detect_face.batched_nms_numpy(b, s, i, threshold, "Union")

    boxes.batched_nms = batched_nms


def _median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)), 3)


def main(argv: list[str]) -> None:
    del argv
    if _NUMPY_NMS.value:
        _install_numpy_nms()
    import skimage.data

    from flowjax.evaluation.dlib_identity import DlibEmbedder
    from flowjax.faces import align, detectors

    result: dict = {}
    start = time.perf_counter()
    dlib_detector = detectors.detector_from_spec("dlib")
    embedder = DlibEmbedder()
    result["dlib_models_load_s"] = round(time.perf_counter() - start, 2)
    astronaut = skimage.data.astronaut()
    sizes = {w: np.asarray(Image.fromarray(astronaut).resize((w, w), Image.Resampling.LANCZOS))
             for w in (512, 1024, 2048)}
    result["dlib_align_s"] = {w: _median_time(lambda im=im: align.align_photo(
        im, detector=dlib_detector, size=256), _REPEATS.value) for w, im in sizes.items()}
    aligned64, _ = align.align_photo(astronaut, detector=dlib_detector, size=64)
    result["dlib_embed_s"] = {
        "512": _median_time(lambda: embedder.embed(astronaut[None]), _REPEATS.value),
        "64 aligned": _median_time(lambda: embedder.embed(aligned64[None]), _REPEATS.value)}

    error = None if _NUMPY_NMS.value else detectors.mtcnn_import_error()
    if error is not None:
        result["mtcnn"] = f"not measured: {error}"
    else:
        mtcnn = detectors.mtcnn_detector(min_face_size=0, min_score=0)
        result["mtcnn_detect_s"] = {w: _median_time(lambda im=im: mtcnn(im), _REPEATS.value)
                                    for w, im in sizes.items()}
        full = detectors.mtcnn_detector(min_face_size=0, min_score=0, max_width=None)
        result["mtcnn_detect_full_resolution_s"] = {
            w: _median_time(lambda im=im: full(im), _REPEATS.value) for w, im in sizes.items()}
    if error is None and _COMPARE_EYES.value:
        lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces
        faces = {"astronaut": astronaut}
        for i, grey in enumerate(lfw):
            image = Image.fromarray((grey * 255).round().astype(np.uint8))
            faces[f"lfw{i}"] = np.asarray(image.resize((200, 200), Image.Resampling.BICUBIC)
                                          .convert("RGB"))
        rows = {}
        for name, image in faces.items():
            boxes, _, points = dlib_detector(image)
            m_boxes, m_probs, m_points = mtcnn(image)
            if not len(boxes) or not len(m_boxes):
                continue
            centre = (boxes[0, :2] + boxes[0, 2:]) / 2
            k = int(np.argmin(np.linalg.norm((m_boxes[:, :2] + m_boxes[:, 2:]) / 2 - centre,
                                             axis=1)))
            d_left, d_right = align.eye_centers(points[0])
            m_left, m_right = m_points[k, 0], m_points[k, 1]
            distance = np.linalg.norm(d_right - d_left)
            across = (d_right - d_left) / distance
            down = np.array([-across[1], across[0]])
            offset = ((m_left + m_right) - (d_left + d_right)) / 2 / distance
            rows[name] = (np.linalg.norm(m_right - m_left) / distance, offset @ across,
                          offset @ down, m_probs[k])
        lfw_rows = np.array([v for k, v in rows.items() if k != "astronaut"])

        def stats(column):
            return [round(float(np.median(column)), 3), round(float(np.std(column)), 3)]

        result["mtcnn_vs_dlib_eyes"] = {
            "astronaut": [round(float(v), 4) for v in rows["astronaut"]],
            "lfw_faces": len(lfw_rows),
            "lfw_median_sd": {"ratio": stats(lfw_rows[:, 0]), "across": stats(lfw_rows[:, 1]),
                              "down": stats(lfw_rows[:, 2])},
            "columns": ["eye distance ratio", "midpoint across / d", "midpoint down / d",
                        "MTCNN probability"]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    runtime.run(main)
