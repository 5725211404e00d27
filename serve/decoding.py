"""Per-request decoding state for in-process generation: incremental text, stop sequences, penalties, logprobs.

:class:`TextStream` turns a growing list of token ids into text deltas without ever emitting
part of a stop sequence or half a UTF-8 character. :class:`OpenAIPenalties` applies OpenAI's
additive presence and frequency penalties (transformers only has a multiplicative one).
:class:`StepLogprobs` keeps the log-probabilities of the step being sampled, for the rows that
asked. This module knows nothing about batching, adapters or engines.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from serve.engine import TokenLogprob


class TextStream:
    """Decode a completion token by token; stop at the first stop sequence.

    Each step decodes only the tokens since the last complete character, with a few tokens
    before them for context (as vLLM and transformers' streamers do), so a completion costs
    linear, not quadratic, decoding work.
    """

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self._failures = [_failure(s) for s in self.stop]
        self._matched = [0] * len(self.stop)  # per stop sequence: its longest prefix the text ends with
        self._scanned = 0  # characters of ``text`` fed to the matchers
        self.ids: list[int] = []
        self.text = ""  # decoded so far, complete characters only
        self.emitted = 0  # characters of ``text`` already handed out
        self.stopped = False
        self._prefix = 0  # ids[_prefix:_read] were decoded last time, as context for the next piece
        self._read = 0

    def add(self, token_id: int) -> str:
        """Append a token; return the text that is now safe to emit (sets ``stopped`` on a stop sequence)."""
        self.ids.append(token_id)
        self._decode(final=False)
        at = self._scan()
        if at is not None:
            self.stopped = True
            return self._emit(at)
        return self._emit(len(self.text) - max(self._matched, default=0))

    def flush(self) -> str:
        """The rest of the text when generation ends for another reason."""
        self._decode(final=True)
        return self._emit(len(self.text))

    def _decode(self, final: bool) -> None:
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self.ids[self._prefix :], skip_special_tokens=True)
        if final or (len(after) > len(before) and not after.endswith("\ufffd")):  # else: half a character
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)

    def _scan(self) -> int | None:
        """Feed the new characters to each stop sequence's matcher (Knuth-Morris-Pratt: linear in the text,
        whatever the stop sequences); where the first stop sequence found starts, or None."""
        for i in range(self._scanned, len(self.text)):
            char, found = self.text[i], []
            for j, (stop, failure) in enumerate(zip(self.stop, self._failures, strict=True)):
                matched = self._matched[j]
                while matched and stop[matched] != char:
                    matched = failure[matched - 1]
                matched += stop[matched] == char
                if matched == len(stop):
                    found.append(i + 1 - len(stop))
                self._matched[j] = matched
            if found:
                self._scanned = i + 1
                return min(found)
        self._scanned = len(self.text)
        return None

    def _emit(self, end: int) -> str:
        out = self.text[self.emitted : max(end, self.emitted)]
        self.emitted += len(out)
        return out


def _failure(pattern: str) -> list[int]:
    """For each prefix of ``pattern``, the length of its longest proper prefix that is also its suffix."""
    failure, k = [0] * len(pattern), 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = failure[k - 1]
        k += pattern[i] == pattern[k]
        failure[i] = k
    return failure


class OpenAIPenalties(LogitsProcessor):
    """``logit -= presence * [count > 0] + frequency * count`` over each row's generated tokens."""

    def __init__(self, presence: float, frequency: float, prompt_length: int):
        self.presence = presence
        self.frequency = frequency
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class StepLogprobs(LogitsProcessor):
    """The log-softmax of this step's logits for the rows that asked: what the next token is sampled from.

    Placed before temperature, top-p and any grammar mask, as vLLM reports them: the model's own
    distribution (after ``logit_bias`` and penalties).
    """

    def __init__(self, rows: list[int]):
        self.rows = rows
        self.latest: dict[int, torch.Tensor] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.rows:
            logprobs = torch.log_softmax(scores[self.rows].float(), dim=-1)
            self.latest = dict(zip(self.rows, logprobs, strict=True))
        return scores

    def of(self, row: int, token: int, top: int, decode) -> TokenLogprob:
        """Row ``row``'s sampled ``token`` with its log-probability and the ``top`` likeliest tokens."""
        logprobs = self.latest[row]
        alternatives = ()
        if top:
            best = torch.topk(logprobs, top)
            alternatives = tuple((decode(int(i)), float(v)) for v, i in zip(best.values, best.indices, strict=True))
        return TokenLogprob(decode(token), float(logprobs[token]), alternatives)
