// The request fields on the page, built from the API's own schema: each property's x- keys
// (x-label, x-hint, x-control, x-group, x-expert, x-choice-labels, x-alternative, x-form)
// say where it goes and how it is shown, so a field the API gains appears by itself.
//
// Everyday fields go on the first screen (a field whose x-group names a data-slot on the
// page goes there); expert ones under "More options", by x-group. The forms of an
// alternative (zoom by speed, or from ... to ...) are one choice: the fields of the forms
// not chosen are disabled, and never sent.

let properties = {};
const controls = new Map();      // name -> {prop, wrap, inputs: [...]}
const alternatives = new Map();  // alternative -> {forms: [form, ...], chosen, radios}

export function fieldNames() { return [...controls.keys()]; }
export function propertyOf(name) { return properties[name]; }
export function labelOf(name) { return properties[name]?.["x-label"] || name; }
export function controlOf(name) { return properties[name]?.["x-control"] || ""; }

function element(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value);
  }
  el.append(...children);
  return el;
}

function shown(value) {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function choiceLabel(prop, value) {
  const i = prop.enum.indexOf(value);
  return (prop["x-choice-labels"] || [])[i] || value;
}

// One field: its label, control and help line, in a wrapper that carries its name.
function control(name, prop) {
  const kind = prop["x-control"];
  const id = "f-" + name;
  const hint = prop["x-hint"] || prop.description || "";
  const help = element("small", {id: "h-" + name, class: "hint", text: hint});
  const error = element("small", {id: "e-" + name, class: "field-error", role: "alert"});
  const described = `h-${name} e-${name}`;
  const wrap = element("div", {class: "field", "data-field": name, "data-control": kind});
  let inputs;
  if (kind === "segmented") {
    const set = element("fieldset", {class: "segmented", "aria-describedby": described},
                        element("legend", {text: prop["x-label"]}));
    inputs = prop.enum.map((value) => {
      const input = element("input", {type: "radio", name, value});
      input.checked = value === prop.default;
      set.append(element("label", {class: "segment"}, input,
                         element("span", {text: choiceLabel(prop, value)})));
      return input;
    });
    wrap.append(set, help, error);
  } else if (kind === "switch") {
    const input = element("input", {type: "checkbox", id, name, "aria-describedby": described});
    input.checked = prop.default === prop.enum[1];
    inputs = [input];
    wrap.classList.add("switch");
    wrap.append(element("label", {for: id}, input,
                        element("span", {text: prop["x-label"]})), help, error);
  } else {
    let input;
    if (kind === "select") {
      input = element("select");
      input.append(...prop.enum.map((v) => new Option(choiceLabel(prop, v), v)));
      input.value = prop.default ?? prop.enum[0];
    } else {
      input = element("input", {type: kind === "url" ? "url" : "text", spellcheck: false,
                                autocomplete: "off"});
      if (kind === "number") input.inputMode = "decimal";
      if (kind === "url") input.inputMode = "url";
      if (prop.default !== undefined && prop.default !== null) {
        input.placeholder = shown(prop.default);
      } else if (kind === "point") {
        input.placeholder = "x, y";
      } else if (kind === "url") {
        input.placeholder = "https://example.com/…";
      }
    }
    Object.assign(input, {id, name});
    input.setAttribute("aria-describedby", described);
    inputs = [input];
    const label = element("label", {for: id, text: prop["x-label"]});
    if (kind === "colour") {
      const picker = element("input", {type: "color", "aria-label": prop["x-label"] + " picker"});
      picker.value = /^#[0-9a-f]{6}$/i.test(prop.default || "") ? prop.default : "#000000";
      picker.addEventListener("input", () => {
        input.value = picker.value;
        input.dispatchEvent(new Event("input", {bubbles: true}));
      });
      input.addEventListener("input", () => {
        if (/^#[0-9a-f]{6}$/i.test(input.value)) picker.value = input.value;
      });
      wrap.append(label, element("div", {class: "pair"}, input, picker), help, error);
      inputs.push(picker);
    } else {
      wrap.append(label, input, help, error);
    }
  }
  if (prop["x-alternative"]) {
    wrap.dataset.alternative = prop["x-alternative"];
    wrap.dataset.form = prop["x-form"];
  }
  controls.set(name, {prop, wrap, inputs});
  return wrap;
}

// The choice between the forms of one alternative, as a row of buttons.
function alternativeSwitch(alt, forms) {
  const set = element("fieldset", {class: "segmented alternative", "data-switch": alt},
                      element("legend", {text: `${alt}: one of`}));
  const radios = forms.map((form, i) => {
    const input = element("input", {type: "radio", name: "form-" + alt, value: form});
    input.checked = i === 0;
    input.addEventListener("change", () => { if (input.checked) chooseForm(alt, form, true); });
    set.append(element("label", {class: "segment"}, input, element("span", {text: form})));
    return input;
  });
  alternatives.get(alt).radios = radios;
  return set;
}

export function buildFields(schema, firstScreen, more) {
  properties = schema.properties;
  controls.clear();
  alternatives.clear();
  const names = Object.keys(properties);
  for (const name of names) {
    const alt = properties[name]["x-alternative"];
    if (!alt) continue;
    if (!alternatives.has(alt)) alternatives.set(alt, {forms: [], chosen: "", radios: []});
    const forms = alternatives.get(alt).forms;
    if (!forms.includes(properties[name]["x-form"])) forms.push(properties[name]["x-form"]);
  }
  // Everyday fields: their slot, or the first screen.
  for (const name of names.filter((n) => !properties[n]["x-expert"])) {
    const group = properties[name]["x-group"];
    const slot = group && document.querySelector(`[data-slot="${CSS.escape(group)}"]`);
    (slot || firstScreen).append(control(name, properties[name]));
  }
  // Expert fields, by group: the page's order of groups first, then any new one.
  const expert = names.filter((n) => properties[n]["x-expert"]);
  const groups = [...new Set([...(schema["x-groups"] || []),
                              ...expert.map((n) => properties[n]["x-group"] || "Other")])];
  more.textContent = "";
  const switched = new Set();
  for (const group of groups) {
    const members = expert.filter((n) => (properties[n]["x-group"] || "Other") === group);
    if (!members.length) continue;
    const set = element("fieldset", {class: "group"}, element("legend", {text: group}));
    for (const name of members) {
      const alt = properties[name]["x-alternative"];
      if (alt && !switched.has(alt)) {
        switched.add(alt);
        set.append(alternativeSwitch(alt, alternatives.get(alt).forms));
      }
      set.append(control(name, properties[name]));
    }
    more.append(set);
  }
  for (const [alt, {forms}] of alternatives) {
    if (!switched.has(alt)) {  // no expert field: its switch goes before its first field
      const first = [...controls.values()].find((c) => c.prop["x-alternative"] === alt);
      first.wrap.before(alternativeSwitch(alt, forms));
    }
    chooseForm(alt, forms[0], false);
  }
}

// Make ``form`` the one that applies: the other forms' fields are disabled (hidden under
// More options; greyed, with a note, on the first screen).
function chooseForm(alt, form, announce) {
  const entry = alternatives.get(alt);
  if (!entry || entry.chosen === form) return;
  entry.chosen = form;
  for (const radio of entry.radios) radio.checked = radio.value === form;
  for (const {prop, wrap, inputs} of controls.values()) {
    if (prop["x-alternative"] !== alt) continue;
    const off = prop["x-form"] !== form;
    for (const input of inputs) input.disabled = off;
    wrap.classList.toggle("inactive", off);
    if (prop["x-expert"]) wrap.hidden = off;
    const hint = wrap.querySelector(".hint");
    const base = prop["x-hint"] || prop.description || "";
    hint.textContent = off && !prop["x-expert"]
      ? `Not used: “${form}” is chosen under More options.` : base;
  }
  if (announce) {
    const first = [...controls.values()].find((c) => c.prop["x-alternative"] === alt);
    first.wrap.dispatchEvent(new Event("change", {bubbles: true}));
  }
}

// After a look set its fields: an alternative whose chosen form was left empty goes back
// to its first form (the one the API applies when none is given).
export function settleForms() {
  for (const [alt, {forms, chosen}] of alternatives) {
    const names = [...controls.keys()].filter((n) => controls.get(n).prop["x-alternative"] === alt
                                                     && controls.get(n).prop["x-form"] === chosen);
    if (chosen !== forms[0] && names.every((n) => valueOf(n) === undefined)) {
      chooseForm(alt, forms[0], false);
    }
  }
}

function chosenForm(alt) { return alternatives.get(alt)?.chosen; }

function enabled(name) {
  const c = controls.get(name);
  return c && !(c.prop["x-alternative"] && chosenForm(c.prop["x-alternative"]) !== c.prop["x-form"]);
}

function parsePoint(text) {
  const parts = text.replace(/[\[\]\s]/g, "").split(",");
  const nums = parts.map(Number);
  return parts.length === 2 && parts.every((p) => p !== "") && nums.every(Number.isFinite)
    ? nums : text;  // left as text: the API names the field
}

// The value one control holds, as JSON (undefined: not given, the default applies).
function valueOf(name) {
  const {prop, inputs} = controls.get(name);
  const kind = prop["x-control"];
  let value;
  if (kind === "segmented") {
    value = inputs.find((i) => i.checked)?.value;
  } else if (kind === "switch") {
    value = prop.enum[inputs[0].checked ? 1 : 0];
  } else if (kind === "select") {
    value = inputs[0].value;
  } else {
    const text = inputs[0].value.trim();
    if (!text) return undefined;
    if (kind === "number") value = Number.isFinite(Number(text)) ? Number(text) : text;
    else if (kind === "point") value = parsePoint(text);
    else value = text;
    return value;
  }
  return value === prop.default ? undefined : value;  // a choice left at its default
}

// The request fields the form holds: the chosen forms only, defaults left out.
export function formValues() {
  const out = {};
  for (const name of controls.keys()) {
    if (!enabled(name)) continue;
    const value = valueOf(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

// Put ``value`` in the field's control (undefined: empty, or the default choice), and
// choose its form when it has a value.
export function setValue(name, value) {
  const c = controls.get(name);
  if (!c) return;
  const {prop, inputs} = c;
  const kind = prop["x-control"];
  const given = value !== undefined && value !== null;
  const choice = given ? value : prop.default;
  if (kind === "segmented") {
    for (const input of inputs) input.checked = input.value === choice;
  } else if (kind === "switch") {
    inputs[0].checked = choice === prop.enum[1];
  } else if (kind === "select") {
    inputs[0].value = choice ?? prop.enum[0];
  } else {
    inputs[0].value = given ? shown(value) : "";
    inputs[0].dispatchEvent(new Event("input"));  // the colour picker follows
  }
  if (given && prop["x-alternative"]) chooseForm(prop["x-alternative"], prop["x-form"], false);
}

// The enabled point fields (what a click on the image can set), by name.
export function pointFields() {
  return [...controls.keys()].filter((n) => controlOf(n) === "point" && enabled(n));
}

// -- errors at the field ------------------------------------------------------------

export function clearErrors() {
  for (const {wrap, inputs} of controls.values()) {
    wrap.classList.remove("invalid");
    wrap.querySelector(".field-error").textContent = "";
    for (const input of inputs) input.removeAttribute("aria-invalid");
  }
}

// Show ``rule`` at the field; with ``focus``, bring it into view and put the focus in it
// (opening the <details> it is folded in). Returns false when no such field is shown.
export function showFieldError(name, rule, focus) {
  clearErrors();
  const c = controls.get(name);
  if (!c || !enabled(name)) return false;
  c.wrap.classList.add("invalid");
  c.wrap.querySelector(".field-error").textContent = rule;
  for (const input of c.inputs) input.setAttribute("aria-invalid", "true");
  if (focus) {
    for (let d = c.wrap.closest("details"); d; d = d.parentElement.closest("details")) {
      d.open = true;
    }
    const target = c.inputs.find((i) => i.checked) || c.inputs[0];
    target.focus({preventScroll: true});
    c.wrap.scrollIntoView({block: "center", behavior: "instant"});
  }
  return true;
}
