// Playground: a multi-turn chat with any served model, streamed. The Model list is GET /v1/models
// (base model, adapters, and "<base>@<kb>" arms); the Knowledge base list adds retrieval to any
// of them, so "my-adapter" + "docs" sends model "my-adapter@docs", which /v1/models does not list.

import { catalog } from "./api.js";
import { bubble, streamInto } from "./chat.js";
import { $, attempt, el, notify, status } from "./ui.js";

let messages = []; // the conversation sent with each turn: {role, content}
let controller = null; // the stream in flight
let parts = new Map(); // listed model id -> [model, knowledge base or ""], from the cards

// "<base>@docs" -> ["<base>", "docs"], as its card says; any other listed model -> [model, ""].
function split(model) {
  return parts.get(model) ?? [model, ""];
}

function effective() {
  const [arm] = split($("#pg-model").value);
  const kb = $("#pg-kb").value;
  const model = kb ? `${arm}@${kb}` : arm;
  $("#pg-effective").textContent = model || "–";
  return model;
}

function busy(on) {
  $("#pg-send").disabled = on;
  $("#pg-stop").disabled = !on;
}

async function send() {
  const input = $("#pg-input");
  const content = input.value.trim();
  const model = effective();
  if (!content || !model || controller) return;
  const log = $("#pg-log");
  const mine = bubble("user", "You");
  mine.body.textContent = content;
  const reply = bubble("assistant", model);
  log.append(mine.node, reply.node);
  messages.push({ role: "user", content });
  input.value = "";
  controller = new AbortController();
  log.setAttribute("aria-busy", "true"); // announce the answer once, when complete
  busy(true);
  status($("#pg-status"), `Streaming from ${model}…`);
  const request = {
    model,
    messages,
    max_tokens: Number($("#pg-max").value) || undefined,
    temperature: Number($("#pg-temp").value),
  };
  try {
    const { text } = await streamInto(reply, request, controller.signal);
    messages.push({ role: "assistant", content: text });
    status($("#pg-status"), "Answer complete.");
  } catch (error) {
    const partial = reply.body.textContent;
    if (error.name === "AbortError" && partial) {
      messages.push({ role: "assistant", content: partial });
      status($("#pg-status"), "Stopped.");
    } else {
      messages.pop();
      reply.node.classList.add("failed");
      reply.body.textContent = error.name === "AbortError" ? "Stopped before the first word." : error.message;
      status($("#pg-status"), error.name === "AbortError" ? "Stopped." : "The request failed.", true);
      if (error.name !== "AbortError") notify(error);
    }
  } finally {
    log.setAttribute("aria-busy", "false");
    controller = null;
    busy(false);
    input.focus();
  }
}

// Keep the newest answer's growing text in view, but never scroll its question out of the top.
function follow(log) {
  const asked = log.querySelector(".msg.user:nth-last-child(2)");
  const text = log.querySelector(".msg.assistant:last-child .text");
  if (!asked || !text) return;
  const bottom = text.offsetTop + text.offsetHeight + 16 - log.clientHeight;
  log.scrollTop = Math.max(0, Math.min(bottom, asked.offsetTop - 8));
}

function clear() {
  controller?.abort();
  messages = [];
  $("#pg-log").replaceChildren();
  status($("#pg-status"), "New chat.");
  $("#pg-input").focus();
}

export function init() {
  $("#pg-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("#pg-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("#pg-form").requestSubmit();
    }
  });
  $("#pg-stop").addEventListener("click", () => controller?.abort());
  $("#pg-clear").addEventListener("click", clear);
  $("#pg-model").addEventListener("change", () => {
    $("#pg-kb").value = split($("#pg-model").value)[1];
    effective();
  });
  $("#pg-kb").addEventListener("change", effective);
  const log = $("#pg-log");
  new MutationObserver(() => follow(log)).observe(log, { childList: true, subtree: true, characterData: true });
}

export async function show() {
  await attempt(async () => {
    const catalogued = await catalog();
    const { ids, arms, kbs } = catalogued;
    parts = catalogued.parts;
    const select = $("#pg-model");
    const kbSelect = $("#pg-kb");
    const previous = [select.value, kbSelect.value];
    const group = (label, list) => el("optgroup", { label }, list.map((id) => el("option", { value: id, text: id })));
    select.replaceChildren(
      group("Base model", arms.slice(0, 1)),
      group("Adapters", arms.slice(1)),
      group("With a knowledge base", ids.filter((id) => !arms.includes(id))),
    );
    for (const node of [...select.children]) if (!node.children.length) node.remove();
    const none = el("option", { value: "", text: "none" });
    kbSelect.replaceChildren(none, ...kbs.map((k) => el("option", { value: k, text: k })));
    if (ids.includes(previous[0])) select.value = previous[0];
    if (kbs.includes(previous[1])) kbSelect.value = previous[1];
    effective();
  });
}
