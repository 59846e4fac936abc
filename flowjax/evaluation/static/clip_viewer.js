// flowjax reenactment viewer: plays each target's clip beside its Action Unit curves.
// Everything it shows is in the page (#clip-data); the videos sit next to it.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("clip-data").textContent);
  const app = document.getElementById("app");
  const COLORS = ["#1c1c1c", "#1f6fb2", "#b3261e", "#d98b00", "#0a7d32", "#7a4fb0", "#888888"];
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  };
  const curves = data.curves;
  const hasCurves = curves.series.length > 0;
  const state = { target: data.targets[0], au: curves.aus[0], clip: "target" };

  const header = el("header", {}, el("h1", {}, data.title),
    el("span", { class: "synthetic" }, "SYNTHETIC: every reenacted frame is computed by a Glow model"));
  const targetSelect = el("select", { id: "target", "aria-label": "target" },
    ...data.targets.map((t) => el("option", { value: t }, t)));
  const clipSelect = el("select", { id: "clip", "aria-label": "clip" },
    el("option", { value: "target" }, "this target's clip"),
    ...(data.videos["side by side"] ? [el("option", { value: "side" }, "actor | every target")] : []));
  const auSelect = el("select", { id: "au", "aria-label": "action unit" },
    ...curves.aus.map((a) => el("option", { value: a }, a)));
  const controls = el("div", { class: "controls" },
    el("label", {}, "target ", targetSelect), el("label", {}, "clip ", clipSelect),
    ...(hasCurves ? [el("label", {}, "AU ", auSelect)] : []));
  const video = el("video", { id: "video", controls: "", loop: "", muted: "", width: "384" });
  const frameLabel = el("div", { id: "frame" }, "frame 0");
  const canvas = el("canvas", { id: "chart", width: "640", height: "260" });
  const legend = el("div", { id: "legend" });
  const body = el("div", { class: "pair" }, el("div", {}, video, frameLabel),
    hasCurves ? el("div", {}, canvas, legend)
              : el("p", {}, "No scores for this run (your own clip): the videos alone."));
  app.replaceChildren(header, el("main", {}, controls, body));

  const frameAt = () => {
    return Math.max(0, Math.min(data.frames - 1, Math.floor(video.currentTime * data.fps + 1e-6)));
  };

  function draw() {
    const frame = frameAt();
    frameLabel.textContent = `frame ${frame}` + (curves.segments[frame] ? ` (${curves.segments[frame]})` : "");
    if (!hasCurves) return;
    const series = curves.targets[state.target][state.au];
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 28;
    const n = data.frames;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#cccccc"; ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
    const x = (f) => pad + (f / Math.max(1, n - 1)) * (w - pad - 8);
    const y = (v) => h - pad - (v / 5) * (h - pad - 8);  // AU intensities: 0..5
    ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
    for (const v of [0, 1, 2, 3, 4, 5]) ctx.fillText(String(v), 6, y(v) + 4);
    legend.replaceChildren();
    curves.series.forEach((name, i) => {
      const values = series[name];
      ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.lineWidth = 1.5; ctx.beginPath();
      let started = false;
      values.forEach((v, f) => {
        if (v === null) { started = false; return; }
        if (started) ctx.lineTo(x(f), y(v)); else { ctx.moveTo(x(f), y(v)); started = true; }
      });
      ctx.stroke();
      const now = values[frame];
      legend.append(el("div", { style: `color:${COLORS[i % COLORS.length]}` },
        `${name}: ${now === null || now === undefined ? "n/a" : now.toFixed(2)}`));
    });
    ctx.strokeStyle = "#b3261e"; ctx.lineWidth = 1; ctx.beginPath();
    ctx.moveTo(x(frame), 4); ctx.lineTo(x(frame), h - pad); ctx.stroke();
  }

  function load() {
    const src = state.clip === "side" ? data.videos["side by side"] : data.videos[state.target];
    const time = video.currentTime || 0;
    video.src = src;
    video.currentTime = time;
    draw();
  }

  targetSelect.addEventListener("change", () => { state.target = targetSelect.value; load(); });
  clipSelect.addEventListener("change", () => { state.clip = clipSelect.value; load(); });
  auSelect.addEventListener("change", () => { state.au = auSelect.value; draw(); });
  video.addEventListener("timeupdate", draw);
  video.addEventListener("seeked", draw);
  canvas.addEventListener("click", (event) => {
    const rect = canvas.getBoundingClientRect();
    const n = data.frames;
    const f = Math.round(((event.clientX - rect.left) * (canvas.width / rect.width) - 28)
      / (canvas.width - 36) * Math.max(1, n - 1));
    video.currentTime = Math.max(0, Math.min(n - 1, f)) / data.fps;
    draw();
  });
  const tick = () => { if (!video.paused) draw(); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  window.flowjaxClipViewer = { frameAt, state, draw };
  load();
})();
