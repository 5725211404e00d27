"""Training data: read a dataset file and turn every row into an OpenAI-style conversation.

Formats, detected from the first row's keys or declared:

- ``openai``: ``{"messages": [{"role", "content"}, ...]}``, what OpenAI's fine-tuning API takes;
  content is a string or a list of text parts.
- ``sharegpt``: ``{"conversations": [{"from", "value"}, ...]}``.
- ``alpaca``: ``{"instruction", "input"?, "output", "system"?, "history"?}``.
- ``classification``: ``{"text", "label"}``, turned into a prompt that lists the labels.
- ``text``: ``{"text"}`` alone, plain text for language modelling (continued pretraining, e.g.
  chunks of documents). Such a file may also hold ``openai`` rows (``{"messages"}``): the
  trainer renders those with the chat template and trains on all of them as text.

Files: ``.jsonl``, ``.json`` (a list of rows), ``.csv`` and ``.parquet``. A malformed row raises
:class:`DatasetError` naming the file and line (or row, for parquet). This module knows nothing
about tokenizers or training.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("openai", "sharegpt", "alpaca", "classification", "text")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}
DEFAULT_CLASSIFICATION_PROMPT = "Classify the text as one of: {labels}.\n\nText: {text}"


class DatasetError(ValueError):
    """A dataset file or row is unusable; the message names the file and line."""


@dataclass
class Conversations:
    """The rows of one dataset file as conversations, with what is known about them."""

    rows: list[dict]  # {"messages": [...]}, plus "label" for classification rows; {"text": str} in text files
    format: str
    labels: list[str] = field(default_factory=list)  # classification only, sorted


def load_conversations(
    path: str | Path,
    format: str = "auto",
    system_prompt: str | None = None,
    classification_prompt: str = DEFAULT_CLASSIFICATION_PROMPT,
    labels: list[str] | None = None,
) -> Conversations:
    """Read ``path`` and convert every row; ``labels`` fixes the label set (e.g. the train set's)."""
    path = Path(path)
    records = list(read_records(path))
    if not records:
        raise DatasetError(f"{path}: no rows")
    if format == "auto":
        format = detect_format(path, *records[0])
        if format == "openai" and any("messages" not in row and "text" in row for _, row in records):
            format = "text"  # chats mixed with plain text
    elif format not in FORMATS:
        raise DatasetError(f"unknown dataset format '{format}'; choose one of auto, {', '.join(FORMATS)}")
    if format == "classification":
        labels = labels or sorted({_label(path, line, row) for line, row in records})
        rows = [_classification(path, line, row, labels, classification_prompt) for line, row in records]
    elif format == "text":
        rows = [_text_row(path, line, row) for line, row in records]
    else:
        convert = {"openai": openai_messages, "sharegpt": sharegpt_messages, "alpaca": _alpaca}[format]
        rows = [{"messages": _checked(path, line, convert(path, line, row))} for line, row in records]
    if system_prompt:
        for row in rows:
            if "messages" in row and row["messages"][0]["role"] != "system":
                row["messages"].insert(0, {"role": "system", "content": system_prompt})
    return Conversations(rows=rows, format=format, labels=list(labels or []))


def write_jsonl(rows: list[dict], out: Path) -> None:
    """One JSON object a line, UTF-8: how the tuner writes the rows it keeps with an adapter."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def read_records(path: Path) -> Iterator[tuple[str, dict]]:
    """Yield ``(where, row)`` for every row: ``where`` is "line N" (or "row N" for parquet)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        yield from _read(path, suffix)
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None


def _read(path: Path, suffix: str) -> Iterator[tuple[str, dict]]:
    if suffix == ".jsonl":
        yield from _read_jsonl(path)
    elif suffix == ".json":
        yield from _read_json(path)
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"line {reader.line_num}", row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield f"row {i}", row
    else:
        raise DatasetError(f"{path}: unsupported file type '{suffix}'; use .jsonl, .json, .csv or .parquet")


def detect_format(path: Path, line: str, row: dict) -> str:
    keys = set(row)
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"text", "label"} <= keys:
        return "classification"
    if "text" in keys:
        return "text"
    raise DatasetError(
        f"{path}:{line}: cannot tell the dataset format from keys {sorted(keys)}; expected messages "
        "(openai), conversations (sharegpt), instruction/output (alpaca), text/label (classification) or text"
    )


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetError(f"{path}:line {number}: not UTF-8 text") from None
            if text.strip():
                yield f"line {number}", _object(path, f"line {number}", text)


def _read_json(path: Path) -> Iterator[tuple[str, dict]]:
    """Rows of a JSON array, each with the line it starts on."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        raise DatasetError(f"{path}: a .json dataset must be a list of rows; use .jsonl for one row per line")
    pos = _skip_space(text, pos + 1)
    while not text.startswith("]", pos):
        where = f"line {text.count(chr(10), 0, pos) + 1}"
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:line {e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{where}: a row must be a JSON object")
        yield where, row
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif not text.startswith("]", pos):
            raise DatasetError(f"{path}:line {text.count(chr(10), 0, pos) + 1}: expected ',' or ']'")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _object(path: Path, where: str, text: str) -> dict:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{where}: invalid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise DatasetError(f"{path}:{where}: a row must be a JSON object")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(f"{path}:{where}: the text holds a lone surrogate escape such as \\ud800, "
                               "which is not Unicode") from None  # fmt: skip
    return row


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def openai_messages(path: Path, where: str, row: dict) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise DatasetError(f"{path}:{where}: 'messages' must be a list")
    out = []
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise DatasetError(f"{path}:{where}: message {i} needs a role of system, user or assistant")
        out.append({"role": message["role"], "content": text_content(path, where, i, message.get("content"))})
    return out


def sharegpt_messages(path: Path, where: str, row: dict) -> list[dict]:
    turns = row.get("conversations")
    if not isinstance(turns, list):
        raise DatasetError(f"{path}:{where}: 'conversations' must be a list")
    out = []
    for i, turn in enumerate(turns, start=1):
        role = SHAREGPT_ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None:
            raise DatasetError(f"{path}:{where}: turn {i} needs 'from' in {sorted(SHAREGPT_ROLES)}")
        out.append({"role": role, "content": text_content(path, where, i, turn.get("value"))})
    if "system" in row and out and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": text_content(path, where, 0, row["system"])})
    return out


def _alpaca(path: Path, where: str, row: dict) -> list[dict]:
    instruction = _field(path, where, row, "instruction")
    prompt = f"{instruction}\n\n{row['input']}" if row.get("input") else instruction
    out = [{"role": "system", "content": str(row["system"])}] if row.get("system") else []
    for pair in row.get("history") or []:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise DatasetError(f"{path}:{where}: 'history' must be a list of [question, answer] pairs")
        out += [{"role": "user", "content": str(pair[0])}, {"role": "assistant", "content": str(pair[1])}]
    return out + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _field(path, where, row, "output")},
    ]


def _classification(path: Path, where: str, row: dict, labels: list[str], prompt: str) -> dict:
    label = _label(path, where, row)
    text = _field(path, where, row, "text")
    content = prompt.format(labels=", ".join(labels), text=text)
    return {
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": label}],
        "label": label,
    }


def _text_row(path: Path, where: str, row: dict) -> dict:
    """A row of a text file: plain text, or a conversation in the openai format."""
    if "messages" in row:
        return {"messages": _checked(path, where, openai_messages(path, where, row))}
    return {"text": _field(path, where, row, "text")}


def _label(path: Path, where: str, row: dict) -> str:
    label = row.get("label")
    if label is None or str(label).strip() == "":
        raise DatasetError(f"{path}:{where}: missing 'label'")
    return str(label).strip()


def _field(path: Path, where: str, row: dict, key: str) -> str:
    value = row.get(key)
    if value is None or str(value).strip() == "":
        raise DatasetError(f"{path}:{where}: missing '{key}'")
    return str(value)


def text_content(path: Path, where: str, index: int, content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise DatasetError(f"{path}:{where}: message {index} content must be a string or a list of text parts")


def _checked(path: Path, where: str, messages: list[dict]) -> list[dict]:
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise DatasetError(f"{path}:{where}: a conversation needs at least one non-empty assistant turn")
    return messages
