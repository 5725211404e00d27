"""Structured outputs in process: JSON schemas compiled by xgrammar, and the per-row logits mask that applies them.

:class:`Grammars` compiles a schema once per distinct schema text for one tokenizer, with
lorag's default bounds added (:mod:`serve.schema_bounds`) and no free whitespace between tokens
(``any_whitespace=False``): a small model offered a grammar that allows any whitespace fills it
with blank lines. xgrammar's strings admit raw control characters,
which strict JSON parsers (Python's, pydantic's) refuse, so tokens holding one are masked too.
:class:`GrammarMask` is a transformers logits processor for one batch: rows with a grammar get
their next-token mask, after the repetition guard of :mod:`serve.json_repeats`; the other rows are
left alone, so constrained and free requests share a batch and free ones decode as without it.
This module knows nothing about adapters, requests or HTTP.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
import xgrammar as xgr
from transformers import LogitsProcessor

from serve.engine import InvalidRequest
from serve.json_repeats import StringRepeats, closing_tokens
from serve.schema_bounds import bounded_text

log = logging.getLogger(__name__)
REPEAT_PENALTY = 2.5  # subtracted from a token's logit inside a string, per time it was written inside one


class Grammars:
    """JSON-schema grammars for one tokenizer and vocabulary; each distinct schema is compiled once."""

    def __init__(self, tokenizer, vocab_size: int, stop_ids: set[int], repeat_penalty: float = REPEAT_PENALTY):
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids))
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self.compile = lru_cache(maxsize=64)(self._compile)
        special = set(info.special_token_ids) | stop_ids
        self.control = torch.zeros(vocab_size, dtype=torch.bool)  # tokens with a raw control character
        self.texts = [b"" if token in special else text for token, text in enumerate(info.decoded_vocab[:vocab_size])]
        for token, text in enumerate(self.texts):
            self.control[token] = any(byte < 0x20 for byte in text)
        self.repeat_penalty = repeat_penalty
        self.closing = closing_tokens(self.texts)  # for the guard, found once per vocabulary

    def _compile(self, schema: str) -> xgr.CompiledGrammar:
        try:
            schema = bounded_text(schema)
            return self._compiler.compile_json_schema(schema, any_whitespace=False, strict_mode=True)
        except Exception as e:  # xgrammar raises RuntimeError or ValueError for schemas it cannot use
            reason = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", str(e).splitlines()[0])  # xgrammar's time and C++ source
            raise InvalidRequest(f"the JSON schema cannot be compiled: {reason}") from e

    def mask(self, grammars: Sequence[xgr.CompiledGrammar | None], finished: Callable[[int], bool]) -> GrammarMask:
        """The logits processor of a batch whose rows have these grammars (None: a free row)."""
        matchers = [None if g is None else xgr.GrammarMatcher(g) for g in grammars]
        repeats = StringRepeats(self.texts, self.repeat_penalty, self.closing)
        return GrammarMask(matchers, self.control, finished, repeats)


class GrammarMask(LogitsProcessor):
    """Mask each constrained row's logits to the tokens its grammar allows next.

    ``matchers[i]`` is row i's matcher, or None for a free row; ``finished(i)`` says row i ended
    (its later tokens are padding, not fed to the grammar); ``control`` marks the tokens never
    allowed in a constrained row. Each call first feeds every constrained row the token sampled
    at the previous step.
    """

    def __init__(
        self,
        matchers: Sequence[xgr.GrammarMatcher | None],
        control: torch.Tensor,
        finished: Callable[[int], bool],
        repeats: StringRepeats | None = None,
    ):
        self.matchers = list(matchers)
        self.repeats = repeats
        self.rows = [i for i, m in enumerate(self.matchers) if m is not None]
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), len(control))
        self.control = control
        self.finished = finished
        self.first = True

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        live = [i for i in self.rows if not self.finished(i)]
        for i in live:
            matcher = self.matchers[i]
            if not self.first and not matcher.is_terminated():
                if not matcher.accept_token(int(input_ids[i, -1])):
                    log.warning("row %d: the grammar refused token %d", i, int(input_ids[i, -1]))
                elif self.repeats is not None:
                    self.repeats.add(i, int(input_ids[i, -1]))
            if self.repeats is not None:
                self.repeats.penalize(i, scores)
            matcher.fill_next_token_bitmask(self.bitmask, i)
        self.first = False
        if live:
            xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), indices=live)
            rows = torch.tensor(live, device=scores.device)
            scores[rows] = scores[rows].masked_fill(self.control.to(scores.device), float("-inf"))
        return scores
