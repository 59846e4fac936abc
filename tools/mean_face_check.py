"""Does a Glow's decoded mean face keep its identity? Issue #29's identification count.

    python -m tools.mean_face_check --checkpoint=weights/demo/hard/glow --setting=hard \\
        --scorers=weights/demo/hard/scorers --seeds=101,102,103 --targets=10 --photos=20

Renders a study of ``--targets`` identities with ``--photos`` mild, nuisance-on photos
each (``flowjax.synthetic.make_study`` at each of ``--seeds``, not training seeds; one
seed's 10 identities give a count too noisy to compare checkpoints by), encodes every
photo, decodes each identity's mean eps latent (its *mean face*, what the thesis moves
an expression onto) and asks the setting's identity scorer whose photos each mean face
is closest to (distance to each identity's centroid): a mean face is *identified* when
the nearest centroid is its own. Counted the same way: its *z mean face*, the mean of
the raw (unstandardised) latents, which the benchmark's z-space rows start from; and, as
baselines, each identity's *pixel* mean (no flow involved); its *norm-restored* mean face, the mean eps latent
rescaled at each level to the mean norm of the identity's photos there (an average of 20
latents is much shorter than any of them, and a Glow decodes a short latent as a smooth,
typical face; restoring the length separates that loss from the averaging's own); its
*canonical* face, the identity rendered neutral and frontal on its plain background (the
ideal mean face: is the target reachable at all?); and the photos themselves (the
scorer's own ceiling). Prints one line per identity and the counts, and the mid-bin
bits/dim of the photos (deterministic; training's held-out figure adds uniform noise and
is in its ``metrics.jsonl``). ``--checkpoint`` takes an export or a training workdir (its
newest finished checkpoint, logged). ``--sheet=PATH`` also writes a PNG (labelled
synthetic) with one row per identity: its mean face, its z mean face, its norm-restored mean
face, its pixel mean, its canonical face, then its first photos.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from absl import flags

from flowjax import synthetic
from flowjax.evaluation import ground_truth, metrics, synthetic_scorers
from flowjax.io import png
from flowjax.models import checkpoints
from flowjax.models.errors import NonFiniteError
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
    flags.DEFINE_list("restored_levels", None, "Levels whose length the norm-restored mean "
                      "face restores (0 the finest, -1 the top); default: all.")
    flags.DEFINE_string("sheet", None, "Also write each mean face beside its identity's "
                        "first photos to this PNG.")


def mean_face_identification(model: Any, variables: Any, embedder: Any, *, seed: int,
                             n_targets: int, photos: int, setting: str,
                             restored_levels: list[int] | None = None) -> dict[str, Any]:
    """Per identity: its mean face's distance to every identity's centroid and whether the
    nearest is its own; ``identified`` (the count), the mean faces, the photos' mid-bin
    bits/dim. Beside them the same for each identity's *pixel* mean (``pixel_*``): the
    count no flow is needed for, so a reader can tell the Glow's loss of identity from
    the averaging's own; and for its norm-restored mean face (``restored_*``, see
    :func:`norm_restored_means` of ``restored_levels``); and for its *canonical* face
    (``canonical_*``), the identity rendered neutral and frontal on its plain background:
    what an ideal mean face, identity kept and nuisance averaged away, would be.
    ``photos_identified``: how many of the photos themselves the scorer gives their own
    identity."""
    study = synthetic.make_study(seed, n_targets, photos, 1, model.image_size,
                                 setting=setting)
    ids, images = study.targets.identity_ids, study.targets.images
    encoding = sweep.encode_images(model, variables, images, progress=False)
    levels = [np.asarray(level) for level in encoding.eps]
    means = identity_means(levels, ids, n_targets)
    faces = sweep.decode_latents(model, variables, np.asarray(latents.flatten(means)),
                                 space="eps", progress=False)
    # the z rows' mean face: the raw latents averaged (not the same image, since a level's
    # prior depends on the level above it)
    z_faces, z_finite = decoded_where_finite(model, variables, np.asarray(latents.flatten(
        identity_means([np.asarray(level) for level in encoding.z], ids, n_targets))), space="z")
    restored, restored_finite = decoded_where_finite(
        model, variables, np.asarray(latents.flatten(
            norm_restored_means(levels, means, ids, restored_levels))))
    pixel_means = np.stack([images[ids == t].astype(np.float64).mean(axis=0)
                            for t in range(n_targets)]).round().astype(np.uint8)
    canonical = canonical_faces(study, n_targets, model.image_size)
    photo_embeddings = embedder.embed(images)
    centroids = ground_truth.identity_centroids(photo_embeddings, ids, list(range(n_targets)))
    # the scorer's own ceiling: how many single photos it gives their own identity
    photo_nearest = metrics.identity_distance(photo_embeddings[:, None],
                                              centroids[None]).argmin(axis=1)
    result = {"mean_faces": faces, "pixel_mean_faces": pixel_means,
              "restored_mean_faces": restored, "canonical_faces": canonical,
              "z_mean_faces": z_faces,
              "photos": images, "identity_ids": ids,
              "photos_identified": int((photo_nearest == ids).sum()),
              "restored_nonfinite": int((~restored_finite).sum()),
              "bits_per_dim_mid_bin": float(np.mean(encoding.bits_per_dim))}
    everyone = np.ones(n_targets, bool)
    # a restored latent the Glow cannot decode is no one's: NaN distances, nearest -1
    for prefix, decoded, valid in (("", faces, everyone), ("pixel_", pixel_means, everyone),
                                   ("restored_", restored, restored_finite),
                                   ("z_", z_faces, z_finite),
                                   ("canonical_", canonical, everyone)):
        distances = metrics.identity_distance(embedder.embed(decoded)[:, None], centroids[None])
        nearest = np.where(valid, distances.argmin(axis=1), -1)
        distances[~valid] = np.nan
        result.update({f"{prefix}distances": distances, f"{prefix}nearest": nearest,
                       f"{prefix}identified": int((nearest == np.arange(n_targets)).sum())})
    return result


def identity_means(levels: list[np.ndarray], identity_ids: np.ndarray,
                   n_targets: int) -> list[np.ndarray]:
    """Per level ``[n_targets, h, w, c]``: each identity's mean of its photos' latents."""
    return [np.stack([level[identity_ids == t].mean(axis=0) for t in range(n_targets)])
            for level in levels]


def decoded_where_finite(model: Any, variables: Any, flat: np.ndarray,
                         space: str = "eps") -> tuple[np.ndarray, np.ndarray]:
    """``(images, finite)``: the latents ``[N, D]`` of ``space`` decoded, and which of them
    decode to finite images; one that does not (a latent pushed past the range an affine
    Glow decodes) is left black, where :func:`sweep.decode_latents` would stop at it."""
    finite = np.ones(len(flat), bool)
    try:
        return sweep.decode_latents(model, variables, flat, space=space, progress=False), finite
    except NonFiniteError as error:
        finite[error.points] = False  # the error names the latents that failed
        images = np.array(error.partial)  # every latent decoded once; the failed ones blacked
    images[~finite] = 0
    return images, finite


def canonical_faces(study: synthetic.Study, n_targets: int, size: int) -> np.ndarray:
    """uint8 ``[n_targets, size, size, 3]``: each target identity of ``study`` rendered
    with no AU active and no nuisance (canonical pose, neutral light, its plain
    background)."""
    identities = jax.tree_util.tree_map(lambda a: np.asarray(a)[:n_targets], study.identities)
    neutral = np.zeros((n_targets, len(synthetic.AU_NAMES)), np.float32)
    return np.asarray(synthetic.render(identities, neutral, synthetic.no_nuisance(
        n_targets, study.setting), size, setting=study.setting))


def norm_restored_means(levels: list[np.ndarray], means: list[np.ndarray],
                        identity_ids: np.ndarray,
                        which: list[int] | None = None) -> list[np.ndarray]:
    """Each identity's mean latent (``means``, per level ``[T, h, w, c]``) rescaled, level
    by level, to the mean L2 norm of its photos' latents there (``levels``, per level
    ``[N, h, w, c]``): the mean's direction at the photos' own length. ``which``: the
    levels restored (0 the finest, -1 the top; None: all); the others are kept as they are."""
    n = len(levels)
    if which is not None and any(not -n <= i < n for i in which):
        raise ValueError(f"restored levels {list(which)}: this model has {n} levels "
                         f"(0 to {n - 1}, or -1 for the top)")
    which = range(n) if which is None else [i % n for i in which]
    restored = []
    for i, (level, mean) in enumerate(zip(levels, means)):
        if i not in which:
            restored.append(mean)
            continue
        norms = np.sqrt((level.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
        photo_norm = np.stack([norms[identity_ids == t].mean() for t in range(len(mean))])
        mean_norm = np.sqrt((mean.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
        restored.append((mean * (photo_norm / np.maximum(mean_norm, 1e-12))
                         [:, None, None, None]).astype(mean.dtype))
    return restored


def contact_sheet(result: dict[str, Any], n_photos: int = 6) -> np.ndarray:
    """uint8 ``[H, W, 3]``: per identity a row of its mean face, its z mean face, its
    norm-restored mean face, its pixel mean and its canonical face (each labelled with whose identity the
    scorer gives it), then its first ``n_photos`` photos, so a reader sees what was
    identified."""
    cells = (("mean", "mean_faces", "nearest"),
             ("z mean", "z_mean_faces", "z_nearest"),
             ("restored", "restored_mean_faces", "restored_nearest"),
             ("pixel", "pixel_mean_faces", "pixel_nearest"),
             ("canon", "canonical_faces", "canonical_nearest"))
    rows = []
    for t in range(len(result["mean_faces"])):
        photos = result["photos"][result["identity_ids"] == t][:n_photos]
        labels = []
        for label, _, key in cells:
            nearest = int(result[key][t])
            labels.append(f"{label}: own" if nearest == t else f"{label}: non-finite"
                          if nearest < 0 else f"{label}: id{nearest:02d}")
        rows.append(png.make_strip([result[faces][t] for _, faces, _ in cells] + list(photos),
                                   labels + [f"id{t:02d}"] * len(photos)))
    return np.concatenate(rows, axis=0)


def over_seeds(model: Any, variables: Any, embedder: Any, *, seeds: list[int],
               n_targets: int, photos: int, setting: str,
               restored_levels: list[int] | None = None) -> dict[str, Any]:
    """:func:`mean_face_identification` at each study seed (``per_seed``, in order) and
    the counts added up: ``identified``, ``z_identified``, ``pixel_identified``,
    ``restored_identified`` and ``canonical_identified`` of ``targets``, ``photos_identified`` of ``photos``."""
    per_seed = [mean_face_identification(model, variables, embedder, seed=seed,
                                         n_targets=n_targets, photos=photos, setting=setting,
                                         restored_levels=restored_levels)
                for seed in seeds]
    return {"per_seed": per_seed, "targets": n_targets * len(seeds),
            "photos": n_targets * photos * len(seeds),
            "identified": sum(r["identified"] for r in per_seed),
            **{f"{prefix}identified": sum(r[f"{prefix}identified"] for r in per_seed)
               for prefix in ("", "z_", "pixel_", "restored_", "canonical_", "photos_")},
            "restored_nonfinite": sum(r["restored_nonfinite"] for r in per_seed)}


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    seeds = [int(seed) for seed in f.seeds]
    model, variables = checkpoints.load_model(f.checkpoint)
    embedder = synthetic_scorers.build_identity_embedder(f.scorers)
    restored_levels = None if f.restored_levels is None else [int(i) for i in f.restored_levels]
    counts = over_seeds(model, variables, embedder, seeds=seeds, n_targets=f.targets,
                        photos=f.photos, setting=f.setting, restored_levels=restored_levels)
    for seed, result in zip(seeds, counts["per_seed"]):
        for t, (row, nearest) in enumerate(zip(result["distances"], result["nearest"])):
            others = np.delete(row, t)
            print(f"seed {seed} id{t:02d}: d(own centroid) {row[t]:.3f}, nearest other "
                  f"{others.min():.3f} -> "
                  f"{'identified' if nearest == t else f'taken for id{nearest:02d}'}")
        print(f"seed {seed}: {result['identified']} of {f.targets} mean faces identified "
              f"(z means: {result['z_identified']}, "
              f"norm-restored: {result['restored_identified']}, pixel means: "
              f"{result['pixel_identified']}); the photos' bits/dim (mid-bin) "
              f"{result['bits_per_dim_mid_bin']:.3f}")
    if f.sheet:
        png.write_png(f.sheet, contact_sheet(counts["per_seed"][0]), {
            "flowjax-tool": "mean_face_check", "checkpoint": str(f.checkpoint),
            "setting": f.setting, "study-seed": seeds[0]}, overwrite=True)
        print(f"wrote {f.sheet} (study seed {seeds[0]})")
    print(f"{counts['identified']} of {counts['targets']} mean faces identified ({f.setting}, "
          f"study seeds {seeds}, {f.photos} photos each; the mean of the raw z latents "
          f"instead of eps: {counts['z_identified']}; mean faces norm-restored at "
          f"{'all levels' if restored_levels is None else f'levels {restored_levels}'}: "
          f"{counts['restored_identified']} ({counts['restored_nonfinite']} not decodable), "
          f"the pixel means of the same photos: "
          f"{counts['pixel_identified']} of {counts['targets']}; the identities' canonical "
          f"faces: {counts['canonical_identified']} of {counts['targets']}; the photos: "
          f"{counts['photos_identified']} of {counts['photos']}); model {f.checkpoint}")


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["checkpoint"])
    runtime.run(main)
