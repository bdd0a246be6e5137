// The image with the first and last frames drawn over it, and the small preview: both
// from an answer of POST /v1/image/path (the renderer's own path), nothing computed here.

const $ = (id) => document.getElementById(id);

const view = {
  size: null,       // [w, h] of the image
  src: "",
  path: null,       // the answer drawn now
  subject: null,    // focus "auto"'s answer (POST /v1/image/subject) drawn now, if any
  fit: "cover",
  background: "#000000",
  source: null,     // the canvas the path runs over, at a preview's size
  playing: !matchMedia("(prefers-reduced-motion: reduce)").matches,
  start: 0,
  raf: 0,
};

export function imageSize() { return view.size; }

// Show ``src``; resolves to its [width, height], or null when it cannot be shown.
export function showImage(src) {
  view.src = src;
  view.path = null;
  view.size = null;
  view.subject = null;
  const img = $("picture");
  return new Promise((resolve) => {
    img.onload = () => {
      view.size = [img.naturalWidth, img.naturalHeight];
      $("stage").hidden = false;
      $("stage-help").hidden = false;
      layout();
      resolve(view.size);
    };
    img.onerror = () => {
      $("stage").hidden = true;
      $("stage-help").hidden = true;
      $("preview-box").hidden = true;
      resolve(null);
    };
    img.src = src;
  });
}

// Canvas geometry: the answer's, or the image alone until one comes.
function geometry() {
  if (view.path) return view.path;
  const [w, h] = view.size;
  return {canvas: {width: w, height: h}, image: {x: 0, y: 0, width: w, height: h}};
}

function pct(value, total) { return (100 * value / total) + "%"; }

// Draw ``path`` (the answer for the request fields ``values``); ``look`` names the look
// it is, if any (the hovered one while previewing).
export function drawPath(path, values, look) {
  view.path = path;
  view.fit = values.fit || "cover";
  view.background = /^#[0-9a-f]{6}$/i.test(values.background || "") ? values.background
    : "#000000";
  $("stage").dataset.look = look || "";
  layout();
  buildSource();
}

function layout() {
  if (!view.size) return;
  const g = geometry();
  const stage = $("stage");
  stage.style.aspectRatio = `${g.canvas.width} / ${g.canvas.height}`;
  stage.dataset.canvasWidth = g.canvas.width;
  stage.dataset.canvasHeight = g.canvas.height;
  Object.assign($("picture").style, {
    left: pct(g.image.x, g.canvas.width), top: pct(g.image.y, g.canvas.height),
    width: pct(g.image.width, g.canvas.width), height: pct(g.image.height, g.canvas.height),
  });
  const bg = $("stage-bg");
  bg.className = "stage-bg" + (view.fit === "contain-blur" ? " blur" : "");
  bg.style.backgroundImage = view.fit === "contain-blur" ? `url("${view.src}")` : "none";
  bg.style.backgroundColor = view.fit === "contain" ? view.background : "transparent";
  const samples = view.path ? view.path.samples : [];
  placeRect($("rect-start"), samples[0], g);
  placeRect($("rect-end"), samples[samples.length - 1], g);
  placeSubject(g);
}

// Draw the point focus "auto" closes in on (and the faces it keeps), from an answer of
// POST /v1/image/subject; null hides them.
export function drawSubject(subject) {
  view.subject = subject;
  if (view.size) placeSubject(geometry());
}

function placeSubject(g) {
  const point = $("subject-point"), faces = $("subject-faces");
  const s = view.subject;
  point.hidden = !s;
  faces.hidden = !(s && s.faces);
  if (!s) return;
  // fractions of the image -> fractions of the canvas it sits in
  const cx = (f) => pct(g.image.x + f * g.image.width, g.canvas.width);
  const cy = (f) => pct(g.image.y + f * g.image.height, g.canvas.height);
  Object.assign(point.dataset, {x: s.x, y: s.y, by: s.by});
  Object.assign(point.style, {left: cx(s.x), top: cy(s.y)});
  if (s.faces) {
    const [x0, y0, x1, y1] = s.faces;
    Object.assign(faces.style, {
      left: cx(x0), top: cy(y0),
      width: pct((x1 - x0) * g.image.width, g.canvas.width),
      height: pct((y1 - y0) * g.image.height, g.canvas.height),
    });
  }
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

// The point of the image under a click, in fractions of the image (clamped to it).
export function pointAt(clientX, clientY) {
  if (!view.size) return null;
  const box = $("stage").getBoundingClientRect();
  const g = geometry();
  const cx = (clientX - box.left) / box.width * g.canvas.width;
  const cy = (clientY - box.top) / box.height * g.canvas.height;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((cx - g.image.x) / g.image.width), clamp((cy - g.image.y) / g.image.height)];
}

// -- the preview ------------------------------------------------------------------------

// The picture the path runs over (image, bars or blurred copy), at a preview's size.
function buildSource() {
  if (!view.size || !view.path) return;
  const g = geometry();
  const scale = Math.min(1, 960 / Math.max(g.canvas.width, g.canvas.height));
  const src = document.createElement("canvas");
  src.width = Math.max(1, Math.round(g.canvas.width * scale));
  src.height = Math.max(1, Math.round(g.canvas.height * scale));
  const ctx = src.getContext("2d");
  const img = $("picture");
  if (view.fit === "contain") {
    ctx.fillStyle = view.background;
    ctx.fillRect(0, 0, src.width, src.height);
  } else if (view.fit === "contain-blur") {
    const [iw, ih] = view.size;
    const s = Math.max(src.width / iw, src.height / ih);
    ctx.filter = `blur(${Math.max(2, src.width / 60)}px) brightness(0.55)`;
    ctx.drawImage(img, (src.width - iw * s) / 2, (src.height - ih * s) / 2, iw * s, ih * s);
    ctx.filter = "none";
  }
  ctx.drawImage(img, g.image.x * scale, g.image.y * scale,
                g.image.width * scale, g.image.height * scale);
  view.source = {canvas: src, scale};
  const out = view.path.output;
  const preview = $("preview");
  preview.width = 320;
  preview.height = Math.max(2, Math.round(320 * out.height / out.width));
  $("preview-box").hidden = false;
  const speed = previewSpeed();
  $("preview-note").textContent = "Rough preview of the motion" +
    (speed > 1 ? `, played ${speed.toFixed(1)}× faster` : "") + ".";
  view.start = performance.now();
  if (!view.raf) view.raf = requestAnimationFrame(drawPreview);
}

function previewSpeed() {
  return Math.max(1, view.path.duration / 10);  // long videos play in 10 s
}

function drawPreview(now) {
  view.raf = 0;
  const {path, source} = view;
  if (!path || !source) return;
  const samples = path.samples;
  const span = samples[samples.length - 1].time || 1;
  const t = view.playing ? ((now - view.start) / 1000 * previewSpeed()) % (span + 0.5) : 0;
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
  if (view.playing) view.raf = requestAnimationFrame(drawPreview);
}

export function togglePreview() {
  view.playing = !view.playing;
  $("preview-toggle").textContent = view.playing ? "Pause" : "Play";
  view.start = performance.now();
  if (!view.raf) view.raf = requestAnimationFrame(drawPreview);
}

export function previewPlaying() { return view.playing; }
