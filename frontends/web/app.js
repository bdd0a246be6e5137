// zoomreel's web page: plain JavaScript, no build step, no other origin.
//
// The form is built from the API's own schema (/openapi.json, SubmitRequest), and the
// start/end frames and the preview come from POST /v1/image/path, which runs the
// renderer's code: nothing here re-implements the camera path.
"use strict";

const KEY_STORE = "zoomreel.api_key";
const JOBS_STORE = "zoomreel.jobs";
const MAX_RECENT = 20;
const PREVIEW_SAMPLES = 30;
// Sections of the form; a field the API gains later lands in "More" by itself.
const GROUPS = [
  ["Timing", ["length", "frame_rate"]],
  ["Zoom", ["zoom_speed", "direction", "start_zoom", "end_zoom", "curve"]],
  ["Where it looks", ["focus", "start_focus", "end_focus"]],
  ["Motion", ["easing", "loop", "cycles"]],
  ["Framing", ["fit", "background", "orientation", "width", "height"]],
  ["Output", ["codec", "speed"]],
  ["More", ["webhook_url", "id"]],
];
const SEPARATE = new Set(["image_url"]);  // has its own place, beside the file input

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem(KEY_STORE) || "",
  schema: null,         // SubmitRequest properties
  imageSize: null,      // [w, h] of the chosen image
  imageSrc: "",
  file: null,
  path: null,           // last answer of /v1/image/path
  pathSeq: 0,
  pathTimer: 0,
  pollTimer: 0,
  preview: {source: null, playing: !matchMedia("(prefers-reduced-motion: reduce)").matches,
            start: 0, raf: 0},
};

// -- talking to the API ----------------------------------------------------------

async function api(method, path, body) {
  const headers = {"X-API-Key": state.key};
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: payload});
  } catch (err) {
    return {ok: false, status: 0, data: null, message: "Cannot reach the zoomreel server."};
  }
  let data = null;
  try { data = await resp.json(); } catch (err) { data = null; }
  let message = "";
  if (!resp.ok) {
    message = resp.status === 401 ? "The API key is not accepted (401): check it above."
      : (data && (data.message || data.error)) || `The server answered ${resp.status}.`;
  }
  return {ok: resp.ok, status: resp.status, data, message,
          retryAfter: Number(resp.headers.get("Retry-After")) || 0};
}

// -- the key ----------------------------------------------------------------------

async function checkKey() {
  const status = $("key-status");
  if (!state.key) {
    status.textContent = "Enter the API key printed by zoomreel serve.";
    status.className = "key-status";
    return false;
  }
  status.textContent = "Checking…";
  const answer = await api("GET", "/v1/toolkit/authenticate");
  status.textContent = answer.ok ? "Key accepted." : answer.message;
  status.className = "key-status " + (answer.ok ? "ok" : "bad");
  return answer.ok;
}

async function saveKey() {
  state.key = $("api_key").value.trim();
  if (state.key) localStorage.setItem(KEY_STORE, state.key);
  else localStorage.removeItem(KEY_STORE);
  if (await checkKey()) {
    schedulePath();
    refreshRecent();
  }
}

// -- the form, from the schema ----------------------------------------------------

function kindOf(prop) {
  if (prop.enum) return "choice";
  if (prop.anyOf) return "colour";
  if (prop.type === "array") return "point";
  if (prop.type === "integer" || prop.type === "number") return prop.type;
  return "text";
}

function shown(value) {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function control(name, prop) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const label = document.createElement("label");
  label.htmlFor = "f-" + name;
  label.textContent = name.replace(/_/g, " ");
  wrap.append(label);
  const kind = kindOf(prop);
  let input;
  if (kind === "choice") {
    input = document.createElement("select");
    const empty = new Option(prop.default !== undefined ? `default (${prop.default})` : "default", "");
    input.append(empty, ...prop.enum.map((v) => new Option(v, v)));
  } else {
    input = document.createElement("input");
    if (kind === "integer" || kind === "number") {
      input.type = "number";
      input.step = kind === "integer" ? (prop.multipleOf || 1) : "any";
      if (prop.minimum !== undefined) input.min = prop.minimum;
      if (prop.maximum !== undefined) input.max = prop.maximum;
      input.inputMode = kind === "integer" ? "numeric" : "decimal";
    } else {
      input.type = name.endsWith("_url") ? "url" : "text";
      input.spellcheck = false;
    }
    if (prop.default !== undefined) input.placeholder = shown(prop.default);
    else if (kind === "point") input.placeholder = "x, y (0..1)";
  }
  input.id = "f-" + name;
  input.name = name;
  input.dataset.kind = kind;
  if (prop.description) {
    const help = document.createElement("small");
    help.id = "h-" + name;
    help.textContent = prop.description;
    input.setAttribute("aria-describedby", help.id);
    if (kind === "colour") {
      const pair = document.createElement("div");
      pair.className = "pair";
      const picker = document.createElement("input");
      picker.type = "color";
      picker.value = prop.default || "#000000";
      picker.setAttribute("aria-label", name + " picker");
      picker.addEventListener("input", () => { input.value = picker.value; onOptionsChanged(); });
      input.addEventListener("input", () => {
        if (/^#[0-9a-f]{6}$/i.test(input.value)) picker.value = input.value;
      });
      pair.append(input, picker);
      wrap.append(pair, help);
    } else {
      wrap.append(input, help);
    }
  } else {
    wrap.append(input);
  }
  return wrap;
}

function buildForm(properties) {
  const box = $("fields");
  box.textContent = "";
  const placed = new Set(SEPARATE);
  const groups = GROUPS.map(([title, names]) => [title, names.filter((n) => n in properties)]);
  const rest = Object.keys(properties).filter((n) => !groups.some(([, ns]) => ns.includes(n))
                                                    && !SEPARATE.has(n));
  groups[groups.length - 1][1].push(...rest);
  for (const [title, names] of groups) {
    const todo = names.filter((n) => !placed.has(n));
    if (!todo.length) continue;
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = title;
    const grid = document.createElement("div");
    grid.className = "grid2";
    set.append(legend, grid);
    for (const name of todo) {
      grid.append(control(name, properties[name]));
      placed.add(name);
    }
    box.append(set);
  }
}

// The request fields the user filled in, as JSON values (empty means "the default").
function fieldValues(asText) {
  const out = {};
  for (const input of $("fields").querySelectorAll("[name]")) {
    const text = input.value.trim();
    if (!text) continue;
    const kind = input.dataset.kind;
    if (asText) {
      out[input.name] = kind === "point" ? text.replace(/[\[\]\s]/g, "") : text;
    } else if (kind === "integer" || kind === "number") {
      out[input.name] = Number(text);
    } else if (kind === "point") {
      out[input.name] = text.replace(/[\[\]]/g, "").split(",").map((p) => Number(p.trim()));
    } else {
      out[input.name] = text;
    }
  }
  return out;
}

function markInvalid(field) {
  for (const input of document.querySelectorAll("#job-form [name]")) {
    if (input.name === field) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// -- the image ----------------------------------------------------------------------

function showImage(src, file) {
  state.file = file;
  state.imageSrc = src;
  state.path = null;
  const img = $("picture");
  img.onload = () => {
    state.imageSize = [img.naturalWidth, img.naturalHeight];
    $("stage").hidden = false;
    $("stage-help").hidden = false;
    layoutStage();
    buildPreviewSource();
    schedulePath(0);
  };
  img.onerror = () => {
    state.imageSize = null;
    $("stage").hidden = true;
    $("path-status").textContent = "That image cannot be shown (not an image, or not reachable).";
  };
  img.src = src;
}

function chooseFile(file) {
  if (!file) return;
  if (state.imageSrc.startsWith("blob:")) URL.revokeObjectURL(state.imageSrc);
  $("image_url").value = "";
  showImage(URL.createObjectURL(file), file);
}

// Canvas geometry: the answer's, or the image alone until it comes.
function geometry() {
  if (state.path) return state.path;
  const [w, h] = state.imageSize;
  return {canvas: {width: w, height: h}, image: {x: 0, y: 0, width: w, height: h}};
}

function pct(value, total) { return (100 * value / total) + "%"; }

function layoutStage() {
  if (!state.imageSize) return;
  const g = geometry();
  const stage = $("stage");
  stage.style.aspectRatio = `${g.canvas.width} / ${g.canvas.height}`;
  stage.dataset.canvasWidth = g.canvas.width;
  stage.dataset.canvasHeight = g.canvas.height;
  const img = $("picture");
  Object.assign(img.style, {
    left: pct(g.image.x, g.canvas.width), top: pct(g.image.y, g.canvas.height),
    width: pct(g.image.width, g.canvas.width), height: pct(g.image.height, g.canvas.height),
  });
  const fit = fieldValues(false).fit || "cover";
  const bg = $("stage-bg");
  bg.className = "stage-bg" + (fit === "contain-blur" ? " blur" : "");
  bg.style.backgroundImage = fit === "contain-blur" ? `url("${state.imageSrc}")` : "none";
  bg.style.backgroundColor = fit === "contain" ? backgroundColour() : "transparent";
  const samples = state.path ? state.path.samples : [];
  placeRect($("rect-start"), samples[0], g);
  placeRect($("rect-end"), samples[samples.length - 1], g);
}

function backgroundColour() {
  const value = fieldValues(false).background;
  return value && /^#[0-9a-f]{6}$/i.test(value) ? value : "#000000";
}

function placeRect(el, sample, g) {
  if (!sample) { el.hidden = true; return; }
  const [x0, y0, x1, y1] = sample.rect;
  el.hidden = false;
  Object.assign(el.dataset, {frame: sample.frame, x0, y0, x1, y1});
  Object.assign(el.style, {
    left: pct(x0, g.canvas.width), top: pct(y0, g.canvas.height),
    width: pct(x1 - x0, g.canvas.width), height: pct(y1 - y0, g.canvas.height),
  });
}

function clickOnStage(clientX, clientY) {
  if (!state.imageSize) return;
  const box = $("stage").getBoundingClientRect();
  const g = geometry();
  const cx = (clientX - box.left) / box.width * g.canvas.width;
  const cy = (clientY - box.top) / box.height * g.canvas.height;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const fx = clamp((cx - g.image.x) / g.image.width);
  const fy = clamp((cy - g.image.y) / g.image.height);
  const target = $("f-" + $("click-sets").value);
  if (!target) return;
  target.value = `${fx.toFixed(3)}, ${fy.toFixed(3)}`;
  onOptionsChanged();
}

// Keyboard: arrows move the point a click would set (Shift: in bigger steps), Enter or
// Space puts it in the centre.
function nudgeFocus(event) {
  const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  const target = $("f-" + $("click-sets").value);
  if (!target) return;
  let point;
  if (event.key === "Enter" || event.key === " ") {
    point = [0.5, 0.5];
  } else if (event.key in moves) {
    const now = target.value.split(",").map(Number);
    const [x, y] = now.length === 2 && now.every(Number.isFinite) ? now : [0.5, 0.5];
    const step = event.shiftKey ? 0.1 : 0.02;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    point = [clamp(x + moves[event.key][0] * step), clamp(y + moves[event.key][1] * step)];
  } else {
    return;
  }
  event.preventDefault();
  target.value = `${point[0].toFixed(3)}, ${point[1].toFixed(3)}`;
  onOptionsChanged();
}

// -- the path: start/end frames and the preview ------------------------------------

function onOptionsChanged() {
  layoutStage();
  schedulePath();
}

function schedulePath(delay = 150) {
  clearTimeout(state.pathTimer);
  state.pathTimer = setTimeout(fetchPath, delay);
}

async function fetchPath() {
  if (!state.imageSize || !state.schema) return;
  const status = $("path-status");
  if (!state.key) {
    status.textContent = "Enter your API key to see the first and last frames.";
    return;
  }
  const seq = ++state.pathSeq;
  const body = {...fieldValues(false), image_width: state.imageSize[0],
                image_height: state.imageSize[1], samples: PREVIEW_SAMPLES};
  delete body.image_url;
  delete body.webhook_url;
  const answer = await api("POST", "/v1/image/path", body);
  if (seq !== state.pathSeq) return;  // a newer request is on its way
  if (!answer.ok) {
    status.textContent = answer.message;
    $("form-error").textContent = answer.message;
    markInvalid(answer.data && answer.data.field);
    return;
  }
  $("form-error").textContent = "";
  markInvalid(null);
  const path = answer.data.response;
  state.path = path;
  layoutStage();
  buildPreviewSource();
  status.textContent = `${path.output.width}×${path.output.height}, ${path.frames} frames ` +
    `at ${path.frame_rate} fps (${path.duration.toFixed(2)} s).`;
  $("stage").dataset.ready = String(seq);
}

// The picture the path runs over (image, bars or blurred copy), at a preview's size.
function buildPreviewSource() {
  if (!state.imageSize) return;
  const g = geometry();
  const scale = Math.min(1, 960 / Math.max(g.canvas.width, g.canvas.height));
  const src = document.createElement("canvas");
  src.width = Math.max(1, Math.round(g.canvas.width * scale));
  src.height = Math.max(1, Math.round(g.canvas.height * scale));
  const ctx = src.getContext("2d");
  const img = $("picture");
  const fit = fieldValues(false).fit || "cover";
  if (fit === "contain") {
    ctx.fillStyle = backgroundColour();
    ctx.fillRect(0, 0, src.width, src.height);
  } else if (fit === "contain-blur") {
    const [iw, ih] = state.imageSize;
    const s = Math.max(src.width / iw, src.height / ih);
    ctx.filter = `blur(${Math.max(2, src.width / 60)}px) brightness(0.55)`;
    ctx.drawImage(img, (src.width - iw * s) / 2, (src.height - ih * s) / 2, iw * s, ih * s);
    ctx.filter = "none";
  }
  ctx.drawImage(img, g.image.x * scale, g.image.y * scale,
                g.image.width * scale, g.image.height * scale);
  state.preview.source = {canvas: src, scale};
  if (state.path) {
    const out = state.path.output;
    const preview = $("preview");
    preview.width = 320;
    preview.height = Math.max(2, Math.round(320 * out.height / out.width));
    $("preview-box").hidden = false;
    const speed = previewSpeed();
    $("preview-note").textContent = `${state.path.samples.length} of ${state.path.frames} frames` +
      (speed > 1 ? `, ${speed.toFixed(1)}× speed` : "");
    state.preview.start = performance.now();
    if (!state.preview.raf) state.preview.raf = requestAnimationFrame(drawPreview);
  }
}

function previewSpeed() {
  return Math.max(1, state.path.duration / 10);  // long videos play in 10 s
}

function drawPreview(now) {
  state.preview.raf = 0;
  const path = state.path;
  const source = state.preview.source;
  if (!path || !source) return;
  const samples = path.samples;
  const span = samples[samples.length - 1].time || 1;
  const t = state.preview.playing
    ? ((now - state.preview.start) / 1000 * previewSpeed()) % (span + 0.5) : 0;
  let i = 0;
  while (i < samples.length - 2 && samples[i + 1].time <= t) i++;
  const a = samples[i], b = samples[Math.min(i + 1, samples.length - 1)];
  const f = b.time > a.time ? Math.min(1, Math.max(0, (t - a.time) / (b.time - a.time))) : 0;
  const r = a.rect.map((v, k) => (v + (b.rect[k] - v) * f) * source.scale);
  const preview = $("preview");
  const ctx = preview.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source.canvas, r[0], r[1], r[2] - r[0], r[3] - r[1],
                0, 0, preview.width, preview.height);
  if (state.preview.playing) state.preview.raf = requestAnimationFrame(drawPreview);
}

function togglePreview() {
  state.preview.playing = !state.preview.playing;
  $("preview-toggle").textContent = state.preview.playing ? "Pause" : "Play";
  state.preview.start = performance.now();
  if (!state.preview.raf) state.preview.raf = requestAnimationFrame(drawPreview);
}

// -- submitting and following a job ------------------------------------------------

async function submit(event) {
  event.preventDefault();
  const error = $("form-error");
  error.textContent = "";
  if (!state.key) { error.textContent = "Enter your API key first (top of the page)."; return; }
  const url = $("image_url").value.trim();
  if (!state.file && !url) { error.textContent = "Choose an image file or paste its URL."; return; }
  let body;
  if (state.file) {
    body = new FormData();
    body.append("image", state.file, state.file.name);
    for (const [name, value] of Object.entries(fieldValues(true))) body.append(name, value);
  } else {
    body = {image_url: url, ...fieldValues(false)};
  }
  $("submit").disabled = true;
  const answer = await api("POST", "/v1/image/convert/video", body);
  $("submit").disabled = false;
  if (!answer.ok) {
    error.textContent = answer.message;
    markInvalid(answer.data && answer.data.field);
    return;
  }
  markInvalid(null);
  const job = {id: answer.data.job_id, state: "queued", created: Date.now(),
               name: state.file ? state.file.name : url.split("/").pop() || url};
  saveJobs([job, ...loadJobs().filter((j) => j.id !== job.id)]);
  follow(job.id);
}

function follow(jobId) {
  clearTimeout(state.pollTimer);
  $("job-error").textContent = "";
  $("result").hidden = true;
  $("progress-box").hidden = false;
  $("progress").value = 0;
  $("progress-text").textContent = "Queued…";
  poll(jobId);
}

async function poll(jobId) {
  const answer = await api("POST", "/v1/toolkit/job/status", {job_id: jobId});
  if (!answer.ok) {
    $("progress-box").hidden = true;
    $("job-error").textContent = answer.message;
    if (answer.status === 404) updateJob(jobId, {state: "expired"});
    return;
  }
  const r = answer.data.response;
  updateJob(jobId, {state: r.job_status});
  const p = r.progress || {};
  const percent = Math.round(p.percent || 0);
  $("progress").value = percent;
  if (r.job_status === "done") {
    $("progress").value = 100;
    $("progress-text").textContent = "Done.";
    showVideo(r.response);
    return;
  }
  if (r.job_status === "error") {
    $("progress-box").hidden = true;
    $("job-error").textContent = "The video could not be made: " + (r.error || "unknown error");
    updateJob(jobId, {error: r.error});
    return;
  }
  const eta = p.eta_seconds;
  $("progress-text").textContent = r.job_status === "queued" ? "Waiting in the queue…"
    : `${percent}% done` + (eta != null ? `, about ${formatSeconds(eta)} left` : "");
  const wait = Math.min(10, Math.max(0.5, answer.retryAfter || 1));
  state.pollTimer = setTimeout(() => poll(jobId), wait * 1000);
}

function formatSeconds(s) {
  s = Math.max(0, Math.round(s));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function showVideo(result) {
  $("result").hidden = false;
  const video = $("video");
  video.src = result.download_url;
  const link = $("download");
  link.href = result.download_url;
  link.setAttribute("download", result.filename);
}

// -- recent jobs of this browser -----------------------------------------------------

function loadJobs() {
  try { return JSON.parse(localStorage.getItem(JOBS_STORE)) || []; } catch (err) { return []; }
}

function saveJobs(jobs) {
  localStorage.setItem(JOBS_STORE, JSON.stringify(jobs.slice(0, MAX_RECENT)));
  renderRecent();
}

function updateJob(id, changes) {
  saveJobs(loadJobs().map((j) => (j.id === id ? {...j, ...changes} : j)));
}

function renderRecent() {
  const list = $("recent");
  list.textContent = "";
  const jobs = loadJobs();
  if (!jobs.length) {
    const li = document.createElement("li");
    li.className = "help";
    li.textContent = "None yet.";
    list.append(li);
    return;
  }
  for (const job of jobs) {
    const li = document.createElement("li");
    li.dataset.jobId = job.id;
    const name = document.createElement("span");
    name.textContent = job.name || job.id.slice(0, 8);
    const st = document.createElement("span");
    st.className = "state state-" + job.state;
    st.textContent = job.state;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(job.created).toLocaleString();
    li.append(name, st, when);
    if (job.state !== "expired") {
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = job.state === "done" ? "Show" : "Follow";
      show.addEventListener("click", () => follow(job.id));
      li.append(show);
    }
    if (job.error) {
      const err = document.createElement("span");
      err.className = "error";
      err.textContent = job.error;
      li.append(err);
    }
    list.append(li);
  }
}

async function refreshRecent() {
  renderRecent();
  if (!state.key) return;
  for (const job of loadJobs()) {
    if (job.state === "done" || job.state === "error" || job.state === "expired") continue;
    const answer = await api("POST", "/v1/toolkit/job/status", {job_id: job.id});
    if (answer.ok) updateJob(job.id, {state: answer.data.response.job_status,
                                      error: answer.data.response.error});
    else if (answer.status === 404) updateJob(job.id, {state: "expired"});
  }
}

// -- start -------------------------------------------------------------------------

async function start() {
  $("api_key").value = state.key;
  $("key-save").addEventListener("click", saveKey);
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); saveKey(); });
  $("api_key").addEventListener("change", saveKey);
  $("job-form").addEventListener("submit", submit);
  $("image").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  $("image_url").addEventListener("change", (e) => {
    const url = e.target.value.trim();
    if (!url) return;
    state.file = null;
    $("image").value = "";
    showImage(url, null);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) chooseFile(file);
  });
  const stage = $("stage");
  stage.tabIndex = 0;
  stage.setAttribute("aria-label",
                     "The image: click, or use the arrow keys, to set the focus");
  stage.addEventListener("click", (e) => clickOnStage(e.clientX, e.clientY));
  stage.addEventListener("keydown", nudgeFocus);
  $("preview-toggle").addEventListener("click", togglePreview);
  $("preview-toggle").textContent = state.preview.playing ? "Pause" : "Play";
  $("fields").addEventListener("input", onOptionsChanged);
  $("fields").addEventListener("change", onOptionsChanged);
  renderRecent();

  const resp = await fetch("/openapi.json");
  const doc = await resp.json();
  state.schema = doc.components.schemas.SubmitRequest.properties;
  buildForm(state.schema);
  document.body.dataset.ready = "true";
  if (state.key && await checkKey()) refreshRecent();
  else if (!state.key) checkKey();
  schedulePath(0);
}

start();
