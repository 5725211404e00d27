"""Preference data: read a dataset file of preferred and dispreferred answers into TRL's conversational rows.

Formats, detected from the first row's keys or declared:

- ``preference``: ``{"prompt", "chosen", "rejected"}``; each a string or a list of chat messages
  (a string prompt is one user turn, a string answer one assistant turn). Without ``prompt``,
  ``chosen`` and ``rejected`` are whole conversations and their shared first turns are the prompt.
- ``openai_dpo``: OpenAI's DPO fine-tuning rows, ``{"input": {"messages"}, "preferred_output",
  "non_preferred_output"}`` (the outputs are lists of assistant messages).
- ``sharegpt_preference``: ``{"conversations": [{"from", "value"}], "chosen": {"from", "value"},
  "rejected": {...}}``, as LLaMA-Factory writes them.
- ``kto``: ``{"prompt", "completion", "label"}``, one answer with a true (desirable) or false
  label; prompt and completion strings or message lists.

Paired rows become ``{"prompt": [messages], "chosen": [assistant], "rejected": [assistant]}``,
KTO rows ``{"prompt", "completion", "label"}``: conversational, so TRL renders them with the
model's chat template. A malformed row raises :class:`tuner.formats.DatasetError` naming the file
and line. This module knows nothing about tokenizers or training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuner.formats import DatasetError, openai_messages, read_records, sharegpt_messages, text_content

PREFERENCE_FORMATS = ("preference", "openai_dpo", "sharegpt_preference", "kto")
UNPAIRED = ("kto",)


@dataclass
class Preferences:
    """The rows of one preference file in TRL's conversational form."""

    rows: list[dict]
    format: str

    @property
    def paired(self) -> bool:
        return self.format not in UNPAIRED


def load_preferences(path: str | Path, format: str = "auto", system_prompt: str | None = None) -> Preferences:
    """Read ``path`` and convert every row; ``system_prompt`` is added to prompts that have none."""
    path = Path(path)
    records = list(read_records(path))
    if not records:
        raise DatasetError(f"{path}: no rows")
    if format == "auto":
        format = detect_preference_format(path, *records[0])
    elif format not in PREFERENCE_FORMATS:
        raise DatasetError(f"unknown preference format '{format}'; choose one of auto, {', '.join(PREFERENCE_FORMATS)}")
    convert = {"preference": _preference, "openai_dpo": _openai_dpo, "sharegpt_preference": _sharegpt, "kto": _kto}
    rows = [convert[format](path, where, row) for where, row in records]
    if system_prompt:
        for row in rows:
            if row["prompt"][0]["role"] != "system":
                row["prompt"].insert(0, {"role": "system", "content": system_prompt})
    return Preferences(rows, format)


def detect_preference_format(path: Path, where: str, row: dict) -> str:
    keys = set(row)
    if {"input", "preferred_output", "non_preferred_output"} <= keys:
        return "openai_dpo"
    if {"conversations", "chosen", "rejected"} <= keys:
        return "sharegpt_preference"
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if {"prompt", "completion", "label"} <= keys:
        return "kto"
    raise DatasetError(
        f"{path}:{where}: cannot tell the preference format from keys {sorted(keys)}; expected prompt/chosen/rejected, "
        "input/preferred_output/non_preferred_output (OpenAI DPO), conversations/chosen/rejected (ShareGPT) "
        "or prompt/completion/label (KTO)"
    )


def _messages(path: Path, where: str, value, key: str, role: str) -> list[dict]:
    """A string as one ``role`` turn, or a list of chat messages."""
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value:
        return openai_messages(path, f"{where}: '{key}'", {"messages": value})
    raise DatasetError(f"{path}:{where}: '{key}' must be a non-empty string or list of messages")


def _answer(path: Path, where: str, value, key: str) -> list[dict]:
    answer = _messages(path, where, value, key, "assistant")
    if answer[-1]["role"] != "assistant" or not answer[-1]["content"].strip():
        raise DatasetError(f"{path}:{where}: '{key}' must end with a non-empty assistant message")
    return answer


def _pair(path: Path, where: str, prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> dict:
    if prompt[-1]["role"] == "assistant":
        raise DatasetError(f"{path}:{where}: the prompt must end with a user (or system) message, not the answer")
    if chosen == rejected:
        raise DatasetError(f"{path}:{where}: 'chosen' and 'rejected' are the same")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _preference(path: Path, where: str, row: dict) -> dict:
    if row.get("prompt") is not None:
        prompt = _messages(path, where, row["prompt"], "prompt", "user")
        return _pair(path, where, prompt, _answer(path, where, row["chosen"], "chosen"),
                     _answer(path, where, row["rejected"], "rejected"))  # fmt: skip
    chosen = _answer(path, where, row.get("chosen"), "chosen")
    rejected = _answer(path, where, row.get("rejected"), "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DatasetError(f"{path}:{where}: no 'prompt', and 'chosen' and 'rejected' share no first turns")
    return _pair(path, where, chosen[:shared], chosen[shared:], rejected[shared:])


def _openai_dpo(path: Path, where: str, row: dict) -> dict:
    source = row.get("input")
    if not isinstance(source, dict):
        raise DatasetError(f"{path}:{where}: 'input' must be an object with 'messages'")
    prompt = openai_messages(path, f"{where}: 'input'", source)
    if not prompt:
        raise DatasetError(f"{path}:{where}: 'input.messages' is empty")
    return _pair(path, where, prompt, _answer(path, where, row["preferred_output"], "preferred_output"),
                 _answer(path, where, row["non_preferred_output"], "non_preferred_output"))  # fmt: skip


def _sharegpt(path: Path, where: str, row: dict) -> dict:
    prompt = sharegpt_messages(path, where, row)

    def answer(key: str) -> list[dict]:
        turn = row.get(key)
        if not isinstance(turn, dict):
            raise DatasetError(f"{path}:{where}: '{key}' must be a {{'from', 'value'}} turn")
        return [{"role": "assistant", "content": text_content(path, where, 0, turn.get("value"))}]

    if not prompt:
        raise DatasetError(f"{path}:{where}: 'conversations' is empty")
    return _pair(path, where, prompt, answer("chosen"), answer("rejected"))


def _kto(path: Path, where: str, row: dict) -> dict:
    label = row.get("label")
    if isinstance(label, str) and label.lower() in ("true", "false"):
        label = label.lower() == "true"  # CSV cells
    if not isinstance(label, bool):
        raise DatasetError(f"{path}:{where}: 'label' must be true (desirable) or false (undesirable)")
    prompt = _messages(path, where, row.get("prompt"), "prompt", "user")
    return {"prompt": prompt, "completion": _answer(path, where, row.get("completion"), "completion"), "label": label}
