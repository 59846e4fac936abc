"""The static run viewer (flowjax/evaluation/viewer.py): the page the evaluation writes, and
the page in a real headless Chromium (the ``browser`` fixture of conftest.py).

The run here is hand-made (2 expressions x 2 targets x 3 alphas of 8x8 solid
greys whose value names the image) and scored by lookup-table scorers, so it
costs well under a second; the browser tests then check what a person sees.
Set FLOWJAX_UPDATE_SCREENSHOTS=1 to write the screenshots into docs/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from flowjax import io as fio
from flowjax.evaluation import pipeline, viewer
from flowjax.runs import run_dirs

ROOT = Path(__file__).resolve().parents[1]
EXPRESSIONS, TARGETS, LABELS = ("smile", "frown"), ("tgt1", "tgt2"), ("0.00", "0.50", "1.00")
MEANS = {"src": 200, "tgt1": 210, "tgt2": 220}
SOURCES = {"smile": 240, "frown": 250}
AUS = ("AU06", "AU12", "AU25")
# Recorded with its absolute path, as a run records it; the page must show it relative.
CHECKPOINT = ROOT / "weights" / "demo" / "glow"


def generated_value(e: int, t: int, a: int) -> int:
    return 10 + 10 * (e * len(TARGETS) * len(LABELS) + t * len(LABELS) + a)


def _grey(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


class LookupEmbedder:
    """A 2-d embedding that is a fixed function of the grey value."""

    def embed(self, images):
        v = np.array([float(im[0, 0, 0]) for im in images])
        return np.stack([v / 100, np.sin(v)], axis=1)

    def provenance(self):
        return {"model": "lookup (test)"}


class LookupAUs:
    au_names = AUS

    def __call__(self, images):
        v = np.array([float(im[0, 0, 0]) for im in images])
        return np.stack([v % 3, (v / 40) % 5, np.cos(v) + 1], axis=1)


def make_run(path: Path) -> Path:
    """A transfer run directory laid out as experiments/transfer.py writes it."""
    with run_dirs.create_run_dir(path) as run:
        inputs = []
        for expression, value in SOURCES.items():
            written = run.write_png(f"inputs/src/{expression}.png", _grey(value), generated=False)
            inputs.append({"path": str(written), "sha256": fio.sha256_file(written)})
        for name, value in MEANS.items():
            run.write_png(f"means/{name}_mean.png", _grey(value))
        images: dict = {}
        for e, expression in enumerate(EXPRESSIONS):
            for t, target in enumerate(TARGETS):
                for a, label in enumerate(LABELS):
                    rel = f"transfer/{expression}/{target}/{label}/{target}_{label}.png"
                    run.write_png(rel, _grey(generated_value(e, t, a)))
                    images.setdefault(expression, {}).setdefault(target, {})[label] = rel
        run.write_json("transfer.json", {
            "method": "linear", "space": "eps", "alphas": [0.0, 0.5, 1.0],
            "alpha_labels": list(LABELS), "source": "src",
            "expressions": {e: f"{e}.png" for e in EXPRESSIONS}, "targets": list(TARGETS),
            "identity_images": {"src": 2, "tgt1": 1, "tgt2": 1}, "images": images,
            "means": {n: f"means/{n}_mean.png" for n in MEANS},
            "model": {"checkpoint": os.fspath(CHECKPOINT), "sha256": "0" * 64,
                      "random_init": False}})
        run.manifest.add_inputs(inputs)
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """The evaluation directory of the hand-made run (with its index.html)."""
    run = make_run(tmp_path_factory.mktemp("viewer") / "run")
    pipeline.evaluate_run(run, LookupEmbedder(), LookupAUs(), au_set=AUS, make_figures=False)
    return run / "evaluation"


def scores_rows(eval_dir: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(eval_dir / "tables/scores.csv", newline="") as f:
        return {(r["expression"], r["target"], Path(r["image"]).parent.name): r
                for r in csv.DictReader(f)}


def best_rows(eval_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(eval_dir / "tables/best_alpha.csv", newline="") as f:
        return {(r["expression"], r["target"]): r for r in csv.DictReader(f)}


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', page,
                      re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1))


# ---- the page on disk --------------------------------------------------------------


def test_evaluation_writes_index_html_listed_in_its_manifest_and_summary(evaluated):
    assert (evaluated / "index.html").is_file()
    manifest = json.loads((evaluated / "manifest.json").read_text())
    assert "index.html" in {o["path"] for o in manifest["outputs"]}
    assert json.loads((evaluated / "evaluation.json").read_text())["files"]["viewer"] == \
        "index.html"


def test_every_image_the_page_references_exists_relative_to_it(evaluated):
    data = embedded_data((evaluated / "index.html").read_text())
    paths = [p for row in data["images"] for cell in row for p in cell]
    paths += [*data["means"].values(), *data["sources"]]
    assert len(paths) == 2 * 2 * 3 + 3 + 2
    for rel in paths:
        assert not rel.startswith("/") and "://" not in rel, rel
        assert (evaluated / unquote(rel)).is_file(), rel


def test_embedded_numbers_are_the_evaluation_tables(evaluated):
    data = embedded_data((evaluated / "index.html").read_text())
    rows = scores_rows(evaluated)
    for e, expression in enumerate(EXPRESSIONS):
        for t, target in enumerate(TARGETS):
            for a, label in enumerate(LABELS):
                row = rows[(expression, target, label)]
                assert data["au_error"][e][t][a] == float(row["au_error"])
                assert data["to_target"][e][t][a] == float(row["distance_to_target_mean"])
                assert data["to_source"][e][t][a] == float(row["distance_to_source_mean"])
            best = best_rows(evaluated)[(expression, target)]
            assert data["alphas"][data["best"][e][t]["index"]] == float(best["best_alpha"])


def test_an_evaluation_written_elsewhere_links_back_to_the_run(evaluated, tmp_path):
    out = tmp_path / "elsewhere" / "eval"
    pipeline.evaluate_run(evaluated.parent, LookupEmbedder(), LookupAUs(), au_set=AUS,
                          make_figures=False, out_dir=out)
    data = embedded_data((out / "index.html").read_text())
    first = data["images"][0][0][0]
    assert first.startswith("../") and (out / unquote(first)).resolve() == \
        (evaluated.parent / "transfer/smile/tgt1/0.00/tgt1_0.00.png").resolve()


def test_the_model_is_shown_relative_to_the_repository_and_recorded_whole(evaluated):
    label = f"weights/demo/glow sha256:{'0' * 64}"
    assert embedded_data((evaluated / "index.html").read_text())["model"] == label
    assert f"- model: {label}" in (evaluated / "report.md").read_text()
    recorded = json.loads((evaluated.parent / "transfer.json").read_text())["model"]
    assert recorded["checkpoint"] == os.fspath(CHECKPOINT)  # provenance keeps the full path


def test_page_has_no_external_script_style_or_link(evaluated):
    page = (evaluated / "index.html").read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "default-src 'none'" in page  # the CSP that blocks any fetch


def test_embedded_json_cannot_close_the_script_element():
    text = viewer.embed_json({"name": "</script><script>alert(1)</script>"})
    assert "</" not in text and json.loads(text)["name"].startswith("</script>")


def test_a_table_missing_an_image_row_is_an_error_naming_it(evaluated, tmp_path):
    run = pipeline.read_transfer_run(evaluated.parent)
    (tmp_path / "tables").mkdir()
    lines = (evaluated / "tables/scores.csv").read_text().splitlines(keepends=True)
    (tmp_path / "tables/scores.csv").write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match=r"scores\.csv: no row for 1 generated image"):
        viewer.page_data(run, tmp_path)


# ---- the page in a headless Chromium -----------------------------------------------


@pytest.fixture
def page(browser, evaluated):
    context = browser.new_context(viewport={"width": 1000, "height": 700}, accept_downloads=True)
    tab = context.new_page()
    tab.requests = []
    tab.errors = []
    tab.on("request", lambda r: tab.requests.append(r.url))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto((evaluated / "index.html").as_uri())
    tab.wait_for_selector("#generated")
    yield tab
    assert tab.errors == []
    context.close()


def shown_grey(element) -> int:
    """The grey value at the centre of an image element as the browser draws it."""
    shot = Image.open(io.BytesIO(element.screenshot())).convert("RGB")
    return shot.getpixel((shot.width // 2, shot.height // 2))[0]


def test_slider_changes_the_shown_image_and_numbers(page, evaluated):
    rows = scores_rows(evaluated)
    assert shown_grey(page.locator("#generated")) == pytest.approx(generated_value(0, 0, 0), abs=2)
    page.focus("#alpha")
    page.keyboard.press("ArrowRight")  # as a person drags or steps the slider
    assert page.text_content("#alpha-value") == "0.50"
    assert page.get_attribute("#generated", "src").endswith("tgt1/0.50/tgt1_0.50.png")
    assert shown_grey(page.locator("#generated")) == pytest.approx(generated_value(0, 0, 1), abs=2)
    row = rows[("smile", "tgt1", "0.50")]
    assert page.text_content("#au-error") == f"{float(row['au_error']):.3f}"
    assert page.text_content("#to-target") == f"{float(row['distance_to_target_mean']):.3f}"
    assert page.text_content("#to-source") == f"{float(row['distance_to_source_mean']):.3f}"


def test_choosing_a_pair_shows_its_source_and_mean_faces(page):
    page.select_option("#expression", label="frown")
    page.select_option("#target", label="tgt2")
    assert shown_grey(page.locator("#source-image")) == pytest.approx(SOURCES["frown"], abs=2)
    assert shown_grey(page.locator("#source-mean")) == pytest.approx(MEANS["src"], abs=2)
    assert shown_grey(page.locator("#target-mean")) == pytest.approx(MEANS["tgt2"], abs=2)
    assert shown_grey(page.locator("#generated")) == pytest.approx(generated_value(1, 1, 0), abs=2)


def test_the_header_names_the_model_without_an_absolute_path(page):
    meta = page.text_content("header .meta")
    assert meta.endswith(f"; model weights/demo/glow sha256:{'0' * 64}")
    assert str(ROOT) not in meta


def test_best_alpha_is_marked_and_reachable(page, evaluated):
    best = best_rows(evaluated)[("smile", "tgt1")]
    label = f"{float(best['best_alpha']):.2f}"
    assert page.text_content("#best-alpha").startswith(label)
    page.click("#goto-best")
    assert page.text_content("#alpha-value") == label
    assert "(best)" in page.text_content("#generated-caption")
    assert page.locator("#curve-au circle.best").count() == 1


def test_grid_shows_every_pair_at_the_chosen_alpha(page):
    page.click("#view-grid")
    page.focus("#grid-alpha")
    page.keyboard.press("End")
    cells = page.locator("#grid-table td")
    assert cells.count() == len(EXPRESSIONS) * len(TARGETS)
    for e, expression in enumerate(EXPRESSIONS):
        for t, target in enumerate(TARGETS):
            cell = page.locator(f'td[data-expression="{expression}"][data-target="{target}"] img')
            assert shown_grey(cell) == pytest.approx(generated_value(e, t, 2), abs=2)


def test_flagged_cells_export_as_json(page):
    page.click("#view-grid")
    page.locator('td[data-expression="frown"][data-target="tgt1"] input.flag-cell').check()
    assert page.text_content("#flag-count") == "1 flagged"
    with page.expect_download() as download:
        page.click("#export-flags")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported == json.loads(page.input_value("#flags-json"))
    assert exported["format"] == viewer.FLAGS_FORMAT
    assert exported["flags"] == [{"expression": "frown", "target": "tgt1", "alpha": 0.0,
                                  "label": "0.00",
                                  "image": "transfer/frown/tgt1/0.00/tgt1_0.00.png"}]


def test_without_an_au_scorer_the_page_shows_distances_only(browser, evaluated, tmp_path):
    out = tmp_path / "identity_only"
    pipeline.evaluate_run(evaluated.parent, LookupEmbedder(), None, make_figures=False,
                          out_dir=out)
    tab = browser.new_page()
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto((out / "index.html").as_uri())
    assert tab.text_content("#au-error") == "no AU scorer"
    assert tab.text_content("#best-alpha") == "n/a" and tab.is_disabled("#goto-best")
    assert tab.text_content("#to-target") != "n/a" and errors == []
    tab.close()


def test_every_control_has_an_accessible_name_in_both_views(page):
    from accessible_names import controls, shown_controls, unnamed_controls

    assert unnamed_controls(page) == []
    names = shown_controls(page)
    assert names["input[id=alpha][type=range]"] == "alpha"  # before: "alpha \u25bc" (the mark)
    assert (names["select[id=expression]"], names["select[id=target]"]) == ("expression",
                                                                              "target")
    page.click("#view-grid")
    assert unnamed_controls(page) == []
    names = shown_controls(page)
    assert names["input[id=grid-alpha][type=range]"] == "alpha"
    flags = [c["name"] for c in controls(page)
             if c["what"] == "input[type=checkbox][class=flag-cell]"]
    assert flags[0] == "flag smile onto tgt1 at alpha 0.00 as bad"  # before: "bad", each one
    assert len(set(flags)) == len(EXPRESSIONS) * len(TARGETS)
    with page.expect_download():
        page.click("#export-flags")
    assert unnamed_controls(page) == []  # the exported JSON's box too
    assert shown_controls(page)["textarea[id=flags-json]"] == "exported flags (JSON)"


def test_the_alpha_sliders_announce_the_alpha_not_the_step(page, evaluated):
    best = best_rows(evaluated)[("smile", "tgt1")]
    best_label = f"{float(best['best_alpha']):.2f}"

    def announced(label):
        return label + (" (best)" if label == best_label else "")

    assert page.get_attribute("#alpha", "aria-valuetext") == announced("0.00")  # before: none
    page.focus("#alpha")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#alpha", "aria-valuetext") == announced("0.50")
    page.click("#goto-best")
    assert page.get_attribute("#alpha", "aria-valuetext") == best_label + " (best)"
    page.click("#view-grid")
    page.focus("#grid-alpha")
    page.keyboard.press("End")
    assert page.get_attribute("#grid-alpha", "aria-valuetext") == "1.00"


def test_page_fetches_nothing_but_files_beside_it(page):
    page.click("#view-grid")
    assert page.requests, "the page loaded no images"
    assert all(url.startswith(("file://", "blob:", "data:")) for url in page.requests), \
        page.requests


def test_screenshots_of_both_views(page, save_screenshot):
    page.focus("#alpha")
    page.keyboard.press("ArrowRight")
    pair = save_screenshot(page, "viewer_pair_test.png", "flowjax viewer, pair view (test run)")
    page.click("#view-grid")
    grid = save_screenshot(page, "viewer_grid_test.png", "flowjax viewer, grid view (test run)")
    for shot in (pair, grid):
        assert shot.shape == (700, 1000, 3)
        assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 20  # a drawn page, not blank


# ---- the main job's run (~50 s of transfer and evaluation on 2 idle cores) -------------
# In the default suite: the must-show is that the main job's viewer is
# screenshot-tested in CI.


@pytest.mark.slow
def test_main_job_writes_the_viewer_and_it_shows_every_pair(browser, tmp_path, save_screenshot):
    """``run.py --config=configs/transfer.py`` (the demo) ends with evaluation/index.html;
    screenshots of it go to docs/viewer_pair.png and docs/viewer_grid.png with
    FLOWJAX_UPDATE_SCREENSHOTS=1 (those in the README)."""
    import subprocess
    import sys

    workdir = tmp_path / "transfer-demo"
    result = subprocess.run([sys.executable, "run.py", "--config=configs/transfer.py",
                             f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, result.stderr[-3000:]
    index = workdir / "evaluation" / "index.html"
    data = embedded_data(index.read_text())
    assert (len(data["expressions"]), len(data["targets"]), len(data["alphas"])) == (5, 5, 11)
    # The checkpoint shown as in the docs, not as this machine's path; the manifest keeps it.
    label = f"weights/demo/glow sha256:{fio.sha256_path(CHECKPOINT)}"
    assert data["model"] == label
    manifest = json.loads((workdir / run_dirs.MANIFEST_NAME).read_text())
    assert manifest["model"]["checkpoint"] == os.fspath(CHECKPOINT)
    # A short viewport: the full-page screenshots are then as tall as the page, not taller.
    context = browser.new_context(viewport={"width": 1000, "height": 400})
    tab = context.new_page()
    tab.goto(index.as_uri())
    assert tab.text_content("header .meta").endswith(f"; model {label}")
    tab.select_option("#expression", label="smile")
    tab.select_option("#target", label="id02")
    tab.click("#goto-best")
    best = data["best"][0][2]
    assert tab.text_content("#alpha-value") == data["labels"][best["index"]]
    save_screenshot(tab, "viewer_pair.png", "flowjax viewer of the main job, pair view",
                    full_page=True)
    tab.click("#view-grid")
    tab.focus("#grid-alpha")
    for _ in range(7):
        tab.keyboard.press("ArrowRight")
    assert tab.locator("#grid-table img").count() == 25
    save_screenshot(tab, "viewer_grid.png", "flowjax viewer of the main job, grid view",
                    full_page=True)
    context.close()
