// Knowledge bases: create one, pick one, drop files on it (each file its own upload, with a
// progress bar fed by XMLHttpRequest's upload events), list and delete its documents, and try a
// search to see the scored chunks a RAG chat would get.

import { api, upload } from "./api.js";
import { $, attempt, bytes, date, el, fixed, notify, status } from "./ui.js";

const PARALLEL_UPLOADS = 2;
const EXTENSIONS = ".txt .md .markdown .html .htm .pdf .docx .json .jsonl";
let selected = null; // the name of the knowledge base picked
let shown = null; // the name of the knowledge base whose page is built (uploads and search stay on refresh)

const path = (...parts) => `/v1/knowledge_bases/${parts.map(encodeURIComponent).join("/")}`;

async function refresh() {
  const { data } = await api("/v1/knowledge_bases");
  const list = $("#kb-list");
  list.replaceChildren(
    ...data.map((kb) =>
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", "aria-current": kb.name === selected ? "true" : null, onclick: () => pick(kb.name) },
          el("strong", { text: kb.name }),
          el("span", { class: "hint", text: `${kb.documents} documents · ${kb.chunks} chunks` }),
        ),
      ),
    ),
  );
  if (!data.length) list.append(el("li", { class: "hint", text: "No knowledge base yet." }));
  if (!data.some((kb) => kb.name === selected)) selected = data[0]?.name ?? null;
  const kb = data.find((k) => k.name === selected);
  if (!kb) {
    shown = null;
    $("#kb-detail").replaceChildren(el("p", { class: "hint", text: "Create a knowledge base to upload documents." }));
    return;
  }
  if (shown !== kb.name) build(kb);
  const docs = (await api(path(kb.name, "documents"))).data;
  $("#kb-docs-title").textContent = `Documents (${docs.length})`;
  $("#kb-docs-body").replaceChildren(documents(kb.name, docs));
}

async function pick(name) {
  selected = name;
  await attempt(refresh);
  $("#kb-detail h2")?.focus();
}

// The page of one knowledge base: what it is, the drop zone, its documents (filled by refresh), search.
function build(kb) {
  shown = kb.name;
  const files = el("input", { id: "kb-files", type: "file", multiple: true, accept: EXTENSIONS.replaceAll(" ", ",") });
  const drop = el(
    "div",
    { class: "drop", id: "kb-drop" },
    el("p", { text: "Drag files here, or" }),
    el("label", { for: "kb-files", class: "visually-hidden", text: `Files to upload to ${kb.name}` }),
    files,
    el("p", { class: "hint", text: `Accepted: ${EXTENSIONS}` }),
  );
  files.addEventListener("change", () => send(kb.name, [...files.files]).then(() => (files.value = "")));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send(kb.name, [...event.dataTransfer.files]);
  });

  const query = el("input", { id: "kb-query", type: "search", required: true, autocomplete: "off" });
  const topK = el("input", { id: "kb-topk", type: "number", min: 1, max: 100, value: 5 });
  const mode = el("select", { id: "kb-mode" }, ["hybrid", "dense", "bm25"].map((m) => el("option", { text: m })));
  const hits = el("ol", { id: "kb-hits", class: "hits", "aria-live": "polite" });
  const search = el(
    "form",
    {
      class: "fields",
      onsubmit: (event) => {
        event.preventDefault();
        attempt(() => find(kb.name, query, topK, mode, hits));
      },
    },
    field("kb-query", "Query", query, "wide"),
    field("kb-topk", "Results", topK, "narrow"),
    field("kb-mode", "Mode", mode, "narrow"),
    el("button", { type: "submit", class: "primary", text: "Search" }),
  );

  const { chunk_tokens: size, chunk_overlap: overlap } = kb.chunking;
  const chunking = `${size} tokens a chunk, ${overlap} overlap · created ${date(kb.created)}`;
  $("#kb-detail").replaceChildren(
    el("h2", { tabindex: -1, text: kb.name }),
    el("p", { class: "hint", text: `${kb.embedder} · ${kb.dimension} dimensions · ${chunking}` }),
    el("button", { type: "button", class: "danger", text: "Delete knowledge base", onclick: () => remove(kb.name) }),
    el("h3", { text: "Upload" }),
    drop,
    el("ul", { id: "kb-uploads", class: "uploads", "aria-label": "Uploads", "aria-live": "polite" }),
    el("h3", { id: "kb-docs-title", text: "Documents" }),
    el("div", { id: "kb-docs-body" }),
    el("h3", { text: "Try a search" }),
    search,
    hits,
  );
}

function field(id, label, control, width = "") {
  return el("div", { class: `field ${width}` }, el("label", { for: id, text: label }), control);
}

function documents(kb, docs) {
  if (!docs.length) return el("p", { class: "hint", text: "No documents yet." });
  const rows = docs.map((doc) =>
    el(
      "tr",
      {},
      el("td", { class: "name", text: doc.filename }),
      el("td", { text: bytes(doc.bytes) }),
      el("td", { text: String(doc.chunks) }),
      el("td", { text: date(doc.created) }),
      el(
        "td",
        {},
        el("button", {
          type: "button",
          class: "danger small",
          text: "Delete",
          "aria-label": `Delete ${doc.filename}`,
          onclick: () =>
            attempt(async () => {
              await api(path(kb, "documents", doc.id), { method: "DELETE" });
              await refresh();
            }),
        }),
      ),
    ),
  );
  const head = el("tr", {}, ["File", "Size", "Chunks", "Added", ""].map((h) => el("th", { scope: "col", text: h })));
  const table = el("table", { id: "kb-docs" }, el("thead", {}, head), el("tbody", {}, rows));
  return el("div", { class: "table-wrap" }, table);
}

// Upload `files` to knowledge base `kb`, PARALLEL_UPLOADS at a time, each with its own progress row.
// The server answers an unchanged file (same content as a document it has) with that document's
// record and adds nothing; the console tells it apart by its id: known before this upload began,
// or already answered for an earlier file of the same drop.
async function send(kb, files) {
  const rows = files.map((file) => {
    const bar = el("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
    const state = el("span", { class: "state", text: "waiting" });
    $("#kb-uploads").append(el("li", {}, el("span", { class: "name", text: file.name }), bar, state));
    return { file, bar, state };
  });
  const known = new Set();
  try {
    for (const doc of (await api(path(kb, "documents"))).data) known.add(doc.id);
  } catch {
    // unknown: every answer reads as added; the upload itself reports any real failure
  }
  const next = async () => {
    for (let row = rows.shift(); row; row = rows.shift()) {
      const form = new FormData();
      form.append("files", row.file, row.file.name);
      try {
        const result = await upload(path(kb, "documents"), form, (fraction) => {
          row.bar.value = fraction;
          row.state.textContent = fraction < 1 ? `${Math.round(fraction * 100)}%` : "indexing…";
        });
        row.bar.value = 1;
        status(row.state, outcome(row.file.name, result.data, known));
      } catch (error) {
        status(row.state, error.message, true);
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_UPLOADS }, next));
  await attempt(refresh);
}

// "added: 3 chunks", "unchanged (already in the knowledge base)", or both for a file of several documents.
function outcome(filename, docs, known) {
  const added = docs.filter((doc) => !known.has(doc.id));
  const kept = docs.filter((doc) => known.has(doc.id));
  docs.forEach((doc) => known.add(doc.id));
  const parts = [];
  if (added.length) parts.push(`added: ${added.map((doc) => `${doc.chunks} chunks`).join(", ")}`);
  if (kept.length) {
    const other = [...new Set(kept.map((doc) => doc.filename))].filter((name) => name !== filename);
    const where = `already in the knowledge base${other.length ? ` as ${other.join(", ")}` : ""}`;
    parts.push(kept.length === docs.length ? `unchanged (${where})` : `${kept.length} unchanged (${where})`);
  }
  return parts.join("; ") || "nothing to add";
}

async function find(kb, query, topK, mode, hits) {
  const body = { query: query.value, top_k: Number(topK.value) || 5, mode: mode.value };
  const { data } = await api(path(kb, "search"), { method: "POST", json: body });
  hits.replaceChildren(
    ...data.map((hit) => {
      const where = [hit.filename, hit.page != null ? `page ${hit.page}` : null, hit.section].filter(Boolean);
      return el(
        "li",
        {},
        el(
          "p",
          { class: "cite-head" },
          el("strong", { text: where.join(" · ") }),
          el("span", { class: "score", text: `score ${fixed(hit.score)}` }),
        ),
        el("blockquote", { text: hit.text }),
      );
    }),
  );
  if (!data.length) hits.append(el("li", { class: "hint", text: "Nothing matched." }));
}

async function remove(name) {
  if (!confirm(`Delete knowledge base ${name} and all its documents?`)) return;
  await attempt(async () => {
    await api(path(name), { method: "DELETE" });
    selected = shown = null;
    await refresh();
  });
}

export function init() {
  $("#kb-create").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("#kb-name").value.trim();
    const body = { name };
    if ($("#kb-chunk").value) body.chunk_tokens = Number($("#kb-chunk").value);
    if ($("#kb-overlap").value) body.chunk_overlap = Number($("#kb-overlap").value);
    attempt(async () => {
      await api("/v1/knowledge_bases", { method: "POST", json: body });
      $("#kb-name").value = "";
      notify(null);
      await pick(name);
    });
  });
}

export async function show() {
  await attempt(refresh);
}
