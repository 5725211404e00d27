// Adapters: every served adapter with the summary of its lorag.json (base model, method, data,
// metrics, what it learned and kept) and its training loss curve, the adapters the registry refused and why, and loading
// (POST /v1/adapters) or unloading (DELETE) adapters registered through the API. These routes
// need an admin key when the server has admin keys.

import { api, blob } from "./api.js";
import { $, attempt, date, el, fmt, status } from "./ui.js";

let curves = []; // object URLs of the loss-curve images shown, released on the next refresh

function dataset(record) {
  if (!record) return "–";
  if (typeof record !== "object") return String(record);
  const name = record.path ? record.path.split(/[\\/]/).pop() : "";
  const rows = record.rows ? Object.entries(record.rows).map(([split, count]) => `${count} ${split}`) : [];
  const parts = [name, rows.length ? `${rows.join(" / ")} rows` : "", record.format ?? ""];
  return parts.filter(Boolean).join(" · ") || JSON.stringify(record);
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

// lorag.json's `behaviour` (tuner/behaviour.py): the taught behaviour on held-out phrasings, beside the base
// model's answers to them before training, and how far answers to held-out general prompts moved from the base model's.
function behaviour(b) {
  if (!b || (!b.taught && !b.kept)) return [];
  const marker = (b.taught ?? {}).marker ?? null;
  const rows = [];
  if (b.taught) {
    const how = marker ? `answers that say “${marker}”` : "answers close to the reference (token F1 ≥ 0.5)";
    const base = b.taught.base_rate === undefined ? "" : ` (base model: ${percent(b.taught.base_rate)})`;
    rows.push(["Taught", `${percent(b.taught.rate)} of ${b.taught.prompts} held-out phrasings${base}: ${how}`]);
    if (b.taught.f1 !== undefined) {
      const versus = b.taught.base_f1 === undefined ? "" : ` against ${fmt(b.taught.base_f1, 2)} for the base model`;
      rows.push([
        "Reference F1",
        `token F1 ${fmt(b.taught.f1, 2)} with the held-out reference answers${versus}; ` +
          `${fmt(b.taught.words, 1)} words an answer` +
          (b.taught.base_words === undefined ? "" : ` (base model ${fmt(b.taught.base_words, 1)})`),
      ]);
    }
  }
  if (b.kept) {
    rows.push([
      "Kept",
      `token F1 ${fmt(b.kept.f1_vs_base, 2)} against the base model's answers on ${b.kept.prompts} held-out general ` +
        `prompts (1 = unchanged), ${percent(b.kept.identical)} identical`,
    ]);
    if (b.kept.marker_rate !== null && b.kept.marker_rate !== undefined) {
      rows.push(["Leaks", `${percent(b.kept.marker_rate)} of those general answers say “${marker}”`]);
    }
  }
  return [
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "metrics behaviour" },
        el("caption", { text: "What it learned and kept" }),
        el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v })))),
      ),
    ),
  ];
}

// lorag.json's `warnings` (underfitting, overfitting: tuner/evaluation.py) and the settings the `auto` policy chose.
function warnings(list) {
  return (list ?? []).map((text) => el("p", { class: "warning", role: "note", text: `⚠ ${text}` }));
}

function chosen(auto) {
  const entries = Object.entries(auto ?? {});
  if (!entries.length) return [];
  return [
    el(
      "details",
      { class: "auto" },
      el("summary", { text: `Settings chosen by auto (${entries.length})` }),
      el(
        "ul",
        {},
        entries.map(([field, c]) => el("li", { text: `${field} = ${JSON.stringify(c.value)}: ${c.rule}` })),
      ),
    ),
  ];
}

function created(value) {
  const time = Date.parse(value);
  return Number.isNaN(time) ? String(value ?? "–") : date(time / 1000);
}

function card(adapter) {
  const m = adapter.manifest;
  const lora = m.lora ?? {};
  const facts = [
    ["Base model", m.base_model ?? "–"],
    ["Method", `${m.method ?? "–"} · ${adapter.peft_type}${adapter.rank ? ` r=${adapter.rank}` : ""}`],
    ["Targets", adapter.target_modules.join(", ") || "–"],
    ["Data", dataset(m.dataset)],
    ["Created", created(m.created)],
    ["Source", `${adapter.source}: ${adapter.path}`],
  ];
  if (lora.alpha !== undefined) {
    facts.splice(2, 0, ["LoRA", `alpha ${lora.alpha}, dropout ${fmt(lora.dropout ?? 0, 2)}`]);
  }
  const metrics = Object.entries(m.metrics ?? {});
  const figure = el("figure", { class: "curve" }, el("p", { class: "hint", text: "Loading the loss curve…" }));
  loadCurve(adapter.name, figure);
  const action =
    adapter.source === "registered"
      ? el("button", { type: "button", class: "danger", text: "Unload", onclick: () => unload(adapter.name) })
      : el("p", { class: "hint", text: "From the adapters folder: remove its folder on the server to unload it." });
  return el(
    "article",
    { class: "card adapter" },
    el("h2", { text: adapter.name }),
    el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    metrics.length
      ? el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            { class: "metrics" },
            el("caption", { text: "Metrics" }),
            el(
              "tbody",
              {},
              metrics.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: fmt(v, 4) }))),
            ),
          ),
        )
      : el("p", { class: "hint", text: "No metrics recorded." }),
    ...warnings(m.warnings),
    ...behaviour(m.behaviour),
    ...chosen(m.auto),
    figure,
    action,
  );
}

async function loadCurve(name, figure) {
  try {
    const url = URL.createObjectURL(await blob(`/v1/adapters/${encodeURIComponent(name)}/loss_curve.png`));
    curves.push(url);
    figure.replaceChildren(
      el("img", { src: url, alt: `Training loss of ${name} by step` }),
      el("figcaption", { text: "Training loss" }),
    );
  } catch (error) {
    const why = error.status === 404 ? "No loss curve saved." : error.message;
    figure.replaceChildren(el("p", { class: "hint", text: why }));
  }
}

async function refresh() {
  const listing = await api("/v1/adapters");
  curves.forEach((url) => URL.revokeObjectURL(url));
  curves = [];
  const list = $("#ad-list");
  list.replaceChildren(...listing.data.map(card));
  if (!listing.data.length) list.append(el("p", { class: "hint", text: "No adapter is served." }));
  const refused = listing.refused ?? [];
  $("#ad-refused").replaceChildren(
    ...(refused.length
      ? [
          el("h2", { text: "Refused" }),
          el(
            "ul",
            { class: "refused" },
            refused.map((r) => el("li", {}, el("strong", { text: r.name }), el("span", { text: `: ${r.reason}` }))),
          ),
        ]
      : []),
  );
}

async function unload(name) {
  await attempt(async () => {
    await api(`/v1/adapters/${encodeURIComponent(name)}`, { method: "DELETE" });
    status($("#ad-status"), `Unloaded ${name}.`);
    await refresh();
  });
}

export function init() {
  $("#ad-register").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#ad-name").value.trim();
    const folder = $("#ad-path").value.trim();
    status($("#ad-status"), `Loading ${name}…`);
    const loaded = await attempt(async () => {
      await api("/v1/adapters", { method: "POST", json: { name, path: folder } });
      return true;
    });
    if (!loaded) return status($("#ad-status"), `${name} was not loaded.`, true);
    status($("#ad-status"), `Loaded ${name}.`);
    $("#ad-name").value = $("#ad-path").value = "";
    await attempt(refresh);
  });
}

export async function show() {
  await attempt(refresh);
}
