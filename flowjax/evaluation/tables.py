"""The evaluation's tables, built from :class:`~flowjax.evaluation.datatypes.Scores`.

Per expression, the seed study's two layouts:

* **identity distances**: rows ``<target>_source`` and ``<target>_target``
  (distance to the source's / the target's mean face) for each target;
  columns the alpha labels (the generated images), then ``source`` (the
  source expression's input image) and ``target`` (the target's decoded mean
  face). The first header cell is empty, as pandas writes an index.
* **action units**: a row per image (``<target>_<alpha label>`` for each
  generated image, ``<target>_mean`` for each target mean face, ``source``
  for the source expression image), a column per AU of the scorer (OpenFace's
  17 intensities).

And over the whole run: ``scores.csv``, the tidy long format (one row per
generated image with every number; with an identity embedder that says where
it found each face, facenet's or dlib's, column ``identity_face_box``:
``found``, ``fallback`` (no face found: the fixed box, or NaN distances under
``identity.fallback=nan``) or ``fixed`` (the fixed box by choice)),
``missing_faces.csv`` (every image in which a scorer found no face, with its
role, the scorer, what its values became and why; written only when there is
one), ``best_alpha.csv`` (per expression and
target), ``general_trend.csv`` (per expression, then ``all``) and
``per_alpha.csv`` (per expression and alpha, then ``all`` per alpha: mean,
standard error and count of the AU error and of both identity distances, the
numbers the published figures plot).

On request (``published_tables``), the published study's own layout as well,
under ``tables/published/`` (:func:`write_published`), so results can be
compared cell by cell with published numbers:

* ``likeliness/<expression>.csv``: header ``output_images,<alphas...>,source,target``;
  rows ``<target>_source`` and ``<target>_target``; the last two columns are
  the *mean faces* of the source and of the target (0.0 on the diagonal),
  not the source expression image;
* ``quality/<expression>.csv``: header ``output_images,<AUs of the set S>,au_error``;
  a row per generated image ``<target>_<alpha>``, then ``source``;
* ``quality/<expression>_au_error.csv``: the AU error matrix, a row per
  target, a column per alpha.

CSV numbers are written in full precision (Python's shortest round-trip
form); a missing value (no face, undefined error) is ``nan``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from flowjax.evaluation import faces_found, metrics
from flowjax.evaluation.datatypes import Scores

if TYPE_CHECKING:
    from flowjax.runs import run_dirs

INDEX = ""  # header of the row-name column


def format_number(value: Any, digits: int | None = None) -> str:
    """Floats in shortest round-trip form (or ``digits`` decimals); NaN -> ``nan``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return str(int(value))
    value = float(value)
    if np.isnan(value):
        return "nan"
    return repr(value) if digits is None else f"{value:.{digits}f}"


@dataclasses.dataclass(frozen=True)
class Table:
    """A header and rows of values (strings or numbers)."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"row {row[:1]} has {len(row)} cells for {len(self.header)} "
                                 "columns")

    @property
    def index(self) -> tuple[Any, ...]:
        """The first cell of every row (the row names of the per-expression tables)."""
        return tuple(row[0] for row in self.rows)

    def row(self, name: str) -> dict[str, Any]:
        """The row whose first cell is ``name``, keyed by column."""
        for row in self.rows:
            if row[0] == name:
                return dict(zip(self.header, row))
        raise KeyError(f"no row {name!r}; rows are {self.index}")

    def csv_rows(self) -> list[list[str]]:
        return [[format_number(v) for v in row] for row in self.rows]

    def markdown(self, digits: int = 3) -> str:
        """A GitHub markdown table, numbers rounded to ``digits`` decimals."""
        lines = ["| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(format_number(v, digits) for v in row) + " |")
        return "\n".join(lines)


def _cells(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values).ravel())


def identity_table(scores: Scores, expression: int) -> Table:
    """Rows ``<target>_source`` / ``<target>_target``; columns alphas, ``source``, ``target``."""
    run, e, d = scores.run, expression, scores.identity
    rows = []
    for t, target in enumerate(run.targets):
        rows.append((f"{target}_source", *_cells(d.to_source[e, t]),
                     float(d.source_to_source_mean[e]),
                     float(d.target_mean_to_source_mean[e, t])))
        rows.append((f"{target}_target", *_cells(d.to_target[e, t]),
                     float(d.source_to_target_mean[e, t]),
                     float(d.target_mean_to_target_mean[e, t])))
    return Table((INDEX, *run.labels, "source", "target"), tuple(rows))


def published_likeliness_table(scores: Scores, expression: int) -> Table:
    """The published likeliness matrix: like :func:`identity_table`, but the
    ``source`` column is the source's *mean face* and the first header cell
    reads ``output_images``."""
    run, e, d = scores.run, expression, scores.identity
    rows = []
    for t, target in enumerate(run.targets):
        rows.append((f"{target}_source", *_cells(d.to_source[e, t]),
                     float(d.source_mean_to_source_mean[e, t]),
                     float(d.target_mean_to_source_mean[e, t])))
        rows.append((f"{target}_target", *_cells(d.to_target[e, t]),
                     float(d.source_mean_to_target_mean[e, t]),
                     float(d.target_mean_to_target_mean[e, t])))
    return Table(("output_images", *run.labels, "source", "target"), tuple(rows))


def published_au_table(scores: Scores, expression: int) -> Table:
    """Per expression: the AUs of the set S and the AU error of every generated
    image (``<target>_<alpha>``), then the source image's AUs."""
    run, e = scores.run, expression
    columns = [scores.au_names.index(a) for a in scores.au_sets[e]]
    rows = []
    for t, target in enumerate(run.targets):
        for a, label in enumerate(run.labels):
            rows.append((f"{target}_{label}", *_cells(scores.au_generated[e, t, a, columns]),
                         float(scores.au_error[e, t, a])))
    rows.append(("source", *_cells(scores.au_source[e, columns]), np.nan))
    return Table(("output_images", *scores.au_sets[e], "au_error"), tuple(rows))


def published_error_table(scores: Scores, expression: int) -> Table:
    """The AU error matrix of one expression: a row per target, a column per alpha."""
    run, e = scores.run, expression
    rows = tuple((target, *_cells(scores.au_error[e, t])) for t, target in enumerate(run.targets))
    return Table(("target", *run.labels), rows)


def au_table(scores: Scores, expression: int) -> Table:
    """A row per image (``<target>_<alpha>``, ``<target>_mean``, ``source``), a column per AU."""
    if scores.au_names is None:
        raise ValueError("no AU scores: the evaluation ran without an AU scorer")
    run, e = scores.run, expression
    rows = []
    for t, target in enumerate(run.targets):
        for a, label in enumerate(run.labels):
            rows.append((f"{target}_{label}", *_cells(scores.au_generated[e, t, a])))
        rows.append((f"{target}_mean", *_cells(scores.au_target_means[t])))
    rows.append(("source", *_cells(scores.au_source[e])))
    return Table((INDEX, *scores.au_names), tuple(rows))


def scores_table(scores: Scores) -> Table:
    """Tidy long format: one row per generated image with every number."""
    run = scores.run
    header = ["expression", "target", "alpha", "image", "distance_to_target_mean",
              "distance_to_source_mean"]
    d = scores.identity
    if d.face_boxes is not None:
        header.append("identity_face_box")
    if scores.has_aus:
        header += ["au_error", *scores.au_names]
    if scores.p_generated is not None:
        header.append("p_generated")
    rows = []
    for e, expression in enumerate(run.expressions):
        for t, target in enumerate(run.targets):
            for a, alpha in enumerate(run.alphas):
                row: list[Any] = [expression, target, float(alpha), run.image_paths[e][t][a],
                                  float(d.to_target[e, t, a]), float(d.to_source[e, t, a])]
                if d.face_boxes is not None:
                    row.append(str(d.face_boxes.generated[e, t, a]))
                if scores.has_aus:
                    row += [float(scores.au_error[e, t, a]), *_cells(scores.au_generated[e, t, a])]
                if scores.p_generated is not None:
                    row.append(float(scores.p_generated[e, t, a]))
                rows.append(tuple(row))
    return Table(tuple(header), tuple(rows))


def missing_faces_table(scores: Scores) -> Table:
    """Every image in which a scorer found no face: ``image`` (as the study names
    it), ``role``, ``scorer``, ``outcome`` (``nan`` or ``fixed box``), ``reason``."""
    return Table(("image", "role", "scorer", "outcome", "reason"),
                 tuple((m.image, m.role, m.scorer, m.outcome, m.reason)
                       for m in scores.missing_faces))


def best_alpha_table(scores: Scores) -> Table:
    """Per (expression, target): the best alpha, its AU error and identity distances."""
    run = scores.run
    to_t, to_s = scores.best_distances()
    rows = tuple(
        (expression, target, float(scores.best.alpha[e, t]), float(scores.best.error[e, t]),
         float(to_t[e, t]), float(to_s[e, t]))
        for e, expression in enumerate(run.expressions) for t, target in enumerate(run.targets))
    return Table(("expression", "target", "best_alpha", "au_error", "distance_to_target_mean",
                  "distance_to_source_mean"), rows)


def trend_table(scores: Scores) -> Table:
    """The general trend per expression, then over every pair (``all``)."""
    rows = []
    for name in [*scores.run.expressions, "all"]:
        trend = scores.trends[name]
        pairs = len(scores.run.targets) * (len(scores.run.expressions) if name == "all" else 1)
        if trend is None:
            rows.append((name, 0, pairs, np.nan, np.nan, np.nan))
        else:
            rows.append((name, trend.n_pairs, trend.n_skipped, trend.mean_best_alpha,
                         trend.mean_au_error, trend.mean_identity_distance))
    return Table(("expression", "pairs", "skipped", "mean_best_alpha", "mean_au_error",
                  "mean_distance_to_target_mean"), tuple(rows))


PER_ALPHA_NUMBERS = ("au_error", "distance_to_target_mean", "distance_to_source_mean")


def per_alpha_table(scores: Scores) -> Table:
    """Per expression and alpha (in alpha order), then over every expression
    (``all``): the mean, standard error (``_se``) and count (``_n``) of each
    number of ``scores.csv`` over the images of that alpha
    (:func:`~flowjax.evaluation.metrics.mean_and_se`; NaN values are left out).
    ``images`` counts the generated images of the row. Without AU scores the
    ``au_error`` columns are absent, as in ``scores.csv``."""
    run, d = scores.run, scores.identity
    values = {"distance_to_target_mean": d.to_target, "distance_to_source_mean": d.to_source}
    if scores.has_aus:
        values["au_error"] = scores.au_error
    names = [k for k in PER_ALPHA_NUMBERS if k in values]
    header = ["expression", "alpha", "images"]
    for name in names:
        header += [name, f"{name}_se", f"{name}_n"]
    order = np.argsort(run.alphas, kind="stable")
    blocks = [(e, {k: v[i] for k, v in values.items()}) for i, e in enumerate(run.expressions)]
    blocks.append(("all", {k: v.reshape(-1, v.shape[-1]) for k, v in values.items()}))
    rows = []
    for label, block in blocks:  # each number: [images, alphas]
        stats = {k: metrics.mean_and_se(v, 0) for k, v in block.items()}
        for a in order:
            row: list[Any] = [label, float(run.alphas[a]), len(block[names[0]])]
            for name in names:
                mean, se, n = stats[name]
                row += [float(mean[a]), float(se[a]), int(n[a])]
            rows.append(tuple(row))
    return Table(tuple(header), tuple(rows))


def _write(run_dir: run_dirs.RunDir, rel: str, table: Table) -> str:
    run_dir.write_csv(rel, table.csv_rows(), header=table.header)
    return rel


def write_all(run_dir: run_dirs.RunDir, scores: Scores) -> dict[str, Any]:
    """Writes every table under ``tables/``; returns ``{name: relpath}`` (per
    expression: ``{name: {expression: relpath}}``)."""
    files: dict[str, Any] = {"scores": _write(run_dir, "tables/scores.csv", scores_table(scores)),
                             "identity_distances": {}}
    for e, expression in enumerate(scores.run.expressions):
        if scores.has_identity:
            files["identity_distances"][expression] = _write(
                run_dir, f"tables/{expression}/identity_distances.csv", identity_table(scores, e))
    if scores.has_aus:
        files["action_units"] = {
            expression: _write(run_dir, f"tables/{expression}/action_units.csv",
                               au_table(scores, e))
            for e, expression in enumerate(scores.run.expressions)}
        files["best_alpha"] = _write(run_dir, "tables/best_alpha.csv", best_alpha_table(scores))
        files["general_trend"] = _write(run_dir, "tables/general_trend.csv", trend_table(scores))
    files["per_alpha"] = _write(run_dir, "tables/per_alpha.csv", per_alpha_table(scores))
    if scores.missing_faces:
        files["missing_faces"] = _write(run_dir, faces_found.MISSING_FACES_TABLE,
                                        missing_faces_table(scores))
    return files


def write_published(run_dir: run_dirs.RunDir, scores: Scores) -> dict[str, dict[str, str]]:
    """Writes the published study's layout under ``tables/published/`` (see the
    module docstring); returns ``{table: {expression: relpath}}``."""
    files: dict[str, dict[str, str]] = {}
    for e, expression in enumerate(scores.run.expressions):
        if scores.has_identity:
            files.setdefault("likeliness", {})[expression] = _write(
                run_dir, f"tables/published/likeliness/{expression}.csv",
                published_likeliness_table(scores, e))
        if scores.has_aus:
            files.setdefault("quality", {})[expression] = _write(
                run_dir, f"tables/published/quality/{expression}.csv",
                published_au_table(scores, e))
            files.setdefault("au_error", {})[expression] = _write(
                run_dir, f"tables/published/quality/{expression}_au_error.csv",
                published_error_table(scores, e))
    return files
