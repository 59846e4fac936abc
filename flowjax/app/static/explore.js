// flowjax live editor (flowjax/app/explore.py). Talks only to the server that served
// it (/api/...). Values are set through textContent and attributes, never as HTML.
"use strict";
(function () {
  const app = document.getElementById("app");
  let state = null;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return node;
  }
  function say(text, kind) {
    const box = document.getElementById("message");
    box.textContent = text;
    box.className = text ? kind : "";
  }
  async function explain(response) {
    try { return (await response.json()).error || response.statusText; }
    catch (err) { return "HTTP " + response.status + " " + response.statusText; }
  }

  // One image per panel; while a decode is in flight only the latest request waits.
  const panels = {};
  function panel(id) {
    const img = el("img", { id: id, class: "face", alt: "edited face (" + id.replace("-result", "") + ")" });
    panels[id] = { img: img, busy: false, next: null, loads: 0 };
    return img;
  }
  async function show(id, body) {
    const p = panels[id];
    if (p.busy) { p.next = body; return; }
    p.busy = true;
    try {
      const response = await fetch("api/edit", { method: "POST", body: JSON.stringify(body),
                                                 headers: { "Content-Type": "application/json" } });
      if (!response.ok) { say(await explain(response), "error"); return; }
      const url = URL.createObjectURL(await response.blob());
      const old = p.img.src;
      p.img.src = url;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      p.loads += 1;
      p.img.dataset.edit = JSON.stringify(body);
      p.img.dataset.loads = String(p.loads);
    } finally {
      p.busy = false;
      if (p.next) { const b = p.next; p.next = null; show(id, b); }
    }
  }
  async function save(body) {
    const response = await fetch("api/save", { method: "POST", body: JSON.stringify(body),
                                               headers: { "Content-Type": "application/json" } });
    if (!response.ok) say(await explain(response), "error");
    else say("saved " + (await response.json()).shown, "info");
  }

  function select(id, names) {
    return el("select", { id: id }, names.map(n => el("option", { value: n, text: n })));
  }
  // Every control is named by a <label for=...> (or its own text): screen readers say it.
  function labelled(text, control, ...rest) {
    return el("div", { class: "row" }, [el("label", { for: control.id, text: text }), control, ...rest]);
  }
  const shown = new Map();  // slider -> the span showing its value
  function slider(id, value, min, max) {
    const input = el("input", { id: id, type: "range", min: String(min), max: String(max),
                                step: "0.05", value: String(value), "data-default": String(value) });
    const out = el("span", { id: id + "-value", class: "value", "aria-hidden": "true",
                             text: Number(value).toFixed(2) });
    shown.set(input, out);
    input.addEventListener("input", () => { out.textContent = Number(input.value).toFixed(2); });
    return [input, out];
  }
  // Back to where they started (attributes 0, alpha 1, weight 0.5): for a new face, or asked.
  function resetSliders(inputs) {
    for (const input of inputs) {
      input.value = input.dataset.default;
      shown.get(input).textContent = Number(input.value).toFixed(2);
    }
  }
  function resetButton(id, what, inputs, update) {
    const button = el("button", { id: id, type: "button", class: "reset", text: "reset",
                                  "aria-label": "reset " + what });
    button.addEventListener("click", () => { resetSliders(inputs); update(); });
    return button;
  }
  function refillFaces() {
    const names = state.faces.map(f => f.name);
    for (const id of ["face", "target", "mix-a", "mix-b"]) {
      const s = document.getElementById(id);
      const keep = s.value;
      while (s.firstChild) s.removeChild(s.firstChild);
      for (const f of state.faces) s.appendChild(el("option", { value: f.name, text: f.name + " (" + f.kind + ")" }));
      if (names.includes(keep)) s.value = keep;
    }
  }

  function build() {
    const faces = state.faces.map(f => f.name);
    app.appendChild(el("header", {}, [
      el("h1", { text: "flowjax live editor" }),
      el("div", { class: "meta", text: "model " + state.model + "; " + state.image_size + "x" +
                  state.image_size + " faces; latent space " + state.space }),
      ...(state.model_note ? [el("div", { id: "model-note", class: "model-note", role: "note",
                                          text: state.model_note })] : []),
      el("span", { class: "synthetic", text: "Every edited image is SYNTHETIC (computed by a Glow model) and labelled so in its PNG metadata" })]));
    app.appendChild(el("div", { id: "message", role: "alert" }));

    // Upload. "align" is offered only where a face detector loaded; else the page says why.
    const file = el("input", { id: "photo", type: "file", accept: "image/png,image/jpeg" });
    const align = state.align ? el("input", { id: "align", type: "checkbox" }) : null;
    const send = el("button", { id: "upload-button", type: "button", text: "upload" });
    send.addEventListener("click", async () => {
      if (!file.files.length) { say("choose a photo first", "error"); return; }
      const form = new FormData();
      form.append("photo", file.files[0]);
      form.append("align", align && align.checked ? "true" : "false");
      say("encoding " + file.files[0].name + " ...", "info");
      const response = await fetch("api/upload", { method: "POST", body: form });
      if (!response.ok) { say(await explain(response), "error"); return; }
      const answer = await response.json();
      state.faces = answer.faces;
      refillFaces();
      for (const id of ["face", "target", "mix-a"]) document.getElementById(id).value = answer.name;
      resetSliders(shown.keys());  // a new face starts unedited
      say("uploaded as " + answer.name, "info");
      updateAll();
    });
    const alignRow = align
      ? el("div", { class: "row" }, [align, el("label", { for: "align", text: "align (detect the face)" }),
                                     el("span", { id: "align-note", class: "note", text: state.align_note })])
      : el("div", { id: "align-note", class: "row note",
                    text: "no \"align\" option: " + state.align_note + "; upload an aligned " +
                          state.image_size + "x" + state.image_size + " face" });
    const uploadSection = el("section", {}, [el("h2", { text: "Your photo" }),
      labelled("photo", file), alignRow,
      el("div", { class: "row" }, [send]),
      el("div", { class: "row", text: "aligned " + state.image_size + "x" + state.image_size +
                  " faces; at most " + (state.limits.max_upload_bytes / 1048576).toFixed(0) + " MB" })]);

    // Attributes.
    const faceSelect = select("face", faces);
    const attrRows = [], attrInputs = [];
    state.attributes.forEach((a, i) => {
      const [input, out] = slider("attr-" + i, 0, -state.max_alpha / 2, state.max_alpha / 2);
      input.dataset.name = a.name;
      input.title = a.origin;
      attrInputs.push(input);
      attrRows.push(labelled(a.name, input, out));
    });
    function attributesBody() {
      const alphas = {};
      for (const input of attrInputs) alphas[input.dataset.name] = Number(input.value);
      return { kind: "attributes", face: faceSelect.value, alphas: alphas };
    }
    const attrSection = el("section", {}, [el("h2", { text: "Attributes" }),
      labelled("face", faceSelect), ...attrRows,
      el("div", { class: "row" }, [resetButton("reset-attributes", "the attribute sliders to 0",
                                               attrInputs, () => update.attributes())]),
      panel("attributes-result")]);

    // Transfer.
    const expression = select("expression", state.expressions);
    const target = select("target", faces);
    const [alpha, alphaOut] = slider("transfer-alpha", 1, 0, 1.5);
    function transferBody() {
      return { kind: "transfer", expression: expression.value, target: target.value, alpha: Number(alpha.value) };
    }
    const transferSection = el("section", {}, [el("h2", { text: "Expression transfer" }),
      labelled("expression", expression), labelled("onto", target),
      labelled("alpha", alpha, alphaOut,
               resetButton("reset-transfer", "alpha to 1", [alpha], () => update.transfer())),
      panel("transfer-result")]);

    // Mix.
    const mixA = select("mix-a", faces), mixB = select("mix-b", faces);
    if (faces.length > 1) mixB.value = faces[1];
    const [weight, weightOut] = slider("mix-weight", 0.5, 0, 1);
    function mixBody() { return { kind: "mix", face: mixA.value, other: mixB.value, weight: Number(weight.value) }; }
    const mixSection = el("section", {}, [el("h2", { text: "Mix two faces" }),
      labelled("face", mixA), labelled("with", mixB),
      labelled("weight", weight, weightOut,
               resetButton("reset-mix", "the weight to 0.5", [weight], () => update.mix())),
      panel("mix-result")]);

    const bodies = { "attributes-result": attributesBody, "transfer-result": transferBody, "mix-result": mixBody };
    if (state.saving) {
      for (const [section, id, what] of [[attrSection, "attributes-result", "attributes"], [transferSection, "transfer-result", "transfer"], [mixSection, "mix-result", "mix"]]) {
        const button = el("button", { type: "button", class: "save", text: "save to the run directory",
                                      "aria-label": "save to the run directory: the " + what + " edit" });
        button.addEventListener("click", () => save(bodies[id]()));
        section.appendChild(el("div", { class: "row" }, [button]));
      }
    }
    app.appendChild(el("main", {}, [uploadSection, attrSection, transferSection, mixSection]));

    const update = {
      attributes: () => show("attributes-result", attributesBody()),
      transfer: () => show("transfer-result", transferBody()),
      mix: () => show("mix-result", mixBody()),
    };
    window.updateAll = updateAll;
    function updateAll() { update.attributes(); update.transfer(); update.mix(); }
    // Another face starts unedited: its attribute sliders back to 0.
    faceSelect.addEventListener("change", () => { resetSliders(attrInputs); update.attributes(); });
    for (const input of attrInputs) input.addEventListener("input", update.attributes);
    for (const node of [expression, target]) node.addEventListener("change", update.transfer);
    alpha.addEventListener("input", update.transfer);
    for (const node of [mixA, mixB]) node.addEventListener("change", update.mix);
    weight.addEventListener("input", update.mix);
    refillFaces();
    if (faces.length > 1) mixB.value = faces[1];
    updateAll();
  }
  function updateAll() { window.updateAll(); }

  fetch("api/state").then(r => r.json()).then(s => { state = s; build(); })
    .catch(err => { app.textContent = "cannot reach the editor's server: " + err; });
})();
