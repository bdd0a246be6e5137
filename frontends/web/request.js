// "Show the request": the fields the page will send, and the same request as a curl
// command to copy (the key read from $ZOOMREEL_API_KEY, never written out).

const $ = (id) => document.getElementById(id);

// A word for a POSIX shell, in single quotes.
function quoted(text) {
  return "'" + String(text).replace(/'/g, "'\\''") + "'";
}

// A form field's text as the multipart upload sends it (points as "x,y").
export function formText(value) {
  return Array.isArray(value) ? value.join(",") : String(value);
}

// ``image``: {file: name} or {url}; ``fields``: the request fields besides the image.
function curlCommand(origin, image, fields) {
  const lines = [`curl -X POST ${quoted(origin + "/v1/image/convert/video")}`,
                 `-H "X-API-Key: $ZOOMREEL_API_KEY"`];
  if (image.file !== undefined) {
    const name = image.file.replace(/["\\]/g, "\\$&");
    lines.push(`-F ${quoted(`image=@"${name}"`)}`);
    for (const [name, value] of Object.entries(fields)) {
      const text = formText(value);
      // -F reads @file, <file and ;type= in a value: --form-string takes it as it is.
      const option = /[;@<"]/.test(text) ? "--form-string" : "-F";
      lines.push(`${option} ${quoted(`${name}=${text}`)}`);
    }
  } else {
    lines.push(`-H 'Content-Type: application/json'`,
               `-d ${quoted(JSON.stringify({image_url: image.url, ...fields}))}`);
  }
  return lines.join(" \\\n  ");
}

export function showRequest(image, fields) {
  const body = image.file !== undefined ? {image: `(the file ${image.file})`, ...fields}
    : {image_url: image.url, ...fields};
  // One field a line; a point's numbers stay on its line (JSON strings hold no newline).
  $("request-json").textContent = JSON.stringify(body, null, 2)
    .replace(/\[\n\s+([-\d.e+]+(?:,\n\s+[-\d.e+]+)*)\n\s*\]/g,
             (_, inner) => `[${inner.split(/,\s+/).join(", ")}]`);
  $("request-how").textContent = image.file !== undefined
    ? "Sent as multipart/form-data: the file as the field image, and these fields beside it."
    : "Sent as JSON.";
  $("request-curl").textContent = curlCommand(location.origin, image, fields);
}

export async function copyCurl() {
  const text = $("request-curl").textContent;
  const note = $("copy-status");
  try {
    await navigator.clipboard.writeText(text);
    note.textContent = "Copied.";
  } catch (err) {  // no clipboard here: select it for Ctrl+C
    const range = document.createRange();
    range.selectNodeContents($("request-curl"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    note.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
}
