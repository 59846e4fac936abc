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
    const img = el("img", { id: id, class: "face", alt: id });
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
  function slider(id, value, min, max) {
    const input = el("input", { id: id, type: "range", min: String(min), max: String(max),
                                step: "0.05", value: String(value) });
    const out = el("span", { id: id + "-value", class: "value", text: Number(value).toFixed(2) });
    input.addEventListener("input", () => { out.textContent = Number(input.value).toFixed(2); });
    return [input, out];
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
      el("span", { class: "synthetic", text: "Every edited image is SYNTHETIC (computed by a Glow model) and labelled so in its PNG metadata" })]));
    app.appendChild(el("div", { id: "message", role: "alert" }));

    // Upload.
    const file = el("input", { id: "photo", type: "file", accept: "image/png,image/jpeg" });
    const align = el("input", { id: "align", type: "checkbox" });
    if (!state.align) align.disabled = true;
    const send = el("button", { id: "upload-button", type: "button", text: "upload" });
    send.addEventListener("click", async () => {
      if (!file.files.length) { say("choose a photo first", "error"); return; }
      const form = new FormData();
      form.append("photo", file.files[0]);
      form.append("align", align.checked ? "true" : "false");
      say("encoding " + file.files[0].name + " ...", "info");
      const response = await fetch("api/upload", { method: "POST", body: form });
      if (!response.ok) { say(await explain(response), "error"); return; }
      const answer = await response.json();
      state.faces = answer.faces;
      refillFaces();
      for (const id of ["face", "target", "mix-a"]) document.getElementById(id).value = answer.name;
      say("uploaded as " + answer.name, "info");
      updateAll();
    });
    const uploadSection = el("section", {}, [el("h2", { text: "Your photo" }),
      el("div", { class: "row" }, [file]),
      el("div", { class: "row" }, [el("label", {}, [align, " align (detect the face)" +
        (state.align ? "" : ": no detector on this server")])]),
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
      attrRows.push(el("div", { class: "row" }, [el("label", { text: a.name }), input, out]));
    });
    function attributesBody() {
      const alphas = {};
      for (const input of attrInputs) alphas[input.dataset.name] = Number(input.value);
      return { kind: "attributes", face: faceSelect.value, alphas: alphas };
    }
    const attrSection = el("section", {}, [el("h2", { text: "Attributes" }),
      el("div", { class: "row" }, [el("label", { text: "face" }), faceSelect]), ...attrRows,
      panel("attributes-result")]);

    // Transfer.
    const expression = select("expression", state.expressions);
    const target = select("target", faces);
    const [alpha, alphaOut] = slider("transfer-alpha", 1, 0, 1.5);
    function transferBody() {
      return { kind: "transfer", expression: expression.value, target: target.value, alpha: Number(alpha.value) };
    }
    const transferSection = el("section", {}, [el("h2", { text: "Expression transfer" }),
      el("div", { class: "row" }, [el("label", { text: "expression" }), expression]),
      el("div", { class: "row" }, [el("label", { text: "onto" }), target]),
      el("div", { class: "row" }, [el("label", { text: "alpha" }), alpha, alphaOut]),
      panel("transfer-result")]);

    // Mix.
    const mixA = select("mix-a", faces), mixB = select("mix-b", faces);
    if (faces.length > 1) mixB.value = faces[1];
    const [weight, weightOut] = slider("mix-weight", 0.5, 0, 1);
    function mixBody() { return { kind: "mix", face: mixA.value, other: mixB.value, weight: Number(weight.value) }; }
    const mixSection = el("section", {}, [el("h2", { text: "Mix two faces" }),
      el("div", { class: "row" }, [el("label", { text: "face" }), mixA]),
      el("div", { class: "row" }, [el("label", { text: "with" }), mixB]),
      el("div", { class: "row" }, [el("label", { text: "weight" }), weight, weightOut]),
      panel("mix-result")]);

    const bodies = { "attributes-result": attributesBody, "transfer-result": transferBody, "mix-result": mixBody };
    if (state.saving) {
      for (const [section, id] of [[attrSection, "attributes-result"], [transferSection, "transfer-result"], [mixSection, "mix-result"]]) {
        const button = el("button", { type: "button", class: "save", text: "save to the run directory" });
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
    faceSelect.addEventListener("change", update.attributes);
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
