// Named motions: each is a set of request fields, the ones a visitor would otherwise have
// to learn. ``point`` names the field a click on the image sets (kept when switching
// between looks that have one).

export const LOOKS = [
  {id: "zoom-in", name: "Slow zoom in", note: "Gently closer, towards the centre or a point you click.",
   fields: {zoom_speed: 3, direction: "in"}, point: "focus"},
  {id: "zoom-out", name: "Zoom out", note: "Starts close, ends on the whole picture.",
   fields: {zoom_speed: 6, direction: "out"}, point: "focus"},
  {id: "pan-right", name: "Pan left to right", note: "Slides across the picture.",
   fields: {start_zoom: 1.4, end_zoom: 1.4, start_focus: [0, 0.5], end_focus: [1, 0.5]}},
  {id: "pan-left", name: "Pan right to left", note: "Slides across the other way.",
   fields: {start_zoom: 1.4, end_zoom: 1.4, start_focus: [1, 0.5], end_focus: [0, 0.5]}},
  {id: "zoom-point", name: "Zoom into a point you click",
   note: "Click the image to choose the point.",
   fields: {start_zoom: 1, end_zoom: 2.5, focus: [0.5, 0.5], easing: "ease-in-out"},
   point: "focus"},
];

// Every field some look sets: choosing a look sets all of these (to its value, or empty).
export const LOOK_FIELDS = [...new Set(LOOKS.flatMap((look) => Object.keys(look.fields)))];

// ``values`` with ``look`` chosen: its fields, the others of LOOK_FIELDS cleared, and the
// point a click chose kept.
export function withLook(values, look) {
  const out = {...values};
  for (const name of LOOK_FIELDS) delete out[name];
  Object.assign(out, structuredClone(look.fields));
  if (look.point && values[look.point] !== undefined) out[look.point] = values[look.point];
  return out;
}

// The look ``values`` are, if any. ``defaults`` gives a field's value when it is not
// given (so {direction: "in"} matches a request that leaves direction out).
export function lookOf(values, defaults) {
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const norm = (name, source) => (source[name] !== undefined ? source[name] : defaults[name]);
  return LOOKS.find((look) => LOOK_FIELDS.every((name) => name === look.point
    || same(norm(name, look.fields), norm(name, values))));
}
