"""Contact sheet of synthetic faces, and the renderer's throughput per setting.

Writes a ``rows`` x ``cols`` grid of ``flowjax.synthetic`` faces (one
``make_dataset`` call; PNG labelled synthetic by ``flowjax.io.write_png``) and
prints, as JSON, images per second of ``make_dataset`` for every setting in
the same process (compilation excluded: each is timed on its second call)::

    python -m tools.synthetic_contact_sheet --out=docs/synthetic_hard.png --setting=hard
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import flags

from flowjax import synthetic
from flowjax import io as fio
from flowjax.runs import runtime

_OUT = flags.DEFINE_string("out", "docs/synthetic_hard.png", "PNG to write (replaced)")
_SETTING = flags.DEFINE_enum("setting", "hard", list(synthetic.SETTINGS), "rendering setting of the sheet")
_ROWS = flags.DEFINE_integer("rows", 4, "rows of faces")
_COLS = flags.DEFINE_integer("cols", 8, "faces per row (one identity per face)")
_UPSCALE = flags.DEFINE_integer("upscale", 2, "nearest-neighbour enlargement of the 64x64 faces")
_SEED = flags.DEFINE_integer("seed", 0, "make_dataset seed")
_TIMED = flags.DEFINE_integer("timed_images", 512, "images per setting for the throughput (0: skip)")


def contact_sheet(images: np.ndarray, rows: int, cols: int, upscale: int) -> np.ndarray:
    """uint8 ``[rows * S * upscale, cols * S * upscale, 3]`` from ``rows * cols`` faces ``[N, S, S, 3]``."""
    size = images.shape[1]
    grid = images[: rows * cols].reshape(rows, cols, size, size, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * size, cols * size, 3)
    return np.repeat(np.repeat(grid, upscale, axis=0), upscale, axis=1)


def throughput(setting: str, n: int) -> float:
    synthetic.make_dataset(1, n, 64, setting=setting)  # compiles
    start = time.perf_counter()
    synthetic.make_dataset(2, n, 64, setting=setting)
    return n / (time.perf_counter() - start)


def main(argv):
    del argv
    n = _ROWS.value * _COLS.value
    photos = synthetic.make_dataset(_SEED.value, n, 64, n_identities=n, setting=_SETTING.value)
    sheet = contact_sheet(photos.images, _ROWS.value, _COLS.value, _UPSCALE.value)
    fio.write_png(_OUT.value, sheet, {"kind": "synthetic contact sheet", "setting": _SETTING.value,
                                      "seed": _SEED.value, "renderer": "flowjax.synthetic"}, overwrite=True)
    report = {"out": _OUT.value}
    if _TIMED.value:
        report["images_per_s"] = {s: round(throughput(s, _TIMED.value), 1) for s in synthetic.SETTINGS}
    print(json.dumps(report))


if __name__ == "__main__":
    runtime.run(main)
