// Compare: start a comparison (POST /v1/compare with the chosen questions file sent inline), watch
// its progress (GET /v1/compare/{id} once a second while it runs) or cancel it, then read the
// per-arm summary and the report. The report is fetched with the API key and shown in a sandboxed frame; the
// links open or download copies of report.html, report.md and report.json. A request that fails
// (the run, its report, the list of runs) shows its error in the page-wide alert, and the run's
// box says what it could not show, so it is never left stale.

import { api, catalog, text } from "./api.js";
import { $, armPicker, attempt, date, el, fixed, fmt, notify } from "./ui.js";

const POLL_MS = 1000;
const METRICS = {
  exact_match: "exact match",
  f1: "token F1",
  rouge_l: "ROUGE-L",
  judge: "judge",
  source_recall: "answer in sources",
};
let picker = null;
let watching = null; // {id, timer} of the run shown
let reportUrls = [];

async function start(event) {
  event.preventDefault();
  const file = $("#cmp-file").files[0];
  const arms = picker.selected();
  if (!file || !arms.length) return;
  const body = {
    arms,
    questions_file: { filename: file.name, content: await file.text() },
    max_tokens: Number($("#cmp-max").value) || 64,
  };
  if ($("#cmp-limit").value) body.limit = Number($("#cmp-limit").value);
  if ($("#cmp-judge").value.trim()) body.judge = { model: $("#cmp-judge").value.trim() };
  const run = await attempt(() => api("/v1/compare", { method: "POST", json: body }));
  if (run) {
    watch(run.id, run);
    attempt(listRuns);
  }
}

// Show run `id` (`known`: its object, when the caller has it) and follow it while it runs.
function watch(id, known = null) {
  clearTimeout(watching?.timer);
  watching = { id, timer: null };
  for (const button of document.querySelectorAll("#cmp-runs button")) {
    button.setAttribute("aria-current", String(button.dataset.id === id));
  }
  const tick = async (run) => {
    if (!run) {
      try {
        run = await api(`/v1/compare/${encodeURIComponent(id)}`);
      } catch (error) {
        if (watching?.id === id) lost(id, error);
        return;
      }
    }
    if (watching?.id !== id) return;
    const parts = await view(run);
    if (watching?.id !== id) return;
    const box = $("#cmp-run");
    box.hidden = false;
    box.dataset.run = id;
    box.replaceChildren(...parts);
    box.setAttribute("aria-busy", String(run.status === "running"));
    if (run.status === "running") watching.timer = setTimeout(() => tick(null), POLL_MS);
    else attempt(listRuns);
  };
  tick(known);
}

// The run could not be fetched: say so in the alert and in its box, which stops updating.
function lost(id, error) {
  notify(error);
  const box = $("#cmp-run");
  if (box.dataset.run !== id) box.replaceChildren(el("h2", { text: `Run ${id}` }));
  box.querySelector(".lost")?.remove();
  const why = `Run ${id} could not be updated (${error.message}); pick it under Runs to try again.`;
  box.append(el("p", { class: "status error lost", text: why }));
  box.dataset.run = id;
  box.hidden = false;
  box.setAttribute("aria-busy", "false");
}

// The contents of the run's box: progress, error, summary and, once completed, the report.
async function view(run) {
  const { done, total } = run.progress;
  const parts = [
    el("h2", { text: `Run ${run.id}` }),
    el("p", { class: "hint", text: `${run.arms.join(" · ")} · started ${date(run.created)}` }),
    el(
      "div",
      { class: "progress-line" },
      el("label", { for: "cmp-progress", text: `${run.status}: ${done} of ${total} answers` }),
      el("progress", { id: "cmp-progress", max: total || 1, value: done }),
    ),
  ];
  if (run.status === "running") {
    parts.push(el("button", { type: "button", class: "danger", onclick: () => cancel(run.id), text: "Cancel run" }));
  }
  if (run.error) parts.push(el("p", { class: "status error", role: "alert", text: `The run failed: ${run.error}` }));
  if (run.summary) parts.push(summary(run.summary));
  if (run.status === "completed") {
    try {
      parts.push(...(await report(run)));
    } catch (error) {
      notify(error);
      parts.push(el("p", { class: "status error", text: `The report could not be loaded: ${error.message}` }));
    }
  }
  return parts;
}

// POST /v1/compare/{id}/cancel: the server stops the run's requests; the box shows it cancelled.
async function cancel(id) {
  const run = await attempt(() => api(`/v1/compare/${encodeURIComponent(id)}/cancel`, { method: "POST" }));
  if (run && watching?.id === id) watch(id, run);
}

function summary(rows) {
  const metrics = Object.keys(METRICS).filter((m) => rows.some((row) => row[m] !== undefined));
  const head = ["Arm", ...metrics.map((m) => METRICS[m]), "latency (s)", "prompt tokens", "completion tokens", "errors"];
  const cell = (row, m) => {
    const ci = row.ci?.[m];
    return ci ? `${fixed(row[m])} (${fixed(ci[0], 2)}–${fixed(ci[1], 2)})` : fixed(row[m]);
  };
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { id: "cmp-summary" },
      el("caption", { text: "Mean per arm (95% confidence interval)" }),
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))),
      el(
        "tbody",
        {},
        rows.map((row) =>
          el(
            "tr",
            {},
            el("th", { scope: "row", text: row.arm }),
            metrics.map((m) => el("td", { text: cell(row, m) })),
            el("td", { text: fixed(row.latency_s, 2) }),
            el("td", { text: fixed(row.prompt_tokens, 1) }),
            el("td", { text: fixed(row.completion_tokens, 1) }),
            el("td", { text: fmt(row.errors) }),
          ),
        ),
      ),
    ),
  );
}

async function report(run) {
  reportUrls.forEach((url) => URL.revokeObjectURL(url));
  reportUrls = [];
  const files = [
    ["html", "report.html", "text/html"],
    ["markdown", "report.md", "text/markdown"],
    ["json", "report.json", "application/json"],
  ];
  const bodies = await Promise.all(files.map(([key]) => text(run.report[key])));
  const links = files.map(([, name, type], i) => {
    const url = URL.createObjectURL(new Blob([bodies[i]], { type }));
    reportUrls.push(url);
    const attrs = name.endsWith(".html") ? { target: "_blank", rel: "noopener" } : { download: `${run.id}-${name}` };
    const label = name.endsWith(".html") ? "Open report.html" : `Download ${name}`;
    return el("li", {}, el("a", { href: url, ...attrs, text: label }));
  });
  return [
    el("ul", { class: "links" }, links),
    el("iframe", { class: "report", title: `Report of ${run.id}`, sandbox: "", srcdoc: bodies[0] }),
  ];
}

// The list of runs; throws when it cannot be fetched (callers wrap it in attempt()).
async function listRuns() {
  const { data } = await api("/v1/compare");
  const list = $("#cmp-runs");
  list.replaceChildren(
    ...data
      .sort((a, b) => b.created - a.created)
      .map((run) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              "data-id": run.id,
              "aria-current": String(run.id === watching?.id),
              onclick: () => watch(run.id),
            },
            el("strong", { text: run.id }),
            el("span", { class: "hint", text: `${run.status} · ${run.arms.length} arms · ${date(run.created)}` }),
          ),
        ),
      ),
  );
  if (!data.length) list.append(el("li", { class: "hint", text: "No run yet." }));
}

export function init() {
  picker = armPicker($("#cmp-arms"), "cmp");
  $("#cmp-form").addEventListener("submit", start);
}

export async function show() {
  await attempt(async () => {
    picker.set((await catalog()).ids, Infinity);
    await listRuns();
  });
}
