"""Does a Glow's decoded mean face keep its identity? Issue #29's identification count.

    python -m tools.mean_face_check --checkpoint=weights/demo/hard/glow --setting=hard \\
        --scorers=weights/demo/hard/scorers --seeds=101,102,103 --targets=10 --photos=20

Renders a study of ``--targets`` identities with ``--photos`` mild, nuisance-on photos
each (``flowjax.synthetic.make_study`` at each of ``--seeds``, not training seeds; one
seed's 10 identities give a count too noisy to compare checkpoints by), encodes every
photo, decodes each identity's mean eps latent (its *mean face*, what the thesis moves
an expression onto) and asks the setting's identity scorer whose photos each mean face
is closest to (distance to each identity's centroid): a mean face is *identified* when
the nearest centroid is its own. Prints one line per identity and the count, and the
mid-bin bits/dim of the photos (deterministic; training's held-out figure adds uniform
noise and is in its ``metrics.jsonl``). ``--checkpoint`` takes an export or a training
workdir (its newest finished checkpoint). ``--sheet=PATH`` also writes a PNG (labelled
synthetic) with one row per identity: its mean face, then its first photos.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from absl import flags

from flowjax import synthetic
from flowjax.evaluation import ground_truth, metrics, synthetic_scorers
from flowjax.io import png
from flowjax.models import checkpoints
from flowjax.runs import runtime
from flowjax.transfer import latents, sweep


# Flags are defined when run as a command, not on import (tests import several tools).
def _define_flags() -> None:
    flags.DEFINE_string("checkpoint", None, "A save_model export or a training workdir.")
    flags.DEFINE_enum("setting", "hard", list(synthetic.SETTINGS), "Synthetic setting.")
    flags.DEFINE_string("scorers", None, "Scorers folder (None: weights/demo/scorers).")
    flags.DEFINE_list("seeds", ["101"], "Study seeds (not ones the models were trained on), "
                      "each its own study of --targets identities; the counts add up.")
    flags.DEFINE_integer("targets", 10, "Identities.")
    flags.DEFINE_integer("photos", 20, "Photos per identity.")
    flags.DEFINE_string("sheet", None, "Also write each mean face beside its identity's "
                        "first photos to this PNG.")


def mean_face_identification(model: Any, variables: Any, embedder: Any, *, seed: int,
                             n_targets: int, photos: int, setting: str) -> dict[str, Any]:
    """Per identity: its mean face's distance to every identity's centroid and whether the
    nearest is its own; ``identified`` (the count), the mean faces, the photos' mid-bin
    bits/dim. Beside them the same for each identity's *pixel* mean (``pixel_*``): the
    count no flow is needed for, so a reader can tell the Glow's loss of identity from
    the averaging's own."""
    study = synthetic.make_study(seed, n_targets, photos, 1, model.image_size,
                                 setting=setting)
    ids, images = study.targets.identity_ids, study.targets.images
    encoding = sweep.encode_images(model, variables, images, progress=False)
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    means = np.stack([flat[ids == t].mean(axis=0) for t in range(n_targets)])
    faces = sweep.decode_latents(model, variables, means, space="eps", progress=False)
    pixel_means = np.stack([images[ids == t].astype(np.float64).mean(axis=0)
                            for t in range(n_targets)]).round().astype(np.uint8)
    centroids = ground_truth.identity_centroids(embedder.embed(images), ids,
                                                list(range(n_targets)))
    result = {"mean_faces": faces, "pixel_mean_faces": pixel_means, "photos": images,
              "identity_ids": ids, "bits_per_dim_mid_bin": float(np.mean(encoding.bits_per_dim))}
    for prefix, decoded in (("", faces), ("pixel_", pixel_means)):
        distances = metrics.identity_distance(embedder.embed(decoded)[:, None], centroids[None])
        nearest = distances.argmin(axis=1)
        result.update({f"{prefix}distances": distances, f"{prefix}nearest": nearest,
                       f"{prefix}identified": int((nearest == np.arange(n_targets)).sum())})
    return result


def contact_sheet(result: dict[str, Any], n_photos: int = 6) -> np.ndarray:
    """uint8 ``[H, W, 3]``: per identity a row of its mean face (labelled with the
    verdict), its pixel mean and its first ``n_photos`` photos, so a reader sees what was
    identified."""
    rows = []
    for t, face in enumerate(result["mean_faces"]):
        photos = result["photos"][result["identity_ids"] == t][:n_photos]
        nearest = int(result["nearest"][t])
        verdict = "mean: own" if nearest == t else f"mean: id{nearest:02d}"
        rows.append(png.make_strip([face, result["pixel_mean_faces"][t], *photos],
                                   [verdict, "pixel mean"] + [f"id{t:02d}"] * len(photos)))
    return np.concatenate(rows, axis=0)


def over_seeds(model: Any, variables: Any, embedder: Any, *, seeds: list[int],
               n_targets: int, photos: int, setting: str) -> dict[str, Any]:
    """:func:`mean_face_identification` at each study seed (``per_seed``, in order) and
    the counts added up: ``identified`` and ``pixel_identified`` of ``targets``."""
    per_seed = [mean_face_identification(model, variables, embedder, seed=seed,
                                         n_targets=n_targets, photos=photos, setting=setting)
                for seed in seeds]
    return {"per_seed": per_seed, "targets": n_targets * len(seeds),
            "identified": sum(r["identified"] for r in per_seed),
            "pixel_identified": sum(r["pixel_identified"] for r in per_seed)}


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    seeds = [int(seed) for seed in f.seeds]
    model, variables = checkpoints.load_model(f.checkpoint)
    embedder = synthetic_scorers.build_identity_embedder(f.scorers)
    counts = over_seeds(model, variables, embedder, seeds=seeds, n_targets=f.targets,
                        photos=f.photos, setting=f.setting)
    for seed, result in zip(seeds, counts["per_seed"]):
        for t, (row, nearest) in enumerate(zip(result["distances"], result["nearest"])):
            others = np.delete(row, t)
            print(f"seed {seed} id{t:02d}: d(own centroid) {row[t]:.3f}, nearest other "
                  f"{others.min():.3f} -> "
                  f"{'identified' if nearest == t else f'taken for id{nearest:02d}'}")
        print(f"seed {seed}: {result['identified']} of {f.targets} mean faces identified "
              f"(pixel means: {result['pixel_identified']}); the photos' bits/dim (mid-bin) "
              f"{result['bits_per_dim_mid_bin']:.3f}")
    if f.sheet:
        png.write_png(f.sheet, contact_sheet(counts["per_seed"][0]), {
            "flowjax-tool": "mean_face_check", "checkpoint": str(f.checkpoint),
            "setting": f.setting, "study-seed": seeds[0]}, overwrite=True)
        print(f"wrote {f.sheet} (study seed {seeds[0]})")
    print(f"{counts['identified']} of {counts['targets']} mean faces identified ({f.setting}, "
          f"study seeds {seeds}, {f.photos} photos each; the pixel means of the same photos: "
          f"{counts['pixel_identified']} of {counts['targets']}); model {f.checkpoint}")


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["checkpoint"])
    runtime.run(main)
