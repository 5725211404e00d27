// The console's only door to the gateway: JSON calls, server-sent event streams, uploads with
// progress and binary downloads, all with the API key as a Bearer token. The key lives in
// sessionStorage (this tab only, gone when it closes), never in localStorage or a cookie.
// Every failure becomes an ApiError whose message is the OpenAI error JSON's `error.message`.

const KEY = "lorag.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The message of an OpenAI error body (or of whatever else came back).
function errorFrom(status, text) {
  try {
    const error = JSON.parse(text).error;
    if (error && error.message) return new ApiError(error.message, status, error.code ?? null);
  } catch {
    // not JSON: fall through to the status line
  }
  return new ApiError(`HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`, status);
}

async function send(path, { method = "GET", json, signal } = {}) {
  const init = { method, signal, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }) };
  if (json !== undefined) init.body = JSON.stringify(json);
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`cannot reach the gateway: ${error.message}`);
  }
  if (!response.ok) throw errorFrom(response.status, await response.text());
  return response;
}

// JSON in, JSON out (null for an empty body, e.g. 204).
export async function api(path, options = {}) {
  const response = await send(path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// The bytes at `path` as a Blob (for images and reports that need the Authorization header).
export async function blob(path) {
  return (await send(path)).blob();
}

export async function text(path) {
  return (await send(path)).text();
}

// POST a streamed chat completion; calls onChunk(chunk) for every `data:` event until [DONE].
// An error event in the stream (OpenAI's `{"error": ...}`) is thrown as an ApiError.
export async function streamChat(body, onChunk, signal) {
  const response = await send("/v1/chat/completions", { method: "POST", json: { ...body, stream: true }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(chunk.error.message, response.status, chunk.error.code ?? null);
      onChunk(chunk);
    }
  }
}

// Multipart upload with XMLHttpRequest, whose upload progress events fetch does not offer.
// onProgress(fraction) as bytes go out; resolves with the parsed JSON response.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
      else reject(errorFrom(xhr.status, xhr.responseText));
    });
    xhr.addEventListener("error", () => reject(new ApiError("the upload failed: cannot reach the gateway")));
    xhr.send(form);
  });
}

// The served models, split for pickers: arms without a knowledge base, and knowledge-base names.
// A retrieval arm's card names its knowledge base and the model before the "@" (the gateway
// parses model names; the console never does): `parts` maps every listed id to [model, kb].
export async function catalog() {
  const [models, kbs] = await Promise.all([
    api("/v1/models"),
    api("/v1/knowledge_bases").catch(() => ({ data: [] })),
  ]);
  const ids = models.data.map((model) => model.id);
  const parts = new Map(models.data.map((m) => [m.id, m.knowledge_base ? [m.parent, m.knowledge_base] : [m.id, ""]]));
  const kbNames = new Set(kbs.data.map((kb) => kb.name));
  for (const model of models.data) if (model.knowledge_base) kbNames.add(model.knowledge_base);
  const arms = models.data.filter((model) => !model.knowledge_base).map((model) => model.id);
  return { ids, arms, parts, base: arms[0] ?? null, kbs: [...kbNames].sort() };
}
