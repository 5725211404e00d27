"""An Ollama Modelfile derived from the model's own chat template, not typed by hand.

The tokenizer's Jinja template is rendered with sentinel messages (a system turn, user turns, an
assistant turn, with and without the generation prompt), and the text around each sentinel gives
each role's prefix and suffix, the generation prompt, and the default system prompt (text the
template adds when no system message is given). These become Ollama's Go ``TEMPLATE`` in the shape
Ollama's own chat templates use (``.System``, then ``range .Messages``), a ``SYSTEM`` default where
the template has one, and ``PARAMETER stop`` from the assistant turn's suffix (and the EOS token).
Sampling parameters come from generation_config.json where it sets them.

Before returning, the pieces re-render several conversations as the Go template would and must
equal the Jinja renders, so a template this shape cannot express (content-dependent branches,
system text folded into the first user turn, as Gemma's does) is refused with one line instead of
written wrong. A leading BOS token is left to llama.cpp, which adds it from the GGUF's
``add_bos_token``. This module knows nothing about weights or GGUF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuner.export import ExportError

SYSTEM, USER, ASSISTANT, USER2 = "@@LORAG-SYSTEM@@", "@@LORAG-USER@@", "@@LORAG-ASSISTANT@@", "@@LORAG-USER-2@@"
OLLAMA_PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p"}
OLLAMA_PARAMETERS["repetition_penalty"] = "repeat_penalty"


@dataclass(frozen=True)
class TurnFormat:
    """Each role's text before and after its content, as the chat template writes them."""

    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str  # also the generation prompt
    assistant_suffix: str
    default_system: str | None  # what the template says when no system message is given

    def render(self, messages: list[dict], system: str | None) -> str:
        """What the Go template writes for ``messages`` (Ollama passes ``system`` as ``.System``)."""
        text = f"{self.system_prefix}{system}{self.system_suffix}" if system else ""
        for message in messages:
            if message["role"] == "user":
                text += self.user_prefix + message["content"] + self.user_suffix + self.assistant_prefix
            elif message["role"] == "assistant":
                text += message["content"] + self.assistant_suffix
        return text

    def go_template(self) -> str:
        """Ollama's TEMPLATE for these turns."""
        return (
            f"{{{{ if .System }}}}{self.system_prefix}{{{{ .System }}}}{self.system_suffix}{{{{ end }}}}"
            f'{{{{ range .Messages }}}}{{{{ if eq .Role "user" }}}}{self.user_prefix}{{{{ .Content }}}}'
            f"{self.user_suffix}{self.assistant_prefix}"
            f'{{{{ else if eq .Role "assistant" }}}}{{{{ .Content }}}}{self.assistant_suffix}{{{{ end }}}}{{{{ end }}}}'
        )


def _split(text: str, *sentinels: str) -> list[str]:
    """``text`` cut at each sentinel in turn; ExportError when one is missing or repeated."""
    pieces = []
    for sentinel in sentinels:
        if text.count(sentinel) != 1:
            raise ExportError("the chat template does not write each message's content once, in order")
        before, text = text.split(sentinel)
        pieces.append(before)
    return pieces + [text]


def _cut(text: str, prefix: str = "", suffix: str = "", what: str = "") -> str:
    if not (text.startswith(prefix) and text.endswith(suffix)) or len(text) < len(prefix) + len(suffix):
        raise ExportError(f"the chat template's {what} is not the same in every turn: not expressible for Ollama")
    return text[len(prefix) : len(text) - len(suffix)]


def turn_format(tokenizer) -> TurnFormat:
    """Each role's prefix and suffix in ``tokenizer``'s chat template, found by rendering sentinels."""

    def render(messages: list[tuple[str, str]], generation: bool) -> str:
        chat = [{"role": role, "content": content} for role, content in messages]
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation)

    if not tokenizer.chat_template:
        raise ExportError("the tokenizer has no chat template to derive an Ollama TEMPLATE from")
    user_only = render([("user", USER)], False)
    generation = _cut(render([("user", USER)], True), prefix=user_only, what="generation prompt")
    u0, user_suffix = _split(user_only, USER)
    assistant_suffix = _split(render([("user", USER), ("assistant", ASSISTANT)], False), USER, ASSISTANT)[2]
    conversation = [("system", SYSTEM), ("user", USER), ("assistant", ASSISTANT), ("user", USER2)]
    t0, t1, t2, t3, t4 = _split(render(conversation, True), SYSTEM, USER, ASSISTANT, USER2)
    _cut(t4, suffix=user_suffix + generation, what="user turn's end")
    assistant_prefix = _cut(t2, prefix=user_suffix, what="assistant turn's start")
    if assistant_prefix != generation:
        raise ExportError("the chat template's generation prompt differs from its assistant turns' start")
    user_prefix = _cut(t3, prefix=assistant_suffix, what="user turn's start")
    system_suffix = _cut(t1, suffix=user_prefix, what="system turn's end")
    before_user = _cut(u0, suffix=user_prefix, what="user turn's start")
    head = leading_bos(tokenizer) if t0.startswith(leading_bos(tokenizer)) else ""
    default = None
    if before_user not in ("", head):  # the template writes a system turn of its own
        default = _cut(before_user, prefix=t0, suffix=system_suffix, what="default system turn")
    return TurnFormat(
        t0[len(head) :], system_suffix, user_prefix, user_suffix, assistant_prefix, assistant_suffix, default
    )


def leading_bos(tokenizer) -> str:
    """The BOS token's text where the tokenizer adds it by itself (llama.cpp then does too), else ""."""
    ids = tokenizer("a").input_ids
    return tokenizer.bos_token if ids and tokenizer.bos_token and ids[0] == tokenizer.bos_token_id else ""


def check(turns: TurnFormat, tokenizer) -> None:
    """ExportError unless the turns re-render the Jinja template's text for several conversations."""
    head = leading_bos(tokenizer)
    conversations = [
        [{"role": "user", "content": "Hi there."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
        [
            {"role": "user", "content": "Who are you?"},
            {"role": "assistant", "content": "An assistant."},
            {"role": "user", "content": "Tell me a joke."},
        ],
    ]
    for messages in conversations:
        jinja = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        system = next((m["content"] for m in messages if m["role"] == "system"), turns.default_system)
        go = turns.render([m for m in messages if m["role"] != "system"], system)
        if jinja not in (go, head + go):
            raise ExportError("the chat template cannot be written as an Ollama TEMPLATE (a re-render differs)")


def modelfile(model_dir: Path, gguf_name: str) -> str:
    """The Modelfile text for ``gguf_name`` (beside it) with the model in ``model_dir``'s chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    turns = turn_format(tokenizer)
    check(turns, tokenizer)
    template = turns.go_template()
    if '"""' in template or (turns.default_system and '"""' in turns.default_system):
        raise ExportError('the chat template contains """, which a Modelfile cannot quote')
    stops = [s for s in dict.fromkeys([turns.assistant_suffix.strip(), tokenizer.eos_token or ""]) if s]
    lines = ["# Written by lorag export; TEMPLATE, SYSTEM and stop come from the model's chat template.", ""]
    lines += [f"FROM ./{gguf_name}"]
    lines += [f'TEMPLATE """{template}"""']
    if turns.default_system:
        lines += [f'SYSTEM """{turns.default_system}"""']
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    generation_config = Path(model_dir) / "generation_config.json"
    settings = json.loads(generation_config.read_text()) if generation_config.is_file() else {}
    lines += [f"PARAMETER {name} {settings[key]}" for key, name in OLLAMA_PARAMETERS.items() if key in settings]
    return "\n".join(lines) + "\n"
