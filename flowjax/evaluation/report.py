"""``report.md``: what was evaluated, how, the definitions, and every table.

The definitions are not restated: they are the text of
:mod:`flowjax.evaluation.metrics`' docstring (its RST roles turned into code
spans), so the report and the code cannot drift apart.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from flowjax.evaluation import faces_found, metrics, tables
from flowjax.evaluation.datatypes import Scores, Study
from flowjax.runs import names

REFERENCES = (
    "**References used here.** Identity distances are measured to the embeddings of the "
    "decoded mean faces (`means/<identity>_mean.png` of the transfer run). The AU error of a "
    "generated image is measured against the **original source input image** of its "
    "expression (the file the transfer encoded, listed with its sha256 in the transfer "
    "manifest; for a transfer that aligned photos, the aligned copy it wrote and encoded), "
    "not against its decoded reconstruction. In the identity tables, column "
    "`source` is that source input image and column `target` the target's decoded mean face; "
    "row `<target>_source` holds distances to the source's mean face, row `<target>_target` "
    "distances to the target's."
)
STUDY_REFERENCES = (
    "**References used here.** This study was described by a spec file; flowjax did not make "
    "its images. Identity distances are to the mean faces the spec names (or, with "
    "precomputed distances, whatever the study's distance files hold). The AU error of a "
    "generated image is measured against the source expression image the spec names for its "
    "expression. In the identity tables, column `source` is that source image (NaN when the "
    "distances were precomputed: published matrices hold the source's mean face instead, see "
    "`tables/published/`) and column `target` the target's mean face. Verified before "
    "scoring: the sha256 of every file the spec lists under `sha256` (none otherwise)."
)


PER_ALPHA_FIGURE = "figures/per_alpha.png"
# Up to this many missing faces are listed in the report itself; every one is in
# tables/missing_faces.csv.
MISSING_FACES_INLINE = 10


def identity_reference(study: Study) -> str:
    """What identity distances are measured against, for the summary and manifest."""
    if study.is_transfer_run:
        return "decoded mean faces (means/<identity>_mean.png)"
    return "the mean faces the study spec names (mean_faces)"


def au_reference(study: Study) -> str:
    """What the AU error is measured against, for the summary."""
    if not study.is_transfer_run:
        return "the source expression images the study spec names (source_images)"
    if "source_images" in study.summary:
        return "aligned source input image (inputs/aligned/)"
    return "original source input image"


def definitions() -> str:
    """The metric definitions, from ``flowjax.evaluation.metrics.__doc__``."""
    body = inspect.cleandoc(metrics.__doc__ or "").split("\n", 1)[-1].strip()
    return re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", body)


def _model_file(record: dict[str, Any]) -> str:
    """A weights record (facenet: ``name``, dlib: ``file``) with its sha256."""
    name = record.get("name") or (Path(record["file"]).name if record.get("file") else None)
    return f"{name} (sha256 {record.get('sha256')}, verified {record.get('verified')})"


def _crop_text(crop: dict[str, Any]) -> Any:
    """facenet's crop method as used (``mtcnn``, ``fixed``); dlib's requested mode
    with its detector, or the fixed box for every image."""
    if "method" in crop:
        return crop["method"]
    requested, box = crop.get("requested"), crop.get("fixed_box")
    if requested == "fixed" or not crop.get("detector"):
        return f"{requested} (the fixed box {box} for every image)"
    return (f"{requested} ({crop['detector']}, upsample {crop.get('upsample')}; the fixed box "
            f"{box} where it finds no face)")


def _scorer_line(kind: str, entry: dict[str, Any] | None) -> str:
    """One scorer as its own record describes it: model, model files with their
    sha256 (facenet's ``weights``; dlib's ``weights`` and ``landmarks``), crop."""
    if entry is None:
        return f"- {kind}: none"
    prov = entry.get("provenance") or {}
    details = []
    for key in ("model", "weights", "landmarks", "crop", "embedding"):
        if key in prov:
            value = prov[key]
            if key in ("weights", "landmarks") and isinstance(value, dict):
                value = _model_file(value)
            if key == "crop" and isinstance(value, dict):
                value = _crop_text(value)
            details.append(f"{key}: {value}")
    if "binary" in entry:
        details.append(f"binary: {entry['binary']}")
    backend = entry.get("backend") or entry["class"]
    return f"- {kind}: `{backend}` ({entry['class']}){'; ' + '; '.join(details) if details else ''}"


def _au_set_text(scores: Scores) -> str:
    au_set = scores.au_set
    if au_set == metrics.ACTIVE:
        return "the AUs each source expression activates"
    if au_set is None:
        return "every AU the scorer reports"
    if tuple(au_set) == metrics.THESIS_AUS:
        return f"the thesis' eight AUs ({', '.join(au_set)})"
    return ", ".join(au_set)


def missing_line(scores: Scores) -> str:
    """The report's first finding: how many values are missing, of how many."""
    m = scores.missing()
    n, n_src = m["generated_images"], m["source_images"]
    parts = []
    if "au_generated" in m:
        parts.append(f"AUs: {m['au_generated']} of {n} generated images and {m['au_source']} "
                     f"of {n_src} source images (no face, or no result)")
        parts.append(f"AU error: {m['au_error']} of {n} generated images")
    if "identity" in m:
        parts.append(f"identity distances: {m['identity']} of {n} generated images")
    if not parts:
        return "**Missing values:** nothing was measured."
    if not any(v for k, v in m.items() if k not in ("generated_images", "source_images")):
        return f"**Missing values:** none ({n} generated images, {n_src} source images)."
    return ("**Missing values** (NaN; best alphas and means leave them out): "
            + "; ".join(parts) + ".")


def face_boxes_line(scores: Scores) -> str | None:
    """Where the identity embedder found the faces, counted (None when it does not say)."""
    boxes = scores.identity.face_boxes
    if boxes is None:
        return None
    option = faces_found.FALLBACK_OPTION
    groups = [f"{label}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
              for label, counts in zip(("generated images", "mean faces", "source images"),
                                       boxes.counts().values())]
    policy = (f"its identity distances are NaN ({option}=nan)" if boxes.policy == "nan" else
              f"its embedding is the fixed box's ({option}=crop; {option}=nan makes its "
              "distances NaN)")
    return (f"**Identity face boxes** (detector: {boxes.detector}; per generated image: column "
            f"`identity_face_box` of `tables/scores.csv`): {'; '.join(groups)}. A fallback is "
            f"an image in which no face was found; {policy}.")


def _missing_faces(scores: Scores, files: dict[str, Any]) -> list[str]:
    """The report's section listing every missing face (or linking the file)."""
    if not scores.missing_faces:
        return []
    n, link = len(scores.missing_faces), _link(files["missing_faces"])
    out = ["## Missing faces", ""]
    if n > MISSING_FACES_INLINE:
        return out + [f"{n} images in which a scorer found no face; every one, with its role, "
                      f"the scorer, what its values became and why, is in {link}.", ""]
    return out + [f"Every image in which a scorer found no face (also in {link}):", "",
                  tables.missing_faces_table(scores).markdown(), ""]


def _link(path: str) -> str:
    return f"[`{path}`]({path})"


def skipped_photos_lines(skipped: list[dict[str, Any]]) -> list[str]:
    """The input photos ``align_failures="skip"`` left out of the run, each with its
    reason (the run's ``alignment_skipped``; its manifest has the details)."""
    if not skipped:
        return []
    return [f"**Photos left out:** {len(skipped)} input photo(s) in which alignment found no "
            "usable face were left out of the run (`align_failures=skip`; the manifest's "
            "`extra.alignment_skipped` has each one's detector settings and sha256):", "",
            *[f"- `{names.display_path(entry['source'])}`: {entry['reason']}"
              + (f" ({entry['source_size'][0]}x{entry['source_size'][1]} px)"
                 if entry.get("source_size") else "") for entry in skipped], ""]


def render(scores: Scores, scorers: dict[str, Any], files: dict[str, Any],
           figure_titles: dict[str, str]) -> str:
    """The markdown report; links are relative to the evaluation directory."""
    run = scores.run
    model = run.summary.get("model") if isinstance(run.summary.get("model"), dict) else {}
    if run.is_transfer_run:
        out = [f"# Evaluation of the expression transfer run `{run.path}`", "",
               "Generated by flowjax (`flowjax.evaluation`). Every transfer image evaluated "
               "here is SYNTHETIC: a face computed by a Glow model, not a photograph.", ""]
    else:
        out = [f"# Evaluation of the study `{run.spec_path or run.path}`", "",
               "Generated by flowjax (`flowjax.evaluation`) from a study spec; the images were "
               f"made elsewhere (files under `{run.path}`) and are generated images, not "
               "photographs.", ""]
    out += [missing_line(scores), ""]
    if face_boxes_line(scores) is not None:
        out += [face_boxes_line(scores), ""]
    out += skipped_photos_lines(run.summary.get("alignment_skipped") or [])
    if scores.missing_faces:
        out += [f"**Missing faces:** {len(scores.missing_faces)} (an image counts once per "
                f"scorer that found no face in it), every one listed under 'Missing faces' "
                f"and in {_link(files['missing_faces'])}.", ""]
    out += [f"- method `{run.summary.get('method')}`, space `{run.summary.get('space')}`, "
           f"source identity `{run.source}`, {len(run.expressions)} expression(s) x "
           f"{len(run.targets)} target(s) x {len(run.labels)} alphas "
           f"({', '.join(run.labels)})",
           f"- model: {run.model_label}"]
    if model.get("random_init"):
        out.append("- **WARNING: the model is randomly initialised; these numbers test the "
                   "pipeline, they say nothing about expression transfer.**")
    out += ["", "## Scorers", "",
            _scorer_line("identity embedder", scorers.get("identity")),
            _scorer_line("action units", scorers.get("action_units")),
            _scorer_line("fake detector", scorers.get("detector"))]
    if scores.has_aus:
        out.append(f"- AU set S of the AU mean error: {_au_set_text(scores)}")
    references = REFERENCES if run.is_transfer_run else STUDY_REFERENCES
    out += ["", "## Definitions", "", definitions(), "", references, ""]
    if scores.notes:
        out += ["## Notes", "", *[f"- {n}" for n in scores.notes], ""]
    out += _missing_faces(scores, files)
    if scores.has_aus:
        out += ["## General trend", "", f"From {_link(files['general_trend'])}:", "",
                tables.trend_table(scores).markdown(), "",
                "## Best alpha per (expression, target)", "",
                f"From {_link(files['best_alpha'])}:", "",
                tables.best_alpha_table(scores).markdown(), ""]
    if scores.detection_rate is not None:
        out += ["## Fake detection", "",
                f"Detection rate (p(generated) >= {scores.detection_threshold}) over the "
                f"{scores.p_generated.size} generated images: **{scores.detection_rate:.3f}**. "
                f"Per-image probabilities: column `p_generated` of {_link(files['scores'])}.", ""]
    if files.get("published"):
        out += ["## Published layout", "",
                "The same numbers in the published study's layout (likeliness matrices with "
                "the mean faces' columns; AU tables per expression), to compare cell by cell:",
                "", *[f"- {kind}: " + ", ".join(_link(p) for p in per.values())
                      for kind, per in files["published"].items()], ""]
    out += ["## Per expression", "",
            f"Every number, one row per generated image: {_link(files['scores'])}. Per "
            f"alpha, their mean, standard error and count (per expression, and over all): "
            f"{_link(files['per_alpha'])}.", ""]
    if PER_ALPHA_FIGURE in files["figures"]:
        out += [f"![{figure_titles.get(PER_ALPHA_FIGURE, PER_ALPHA_FIGURE)}]"
                f"({PER_ALPHA_FIGURE})", ""]
    for e, expression in enumerate(run.expressions):
        name = run.summary.get("expressions", {}).get(expression, run.source_inputs[e].name)
        out += [f"### {expression}", "", f"Source image `{name}`."]
        if scores.has_identity:
            out += [f"Identity distances ({_link(files['identity_distances'][expression])}):",
                    "", tables.identity_table(scores, e).markdown()]
        out.append("")
        if scores.has_aus:
            out += [f"AU intensities, a row per image: "
                    f"{_link(files['action_units'][expression])}. AU set S here: "
                    f"{', '.join(scores.au_sets[e]) or 'none (error undefined)'}.", ""]
        for rel in files["figures"]:
            if rel.startswith(f"figures/{expression}/"):
                out += [f"![{figure_titles.get(rel, rel)}]({rel})", ""]
    return "\n".join(out).rstrip() + "\n"
