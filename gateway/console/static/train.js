// Train: upload a training file (POST /v1/files checks every row; a bad one is refused with its
// line), start a fine-tuning job on the served base model (OpenAI's `supervised`, `dpo` or `reinforcement`
// with a grader, which "Try it" runs on one answer through graders/run, and an optional response format; lorag's ORPO and KTO through the
// `lorag` extension; "Retriever (knowledge base)": `lorag.method: "retriever"` tunes a knowledge base's
// embedder on its documents and re-indexes it, with no file), and follow a job: status, error, a live loss
// curve (a reward curve for reinforcement)
// (inline SVG from the `metrics` events, read once a second while the job is validating, queued or
// running and the page open), Pause and Resume (a paused job trains on from its last checkpoint)
// and Cancel. A job that succeeds is served at once as its `fine_tuned_model`, which the
// Playground and Side by side list when their tab next opens (they read /v1/models on every show).
// Uploads and starting, pausing, resuming or cancelling jobs need an admin key or one that may
// train; reading, a key.

import { api, upload } from "./api.js";
import { $, attempt, date, el, fmt, notify, status } from "./ui.js";

const JOBS = "/v1/fine_tuning/jobs";
const POLL_MS = 1000;
const ACTIVE = ["validating_files", "queued", "running"]; // followed once a second
const UNFINISHED = [...ACTIVE, "paused"];
const PREFERENCE = { dpo: null, orpo: "orpo", kto: "kto" }; // console method -> lorag.method (dpo: OpenAI's own)
const NAMES = { sft: "supervised", dpo: "DPO", orpo: "ORPO", kto: "KTO", grpo: "reinforcement" };
const [H, LEFT, RIGHT, TOP, BOTTOM] = [240, 56, 16, 12, 30]; // the chart's height and margins, in pixels
let files = new Map(); // uploaded training files by id
let watching = null; // the job shown: {id, timer, seen: event ids, steps: step -> metrics, messages, status}

const jobPath = (id, tail = "") => `${JOBS}/${encodeURIComponent(id)}${tail}`;
const label = (state) => state.replaceAll("_", " ");
const named = (method) => NAMES[method] ?? method;
// The method a job trains with: lorag's extension first, then OpenAI's type.
const TYPES = { dpo: "dpo", reinforcement: "grpo" };
const methodOf = (job) => named(job.lorag?.method ?? TYPES[job.method?.type] ?? "sft");

async function send(file) {
  const line = $("#tr-upload");
  if (!file) return;
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", file, file.name);
  status(line, `Uploading ${file.name}…`);
  try {
    const stored = await upload("/v1/files", form, (fraction) => {
      const done = `${file.name}: ${Math.round(fraction * 100)}%`;
      status(line, fraction < 1 ? `Uploading ${done}` : `Checking every row of ${file.name}…`);
    });
    const trains = stored.methods.map(named).join(", ");
    status(line, `${stored.filename}: ${stored.rows} rows · ${stored.format} · trains ${trains}`);
    await attempt(() => listFiles(stored.id));
  } catch (error) {
    status(line, `${file.name} was refused: ${error.message}`, true);
  }
}

// The uploaded files in the training and validation pickers; `choose` (an id) becomes the training file.
async function listFiles(choose = null) {
  const { data } = await api("/v1/files?purpose=fine-tune");
  files = new Map(data.map((f) => [f.id, f]));
  const training = $("#tr-training");
  const validation = $("#tr-validation");
  const keep = [choose ?? training.value, validation.value];
  const option = (f) => el("option", { value: f.id, text: `${f.filename} · ${f.rows} rows · ${f.format} (${f.id})` });
  training.replaceChildren(...data.map(option));
  if (!data.length) training.append(el("option", { value: "", text: "upload a file first" }));
  validation.replaceChildren(el("option", { value: "", text: "none" }), ...data.map(option));
  if (files.has(keep[0])) training.value = keep[0];
  if (files.has(keep[1])) validation.value = keep[1];
  methods();
}

// Offer only the methods the training file's format trains; beta only for the preference methods. The
// retriever needs no file: a knowledge base, and only epochs and batch size of the hyperparameters.
function methods() {
  const file = files.get($("#tr-training").value);
  const method = $("#tr-method");
  for (const option of method.options) {
    option.disabled = option.value !== "retriever" && Boolean(file) && !file.methods.includes(option.value);
  }
  if (method.selectedOptions[0]?.disabled) method.value = [...method.options].find((o) => !o.disabled)?.value ?? "sft";
  const retriever = method.value === "retriever";
  $("#tr-beta-field").hidden = retriever || method.value === "sft" || method.value === "grpo";
  $("#tr-grader-field").hidden = method.value !== "grpo";
  for (const id of ["#tr-files", "#tr-suffix-field", "#tr-lr-field"]) $(id).hidden = retriever;
  $("#tr-kb-field").hidden = !retriever;
  $("#tr-method-hint").textContent = retriever
    ? "Tunes the knowledge base's embedder on its own documents, then re-indexes it (lorag kb tune); no model is added."
    : file ? `${file.filename} trains: ${file.methods.map(named).join(", ")}.` : "";
}

// The retriever job's body: the knowledge base, and epochs and batch size where given (lorag's settings).
function retrieverJob() {
  const lorag = { method: "retriever", knowledge_base: $("#tr-kb").value };
  if ($("#tr-epochs").value !== "") lorag.epochs = Number($("#tr-epochs").value);
  if ($("#tr-batch").value !== "") lorag.batch_size = Number($("#tr-batch").value);
  return { model: $("#tr-model").value, training_file: "", lorag };
}

async function start(event) {
  event.preventDefault();
  const line = $("#tr-status");
  const method = $("#tr-method").value;
  if (method === "retriever" && !$("#tr-kb").value) return status(line, "Create a knowledge base first.", true);
  if (method === "retriever") return submit(line, retrieverJob());
  const training = $("#tr-training").value;
  if (!training) return status(line, "Upload a training file first.", true);
  const type = { sft: "supervised", grpo: "reinforcement" }[method] ?? "dpo";
  const hyperparameters = {};
  const settings = { hyperparameters };
  if (type === "reinforcement") {
    const editors = { grader: ["#tr-grader", "The grader"], response_format: ["#tr-format", "The response format"] };
    for (const [name, [id, what]] of Object.entries(editors)) {
      if (name === "response_format" && !$(id).value.trim()) continue;
      try {
        settings[name] = JSON.parse($(id).value);
      } catch (error) {
        return status(line, `${what} is not JSON: ${error.message}`, true);
      }
    }
  }
  const fields = { n_epochs: "#tr-epochs", batch_size: "#tr-batch", learning_rate_multiplier: "#tr-lr" };
  if (type === "dpo") fields.beta = "#tr-beta";
  for (const [name, id] of Object.entries(fields)) if ($(id).value !== "") hyperparameters[name] = Number($(id).value);
  const body = { model: $("#tr-model").value, training_file: training, method: { type, [type]: settings } };
  if ($("#tr-validation").value) body.validation_file = $("#tr-validation").value;
  if ($("#tr-suffix").value.trim()) body.suffix = $("#tr-suffix").value.trim();
  if (PREFERENCE[method]) body.lorag = { method: PREFERENCE[method] };
  await submit(line, body);
}

async function submit(line, body) {
  $("#tr-start").disabled = true;
  try {
    const job = await api(JOBS, { method: "POST", json: body });
    status(line, `Started ${job.id}.`);
    notify(null);
    watch(job.id, job);
    await attempt(listJobs);
  } catch (error) {
    status(line, `The job was not started: ${error.message}`, true);
    notify(error);
  } finally {
    $("#tr-start").disabled = false;
  }
}

// "Try it": the grader on one answer and row, through graders/run, before a job pays for it.
async function tryGrader() {
  const line = $("#tr-try-result");
  try {
    const grader = JSON.parse($("#tr-grader").value);
    const item = JSON.parse($("#tr-try-item").value || "{}");
    const body = { grader, model_sample: $("#tr-try-sample").value, item };
    const result = await api("/v1/fine_tuning/alpha/graders/run", { method: "POST", json: body });
    const failed = Object.entries(result.metadata.errors).filter(([, v]) => v === true).map(([k]) => k);
    status(line, `Reward ${short(result.reward)}${failed.length ? ` (errors: ${failed.join(", ")})` : ""}`, failed.length > 0);
  } catch (error) {
    status(line, `Not graded: ${error.message}`, true);
  }
}

async function listJobs() {
  const { data } = await api(`${JOBS}?limit=100`);
  const list = $("#tr-jobs");
  const item = (job) => {
    const attrs = { type: "button", "data-id": job.id, "aria-current": String(job.id === watching?.id) };
    const about = `${label(job.status)} · ${methodOf(job)} · ${date(job.created_at)}`;
    const button = el("button", attrs, el("strong", { text: job.fine_tuned_model ?? job.id }));
    button.append(el("span", { class: `hint job-state ${job.status}`, text: about }));
    button.addEventListener("click", () => watch(job.id).then(() => $("#tr-job h2")?.focus()));
    return el("li", {}, button);
  };
  list.replaceChildren(...data.map(item));
  if (!data.length) list.append(el("li", { class: "hint", text: "No job yet." }));
  return data;
}

// Show job `id` (`known`: its object, when the caller has it) and follow it while it is unfinished.
function watch(id, known = null) {
  clearTimeout(watching?.timer);
  const fresh = { id, timer: null, seen: new Set(), steps: new Map(), messages: [], status: null };
  watching = watching?.id === id ? { ...watching, timer: null } : fresh;
  for (const button of document.querySelectorAll("#tr-jobs button")) {
    button.setAttribute("aria-current", String(button.dataset.id === id));
  }
  return tick(watching, known);
}

async function tick(w, known = null) {
  let job;
  try {
    job = known ?? (await api(jobPath(w.id)));
    await readEvents(w);
  } catch (error) {
    if (watching !== w) return;
    notify(error); // and in the job's box, which stops updating
    $("#tr-job .lost")?.remove();
    const why = `Job ${w.id} could not be updated (${error.message}); pick it under Jobs to try again.`;
    return $("#tr-job").append(el("p", { class: "status error lost", text: why }));
  }
  if (watching !== w) return;
  render(job, w);
  const changed = w.status !== null && w.status !== job.status;
  w.status = job.status;
  if (changed) attempt(listJobs);
  if (changed && job.status === "succeeded") window.dispatchEvent(new Event("lorag:models")); // a model more
  if (ACTIVE.includes(job.status) && !$("#train").hidden) w.timer = setTimeout(() => tick(w), POLL_MS);
}

// The events not read yet, newest first in pages, down to the first one already seen.
async function readEvents(w) {
  const fresh = [];
  for (let after = null, more = true; more; ) {
    const query = new URLSearchParams({ limit: w.seen.size ? 50 : 1000 });
    if (after) query.set("after", after);
    const page = await api(jobPath(w.id, `/events?${query}`));
    const known = page.data.findIndex((e) => w.seen.has(e.id));
    fresh.push(...(known < 0 ? page.data : page.data.slice(0, known)));
    more = known < 0 && page.has_more && page.data.length > 0;
    after = page.data.at(-1)?.id;
  }
  for (const event of fresh.reverse()) {
    if (w.seen.has(event.id)) continue;
    w.seen.add(event.id);
    const step = event.data?.step; // a step's train and validation losses may come in two events
    if (event.type === "metrics" && step !== undefined) w.steps.set(step, { ...w.steps.get(step), ...event.data });
    else w.messages.unshift(event);
  }
}

function render(job, w) {
  const box = $("#tr-job");
  box.querySelector(".lost")?.remove();
  if (box.dataset.job !== job.id) {
    box.dataset.job = job.id;
    box.replaceChildren(
      el("h2", { tabindex: -1 }), el("p", { class: "hint" }),
      el("p", { class: "state" }, el("strong", { id: "tr-state", role: "status" }), el("span", { id: "tr-step" })),
      el("div", { id: "tr-error" }), el("div", { id: "tr-actions", class: "actions" }),
      el("dl", { id: "tr-facts", class: "facts" }),
      el("figure", { id: "tr-curve", class: "curve" }),
      el("h3", { text: "Events" }), el("ol", { id: "tr-events", class: "events" }),
    );
  }
  $("#tr-job h2").textContent = job.fine_tuned_model ?? job.id;
  $("#tr-job h2 + .hint").textContent = `${job.fine_tuned_model ? `${job.id} · ` : ""}created ${date(job.created_at)}`;
  const points = [...w.steps.values()].sort((a, b) => a.step - b.step);
  const last = points.at(-1);
  const state = $("#tr-state"); // a live region: it changes with the status only, not with every step
  if (state.textContent !== label(job.status)) state.textContent = label(job.status);
  state.className = `job-state ${job.status}`;
  const parts = last ? [`step ${last.step}${last.total_steps ? ` of ${last.total_steps}` : ""}`] : [];
  const left = job.status === "running" && job.estimated_finish && job.estimated_finish - Date.now() / 1000;
  if (left) parts.push(`about ${Math.max(0, Math.round(left))} s left`);
  $("#tr-step").textContent = parts.map((part) => ` · ${part}`).join("");
  const failure = job.error && el("p", { class: "status error", role: "alert", text: `Failed: ${job.error.message}` });
  $("#tr-error").replaceChildren(...(failure ? [failure] : []));
  const actions = $("#tr-actions");
  if (actions.dataset.status !== job.status) {
    actions.dataset.status = job.status;
    actions.replaceChildren(...jobActions(job));
  }
  $("#tr-facts").replaceChildren(...facts(job).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const figure = $("#tr-curve");
  figure.replaceChildren(...curve(points, Math.min(Math.max(figure.clientWidth, 280), 1000) || 640));
  const message = (e) => el("li", { class: e.level }, el("time", { text: date(e.created_at) }), ` ${e.message}`);
  $("#tr-events").replaceChildren(...w.messages.slice(0, 12).map(message));
}

function facts(job) {
  const h = job.hyperparameters;
  const file = (id) => (files.has(id) ? `${files.get(id).filename} (${id})` : id);
  const rate = `learning rate ×${fmt(h.learning_rate_multiplier)}`;
  const settings = [h.n_epochs === "auto" ? "epochs auto" : `${h.n_epochs} epochs`, `batch ${h.batch_size}`, rate];
  if (h.beta != null) settings.push(`beta ${fmt(h.beta)}`);
  const rows = [["Base model", job.model], ["Method", methodOf(job)], ["Settings", settings.join(" · ")]];
  if (job.method?.type === "retriever") rows.push(["Knowledge base", job.method.retriever.knowledge_base]);
  else rows.push(["Training file", file(job.training_file)]);
  if (job.validation_file) rows.push(["Validation file", file(job.validation_file)]);
  if (job.fine_tuned_model) rows.push(["Served as", `${job.fine_tuned_model} (pick it in the Playground)`]);
  if (job.trained_tokens) rows.push(["Trained tokens", String(job.trained_tokens)]);
  if (job.finished_at) rows.push(["Finished", date(job.finished_at)]);
  return rows;
}

// Pause a running job, resume a paused one (POST /pause, /resume), cancel any unfinished one.
function jobActions(job) {
  if (!UNFINISHED.includes(job.status)) return [];
  const button = (tail, text, busy, className) => {
    const onclick = (event) => act(job.id, tail, busy, event.target);
    return el("button", { type: "button", class: className, text, onclick });
  };
  const buttons = [];
  const pauses = job.method?.type !== "retriever"; // a retriever job is cancelled, not paused
  if (job.status === "running" && pauses) buttons.push(button("/pause", "Pause", "Pausing…", ""));
  if (job.status === "paused") buttons.push(button("/resume", "Resume", "Resuming…", "primary"));
  return [...buttons, button("/cancel", "Cancel job", "Cancelling…", "danger")];
}

async function act(id, tail, busy, button) {
  button.disabled = true;
  button.textContent = busy;
  const job = await attempt(() => api(jobPath(id, tail), { method: "POST" }));
  if (watching?.id === id) watch(id, job ?? null);
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const short = (v) => Number(v.toPrecision(3)).toString();

// The loss curve: train_loss (and valid_loss where logged) by step, an SVG line chart `W` pixels wide; for a
// reinforcement job the mean reward (train_reward_mean, valid_reward_mean) instead.
function curve(points, W) {
  const series = (key) => points.filter((p) => typeof p[key] === "number").map((p) => [p.step, p[key]]);
  const reward = points.some((p) => typeof p.train_reward_mean === "number");
  const what = reward ? "reward" : "loss";
  const lines = [
    ["train", `train ${what}`, series(reward ? "train_reward_mean" : "train_loss")],
    ["valid", `validation ${what}`, series(reward ? "valid_reward_mean" : "valid_loss")],
  ].filter(([, , pts]) => pts.length);
  if (!lines.length) return [el("p", { class: "hint", text: "The loss curve appears once training logs a step." })];
  const values = lines.flatMap(([, , pts]) => pts.map(([, v]) => v));
  const [lo, hi] = values.reduce(([a, b], v) => [Math.min(a, v), Math.max(b, v)], [Infinity, -Infinity]);
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  const end = Math.max(points.at(-1).total_steps || 0, points.at(-1).step, 1); // the x axis: the whole run
  const x = (step) => (LEFT + (step / end) * (W - LEFT - RIGHT)).toFixed(1);
  const y = (v) => (TOP + ((hi + pad - v) / (hi - lo + 2 * pad)) * (H - TOP - BOTTOM)).toFixed(1);
  const grid = [...new Set([hi, (hi + lo) / 2, lo])].flatMap((v) => [
    svg("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }),
    svg("text", { x: LEFT - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, short(v)),
  ]);
  const anchor = (s) => (s === 0 ? "start" : s === end ? "end" : "middle");
  const ticks = [...new Set([0, Math.round(end / 2), end])].map((s) =>
    svg("text", { x: x(s), y: H - 10, "text-anchor": anchor(s) }, String(s)),
  );
  const drawn = lines.flatMap(([cls, , pts]) => [
    svg("path", { class: cls, d: pts.map(([s, v], i) => `${i ? "L" : "M"}${x(s)},${y(v)}`).join(" ") }),
    svg("circle", { class: cls, cx: x(pts.at(-1)[0]), cy: y(pts.at(-1)[1]), r: 3 }),
  ]);
  const said = lines.map(([, name, pts]) => {
    const [[s0, v0], [s1, v1]] = [pts[0], pts.at(-1)];
    return `${name} from ${short(v0)} at step ${s0} to ${short(v1)} at step ${s1}`;
  });
  const chart = svg(
    "svg",
    { class: "loss", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${reward ? "Reward" : "Loss"} by step: ${said.join("; ")}` },
    svg("path", { class: "axis", d: `M${LEFT},${TOP} V${H - BOTTOM} H${W - RIGHT}` }),
    ...grid,
    ...ticks,
    svg("text", { x: LEFT - 6, y: H - 10, "text-anchor": "end" }, "step"),
    ...drawn,
  );
  const key = lines.map(([c, name, p]) => el("span", { class: `series ${c}`, text: `${name}: ${short(p.at(-1)[1])}` }));
  return [chart, el("figcaption", {}, key)];
}

export function init() {
  const input = $("#tr-file");
  input.addEventListener("change", () => send(input.files[0]).then(() => (input.value = "")));
  const drop = $("#tr-drop");
  for (const kind of ["dragover", "dragleave", "drop"]) {
    drop.addEventListener(kind, (event) => {
      event.preventDefault();
      drop.classList.toggle("over", kind === "dragover");
      if (kind === "drop") send(event.dataTransfer.files[0]);
    });
  }
  $("#tr-training").addEventListener("change", methods);
  $("#tr-method").addEventListener("change", methods);
  $("#tr-form").addEventListener("submit", start);
  $("#tr-try").addEventListener("click", tryGrader);
}

export async function show() {
  await attempt(async () => {
    const [models, stores] = await Promise.all([api("/v1/models"), api("/v1/knowledge_bases"), listFiles()]);
    const kbs = stores.data.map((kb) => el("option", { value: kb.name, text: `${kb.name} · ${kb.chunks} chunks` }));
    $("#tr-kb").replaceChildren(...kbs);
    const bases = models.data.filter((m) => !m.parent).map((m) => m.id); // the base model: no parent
    $("#tr-model").replaceChildren(...bases.map((id) => el("option", { value: id, text: id })));
    const jobs = await listJobs();
    if (watching) watch(watching.id);
    else if (jobs.length) watch(jobs[0].id);
  });
}
