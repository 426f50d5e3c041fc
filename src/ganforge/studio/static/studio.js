// ganforge studio: the runs list, one run's curves / samples / checkpoints / events.
// Plain JS and uPlot; everything comes from the local server's /api/* JSON.
"use strict";

const S = {
  token: new URLSearchParams(location.hash.slice(1)).get("token") || "",
  view: "runs",
  runs: [],
  compare: new Set(),
  open: null,          // id of the run in the Run tab
  detail: null,        // its /api/run answer
  m: null,             // its metrics: {rows, step: [], series: {key: []}}
  charts: {},          // group name -> {plot, keys, log}
  polling: false,
};
const COLORS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab",
                "#c0ca33", "#d81b60"];
const $ = (sel) => document.querySelector(sel);

async function api(path, opts) {
  const r = await fetch(path, opts);
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (!r.ok) throw new Error((j && j.error) || `${r.status} ${r.statusText}`);
  return j;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e[k] = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

// target.push(...items) without the argument-count limit of a spread (long runs have 100k+ rows)
function append(target, items) {
  for (let i = 0; i < items.length; i++) target.push(items[i]);
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toPrecision(4);
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

function show(view) {
  S.view = view;
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${view}`));
  if (view === "run") resizeCharts();
  window.dispatchEvent(new CustomEvent("studio:view", { detail: view }));
}

// ---- runs list -------------------------------------------------------------------------------
const runRows = new Map();

function runRow(r) {
  let tr = runRows.get(r.id);
  if (!tr) {
    const box = el("input", { type: "checkbox", title: "compare" });
    box.onchange = () => { box.checked ? S.compare.add(r.id) : S.compare.delete(r.id); };
    const link = el("a", { class: "run-link" }, r.id);
    link.onclick = () => openRun(r.id);
    tr = el("tr", { "data-id": r.id }, el("td", {}, box), el("td", {}, link), el("td", {}),
            el("td", {}, el("span", { class: "badge" })), el("td", { class: "num" }), el("td", { class: "num" }),
            el("td", {}), el("td", {}, el("img", { alt: "" })), el("td", {}));
    runRows.set(r.id, tr);
  }
  const c = tr.children;
  c[2].textContent = r.preset;
  const badge = c[3].firstChild;
  badge.textContent = r.status;
  badge.className = `badge ${r.status}`;
  badge.title = r.detail;
  c[4].textContent = r.total_steps ? `${fmt(r.step)} / ${fmt(r.total_steps)}` : fmt(r.step);
  c[5].textContent = fmt(r.images_seen);
  const keys = ["loss/D", "loss/G", "W_estimate", "img/s"].filter((k) => k in r.last);
  c[6].textContent = keys.map((k) => `${k} ${fmt(r.last[k])}`).join("  ");
  const img = c[7].firstChild;
  if (r.newest_sample && img.dataset.src !== r.newest_sample) {
    img.dataset.src = r.newest_sample;
    img.src = r.newest_sample;
  }
  img.hidden = !r.newest_sample;
  c[8].textContent = ago(r.updated);
  return tr;
}

async function refreshRuns() {
  const j = await api("/api/runs");
  S.runs = j.runs;
  S.launches = j.launches;
  S.presets = j.presets;
  $("#root").textContent = j.root;
  const body = $("#runs-table tbody");
  const ids = new Set(j.runs.map((r) => r.id));
  for (const [id, tr] of runRows) if (!ids.has(id)) { tr.remove(); runRows.delete(id); }
  j.runs.forEach((r, i) => {
    const tr = runRow(r);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  $("#runs-empty").hidden = j.runs.length > 0;
  window.dispatchEvent(new CustomEvent("studio:runs", { detail: j }));
}

// ---- one run ---------------------------------------------------------------------------------
function groupOf(k) {
  if (k.startsWith("loss/")) return "losses";
  if (k.startsWith("grad/")) return "gradient norms";
  if (k.startsWith("W_estimate")) return "W estimate";
  if (k.startsWith("eval/")) return k;
  if (k === "img/s") return "img/s";
  if (/^D[^/]*\(/.test(k)) return "D(x), D(G(z))";
  if (/^D[^(]*\//.test(k)) return "D logits";
  return k;
}

const ORDER = ["losses", "D(x), D(G(z))", "D logits", "W estimate", "gradient norms", "img/s"];
function rank(k) {
  const i = ORDER.indexOf(groupOf(k));
  return i >= 0 ? i : k.startsWith("eval/") ? ORDER.length : ORDER.length + 1;
}

// TensorBoard-style smoothing: an exponential moving average, debiased at the start; gaps stay gaps.
function smooth(ys, w) {
  if (!(w > 0)) return ys;
  const out = new Array(ys.length);
  let acc = 0, n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) { out[i] = null; continue; }
    acc = w * acc + (1 - w) * y;
    n++;
    out[i] = acc / (1 - Math.pow(w, n));
  }
  return out;
}

function plotValues(ys, w, log) {
  const s = smooth(ys, w);
  return log ? s.map((y) => (y !== null && y > 0 ? y : null)) : s;
}

function chartOpts(title, labels, log, width) {
  return {
    title, width, height: 230,
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    series: [{ label: "step" }].concat(labels.map((k, i) => ({ label: k, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))),
    axes: [{}, { size: 64 }],
    legend: { live: true },
  };
}

function drawCharts() {
  const m = S.m;
  const box = $("#charts");
  if (!m) return;
  const w = parseFloat($("#smooth").value);
  const log = $("#logscale").checked;
  const groups = {};
  const keys = Object.keys(m.series).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  for (const k of keys) (groups[groupOf(k)] = groups[groupOf(k)] || []).push(k);
  for (const [g, keys] of Object.entries(groups)) {
    const data = [m.step].concat(keys.map((k) => plotValues(m.series[k], w, log)));
    let c = S.charts[g];
    if (c && (c.keys.join() !== keys.join() || c.log !== log)) { c.plot.destroy(); c.div.remove(); c = null; }
    if (!c) {
      const div = el("div", { class: "chart", "data-group": g });
      box.append(div);
      const width = Math.max(300, div.clientWidth || 440);
      c = S.charts[g] = { plot: new uPlot(chartOpts(g, keys, log, width), data, div), keys, log, div };
    } else {
      c.plot.setData(data);
    }
    c.div.dataset.points = String(m.step.length);
    c.div.dataset.lastStep = String(m.step.length ? m.step[m.step.length - 1] : "");
  }
  for (const g of Object.keys(S.charts)) if (!(g in groups)) { S.charts[g].plot.destroy(); S.charts[g].div.remove(); delete S.charts[g]; }
}

function resizeCharts() {
  for (const c of Object.values(S.charts)) {
    const w = c.div.clientWidth;
    if (w > 0 && Math.abs(w - c.plot.width) > 4) c.plot.setSize({ width: w, height: 230 });
  }
}

function clearCharts() {
  for (const c of Object.values(S.charts)) { c.plot.destroy(); c.div.remove(); }
  S.charts = {};
}

function pollMetrics() {
  // one request at a time: the timer and openRun() must not both append the same rows
  if (!S.metricsBusy) S.metricsBusy = fetchMetrics().finally(() => { S.metricsBusy = null; });
  return S.metricsBusy;
}

async function fetchMetrics() {
  if (!S.open) return;
  const id = S.open;
  const since = S.m ? S.m.rows : 0;
  const j = await api(`/api/metrics?id=${encodeURIComponent(id)}&since=${since}`);
  if (id !== S.open) return;
  if (!S.m || j.reset) S.m = { rows: 0, step: [], series: {} };
  const m = S.m;
  if (j.start !== m.rows) return;  // an answer to an older question
  const added = j.step.length;
  if (!added && m.rows === j.rows) return;
  const before = m.step.length;
  append(m.step, j.step);
  for (const [k, vals] of Object.entries(j.series)) {
    if (!m.series[k]) m.series[k] = new Array(before).fill(null);
    append(m.series[k], vals);
  }
  for (const k of Object.keys(m.series)) while (m.series[k].length < m.step.length) m.series[k].push(null);
  m.rows = j.rows;
  drawCharts();
}

function renderTimeline(d) {
  const slider = $("#timeline");
  const n = d.samples.length;
  const atEnd = +slider.value >= +slider.max;
  slider.max = String(Math.max(0, n - 1));
  if (atEnd || +slider.value > n - 1) slider.value = String(Math.max(0, n - 1));
  showTimeline();
}

function showTimeline() {
  const d = S.detail;
  const img = $("#timeline-img");
  if (!d || !d.samples.length) { img.removeAttribute("src"); $("#timeline-label").textContent = "no samples yet"; return; }
  const s = d.samples[+$("#timeline").value] || d.samples[d.samples.length - 1];
  if (img.getAttribute("src") !== s.url) img.src = s.url;
  $("#timeline-label").textContent = `step ${fmt(s.step)} (${+$("#timeline").value + 1} of ${d.samples.length})`;
}

function renderDetail(d) {
  const s = d.summary;
  $("#run-title").textContent = s.id;
  $("#run-status").textContent = s.status;
  $("#run-status").className = `badge ${s.status}`;
  $("#run-detail").textContent = `${s.preset} · step ${fmt(s.step)}${s.total_steps ? " / " + fmt(s.total_steps) : ""} · ${s.detail}`;
  $("#run-stop").hidden = !s.started_here;
  $("#run-resume").hidden = s.started_here || !s.has_checkpoint || !(s.status === "interrupted" || s.status === "stopped");
  renderTimeline(d);
  const tb = $("#ckpts tbody");
  tb.replaceChildren(...d.checkpoints.map((c) => el("tr", {}, el("td", {}, fmt(c.step)), el("td", {}, c.name),
    el("td", {}, c.best ? el("span", { class: "badge finished" }, "best") : ""))));
  if (!d.checkpoints.length) tb.append(el("tr", {}, el("td", { colspan: 3, class: "hint" }, "none yet")));
  $("#events").replaceChildren(...d.events.map((e) => el("li", { class: `kind-${e.kind.replace(/\s/g, "-")}` },
    `step ${fmt(e.step)} · ${e.kind}: ${e.text}`)));
  if (!d.events.length) $("#events").append(el("li", { class: "hint" }, "none"));
  if ($("#config").textContent !== d.config_text) $("#config").textContent = d.config_text;
}

async function refreshDetail() {
  if (!S.open) return;
  const id = S.open;
  const d = await api(`/api/run?id=${encodeURIComponent(id)}`);
  if (id !== S.open) return;
  S.detail = d;
  renderDetail(d);
}

async function openRun(id) {
  S.open = id;
  S.m = null;
  S.detail = null;
  clearCharts();
  $("#timeline").value = "1000000";
  show("run");
  await Promise.all([refreshDetail(), pollMetrics()]);
}

async function trainAction(action, body) {
  const msg = $("#run-msg");
  try {
    const j = await api(`/api/train/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Studio-Token": S.token || $("#tr-token").value },
      body: JSON.stringify(body),
    });
    msg.className = "msg";
    msg.textContent = `${action}: ${j.what} (pid ${j.pid})`;
    return j;
  } catch (e) {
    msg.className = "msg bad";
    msg.textContent = `${action} failed: ${e.message}`;
    return null;
  }
}

// ---- polling ---------------------------------------------------------------------------------
function every(ms, fn) {
  let busy = false;
  setInterval(async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (e) { console.warn("studio:", e.message); } finally { busy = false; }
  }, ms);
}

window.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("nav button").forEach((b) => { b.onclick = () => show(b.dataset.view); });
  $("#smooth").oninput = () => { $("#smooth-val").textContent = $("#smooth").value; drawCharts(); };
  $("#logscale").onchange = drawCharts;
  $("#timeline").oninput = showTimeline;
  $("#run-stop").onclick = () => trainAction("stop", { id: S.open });
  $("#run-resume").onclick = () => trainAction("resume", { id: S.open, overrides: [] });
  $("#tr-token").value = S.token;
  window.addEventListener("resize", resizeCharts);
  refreshRuns().catch((e) => console.warn("studio:", e.message));
  every(2000, refreshRuns);
  every(500, () => (S.view === "run" ? pollMetrics() : null));
  every(3000, () => (S.view === "run" ? refreshDetail() : null));
});

window.studio = { S, api, el, fmt, append, show, openRun, smooth, plotValues, chartOpts, COLORS, every, trainAction };
