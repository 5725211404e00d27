"""The repetition guard of constrained rows: what a grammar cannot stop a small model from repeating in JSON.

A grammar keeps the JSON valid, but a small model under one loops inside string values
(``"john.john.john..."``) and repeats list items (``["Movie", "Movie", ...]``) until
``max_tokens``. :class:`StringRepeats` follows each constrained row's JSON as it is written
(inside a string or not, which containers are open, the strings each array holds) and adjusts
the row's logits before the grammar mask:

- while the row is inside a string, every token it already wrote inside strings has its logit
  lowered by ``penalty`` times its count (OpenAI's frequency penalty, on string content only);
- while the string is an item of an array and its text so far equals an item that array
  already holds (ignoring case and surrounding space), tokens that would close it here lose
  :data:`DUPLICATE`: the item grows into a different one, or the model writes another.

Punctuation, numbers and the choice between another item and the end of an array are never
touched, so the grammar's structure and copied numbers stay as the model wrote them. Keys are
strings too: a value that echoes a key (``"tags": ["tags", ...]``) costs more, while the keys
themselves are forced by the grammar whatever their logits. Both adjustments are finite, so a
token the grammar requires stays the one chosen. This module knows nothing about grammars,
batches or engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

DUPLICATE = 20.0  # subtracted from the tokens that would close an array item equal to an earlier one
QUOTE, BACKSLASH = 0x22, 0x5C
OPENERS, CLOSERS = {0x5B: "array", 0x7B: "object"}, {0x5D, 0x7D}


@dataclass
class _Row:
    """One row's JSON so far."""

    inside: bool = False  # the text ends inside a string
    escaped: bool = False  # ... right after its backslash
    item: bool = False  # the open string is an item of an array
    text: bytearray = field(default_factory=bytearray)  # the open string's content so far
    open: list[set[bytes] | None] = field(default_factory=list)  # open containers: an array's items, or None
    counts: dict[int, int] = field(default_factory=dict)  # token -> times written inside a string


class StringRepeats:
    """The guard for one batch: ``add`` each token a constrained row writes, ``penalize`` its next logits.

    ``texts`` are the tokens' bytes (special tokens empty); ``penalty`` is the per-use cost of a
    token repeated inside strings (0: only duplicate items are refused).
    """

    def __init__(self, texts: Sequence[bytes], penalty: float, closing: list[int] | None = None):
        self.texts = texts
        self.penalty = penalty
        self.closing = closing if closing is not None else closing_tokens(texts)
        self.rows: dict[int, _Row] = {}

    def add(self, row: int, token: int) -> None:
        """Row ``row`` wrote ``token``: follow its JSON, and count the token if it is all string content."""
        state = self.rows.setdefault(row, _Row())
        content = state.inside
        for byte in self.texts[token]:
            if state.inside and (state.escaped or byte != QUOTE):
                state.escaped = not state.escaped and byte == BACKSLASH
                state.text.append(byte)
            elif state.inside:  # the closing quote
                state.inside, content = False, False
                if state.item and state.open and state.open[-1] is not None:
                    state.open[-1].add(_key(state.text))
            elif byte == QUOTE:
                state.inside, state.text, content = True, bytearray(), False
                state.item = bool(state.open) and state.open[-1] is not None
            elif byte in OPENERS:
                state.open.append(set() if OPENERS[byte] == "array" else None)
            elif byte in CLOSERS and state.open:
                state.open.pop()
        if content and self.texts[token]:
            state.counts[token] = state.counts.get(token, 0) + 1

    def penalize(self, row: int, scores: torch.Tensor) -> None:
        """Lower row ``row``'s logits as the module docstring says, if it is inside a string now."""
        state = self.rows.get(row)
        if state is None or not state.inside:
            return
        if self.penalty and state.counts:
            tokens = torch.tensor(list(state.counts), device=scores.device)
            times = torch.tensor(list(state.counts.values()), dtype=scores.dtype, device=scores.device)
            scores[row, tokens] -= self.penalty * times
        if state.item and not state.escaped and _key(state.text) in (state.open[-1] or ()):
            scores[row, self.closing] -= DUPLICATE


def closing_tokens(texts: Sequence[bytes]) -> list[int]:
    """The tokens that begin with a quote: those that close an open string right where it is."""
    return [token for token, text in enumerate(texts) if text[:1] == b'"']


def _key(text: bytearray) -> bytes:
    return bytes(text).strip().lower()
