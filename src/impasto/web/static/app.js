// impasto serve: the page. Plain JavaScript over the same HTTP API that scripts use (see /docs).
// Controls are built from GET /api/options, so a new method, preset or option needs no change here.
"use strict";

const $ = (id) => document.getElementById(id);
const MAIN = ["method", "preset", "size", "steps", "strength", "preserve_color"];
const state = {
  catalog: null, content: null, styles: [], files: {}, job: null, source: null, timer: null, planTimer: null, planSeq: 0,
  shownPreview: -1, t0: 0,
};
// Files some methods need besides the pictures (a trained model), by option name: what the picker accepts.
const FILE_ACCEPT = { model: ".pt,.pth" };
const FILE_LABEL = { model: "Trained model (.pt, made by impasto train)" };
window.impastoTimings = {}; // read by the benchmark: milliseconds from Start to the first preview on screen

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch (err) {
    throw new Error("The server cannot be reached: is impasto serve still running?");
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.detail) || `The server answered ${response.status}.`);
  return body;
}

// -- controls built from the server's catalogue --------------------------------------------------------------
function fieldLabel(f) {
  const names = { preserve_color: "Keep the photo's colours", size: "Size (px, longest side)", steps: "Steps",
    strength: "Style strength", method: "Method", preset: "Preset" };
  return names[f.name] || f.flag.replace(/^--/, "").replace(/-/g, " ");
}

function makeControl(f, catalog) {
  const id = `opt-${f.name}`;
  let input;
  if (f.name === "method") {
    input = el("select", { id, name: f.name });
    for (const m of catalog.methods) input.append(el("option", { value: m.name }, m.name));
    input.value = catalog.defaults.method;
  } else if (f.name === "preset") {
    input = el("select", { id, name: f.name });
    for (const p of Object.keys(catalog.presets)) input.append(el("option", { value: p }, p));
  } else if (f.name === "strength") {
    input = el("input", { id, name: f.name, type: "range", min: 0, max: 1, step: 0.05, value: f.default });
  } else if (f.kind === "choice" || f.name === "preserve_color") {
    input = el("select", { id, name: f.name });
    input.append(el("option", { value: "" }, f.name === "preserve_color" ? "no" : `default (${f.default ?? "none"})`));
    for (const c of f.choices || catalog.choices[f.name] || []) input.append(el("option", { value: c }, c));
  } else if (f.kind === "int" || f.kind === "float") {
    input = el("input", { id, name: f.name, type: "number", step: f.kind === "int" ? 1 : "any",
      placeholder: f.default ?? "", inputmode: f.kind === "int" ? "numeric" : "decimal" });
    if (f.name === "size") input.value = 512;
  } else {
    const d = Array.isArray(f.default) ? f.default.join(",") : (f.default ?? "");
    input = el("input", { id, name: f.name, type: "text", placeholder: d });
  }
  input.dataset.option = f.name;
  const wrap = el("div", { class: "field", id: `field-${f.name}` }, el("label", { for: id }, fieldLabel(f)), input);
  if (f.name === "strength") {
    const out = el("output", { for: id }, String(f.default));
    input.addEventListener("input", () => { out.textContent = input.value; });
    wrap.append(out);
  }
  if (f.help && !MAIN.includes(f.name)) wrap.append(el("span", { class: "help" }, f.help));
  if (f.help) input.title = f.help;
  return wrap;
}

function buildControls(catalog) {
  const byName = Object.fromEntries(catalog.fields.map((f) => [f.name, f]));
  const main = $("main-options");
  for (const name of MAIN) if (byName[name]) main.append(makeControl(byName[name], catalog));
  const groups = {};
  for (const f of catalog.fields) {
    if (MAIN.includes(f.name) || f.name === "style_blend") continue;
    (groups[f.group || "other"] ||= []).push(f);
  }
  const more = $("more-options");
  for (const [title, fields] of Object.entries(groups)) {
    const set = el("fieldset", {}, el("legend", {}, title));
    const grid = el("div", { class: "fields" });
    for (const f of fields) grid.append(makeControl(f, catalog));
    set.append(grid);
    more.append(set);
  }
  $("options").addEventListener("submit", (e) => e.preventDefault()); // Enter in a field does not reload the page
  $("options").addEventListener("input", schedulePlan);
  $("options").addEventListener("change", () => { updateMethod(); schedulePlan(); });
  updateMethod();
}

function methodInfo() {
  const method = $("opt-method");
  if (!method || !state.catalog) return null;
  return state.catalog.methods.find((m) => m.name === method.value) || null;
}

// Whether everything the chosen method needs is there: the photo, its paintings (if it takes any), its files.
function ready() {
  const info = methodInfo();
  const styles = info && info.styles === "none" ? true : state.styles.length > 0;
  const files = (info ? info.files : []).every((name) => state.files[name]);
  return Boolean(state.content && styles && files);
}

function buildFileInputs(catalog) {
  const names = new Set(catalog.methods.flatMap((m) => m.files));
  const drops = document.querySelector("#pictures .drops");
  for (const name of names) {
    const input = el("input", { type: "file", id: `file-${name}`, name, accept: FILE_ACCEPT[name] || "" });
    const chosen = el("span", { class: "hint", id: `file-${name}-chosen` }, "");
    input.addEventListener("change", (e) => {
      state.files[name] = e.target.files[0] || null;
      chosen.textContent = state.files[name] ? state.files[name].name : "";
      renderPictures();
    });
    drops.append(el("div", { class: "drop", id: `file-${name}-drop`, hidden: true },
      el("label", { for: `file-${name}` }, el("strong", {}, FILE_LABEL[name] || name)), input, chosen));
  }
}

function updateMethod() {
  const info = methodInfo();
  if (!info) return;
  const steps = $("field-steps");
  if (steps) steps.hidden = info.iterative === false; // one-pass methods have no steps
  const noStyles = info.styles === "none"; // a trained model carries its style
  $("style-drop").hidden = noStyles;
  document.querySelector(".gallery-wrap").hidden = noStyles;
  for (const drop of document.querySelectorAll("[id^='file-'][id$='-drop']")) {
    drop.hidden = !info.files.includes(drop.id.slice(5, -5));
  }
  $("start").disabled = !ready() || isRunning();
}

function optionFields() {
  const out = [];
  for (const input of document.querySelectorAll("[data-option]")) {
    if (input.closest("[hidden]")) continue;
    const value = String(input.value).trim();
    if (value === "") continue;
    if (input.dataset.option === "strength" && Number(value) === 1) continue;
    if (input.dataset.option === "preset" && value === "default") continue;
    out.push([input.dataset.option, value]);
  }
  const info = methodInfo();
  if (state.styles.length > 1 && !(info && info.styles === "none")) {
    out.push(["style_blend", state.styles.map((s) => s.weight).join(",")]);
  }
  return out;
}

// -- pictures --------------------------------------------------------------------------------------------------
function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

async function picture(file) {
  const url = URL.createObjectURL(file);
  return { file, url, size: await imageSize(url), weight: 1 };
}

async function setContent(file) {
  if (!file) return;
  state.content = await picture(file);
  if (!state.content.size) showError(`${file.name} cannot be shown by this browser; the server will check it.`);
  renderPictures();
}

async function addStyles(files) {
  const max = state.catalog ? state.catalog.limits.max_styles : 8;
  for (const file of files) {
    if (state.styles.length >= max) { showError(`At most ${max} paintings.`); break; }
    state.styles.push(await picture(file));
  }
  renderPictures();
}

function renderPictures() {
  const ct = $("content-thumbs");
  ct.replaceChildren();
  if (state.content) {
    ct.append(el("div", { class: "thumb" }, el("img", { src: state.content.url, alt: `Photo: ${state.content.file.name}` })));
    const view = $("content-view");
    view.src = state.content.url;
    view.hidden = false;
  }
  const st = $("style-thumbs");
  st.replaceChildren();
  state.styles.forEach((s, i) => {
    const remove = el("button", { type: "button", "aria-label": `Remove painting ${i + 1} (${s.file.name})`,
      onclick: () => { state.styles.splice(i, 1); renderPictures(); } }, "×");
    st.append(el("div", { class: "thumb" }, el("img", { src: s.url, alt: `Painting ${i + 1}: ${s.file.name}` }), remove));
  });
  renderBlend();
  $("start").disabled = !ready() || isRunning();
  schedulePlan();
}

function renderBlend() {
  const box = $("blend");
  box.replaceChildren();
  box.hidden = state.styles.length < 2;
  state.styles.forEach((s, i) => {
    const id = `blend-${i}`;
    const input = el("input", { id, type: "range", min: 0, max: 1, step: 0.05, value: s.weight });
    const out = el("output", { for: id }, String(s.weight));
    input.addEventListener("input", () => { s.weight = Number(input.value); out.textContent = input.value; schedulePlan(); });
    box.append(el("div", { class: "field" }, el("label", { for: id }, `Blend: painting ${i + 1}`), input, out));
  });
}

function setupDrop(zone, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || f.type === "");
    if (files.length) onFiles(files);
  });
}

async function buildGallery(items) {
  const box = $("gallery");
  for (const item of items) {
    const button = el("button", { type: "button", title: item.title, "aria-label": `Use ${item.title}` },
      el("img", { src: item.thumb, alt: item.title }));
    button.addEventListener("click", async () => {
      try {
        const response = await fetch(item.url, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`The example could not be loaded (${response.status}).`);
        const blob = await response.blob();
        await addStyles([new File([blob], `${item.name}.jpg`, { type: blob.type || "image/jpeg" })]);
      } catch (err) { showError(err.message); }
    });
    box.append(button);
  }
}

// -- the estimate ------------------------------------------------------------------------------------------------
function schedulePlan() {
  clearTimeout(state.planTimer);
  state.planTimer = setTimeout(plan, 250);
}

async function plan() {
  const seq = ++state.planSeq; // a newer estimate or a Start makes this one stale
  const takesStyles = methodInfo() && methodInfo().styles !== "none";
  // A picture this browser cannot read has no size: no estimate; the server checks the file on Start.
  const unsized = !state.content || !state.content.size || (takesStyles && state.styles.some((s) => !s.size));
  if (isRunning()) return; // the running job's own time is shown
  if (!ready() || unsized) { $("estimate").textContent = ""; return; }
  const form = new FormData();
  form.append("content_size", state.content.size.join("x"));
  if (takesStyles) for (const s of state.styles) form.append("style_size", s.size.join("x"));
  for (const [k, v] of optionFields()) form.append(k, v);
  try {
    const est = await api("/api/plan", { method: "POST", body: form });
    if (seq !== state.planSeq || isRunning()) return;
    $("estimate").textContent = `Estimate: ${est.text}${est.fits ? "" : " — does not fit in memory"}.`;
    if (!isRunning()) showError(est.fits ? "" : "This run does not fit in memory: choose a smaller size.");
  } catch (err) {
    if (seq !== state.planSeq) return;
    $("estimate").textContent = "";
    if (!isRunning()) showError(err.message);
  }
}

// -- a job -------------------------------------------------------------------------------------------------------
const isRunning = () => state.job && ["queued", "running"].includes(state.job.state);

async function start() {
  if (!ready()) return;
  state.planSeq++; // an estimate still on its way must not overwrite what this job reports
  showError("");
  const info = methodInfo();
  const form = new FormData();
  form.append("content", state.content.file, state.content.file.name);
  if (info.styles !== "none") for (const s of state.styles) form.append("style", s.file, s.file.name);
  for (const name of info.files) form.append(name, state.files[name], state.files[name].name);
  for (const [k, v] of optionFields()) form.append(k, v);
  $("start").disabled = true;
  state.t0 = performance.now();
  window.impastoTimings = { start: state.t0 };
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    follow(job, true);
  } catch (err) {
    showError(err.message);
    $("start").disabled = false;
  }
}

function follow(job, fresh = false) {
  stopFollowing();
  state.job = job;
  state.shownPreview = -1;
  if (!fresh) state.t0 = 0;
  $("preview").hidden = true;
  $("download").hidden = true;
  $("content-view").src = fresh && state.content ? state.content.url : job.links.content;
  $("content-view").hidden = false;
  render(job);
  if (!isRunning()) return;
  if (window.EventSource) {
    state.source = new EventSource(job.links.events);
    state.source.addEventListener("job", (e) => render(JSON.parse(e.data)));
    state.source.onerror = () => { stopFollowing(); poll(); };
  } else {
    poll();
  }
}

function stopFollowing() {
  if (state.source) state.source.close();
  state.source = null;
  clearTimeout(state.timer);
}

async function poll() {
  if (!state.job) return;
  try {
    render(await api(state.job.links.self));
  } catch (err) { /* keep trying: the server may be restarting */ }
  if (isRunning()) state.timer = setTimeout(poll, 1000);
}

// 45 s, 3 min, 1 min 20 s (precise), 2.5 h.
function duration(seconds, precise = false) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s >= 5400) return `${(s / 3600).toFixed(1)} h`;
  if (precise && s < 600 && s % 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.round(s / 60)} min`;
}

// What the estimate line says about a job: the server's estimate until the run has made progress, then the
// time left measured from that progress, and once finished, how long it took from Start.
function timeText(job) {
  const progressed = job.state === "running" && job.eta !== null && job.step > (job.resumed_from || 0);
  if (progressed) return `About ${duration(job.eta)} left (measured from the steps done so far).`;
  if (job.state === "done" && job.finished && job.created) {
    return `Took ${duration(job.finished - job.created, true)} from Start to result.`;
  }
  if (["queued", "running"].includes(job.state) && job.estimate) return `Estimate: ${job.estimate.text}.`;
  return "";
}

function render(job) {
  if (!state.job || job.id !== state.job.id) return;
  state.job = job;
  const words = {
    queued: job.position ? `Queued: ${job.position} job(s) ahead.` : "Queued: starting…",
    running: job.iterative ? (job.step > 0 ? `Step ${job.step} of ${job.total}.` : "Loading the networks and preparing…")
      : "Running…",
    done: `Done${job.iterative ? ` after ${job.total} steps` : ""}.`,
    failed: `Failed: ${job.error || "unknown error"}`,
    cancelled: "Cancelled.",
  };
  let text = words[job.state] || job.state;
  if (job.resumed_from && job.state === "running") text += ` (resumed at step ${job.resumed_from})`;
  $("status").textContent = text;
  $("status").className = `state-${job.state}`;
  $("estimate").textContent = timeText(job);
  const bar = $("bar");
  bar.hidden = !job.iterative;
  bar.max = Math.max(1, job.total);
  bar.value = job.step;
  drawCurve(job.losses, job.total);
  if (job.state === "failed") showError(job.error);
  const previewStep = job.has_result && job.state === "done" ? Infinity : job.preview_step ?? -1;
  if (previewStep !== state.shownPreview && (job.preview_step !== null || job.has_result)) {
    state.shownPreview = previewStep;
    const img = $("preview");
    const url = job.state === "done" ? job.links.result : `${job.links.preview}?step=${job.preview_step ?? "r"}`;
    img.onload = () => {
      img.hidden = false;
      if (state.t0 && window.impastoTimings.firstPreview === undefined) {
        window.impastoTimings.firstPreview = performance.now() - state.t0;
      }
    };
    img.src = url;
    $("preview-caption").textContent = job.state === "done" ? "Result" : `Step ${job.preview_step}`;
  }
  const running = isRunning();
  $("cancel").hidden = !running;
  $("start").disabled = running || !ready();
  const download = $("download");
  download.hidden = !(job.has_result);
  if (job.has_result) download.href = job.links.result;
  if (!running) { stopFollowing(); refreshHistory(); }
}

function drawCurve(losses, total) {
  const svg = $("curve");
  svg.replaceChildren();
  const show = losses && losses.length >= 2;
  svg.toggleAttribute("hidden", !show); // an SVG element has no .hidden property
  if (!show) return;
  const ys = losses.map(([, l]) => Math.log10(Math.max(l, 1e-12)));
  const xs = losses.map(([s]) => s);
  const [x0, x1] = [0, Math.max(total || 0, ...xs)]; // the x axis spans the whole run
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pts = losses.map((_, i) => {
    const x = ((xs[i] - x0) / Math.max(1e-9, x1 - x0)) * 316 + 2;
    const y = 88 - ((ys[i] - y0) / Math.max(1e-9, y1 - y0)) * 84;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  svg.setAttribute("aria-label", `Loss curve: from ${losses[0][1].toPrecision(3)} to ${losses[losses.length - 1][1].toPrecision(3)}`);
}

async function cancel() {
  if (!state.job) return;
  try {
    render(await api(state.job.links.self, { method: "DELETE" }));
  } catch (err) { showError(err.message); }
}

// -- earlier results -----------------------------------------------------------------------------------------------
async function refreshHistory() {
  let jobs;
  try { jobs = (await api("/api/jobs?scope=session&limit=24")).jobs; } catch (err) { return; }
  const list = $("jobs");
  list.replaceChildren();
  $("history-empty").hidden = jobs.length > 0;
  for (const job of jobs) {
    const when = new Date(job.created * 1000).toLocaleString();
    const src = job.has_result ? job.links.result : job.preview_step !== null ? job.links.preview : job.links.content;
    const button = el("button", { type: "button", "aria-label": `Show job of ${when}: ${job.state}`, onclick: () => follow(job) },
      el("img", { src, alt: "", loading: "lazy" }),
      el("span", { class: `state-${job.state}` }, `${job.method} · ${job.state}`), el("br"),
      el("span", {}, `${job.content.name} · ${when}`));
    list.append(el("li", {}, button));
  }
}

// -- start -------------------------------------------------------------------------------------------------------------
async function init() {
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", "/"); // the cookie holds it now
  try {
    state.catalog = await api("/api/options");
  } catch (err) {
    showError(err.message);
    return;
  }
  $("version").textContent = state.catalog.version;
  buildFileInputs(state.catalog);
  buildControls(state.catalog);
  buildGallery(state.catalog.gallery);
  $("content-file").addEventListener("change", (e) => setContent(e.target.files[0]));
  $("style-file").addEventListener("change", (e) => { addStyles([...e.target.files]); e.target.value = ""; });
  setupDrop($("content-drop"), (files) => setContent(files[0]));
  setupDrop($("style-drop"), addStyles);
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  refreshHistory();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
