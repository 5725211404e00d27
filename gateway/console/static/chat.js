// One streamed chat completion as the Playground and Side by side show it: the answer growing in
// place, the citations of a knowledge-base arm (sent on the stream's first chunk), and what the
// stream measured. Time to first token runs from sending the request to the first text;
// tokens/s is the decode speed: the tokens after the first over the time after the first.
// The answer's article has the class "streaming" (a cursor) while it grows; the callers mark
// their live region aria-busy="true" meanwhile (and "false" at the end), so that a screen reader reads each answer
// once, when it is complete, rather than again with every token.

import { streamChat } from "./api.js";
import { el, fixed } from "./ui.js";

// A message bubble: `who` labels it; returns the node and the element its text goes in.
export function bubble(role, who) {
  const body = el("div", { class: "text" });
  const node = el("article", { class: `msg ${role}` }, el("h3", { class: "who", text: who }), body);
  return { node, body };
}

// Stream `body` (a chat request without `stream`) into `view` (from bubble()); resolves with
// {text, citations, stats}. The view's article gets the citations and the statistics line.
export async function streamInto(view, body, signal) {
  const start = performance.now();
  let first = null;
  let last = null;
  let tokens = null;
  let citations = null;
  let text = "";
  view.node.classList.add("streaming");
  try {
    await streamChat(
      { ...body, stream_options: { include_usage: true } },
      (chunk) => {
        if (chunk.citations && citations === null) {
          citations = chunk.citations;
          view.node.append(sources(citations));
        }
        for (const choice of chunk.choices ?? []) {
          const piece = choice.delta?.content;
          if (!piece) continue;
          last = performance.now();
          first ??= last;
          text += piece;
          view.body.textContent = text;
        }
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      },
      signal,
    );
  } finally {
    view.node.classList.remove("streaming");
  }
  const stats = {
    ttft: first === null ? null : (first - start) / 1000,
    tokens,
    decodeSeconds: first === null ? 0 : (last - first) / 1000,
  };
  view.node.append(el("p", { class: "stats", text: describe(stats) }));
  return { text, citations, stats };
}

// "120 ms to first token · 31.5 tokens/s · 24 tokens"
function describe({ ttft, tokens, decodeSeconds }) {
  const parts = [];
  if (ttft !== null) parts.push(`${Math.round(ttft * 1000)} ms to first token`);
  if (tokens > 1 && decodeSeconds > 0) parts.push(`${((tokens - 1) / decodeSeconds).toFixed(1)} tokens/s`);
  if (tokens !== null) parts.push(`${tokens} tokens`);
  return parts.join(" · ");
}

// The numbered sources of a knowledge-base answer, with their snippets.
export function sources(citations) {
  if (!citations.length) {
    return el("p", { class: "sources empty", text: "No source in the knowledge base matched this question." });
  }
  const list = el("ol", { class: "citations" });
  for (const c of citations) {
    const where = [c.filename, c.page != null ? `page ${c.page}` : null, c.section ? `§ ${c.section}` : null];
    list.append(
      el(
        "li",
        { value: c.index },
        el(
          "p",
          { class: "cite-head" },
          el("strong", { text: `[${c.index}] ${where.filter(Boolean).join(" · ")}` }),
          el("span", { class: "score", text: `score ${fixed(c.score)}` }),
        ),
        el("blockquote", { text: c.snippet }),
      ),
    );
  }
  const summary = el("summary", { text: `Sources (${citations.length})` });
  return el("details", { class: "sources", open: true }, summary, list);
}
