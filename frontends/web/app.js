// zoomreel's web page: ES modules, no build step, nothing from another origin.
//
// The fields come from the API's own schema (/openapi.json, SubmitRequest, with its x-
// keys), and the frames drawn over the image and the preview from POST /v1/image/path,
// which runs the renderer's code: nothing here re-implements the camera path.

import {api, newIdempotencyKey, saveKey, session} from "./api.js";
import {buildFields, clearErrors, controlOf, fieldNames, formValues, labelOf, pointFields,
        propertyOf, setValue, settleForms, showFieldError} from "./fields.js";
import {addJob, follow, refreshRecent, renderRecent} from "./jobs.js";
import {LOOK_FIELDS, LOOKS, lookOf, withLook} from "./looks.js";
import {buildReel, chooseReel, reelActive, reelBody, reelName} from "./reel.js";
import {copyCurl, formText, showRequest} from "./request.js";
import {drawPath, drawSubject, imageSize, pointAt, previewPlaying, showImage,
        togglePreview} from "./stage.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_SAMPLES = 30;
const EXAMPLE_URL = "https://example.com/photo.jpg";

const page = {
  defaults: {},      // each field's default, for telling looks apart
  file: null,        // the chosen file, or null for a URL
  paths: new Map(),  // answers of /v1/image/path by request body
  subject: null,     // {key, answer}: POST /v1/image/subject for the image shown
  pathTimer: 0,
  pathSeq: 0,
  hovered: "",       // the look previewed under the pointer, if any
  sending: null,     // {what, key}: the submit not answered yet, and its Idempotency-Key
};

// -- the key ------------------------------------------------------------------------------

async function checkKey() {
  const status = $("key-status");
  if (!session.key) {
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

async function onKey() {
  saveKey($("api_key").value.trim());
  if (await checkKey()) {
    page.paths.clear();
    schedulePath(0);
    refreshRecent();
  }
}

// -- errors: beside the button, and at the field ---------------------------------------

function showError(answer, focus) {
  const field = answer.field && propertyOf(answer.field) ? answer.field : "";
  $("form-error").textContent = field && answer.rule
    ? `${labelOf(field)}: ${answer.rule}` : answer.message;
  if (!field || !showFieldError(field, answer.rule || answer.message, focus)) clearErrors();
  if (focus) $("form-error").scrollIntoView({block: "nearest", behavior: "instant"});
}

function clearError() {
  $("form-error").textContent = "";
  clearErrors();
}

// -- what the form asks for -----------------------------------------------------------

function imageRef(values) {
  return page.file ? {file: page.file.name} : {url: values.image_url || EXAMPLE_URL};
}

function withoutImage(values) {
  const out = {...values};
  delete out.image_url;
  return out;
}

function onChange() {
  const values = formValues();
  const look = lookOf(values, page.defaults);
  for (const radio of document.querySelectorAll("input[name=look]")) {
    radio.checked = Boolean(look) && radio.value === look.id;
  }
  $("look-note").textContent = look ? look.note
    : "Your own motion: see More options.";
  showRequest(imageRef(values), withoutImage(values));
  updateClickTarget();
  schedulePath();
}

function chooseLook(look) {
  const values = withLook(formValues(), look);
  for (const name of LOOK_FIELDS) setValue(name, values[name]);
  settleForms();
  onChange();
}

// -- looks ------------------------------------------------------------------------------

function buildLooks() {
  const box = $("looks");
  for (const look of LOOKS) {
    const input = document.createElement("input");
    Object.assign(input, {type: "radio", name: "look", value: look.id, id: "look-" + look.id});
    const label = document.createElement("label");
    label.className = "look";
    label.htmlFor = input.id;
    label.dataset.look = look.id;
    const name = document.createElement("span");
    name.textContent = look.name;
    label.append(input, name);
    box.append(label);
    input.addEventListener("change", () => { if (input.checked) chooseLook(look); });
    label.addEventListener("pointerenter", () => hover(look));
    label.addEventListener("pointerleave", () => hover(null));
    input.addEventListener("focus", () => hover(look));
    input.addEventListener("blur", () => hover(null));
  }
}

// Draw ``look`` over the image while the pointer (or the focus) is on it.
async function hover(look) {
  page.hovered = look ? look.id : "";
  if (!imageSize()) return;
  const values = look ? withLook(formValues(), look) : formValues();
  const answer = await pathFor(values);
  if (page.hovered !== (look ? look.id : "") || !answer.ok) return;
  drawPath(answer.data.response, values, look ? look.id : lookOf(values, page.defaults)?.id);
}

// -- focus "auto": the server decides on the image itself, the page draws it ---------------

// The answer of POST /v1/image/subject for the image shown (asked once per image):
// the file itself, or its URL (fetched by the server under the convert route's rules).
function subjectFor(values) {
  const key = page.file ? page.file : values.image_url || "";
  if (!key) return Promise.resolve(null);
  if (!page.subject || page.subject.key !== key) {
    let body = {image_url: key};
    if (page.file) {
      body = new FormData();
      body.append("image", page.file, page.file.name);
    }
    page.subject = {key, answer: api("POST", "/v1/image/subject", body)};
  }
  return page.subject.answer;
}

// [values, subject]: ``values`` with focus "auto" made the point the server chose (the
// path route has no pixels), and that point drawn; without "auto", nothing drawn and no
// subject. (aimAt then places the point on the canvas and caps the zoom at the faces.)
async function resolveAuto(values) {
  const status = $("subject-status");
  if (values.focus !== "auto") {
    drawSubject(null);
    status.textContent = "";
    return [values, null];
  }
  status.textContent = "Finding the subject…";
  const answer = await subjectFor(values);
  if (!answer || !answer.ok) {
    if (answer && answer.status !== 400) page.subject = null;  // try again next time
    drawSubject(null);
    status.textContent = answer ? `Auto focus: ${answer.message}` :
      "Auto focus: the server decides when the job runs (choose a file or URL to see it).";
    return [values, null];
  }
  const subject = answer.data.response;
  drawSubject(subject);
  const found = {faces: "the faces", saliency: "the part that stands out most",
                 centre: "the centre (nothing stands out)"}[subject.by] || subject.by;
  status.textContent = `Auto focus: ${found}, at ${subject.x.toFixed(2)}, ` +
    `${subject.y.toFixed(2)}.`;
  return [{...values, focus: [subject.x, subject.y]}, subject];
}

// The zoom of the path's first and last keyframes (RenderSpec.zoom_keyframes).
function zoomKeyframes(values) {
  if (values.start_zoom !== undefined || values.end_zoom !== undefined) {
    return [values.start_zoom ?? 1, values.end_zoom ?? 1];
  }
  const d = page.defaults;
  const speed = values.zoom_speed ?? d.zoom_speed ?? 3;
  const far = 1 + speed / 100 * (values.length ?? d.length ?? 5);
  return (values.direction ?? d.direction ?? "in") === "in" ? [1, far] : [far, 1];
}

// ``values`` aimed at ``subject`` as the server resolves focus "auto"
// (RenderSpec.with_subject), over the canvas of a path answer: the point in fractions of
// that canvas, and with faces the zoom stopped where the box holding them fits the frame.
function aimAt(values, subject, path) {
  const {canvas, image, output} = path;
  const onPath = (x, y) => [(image.x + x * image.width) / canvas.width,
                            (image.y + y * image.height) / canvas.height];
  const aimed = {...values, focus: onPath(subject.x, subject.y)};
  if (subject.faces) {
    const [x0, y0] = onPath(subject.faces[0], subject.faces[1]);
    const [x1, y1] = onPath(subject.faces[2], subject.faces[3]);
    const wide = canvas.width * output.height >= canvas.height * output.width;
    const cw = wide ? canvas.height * output.width / output.height : canvas.width;
    const ch = wide ? canvas.height : canvas.width * output.height / output.width;
    const fits = Math.min(cw / Math.max((x1 - x0) * canvas.width, 1e-9),
                          ch / Math.max((y1 - y0) * canvas.height, 1e-9));
    const [z0, z1] = zoomKeyframes(values);
    if (Math.max(z0, z1) > fits) {  // closer than the faces allow: stop where they fit
      const top = Math.max(1, fits);
      delete aimed.zoom_speed;
      delete aimed.direction;
      Object.assign(aimed, {start_zoom: Math.min(z0, top), end_zoom: Math.min(z1, top)});
    }
  }
  return aimed;
}

// -- the path: the frames drawn over the image, and the preview ------------------------

function pathFor(values) {
  const body = {image_width: imageSize()[0], image_height: imageSize()[1],
                samples: PREVIEW_SAMPLES};
  for (const [name, value] of Object.entries(values)) {
    if (controlOf(name) !== "url") body[name] = value;  // the path needs no URL
  }
  const key = JSON.stringify(body);
  if (!page.paths.has(key)) {
    if (page.paths.size > 100) page.paths.clear();
    page.paths.set(key, api("POST", "/v1/image/path", body));
  }
  return page.paths.get(key);
}

function schedulePath(delay = 150) {
  clearTimeout(page.pathTimer);
  page.pathTimer = setTimeout(drawCurrent, delay);
}

async function drawCurrent() {
  const status = $("path-status");
  if (!imageSize()) return;
  if (!session.key) {
    status.textContent = "Enter your API key to see the first and last frames.";
    return;
  }
  const seq = ++page.pathSeq;
  let [values, subject] = await resolveAuto(formValues());
  if (seq !== page.pathSeq) return;  // a newer one is on its way
  const look = lookOf(values, page.defaults)?.id;
  let answer = await pathFor(values);
  if (seq !== page.pathSeq) return;
  if (subject && answer.ok) {  // the canvas known: the frames the server will render
    values = aimAt(values, subject, answer.data.response);
    answer = await pathFor(values);
    if (seq !== page.pathSeq) return;
  }
  if (!answer.ok) {
    if (answer.status !== 400) page.paths.clear();  // try again next time
    status.textContent = "";
    showError(answer, false);
    return;
  }
  clearError();
  const path = answer.data.response;
  if (!page.hovered) drawPath(path, values, look);
  const seconds = path.duration.toFixed(path.duration % 1 ? 2 : 0);
  status.textContent = `The video: ${path.output.width}×${path.output.height}, ` +
    `${seconds} s, ${path.frame_rate} frames per second.`;
  $("stage").dataset.ready = String(seq);
}

// -- the image, and clicks on it ----------------------------------------------------------

async function useImage(src) {
  page.paths.clear();
  page.subject = null;
  const size = await showImage(src);
  $("path-status").textContent = size ? ""
    : "That image cannot be shown (not an image, or not reachable).";
  onChange();
  schedulePath(0);
}

function chooseFile(file) {
  if (!file) return;
  if (page.file) URL.revokeObjectURL($("picture").src);
  page.file = file;
  setValue("image_url", undefined);
  useImage(URL.createObjectURL(file));
}

// The point field a click on the image sets: the chosen look's, or the one picked.
function clickTarget() {
  const targets = pointFields();
  const look = lookOf(formValues(), page.defaults);
  if (look && look.point && targets.includes(look.point)) return look.point;
  const picked = $("click-sets").value;
  return targets.includes(picked) ? picked : targets[0] || "";
}

function updateClickTarget() {
  const select = $("click-sets");
  const targets = pointFields();
  const current = select.value;
  select.textContent = "";
  select.append(...targets.map((name) => new Option(labelOf(name), name)));
  if (targets.includes(current)) select.value = current;
  const look = lookOf(formValues(), page.defaults);
  const fixed = targets.length < 2 || Boolean(look && look.point);
  select.hidden = fixed;
  $("click-what").textContent = fixed ? `sets “${labelOf(clickTarget())}”.` : "sets";
}

function setPoint(point) {
  const target = clickTarget();
  if (!target) return;
  setValue(target, point.map((v) => Number(v.toFixed(3))));
  onChange();
}

// Keyboard: arrows move the point a click would set (Shift: in bigger steps), Enter or
// Space puts it in the centre.
function nudge(event) {
  const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  const target = clickTarget();
  if (!target) return;
  let point;
  if (event.key === "Enter" || event.key === " ") {
    point = [0.5, 0.5];
  } else if (event.key in moves) {
    const now = formValues()[target];
    const [x, y] = Array.isArray(now) ? now : propertyOf(target).default || [0.5, 0.5];
    const step = event.shiftKey ? 0.1 : 0.02;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    point = [clamp(x + moves[event.key][0] * step), clamp(y + moves[event.key][1] * step)];
  } else {
    return;
  }
  event.preventDefault();
  setPoint(point);
}

// -- making the video -------------------------------------------------------------------

async function submit(event) {
  event.preventDefault();
  clearError();
  if (!session.key) {
    $("form-error").textContent = "Enter your API key first (top of the page).";
    $("api_key").focus();
    return;
  }
  if (reelActive()) {
    submitReel();
    return;
  }
  const values = formValues();
  if (!page.file && !values.image_url) {
    $("form-error").textContent = "Choose an image file or paste its URL.";
    $("image").focus();
    return;
  }
  let body;
  if (page.file) {
    body = new FormData();
    body.append("image", page.file, page.file.name);
    for (const [name, value] of Object.entries(withoutImage(values))) {
      body.append(name, formText(value));
    }
  } else {
    body = values;
  }
  // One Idempotency-Key per video asked for: a click makes a new one, except while the
  // same request is unanswered (a double click, or a click again after the server could
  // not be reached), which sends the same key, so the server makes one video.
  const what = JSON.stringify([values, page.file && [page.file.name, page.file.size,
                                                     page.file.lastModified]]);
  if (!page.sending || page.sending.what !== what) {
    page.sending = {what, key: newIdempotencyKey()};
  }
  const sending = page.sending;
  $("submit").disabled = true;
  const answer = await api("POST", "/v1/image/convert/video", body, undefined,
                           {"Idempotency-Key": sending.key});
  $("submit").disabled = false;
  if (answer.status !== 0 && page.sending === sending) page.sending = null;  // answered
  if (!answer.ok) {
    showError(answer, true);
    return;
  }
  const url = values.image_url || "";
  addJob({id: answer.data.job_id, state: "queued", created: Date.now(),
          name: page.file ? page.file.name : url.split("/").pop() || url});
  follow(answer.data.job_id);
}

// A reel: its photos, in the strip's order, and its fields, as one multipart request.
async function submitReel() {
  const key = newIdempotencyKey();
  $("submit").disabled = true;
  const answer = await api("POST", "/v1/video/reel", reelBody(), undefined,
                           {"Idempotency-Key": key});
  $("submit").disabled = false;
  if (!answer.ok) {
    showError(answer, false);
    return;
  }
  addJob({id: answer.data.job_id, state: "queued", created: Date.now(), name: reelName()});
  follow(answer.data.job_id);
}

// Files chosen or dropped: several make a reel, one is the image.
function chooseFiles(files) {
  if (chooseReel(files)) return;
  chooseFile(files[0]);
}

// -- start -----------------------------------------------------------------------------

async function start() {
  $("api_key").value = session.key;
  $("key-save").addEventListener("click", onKey);
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); onKey(); });
  $("api_key").addEventListener("change", onKey);
  $("job-form").addEventListener("submit", submit);
  $("image").addEventListener("change", (e) => chooseFiles(e.target.files));
  buildReel();
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    chooseFiles(e.dataTransfer.files);
  });
  const stage = $("stage");
  stage.addEventListener("click", (e) => {
    const point = pointAt(e.clientX, e.clientY);
    if (point) setPoint(point);
  });
  stage.addEventListener("keydown", nudge);
  $("preview-toggle").addEventListener("click", togglePreview);
  $("preview-toggle").textContent = previewPlaying() ? "Pause" : "Play";
  $("copy-curl").addEventListener("click", copyCurl);
  renderRecent();

  const resp = await fetch("/openapi.json");
  const schema = (await resp.json()).components.schemas.SubmitRequest;
  buildFields(schema, $("first-fields"), $("fields"));
  for (const name of fieldNames()) page.defaults[name] = propertyOf(name).default;
  buildLooks();
  for (const box of [$("first-fields"), $("fields"), $("drop")]) {
    box.addEventListener("input", onChange);
    box.addEventListener("change", onChange);
  }
  $("f-image_url").addEventListener("change", (e) => {
    const url = e.target.value.trim();
    if (!url) return;
    page.file = null;
    $("image").value = "";
    useImage(url);
  });
  chooseLook(LOOKS[0]);
  document.body.dataset.ready = "true";
  if (session.key && await checkKey()) refreshRecent();
  else if (!session.key) checkKey();
  schedulePath(0);
}

start();
