// The console's shell: the tabs (one per page, named by the URL's #hash so that links, back and
// forward work; arrow keys move between them; they wrap onto two rows on a phone, so each is in
// view), the API key field, and the server's health line.
// Each page module exports init(), run once, and show(), run whenever its tab opens (and again
// when the key changes); pages that read /v1/models read it in show(), so they list a model that
// a page added (a fine-tuning job's) when next opened. Such a page fires "lorag:models" on
// window, and the health line counts the adapters again.

import { getKey, setKey } from "./api.js";
import * as adapters from "./adapters.js";
import * as compare from "./compare.js";
import * as kb from "./knowledge.js";
import * as playground from "./playground.js";
import * as side from "./side.js";
import * as train from "./train.js";
import { $, notify } from "./ui.js";

const pages = { playground, side, kb, train, adapters, compare };
const tabs = [...document.querySelectorAll('[role="tab"]')];
let current = null;

function open(name) {
  if (!(name in pages)) name = "playground";
  if (current !== name) notify(null);
  current = name;
  for (const tab of tabs) {
    const selected = tab.getAttribute("aria-controls") === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
    if (selected) tab.scrollIntoView({ block: "nearest", inline: "nearest" }); // e.g. after back or forward
  }
  pages[name].show();
}

function onTabKey(event) {
  const index = tabs.indexOf(event.target);
  const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
  next.focus();
  go(next);
}

// Open a tab's page and record it in the URL (without the jump to the anchor a plain link makes).
function go(tab) {
  history.pushState(null, "", tab.getAttribute("href"));
  open(tab.getAttribute("aria-controls"));
}

async function health() {
  const line = $("#health");
  try {
    const response = await fetch("/healthz");
    const body = await response.json();
    if (body.status === "ok") {
      line.textContent = `${body.model} · ${body.adapters} adapter${body.adapters === 1 ? "" : "s"} · ready`;
      line.className = "health ok";
      return;
    }
    line.textContent = body.status === "failed" ? `engine failed: ${body.error}` : "engine starting…";
  } catch {
    line.textContent = "gateway unreachable";
  }
  line.className = "health down";
  setTimeout(health, 3000);
}

function initKey() {
  const field = $("#api-key");
  field.value = getKey();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(field.value.trim());
    notify(null);
    pages[current].show();
  });
  $("#key-forget").addEventListener("click", () => {
    field.value = "";
    setKey("");
    notify(null);
    pages[current].show();
  });
}

$("#notice-close").addEventListener("click", () => notify(null));
for (const tab of tabs) {
  tab.addEventListener("keydown", onTabKey);
  tab.addEventListener("click", (event) => {
    event.preventDefault();
    go(tab);
  });
}
initKey();
for (const page of Object.values(pages)) page.init();
window.addEventListener("popstate", () => open(location.hash.slice(1)));
window.addEventListener("lorag:models", health);
open(location.hash.slice(1));
health();
