// ganforge studio: the Compare, Playground and Train tabs (uses window.studio from studio.js).
"use strict";

(() => {
  const { S, api, el, fmt, append, plotValues, chartOpts, every } = window.studio;
  const $ = (sel) => document.querySelector(sel);

  // ---- compare -------------------------------------------------------------------------------
  const C = { ids: [], m: {}, detail: {}, plot: null, key: "" };

  function loadCompare() {  // one refresh at a time (the timer and the tab switch both call it)
    if (!C.busy) C.busy = refreshCompare().finally(() => { C.busy = null; });
    return C.busy;
  }

  async function refreshCompare() {
    C.ids = [...S.compare];
    $("#cmp-names").textContent = C.ids.length ? C.ids.join(", ") : "none (tick two or more on the Runs tab)";
    for (const id of Object.keys(C.m)) if (!C.ids.includes(id)) { delete C.m[id]; delete C.detail[id]; }
    await Promise.all(C.ids.map(async (id) => {
      const m = C.m[id] || { rows: 0, step: [], series: {} };
      const j = await api(`/api/metrics?id=${encodeURIComponent(id)}&since=${m.rows}`);
      if (j.reset) { m.rows = 0; m.step = []; m.series = {}; }
      if (j.start !== m.rows) return;
      const before = m.step.length;
      append(m.step, j.step);
      for (const [k, v] of Object.entries(j.series)) {
        if (!m.series[k]) m.series[k] = new Array(before).fill(null);
        append(m.series[k], v);
      }
      for (const k of Object.keys(m.series)) while (m.series[k].length < m.step.length) m.series[k].push(null);
      m.rows = j.rows;
      C.m[id] = m;
      C.detail[id] = await api(`/api/run?id=${encodeURIComponent(id)}`);
    }));
    const keys = new Set();
    for (const m of Object.values(C.m)) Object.keys(m.series).forEach((k) => keys.add(k));
    const sel = $("#cmp-metric");
    const cur = sel.value || (keys.has("loss/G") ? "loss/G" : [...keys][0] || "");
    const sorted = [...keys].sort();
    if ([...sel.options].map((o) => o.value).join() !== sorted.join()) {
      sel.replaceChildren(...sorted.map((k) => el("option", { value: k }, k)));
    }
    sel.value = cur;
    drawCompare();
    drawGrids();
  }

  function drawCompare() {
    const key = $("#cmp-metric").value;
    const w = parseFloat($("#cmp-smooth").value);
    const log = $("#cmp-log").checked;
    const ids = C.ids.filter((id) => C.m[id]);
    const steps = [...new Set(ids.flatMap((id) => C.m[id].step))].sort((a, b) => a - b);
    const cols = ids.map((id) => {
      const m = C.m[id];
      const vals = plotValues(m.series[key] || new Array(m.step.length).fill(null), w, log);
      const at = new Map(m.step.map((s, i) => [s, vals[i]]));
      return steps.map((s) => (at.has(s) ? at.get(s) : null));
    });
    const box = $("#cmp-chart");
    const sig = `${key}|${ids.join()}|${log}`;
    if (C.plot && C.sig !== sig) { C.plot.destroy(); C.plot = null; }
    if (!ids.length) { box.dataset.series = "0"; return; }
    if (!C.plot) {
      C.plot = new uPlot(chartOpts(key, ids, log, Math.max(400, box.clientWidth || 800)), [steps, ...cols], box);
      C.sig = sig;
    } else {
      C.plot.setData([steps, ...cols]);
    }
    box.dataset.series = String(ids.length);
  }

  function drawGrids() {
    const all = [...new Set(C.ids.flatMap((id) => (C.detail[id] ? C.detail[id].samples.map((s) => s.step) : [])))].sort((a, b) => a - b);
    const slider = $("#cmp-step");
    const atEnd = +slider.value >= +slider.max;
    slider.max = String(Math.max(0, all.length - 1));
    if (atEnd) slider.value = slider.max;
    const step = all[+slider.value];
    $("#cmp-step-label").textContent = step === undefined ? "–" : fmt(step);
    const picks = [];
    const figs = C.ids.map((id) => {
      const d = C.detail[id];
      const samples = d ? d.samples : [];
      let pick = null;
      for (const s of samples) if (step !== undefined && s.step <= step) pick = s;
      pick = pick || samples[0];
      picks.push(pick ? pick.url : "");
      return el("figure", {}, pick ? el("img", { src: pick.url, alt: id }) : el("div", { class: "hint" }, "no samples"),
                el("figcaption", {}, `${id}${pick ? " · step " + fmt(pick.step) : ""}`));
    });
    const sig = `${C.ids.join()}|${picks.join()}`;
    if (C.gridSig !== sig) { C.gridSig = sig; $("#cmp-grids").replaceChildren(...figs); }
  }

  // ---- playground ----------------------------------------------------------------------------
  const P = { id: "", panel: null };

  function pgError(msg) { $("#pg-error").textContent = msg || ""; }

  function fillRunSelect(runs) {
    const sel = $("#pg-run");
    const ids = runs.filter((r) => r.has_checkpoint).map((r) => r.id);
    if ([...sel.options].map((o) => o.value).join() === ["", ...ids].join()) return;
    const cur = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "choose a run with a checkpoint"), ...ids.map((id) => el("option", { value: id }, id)));
    sel.value = ids.includes(cur) ? cur : "";
  }

  async function loadPanel() {
    P.id = $("#pg-run").value;
    P.panel = null;
    pgError("");
    $("#pg-sample-panel").hidden = true;
    $("#pg-translate-panel").hidden = true;
    $("#pg-info").textContent = "";
    if (!P.id) return;
    $("#pg-info").textContent = "loading the model…";
    try {
      P.panel = await api(`/api/playground?id=${encodeURIComponent(P.id)}`);
    } catch (e) { $("#pg-info").textContent = ""; pgError(e.message); return; }
    const p = P.panel, c = p.controls;
    $("#pg-info").textContent = `checkpoint step ${fmt(p.step)}${p.ema ? " (EMA weights)" : ""}`;
    if (p.kind === "sample") {
      $("#pg-sample-panel").hidden = false;
      $("#pg-class-wrap").hidden = !c.classes;
      $("#pg-class").replaceChildren(el("option", { value: "" }, "random"),
        ...Array.from({ length: c.classes || 0 }, (_, k) => el("option", { value: String(k) }, String(k))));
      $("#pg-trunc-wrap").hidden = !c.truncation;
      $("#pg-n").value = String(c.default_n || 16);
      $("#pg-interp-panel").hidden = !c.interpolate;
    } else {
      $("#pg-translate-panel").hidden = false;
      $("#pg-translate-title").textContent = c.upscale ? "Upscale an image" : "Translate an image";
      $("#pg-direction").replaceChildren(...c.directions.map((d) => el("option", { value: d }, d === "ab" ? "A → B" : "B → A")));
    }
  }

  async function pgPost(path, body, img, opts) {
    pgError("");
    const btns = document.querySelectorAll("#view-playground button");
    btns.forEach((b) => { b.disabled = true; });
    try {
      const j = await api(path, opts || { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      $(img).src = j.image;
      $(img).dataset.step = String(j.step);
    } catch (e) {
      $(img).removeAttribute("src");
      pgError(e.message);
    } finally { btns.forEach((b) => { b.disabled = false; }); }
  }

  function sample() {
    return pgPost("/api/playground/sample", { id: P.id, seed: $("#pg-seed").value, label: $("#pg-class").value,
      truncation: $("#pg-trunc").value, n: $("#pg-n").value }, "#pg-sample");
  }

  function interpolate() {
    return pgPost("/api/playground/interpolate", { id: P.id, seed_a: $("#pg-seed-a").value, seed_b: $("#pg-seed-b").value,
      steps: $("#pg-steps").value, label: $("#pg-class").value, truncation: $("#pg-trunc").value }, "#pg-interp");
  }

  function translate() {
    const f = $("#pg-file").files[0];
    if (!f) { pgError("choose an image file first"); return null; }
    const q = `id=${encodeURIComponent(P.id)}&direction=${$("#pg-direction").value}`;
    return pgPost(`/api/playground/translate?${q}`, null, "#pg-translate",
      { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: f });
  }

  // ---- train ---------------------------------------------------------------------------------
  function fillPresets(presets) {
    const sel = $("#tr-preset");
    if (sel.options.length === presets.length) return;
    sel.replaceChildren(...presets.map((p) => el("option", { value: p }, p)));
    sel.value = presets.includes("dcgan") ? "dcgan" : presets[0];
  }

  function renderLaunches(launches) {
    $("#launches").replaceChildren(...(launches || []).slice().reverse().map((l) => el("li", {},
      `${l.what} · pid ${l.pid} · ${l.running ? "running" : "exited " + l.exit_code}${l.run ? " · " + l.run : ""}`,
      el("pre", {}, l.log_tail || ""))));
  }

  async function start() {
    S.token = $("#tr-token").value.trim();
    const overrides = $("#tr-overrides").value.split("\n").map((s) => s.trim()).filter(Boolean);
    const msg = $("#tr-msg");
    try {
      const j = await api("/api/train/start", { method: "POST",
        headers: { "Content-Type": "application/json", "X-Studio-Token": S.token },
        body: JSON.stringify({ preset: $("#tr-preset").value, overrides }) });
      msg.className = "msg";
      msg.textContent = `started ${j.what} (pid ${j.pid}); it appears on the Runs tab in a moment`;
    } catch (e) { msg.className = "msg bad"; msg.textContent = e.message; }
  }

  window.addEventListener("studio:runs", (ev) => {
    fillRunSelect(ev.detail.runs);
    fillPresets(ev.detail.presets);
    renderLaunches(ev.detail.launches);
  });
  window.addEventListener("studio:view", (ev) => { if (ev.detail === "compare") loadCompare().catch((e) => console.warn(e.message)); });
  window.addEventListener("DOMContentLoaded", () => {
    $("#cmp-metric").onchange = drawCompare;
    $("#cmp-smooth").oninput = drawCompare;
    $("#cmp-log").onchange = drawCompare;
    $("#cmp-step").oninput = drawGrids;
    $("#pg-run").onchange = loadPanel;
    $("#pg-sample-btn").onclick = sample;
    $("#pg-interp-btn").onclick = interpolate;
    $("#pg-translate-btn").onclick = translate;
    $("#tr-start").onclick = start;
    every(2000, () => (S.view === "compare" ? loadCompare() : null));
  });
  window.studio.panels = { loadCompare, loadPanel, sample, interpolate, translate, C, P };
})();
