// Talking to the zoomreel API: the key, and one function for every request.

const KEY_STORE = "zoomreel.api_key";

export const session = {key: localStorage.getItem(KEY_STORE) || ""};

export function saveKey(key) {
  session.key = key;
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
}

// A new Idempotency-Key: one per video the user asks for (see docs/api.md). A page on
// plain http (not loopback) has no crypto.randomUUID, but has getRandomValues.
export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
                    (b) => b.toString(16).padStart(2, "0")).join("");
}

// {ok, status, data, message, field, retryAfter}; an aborted request answers
// {aborted: true}. Never throws. ``extra`` holds more request headers.
export async function api(method, path, body, signal, extra = {}) {
  const headers = {"X-API-Key": session.key, ...extra};
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: payload, signal});
  } catch (err) {
    if (err.name === "AbortError") return {ok: false, aborted: true};
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
          field: (data && data.field) || "", rule: (data && data.rule) || "",
          retryAfter: Number(resp.headers.get("Retry-After")) || 0};
}
