// A reel from the page: several photos chosen at once become a strip to reorder, with a
// transition, a title and a track; "Make the reel" sends them to POST /v1/video/reel
// (multipart: the files as repeated field ``image`` in order, the track as ``audio``, the
// rest as JSON in the form field ``reel``), and the job is followed as a video's is.

const $ = (id) => document.getElementById(id);

// The transitions of the reel route (zoomreel.reelspec.Transition), crossfade first: the
// default.
const TRANSITIONS = [["crossfade", "Crossfade"], ["fade", "Fade through black"],
                     ["cut", "Cut"], ["slide-left", "Slide left"], ["slide-up", "Slide up"]];

const reel = {photos: []};  // [{file, url}] in the reel's order

export function reelActive() {
  return reel.photos.length > 1;
}

// Several files: the reel strip, in their order; one file (or none): back to one image.
export function chooseReel(files) {
  for (const photo of reel.photos) URL.revokeObjectURL(photo.url);
  reel.photos = Array.from(files, (file) => ({file, url: URL.createObjectURL(file)}));
  const active = reelActive();
  document.body.dataset.mode = active ? "reel" : "image";
  $("reel").hidden = !active;
  $("submit").textContent = active ? "Make the reel" : "Make the video";
  if (active) drawStrip();
  return active;
}

function move(from, to) {
  if (to < 0 || to >= reel.photos.length) return;
  const [photo] = reel.photos.splice(from, 1);
  reel.photos.splice(to, 0, photo);
  drawStrip();
  $("reel-strip").querySelectorAll("li")[to].querySelector(
    from < to ? ".later" : ".earlier")?.focus();
}

function remove(index) {
  const [photo] = reel.photos.splice(index, 1);
  URL.revokeObjectURL(photo.url);
  if (reelActive()) drawStrip();
  else chooseReel(reel.photos.map((p) => p.file));
}

function button(text, label, className, onClick, disabled) {
  const b = document.createElement("button");
  Object.assign(b, {type: "button", textContent: text, className, disabled});
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function drawStrip() {
  const strip = $("reel-strip");
  strip.textContent = "";
  const n = reel.photos.length;
  reel.photos.forEach((photo, i) => {
    const li = document.createElement("li");
    li.dataset.name = photo.file.name;
    li.draggable = true;
    const img = document.createElement("img");
    Object.assign(img, {src: photo.url, alt: `Photo ${i + 1}: ${photo.file.name}`});
    const name = document.createElement("span");
    name.className = "reel-name";
    name.textContent = `${i + 1}. ${photo.file.name}`;
    const bar = document.createElement("span");
    bar.className = "reel-buttons";
    bar.append(button("←", `Move photo ${i + 1} earlier`, "earlier", () => move(i, i - 1), i === 0),
               button("→", `Move photo ${i + 1} later`, "later", () => move(i, i + 1), i === n - 1),
               button("✕", `Remove photo ${i + 1}`, "remove", () => remove(i), false));
    li.append(img, name, bar);
    li.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", String(i)));
    li.addEventListener("dragover", (e) => e.preventDefault());
    li.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      const from = e.dataTransfer.getData("text/plain");  // "" for files from outside
      if (/^\d+$/.test(from)) move(Number(from), i);
    });
    strip.append(li);
  });
  $("reel-status").textContent = `${n} photos, in this order: ${n * 3} s with 3 s each.`;
}

// The reel's fields as the route takes them (defaults left out).
export function reelFields() {
  const fields = {slides: reel.photos.map(() => ({})), transition: $("reel-transition").value};
  const title = $("reel-title").value.trim();
  if (title) fields.title = title;
  if ($("reel-focus").checked) fields.focus = "auto";
  return fields;
}

// The multipart body of POST /v1/video/reel.
export function reelBody() {
  const body = new FormData();
  for (const photo of reel.photos) body.append("image", photo.file, photo.file.name);
  const track = $("reel-audio").files[0];
  if (track) body.append("audio", track, track.name);
  body.append("reel", JSON.stringify(reelFields()));
  return body;
}

// What the recent list calls it.
export function reelName() {
  return $("reel-title").value.trim() || `Reel of ${reel.photos.length} photos`;
}

export function buildReel() {
  const select = $("reel-transition");
  select.append(...TRANSITIONS.map(([value, label]) => new Option(label, value)));
}
