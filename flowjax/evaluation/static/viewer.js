// flowjax run viewer (flowjax/evaluation/viewer.py). Inline in the page: it reads the
// embedded JSON (#viewer-data) and fetches nothing. Data values are only ever
// set through textContent / attributes, never parsed as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("viewer-data").textContent);
  const E = data.expressions, T = data.targets, A = data.alphas;
  const state = { view: "pair", e: 0, t: 0, a: 0, gridA: 0 };
  const storageKey = "flowjax-viewer-flags:" + data.run;
  const flags = new Set(loadFlags());

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(c);
    return node;
  }
  function fmt(x) { return x === null || x === undefined ? "n/a" : x.toFixed(3); }
  function flagKey(e, t, a) { return E[e] + "/" + T[t] + "/" + data.labels[a]; }
  function best(e, t) { return data.best ? data.best[e][t] : null; }

  function loadFlags() {
    try { return JSON.parse(localStorage.getItem(storageKey) || "[]"); }
    catch (err) { return []; }  // file:// storage can be disabled; flags then last one visit
  }
  function saveFlags() {
    try { localStorage.setItem(storageKey, JSON.stringify([...flags])); } catch (err) { /* see loadFlags */ }
  }
  function setFlag(e, t, a, on) {
    const key = flagKey(e, t, a);
    if (on) flags.add(key); else flags.delete(key);
    saveFlags();
    renderFlags();
  }
  function flagsDocument() {
    const entries = [];
    E.forEach((_, e) => T.forEach((_, t) => A.forEach((_, a) => {
      if (flags.has(flagKey(e, t, a))) {
        entries.push({ expression: E[e], target: T[t], alpha: A[a], label: data.labels[a],
                       image: data.image_paths[e][t][a] });
      }
    })));
    return { format: data.flags_format, run: data.run, model: data.model, flags: entries };
  }

  // ---- layout ---------------------------------------------------------------
  const app = document.getElementById("app");
  app.textContent = "";
  const meta = "method " + data.method + ", space " + data.space + ", source " + data.source +
    "; " + E.length + " expression(s) x " + T.length + " target(s) x " + A.length +
    " alphas; model " + data.model;
  const header = el("header", {}, [
    el("h1", { text: "Expression transfer: " + data.source + " onto " + T.join(", ") }),
    el("div", { class: "meta", text: meta }),
    el("span", { class: "synthetic",
                 text: "Every transfer image here is SYNTHETIC (computed by a Glow model)" +
                       (data.random_init ? "; RANDOM-INIT MODEL: numbers test the pipeline only" : "") })]);
  if (data.report) {
    header.appendChild(document.createTextNode(" "));
    header.appendChild(el("a", { href: data.report, style: "color:#cde", text: "report.md" }));
  }
  const pairButton = el("button", { id: "view-pair", type: "button", text: "Pair" });
  const gridButton = el("button", { id: "view-grid", type: "button", text: "Grid" });
  const flagCount = el("span", { id: "flag-count" });
  const exportButton = el("button", { id: "export-flags", type: "button", text: "Export flags (JSON)" });
  const nav = el("nav", {}, [pairButton, gridButton,
    el("span", { class: "flags" }, [flagCount, document.createTextNode(" "), exportButton])]);

  // A control named by its <label for=...>, kept beside it (box: what holds the control).
  function labelled(text, control, box) {
    return el("span", {}, [el("label", { for: control.id, text: text + " " }), box || control]);
  }
  function options(names, id) {
    return el("select", { id: id }, names.map((n, i) => el("option", { value: String(i), text: n })));
  }
  function slider(id, bestMarkId) {
    const input = el("input", { id: id, type: "range", min: "0", max: String(A.length - 1),
                                step: "1", value: "0" });
    const box = el("span", { class: "slider" }, [input]);
    // The mark is drawn for the eye; the slider's aria-valuetext says "(best)" instead.
    if (bestMarkId) box.appendChild(el("span", { id: bestMarkId, class: "best-mark", text: "▼",
                                            title: "best alpha (smallest AU error)",
                                            "aria-hidden": "true" }));
    return [box, input];
  }

  // Pair view.
  const exprSelect = options(E, "expression"), targetSelect = options(T, "target");
  const [pairSliderBox, pairSlider] = slider("alpha", "best-mark");
  const alphaValue = el("span", { id: "alpha-value", class: "alpha-value" });
  const gotoBest = el("button", { id: "goto-best", type: "button", text: "go to best alpha" });
  const generated = el("img", { id: "generated", alt: "generated image" });
  const generatedCaption = el("figcaption", { id: "generated-caption" });
  const flagPair = el("input", { id: "flag-pair", type: "checkbox" });
  const sourceImage = el("img", { id: "source-image", alt: "source expression" });
  const sourceMean = el("img", { id: "source-mean", alt: "source mean face", src: data.means[data.source] });
  const targetMean = el("img", { id: "target-mean", alt: "target mean face" });
  const sourceImageCaption = el("figcaption", {});
  const sourceCaption = el("figcaption", {}), targetCaption = el("figcaption", {});
  const cells = {};
  const numbers = el("table", { class: "numbers" }, [
    ["au-error", "AU error (vs the source expression)"],
    ["to-target", "identity distance to the target mean face"],
    ["to-source", "identity distance to the source mean face"],
    ["best-alpha", "best alpha (smallest AU error)"]].map(([id, label]) => {
      cells[id] = el("td", { id: id });
      return el("tr", {}, [el("th", { text: label }), cells[id]]);
    }));
  const curveAU = svg("curve-au"), curveId = svg("curve-id");
  const pair = el("section", { id: "pair" }, [
    el("div", { class: "controls" }, [
      labelled("expression", exprSelect), labelled("target", targetSelect),
      labelled("alpha", pairSlider, pairSliderBox), alphaValue, gotoBest]),
    el("div", { class: "pair" }, [
      el("figure", { class: "generated" }, [generated, generatedCaption,
        el("label", { class: "flag" }, [flagPair, document.createTextNode(" flag this image as bad")])]),
      el("div", {}, [
        el("div", { class: "references" }, [
          el("figure", {}, [sourceImage, sourceImageCaption]),
          el("figure", {}, [sourceMean, sourceCaption]),
          el("figure", {}, [targetMean, targetCaption])]),
        numbers, curveAU, curveId])])]);

  // Grid view.
  const [gridSliderBox, gridSlider] = slider("grid-alpha", null);
  const gridAlphaValue = el("span", { id: "grid-alpha-value", class: "alpha-value" });
  const gridTable = el("table", { id: "grid-table", class: "grid" });
  const grid = el("section", { id: "grid", class: "hidden" }, [
    el("div", { class: "controls" }, [
      labelled("alpha", gridSlider, gridSliderBox), gridAlphaValue,
      el("span", { text: "green outline: the pair's best alpha; click an image to open its pair" })]),
    gridTable]);

  const flagsOut = el("textarea", { id: "flags-json", readonly: "readonly", class: "hidden",
                                    "aria-label": "exported flags (JSON)" });
  app.appendChild(header);
  app.appendChild(nav);
  app.appendChild(el("main", {}, [pair, grid, flagsOut]));

  // ---- curves ---------------------------------------------------------------
  function svg(id) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    node.setAttribute("id", id);
    node.setAttribute("class", "curve");
    node.setAttribute("width", "360");
    node.setAttribute("height", "110");
    return node;
  }
  function svgChild(parent, tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }
  // One panel: each series' values over alpha, a vertical line at the slider's
  // alpha and, when given, a dot at the best alpha.
  function drawCurve(node, title, series, bestIndex) {
    while (node.firstChild) node.removeChild(node.firstChild);
    const W = 360, H = 110, L = 34, R = 8, Tp = 16, B = 18;
    const values = series.flatMap(s => s.values).filter(v => v !== null);
    svgChild(node, "text", { x: 4, y: 11 }, title);
    if (!values.length) { svgChild(node, "text", { x: L, y: 60 }, "no values"); return; }
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
    const a0 = A[0], a1 = A[A.length - 1] === a0 ? a0 + 1 : A[A.length - 1];
    const x = a => L + (W - L - R) * (a - a0) / (a1 - a0);
    const y = v => Tp + (H - Tp - B) * (1 - (v - lo) / (hi - lo));
    svgChild(node, "text", { x: 2, y: Tp + 4 }, hi.toFixed(2));
    svgChild(node, "text", { x: 2, y: H - B }, lo.toFixed(2));
    svgChild(node, "text", { x: L, y: H - 4 }, "alpha " + A[0]);
    svgChild(node, "text", { x: W - R - 44, y: H - 4 }, "alpha " + A[A.length - 1]);
    svgChild(node, "line", { x1: x(A[state.a]), x2: x(A[state.a]), y1: Tp, y2: H - B,
                             stroke: "#888", "stroke-dasharray": "3,2", class: "current" });
    for (const s of series) {
      const pts = [];
      s.values.forEach((v, a) => { if (v !== null) pts.push(x(A[a]).toFixed(1) + "," + y(v).toFixed(1)); });
      svgChild(node, "polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5 });
      const v = s.values[state.a];
      if (v !== null) svgChild(node, "circle", { cx: x(A[state.a]), cy: y(v), r: 3, fill: s.color });
    }
    if (bestIndex !== null && series[0].values[bestIndex] !== null) {
      svgChild(node, "circle", { cx: x(A[bestIndex]), cy: y(series[0].values[bestIndex]), r: 5,
                                 fill: "none", stroke: "#0a7d32", "stroke-width": 2, class: "best" });
    }
    let lx = L + 150;
    for (const s of series) {
      svgChild(node, "text", { x: lx, y: 11, fill: s.color, style: "fill:" + s.color }, s.name);
      lx += 6.5 * s.name.length + 10;
    }
  }

  // ---- rendering -------------------------------------------------------------
  function renderPair() {
    const { e, t, a } = state;
    const b = best(e, t);
    exprSelect.value = String(e);
    targetSelect.value = String(t);
    pairSlider.value = String(a);
    // Announced as the alpha, not the slider's step index.
    pairSlider.setAttribute("aria-valuetext", data.labels[a] + (b && b.index === a ? " (best)" : ""));
    alphaValue.textContent = data.labels[a];
    generated.src = data.images[e][t][a];
    generated.title = data.image_paths[e][t][a];
    generatedCaption.textContent = E[e] + " onto " + T[t] + " at alpha " + data.labels[a] +
      (b && b.index === a ? " (best)" : "");
    flagPair.checked = flags.has(flagKey(e, t, a));
    sourceImage.src = data.sources[e];
    sourceImageCaption.textContent = "source expression: " + E[e];
    sourceCaption.textContent = data.source + " mean face";
    targetMean.src = data.means[T[t]];
    targetCaption.textContent = T[t] + " mean face";
    cells["au-error"].textContent = data.has_au ? fmt(data.au_error[e][t][a]) : "no AU scorer";
    cells["to-target"].textContent = fmt(data.to_target[e][t][a]);
    cells["to-source"].textContent = fmt(data.to_source[e][t][a]);
    cells["best-alpha"].textContent = b ? data.labels[b.index] + " (AU error " + fmt(b.au_error) + ")" : "n/a";
    for (const id of ["au-error", "to-target", "to-source"]) cells[id].classList.toggle("is-best", !!b && b.index === a);
    const mark = document.getElementById("best-mark");
    mark.classList.toggle("hidden", !b);
    gotoBest.disabled = !b;
    if (b) {
      const frac = A.length > 1 ? b.index / (A.length - 1) : 0;
      // A range thumb travels inside the track minus its own width (~16 px).
      mark.style.left = "calc(8px + (100% - 16px) * " + frac + ")";
    }
    drawCurve(curveAU, "AU error", [{ name: "AU error", color: "#b3261e",
                                      values: data.has_au ? data.au_error[e][t] : A.map(() => null) }],
              b ? b.index : null);
    drawCurve(curveId, "identity distance", [
      { name: "to " + T[t] + " mean", color: "#1f5fa8", values: data.to_target[e][t] },
      { name: "to " + data.source + " mean", color: "#8a6d00", values: data.to_source[e][t] }],
      b ? b.index : null);
  }

  function renderGrid() {
    const a = state.gridA;
    gridSlider.value = String(a);
    gridSlider.setAttribute("aria-valuetext", data.labels[a]);
    gridAlphaValue.textContent = data.labels[a];
    while (gridTable.firstChild) gridTable.removeChild(gridTable.firstChild);
    gridTable.appendChild(el("tr", {}, [el("th", { text: "expression \\ target" }),
                                        ...T.map(name => el("th", { text: name }))]));
    E.forEach((expression, e) => {
      const row = el("tr", {}, [el("th", { text: expression })]);
      T.forEach((target, t) => {
        const b = best(e, t);
        const box = el("input", { type: "checkbox", class: "flag-cell", "aria-label":
          "flag " + expression + " onto " + target + " at alpha " + data.labels[a] + " as bad" });
        box.checked = flags.has(flagKey(e, t, a));
        box.addEventListener("change", () => setFlag(e, t, a, box.checked));
        const img = el("img", { src: data.images[e][t][a], alt: expression + " onto " + target,
                                title: data.image_paths[e][t][a] });
        img.addEventListener("click", () => { Object.assign(state, { e, t, a }); show("pair"); });
        const text = (data.has_au ? "AU " + fmt(data.au_error[e][t][a]) + " · " : "") +
                     "d " + fmt(data.to_target[e][t][a]);
        const cell = el("td", { "data-expression": expression, "data-target": target }, [
          img, el("div", { class: "cell-numbers", text: text }),
          el("label", { class: "flag" }, [box, document.createTextNode(" bad")])]);
        cell.classList.toggle("best", !!b && b.index === a);
        cell.classList.toggle("flagged", box.checked);
        row.appendChild(cell);
      });
      gridTable.appendChild(row);
    });
  }

  function renderFlags() {
    flagCount.textContent = flags.size + " flagged";
    if (!flagsOut.classList.contains("hidden")) flagsOut.value = JSON.stringify(flagsDocument(), null, 2);
  }

  function show(view) {
    state.view = view;
    pair.classList.toggle("hidden", view !== "pair");
    grid.classList.toggle("hidden", view !== "grid");
    pairButton.setAttribute("aria-pressed", String(view === "pair"));
    gridButton.setAttribute("aria-pressed", String(view === "grid"));
    if (view === "pair") renderPair(); else renderGrid();
  }

  // ---- events ----------------------------------------------------------------
  exprSelect.addEventListener("change", () => { state.e = +exprSelect.value; renderPair(); });
  targetSelect.addEventListener("change", () => { state.t = +targetSelect.value; renderPair(); });
  pairSlider.addEventListener("input", () => { state.a = +pairSlider.value; renderPair(); });
  gridSlider.addEventListener("input", () => { state.gridA = +gridSlider.value; renderGrid(); });
  gotoBest.addEventListener("click", () => { const b = best(state.e, state.t); if (b) { state.a = b.index; renderPair(); } });
  flagPair.addEventListener("change", () => setFlag(state.e, state.t, state.a, flagPair.checked));
  pairButton.addEventListener("click", () => show("pair"));
  gridButton.addEventListener("click", () => show("grid"));
  exportButton.addEventListener("click", () => {
    const text = JSON.stringify(flagsDocument(), null, 2);
    flagsOut.classList.remove("hidden");
    flagsOut.value = text;
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/json" })),
                           download: "flags.json" });
    document.body.appendChild(link);
    link.click();
    link.remove();
  });

  renderFlags();
  show("pair");
})();
