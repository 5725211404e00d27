// Side by side: one prompt sent to every checked arm at the same time, each answer streaming in
// its own column with its citations and speed. An arm that fails shows its error in its column;
// the others go on.

import { catalog } from "./api.js";
import { bubble, streamInto } from "./chat.js";
import { $, armPicker, attempt, el, status } from "./ui.js";

let picker = null;
let controller = null;

async function run() {
  const arms = picker.selected();
  const prompt = $("#sb-prompt").value.trim();
  const line = $("#sb-status");
  if (controller) return;
  if (arms.length < 2) return status(line, "Check at least two arms.", true);
  if (!prompt) return status(line, "Write a prompt first.", true);
  const columns = $("#sb-columns");
  columns.setAttribute("aria-busy", "true"); // announce the answers once, when all are complete
  columns.replaceChildren();
  controller = new AbortController();
  $("#sb-stop").disabled = false;
  status(line, `Streaming from ${arms.length} arms…`);
  const request = {
    messages: [{ role: "user", content: prompt }],
    max_tokens: Number($("#sb-max").value) || undefined,
    temperature: Number($("#sb-temp").value),
  };
  const runs = arms.map((model) => {
    const view = bubble("assistant", model);
    columns.append(el("div", { class: "column" }, view.node));
    return streamInto(view, { ...request, model }, controller.signal).catch((error) => {
      view.node.classList.add("failed");
      view.body.textContent = error.name === "AbortError" ? view.body.textContent || "Stopped." : error.message;
      throw error;
    });
  });
  const outcomes = await Promise.allSettled(runs);
  const failed = outcomes.filter((outcome) => outcome.status === "rejected").length;
  columns.setAttribute("aria-busy", "false");
  controller = null;
  $("#sb-stop").disabled = true;
  status(line, failed ? `${arms.length - failed} of ${arms.length} arms answered.` : "Every arm answered.", failed > 0);
}

export function init() {
  picker = armPicker($("#sb-arms"), "sb");
  $("#sb-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  $("#sb-prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("#sb-form").requestSubmit();
    }
  });
  $("#sb-stop").addEventListener("click", () => controller?.abort());
}

export async function show() {
  await attempt(async () => picker.set((await catalog()).ids));
}
