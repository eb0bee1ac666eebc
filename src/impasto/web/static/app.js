// impasto serve: the page. Plain JavaScript over the same HTTP API that scripts use (see /docs).
// Controls are built from GET /api/options, so a new method, preset or option needs no change here.
"use strict";

const $ = (id) => document.getElementById(id);
const MAIN_GROUP = "Basics"; // the option group shown outside "More options"
const state = {
  catalog: null, content: null, styles: [], files: {}, builtin: null, job: null, source: null, timer: null, planTimer: null, planSeq: 0,
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
// Labels, hints, groups and the methods each option applies to come with the options (GET /api/options).
function fieldLabel(f) {
  return f.label || f.flag.replace(/^--/, "").replace(/-/g, " ");
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
  if (f.methods) wrap.dataset.methods = f.methods.join(" ");
  if (f.name === "strength") {
    const out = el("output", { for: id }, String(f.default));
    input.addEventListener("input", () => { out.textContent = input.value; });
    wrap.append(out);
  }
  const hint = f.hint || f.help;
  if (hint && f.group !== MAIN_GROUP) {
    const hintId = `${id}-hint`;
    wrap.append(el("span", { class: "help", id: hintId }, hint));
    input.setAttribute("aria-describedby", hintId);
  }
  if (hint) input.title = hint;
  return wrap;
}

function buildControls(catalog) {
  const main = $("main-options");
  const groups = {};
  for (const f of catalog.fields) {
    if (f.name === "style_blend") continue; // the blend's sliders, one per painting
    if (f.group === MAIN_GROUP) main.append(makeControl(f, catalog));
    else (groups[f.group || "Other"] ||= []).push(f);
  }
  const more = $("more-options");
  for (const [title, fields] of Object.entries(groups)) {
    const set = el("fieldset", { class: "group" }, el("legend", {}, title));
    const grid = el("div", { class: "fields" });
    for (const f of fields) grid.append(makeControl(f, catalog));
    set.append(grid);
    more.append(set);
  }
  $("options").addEventListener("submit", (e) => e.preventDefault()); // Enter in a field does not reload the page
  $("options").addEventListener("input", () => { inputsChanged(); schedulePlan(); });
  $("options").addEventListener("change", () => { updateMethod(); inputsChanged(); schedulePlan(); });
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
  const files = (info ? info.files : []).every((name) => state.files[name] || usesBuiltin(name));
  return Boolean(state.content && styles && files);
}

// A built-in style stands for the trained model's file: model=builtin:N, nothing to upload.
const usesBuiltin = (name) => name === "model" && Boolean(state.builtin);

function buildFileInputs(catalog) {
  const names = new Set(catalog.methods.flatMap((m) => m.files));
  const drops = document.querySelector("#pictures .drops");
  for (const name of names) {
    const input = el("input", { type: "file", id: `file-${name}`, name, class: "file-input", accept: FILE_ACCEPT[name] || "",
      "aria-describedby": `file-${name}-chosen` });
    const chosen = el("span", { class: "chosen", id: `file-${name}-chosen` }, "No file yet");
    input.addEventListener("change", (e) => {
      state.files[name] = e.target.files[0] || null;
      chosen.textContent = state.files[name] ? state.files[name].name : "No file yet";
      inputsChanged();
      renderPictures();
    });
    drops.append(el("div", { class: "drop", id: `file-${name}-drop`, hidden: true },
      el("p", { class: "drop-title" }, el("strong", {}, FILE_LABEL[name] || name)), input,
      el("label", { for: `file-${name}`, class: "choose" }, "Choose a file…"), chosen));
  }
}

function updateMethod() {
  const info = methodInfo();
  if (!info) return;
  if (state.builtin && !info.files.includes("model")) pickBuiltin(null, false); // another method: no built-in style
  // Only the options that apply to this method (the blend has its own sliders).
  for (const field of document.querySelectorAll("#options .field[data-methods]")) {
    field.hidden = !field.dataset.methods.split(" ").includes(info.name);
  }
  for (const set of document.querySelectorAll("#more-options fieldset")) {
    set.hidden = !set.querySelector(".field:not([hidden])");
  }
  const noStyles = info.styles === "none"; // a trained model carries its style
  $("style-drop").hidden = noStyles;
  document.querySelector(".gallery-wrap").hidden = noStyles;
  for (const drop of document.querySelectorAll("[id^='file-'][id$='-drop']")) {
    const name = drop.id.slice(5, -5);
    drop.hidden = !info.files.includes(name) || usesBuiltin(name);
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
  if (info && info.files.includes("model") && state.builtin) out.push(["model", state.builtin]);
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

// The first bytes of the picture formats the server reads; a file that starts otherwise is not a picture.
const SIGNATURES = [
  [0x89, 0x50, 0x4e, 0x47], [0xff, 0xd8, 0xff], [0x47, 0x49, 0x46, 0x38], [0x42, 0x4d], // PNG, JPEG, GIF, BMP
  [0x49, 0x49, 0x2a, 0x00], [0x4d, 0x4d, 0x00, 0x2a], // TIFF (either byte order)
];
const FORMATS_TEXT = "choose a picture saved as PNG, JPEG, WebP or TIFF";

async function kindOf(file) {
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const starts = (sig) => sig.every((b, i) => head[i] === b);
  const webp = String.fromCharCode(...head.slice(0, 4)) === "RIFF" && String.fromCharCode(...head.slice(8, 12)) === "WEBP";
  if (webp || SIGNATURES.some(starts)) return starts(SIGNATURES[4]) || starts(SIGNATURES[5]) ? "tiff" : "image";
  return null;
}

// A picture the user chose or dropped, checked at once: {file, url, size, weight}, or an error in plain words.
async function picture(file) {
  if (file.size === 0) return { error: `${file.name} is empty: ${FORMATS_TEXT}.` };
  const kind = await kindOf(file);
  if (!kind) return { error: `${file.name} is not a picture: ${FORMATS_TEXT}.` };
  const url = URL.createObjectURL(file);
  const size = await imageSize(url);
  if (!size && kind !== "tiff") { // a TIFF that browsers cannot show is still read by the server
    URL.revokeObjectURL(url);
    return { error: `${file.name} could not be opened as a picture (it may be damaged): ${FORMATS_TEXT}.` };
  }
  return { file, url, size, weight: 1 };
}

async function setContent(file, input = null) {
  if (!file) return;
  const pic = await picture(file);
  if (pic.error) {
    state.content = null;
    if (input) input.value = "";
    showError(pic.error);
  } else {
    state.content = pic;
    showError("");
  }
  inputsChanged();
  renderPictures();
}

async function addStyles(files) {
  const max = state.catalog ? state.catalog.limits.max_styles : 8;
  const errors = [];
  for (const file of files) {
    if (state.styles.length >= max) { errors.push(`At most ${max} paintings.`); break; }
    const pic = await picture(file);
    if (pic.error) errors.push(pic.error);
    else state.styles.push(pic);
  }
  showError(errors.join(" "));
  inputsChanged();
  renderPictures();
}

// The pictures or settings changed: a finished job's result no longer matches them, so it is cleared (a running
// job stays on screen with its own inputs until it ends).
function inputsChanged() {
  if (!state.job || isRunning()) return;
  if (state.job.state === "failed" && $("error").textContent === state.job.error) showError("");
  stopFollowing();
  state.job = null;
  clearResult("Press Start to paint the photo with these settings.");
}

function clearResult(message) {
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("download").hidden = true;
  $("bar").hidden = true;
  $("curve").toggleAttribute("hidden", true);
  $("cancel").hidden = true;
  $("preview-caption").textContent = "Result";
  $("status").textContent = message;
  $("status").className = "";
  if (state.content) $("content-view").src = state.content.url;
  $("content-view").hidden = !state.content;
}

function renderPictures() {
  const ct = $("content-thumbs");
  ct.replaceChildren();
  $("content-chosen").textContent = state.content ? state.content.file.name : "No photo yet";
  if (state.content) {
    if (state.content.size) {
      ct.append(el("div", { class: "thumb" }, el("img", { src: state.content.url, alt: `Photo: ${state.content.file.name}` })));
    }
    if (!state.job) { // a job on screen shows its own photo
      $("content-view").src = state.content.url;
      $("content-view").hidden = false;
    }
  }
  const names = state.styles.map((s) => s.file.name);
  $("style-chosen").textContent = names.length ? names.join(", ") : "No painting yet";
  const st = $("style-thumbs");
  st.replaceChildren();
  state.styles.forEach((s, i) => {
    const remove = el("button", { type: "button", "aria-label": `Remove painting ${i + 1} (${s.file.name})`,
      onclick: () => { state.styles.splice(i, 1); inputsChanged(); renderPictures(); } }, "×");
    st.append(el("div", { class: "thumb" }, el("img", { src: s.url, alt: `Painting ${i + 1}: ${s.file.name}` }), remove));
  });
  renderBlend();
  $("start").disabled = !ready() || isRunning();
  if (!state.job) {
    $("status").textContent = ready() ? "Press Start to paint the photo with these settings."
      : "Choose a photo and a painting, then press Start.";
  }
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
    input.addEventListener("input", () => {
      s.weight = Number(input.value); out.textContent = input.value; inputsChanged(); schedulePlan();
    });
    box.append(el("div", { class: "field" }, el("label", { for: id }, `Blend: painting ${i + 1}`), input, out));
  });
}

function setupDrop(zone, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files];
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

// The built-in styles: each a thumbnail (the style on an example photo) that picks model=builtin:N; pressed again,
// it is put back. Where the server cannot run them, one line says why.
function buildBuiltin(info) {
  $("builtin-wrap").hidden = false;
  if (!info || !info.available) {
    $("builtin").hidden = true;
    $("builtin-missing").hidden = false;
    $("builtin-missing").textContent = `Built-in styles are not available on this server: ${info ? info.message : "it does not offer them"}`;
    return;
  }
  for (const s of info.styles) {
    const button = el("button", { type: "button", "aria-pressed": "false", "data-model": s.model, "aria-label": s.label,
      title: `${s.label} (${s.model})` }, el("img", { src: s.thumb, alt: "", loading: "lazy" }),
      el("span", { class: "label", "aria-hidden": "true" }, String(s.index)));
    button.addEventListener("click", () => pickBuiltin(state.builtin === s.model ? null : s.model));
    $("builtin").append(button);
  }
}

function pickBuiltin(model, update = true) {
  state.builtin = model;
  for (const b of document.querySelectorAll("#builtin button")) {
    b.setAttribute("aria-pressed", String(b.dataset.model === model));
  }
  if (!update) return;
  const method = $("opt-method");
  if (model && method && methodInfo() && !methodInfo().files.includes("model")) {
    const takes = state.catalog.methods.find((m) => m.files.includes("model"));
    if (takes) method.value = takes.name;
  }
  updateMethod();
  inputsChanged();
  renderPictures();
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
  for (const name of info.files) if (!usesBuiltin(name)) form.append(name, state.files[name], state.files[name].name);
  for (const [k, v] of optionFields()) form.append(k, v);
  // A new job: nothing of the previous one stays on screen. Focus moves to the status before Start is
  // disabled (a disabled button drops it to the page), then to Cancel once the job is queued.
  stopFollowing();
  state.job = null;
  clearResult("Sending the pictures…");
  const hadFocus = document.activeElement === $("start");
  if (hadFocus) $("status").focus();
  $("start").disabled = true;
  state.t0 = performance.now();
  window.impastoTimings = { start: state.t0 };
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    follow(job, true);
    if (hadFocus && document.activeElement === $("status") && !$("cancel").hidden) $("cancel").focus();
  } catch (err) {
    clearResult("Choose a photo and a painting, then press Start.");
    showError(err.message);
    $("start").disabled = !ready();
    if (hadFocus && !$("start").disabled) $("start").focus();
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
  const cancelHadFocus = document.activeElement === $("cancel");
  $("cancel").hidden = !running;
  $("start").disabled = running || !ready();
  const download = $("download");
  download.hidden = !(job.has_result);
  if (job.has_result) download.href = job.links.result;
  if (cancelHadFocus && !running) $(job.has_result ? "download" : "status").focus(); // not to the page body
  if (!running) { stopFollowing(); refreshHistory(); }
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function lossText(v) {
  return v >= 1e4 || v < 1e-2 ? v.toExponential(0).replace("e+", "e") : String(Number(v.toPrecision(2)));
}

// The loss on a log scale against the step, with labelled axes; the range is padded so that no point
// (the first steps' spike included) touches the frame.
function drawCurve(losses, total) {
  const svg = $("curve");
  svg.replaceChildren();
  const show = losses && losses.length >= 2;
  svg.toggleAttribute("hidden", !show); // an SVG element has no .hidden property
  if (!show) return;
  const W = Math.max(240, Math.round(svg.getBoundingClientRect().width) || 480);
  const H = 140;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const [left, right, top, bottom] = [48, 10, 20, 28];
  const ys = losses.map(([, l]) => Math.log10(Math.max(l, 1e-12)));
  const xs = losses.map(([s]) => s);
  const [x0, x1] = [0, Math.max(total || 0, ...xs)]; // the x axis spans the whole run
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = Math.max(0.05, (y1 - y0) * 0.08);
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (x) => left + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - left - right);
  const py = (y) => top + (1 - (y - y0) / Math.max(1e-9, y1 - y0)) * (H - top - bottom);
  svg.append(svgEl("rect", { class: "plot", x: left, y: top, width: W - left - right, height: H - top - bottom }));
  // Loss ticks: powers of ten inside the range, or its two ends when it spans less than one.
  let ticks = [];
  for (let p = Math.ceil(y0); p <= Math.floor(y1); p++) ticks.push(p);
  if (ticks.length > 4) ticks = ticks.filter((_, i) => i % Math.ceil(ticks.length / 4) === 0);
  if (ticks.length < 2) ticks = [y0 + pad, y1 - pad];
  for (const t of ticks) {
    svg.append(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: py(t), y2: py(t) }));
    svg.append(svgEl("text", { x: left - 4, y: py(t) + 4, "text-anchor": "end" }, lossText(10 ** t)));
  }
  for (const s of [0, Math.round(x1 / 2), x1]) {
    svg.append(svgEl("text", { x: px(s), y: H - bottom + 14, "text-anchor": s === 0 ? "start" : s === x1 ? "end" : "middle" }, String(s)));
  }
  svg.append(svgEl("text", { x: (left + W - right) / 2, y: H - 2, "text-anchor": "middle", class: "axis-title" }, "step"));
  svg.append(svgEl("text", { x: left, y: 13, class: "axis-title" }, "loss (log scale)"));
  const pts = losses.map((_, i) => `${px(xs[i]).toFixed(1)},${py(ys[i]).toFixed(1)}`);
  svg.append(svgEl("polyline", { points: pts.join(" ") }));
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
  buildBuiltin(state.catalog.builtin);
  $("content-file").addEventListener("change", (e) => setContent(e.target.files[0], e.target));
  $("style-file").addEventListener("change", (e) => { addStyles([...e.target.files]); e.target.value = ""; });
  setupDrop($("content-drop"), (files) => setContent(files[0]));
  setupDrop($("style-drop"), addStyles);
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  refreshHistory();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
