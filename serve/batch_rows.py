"""The rows of one LocalEngine batch: each request's state, and the criterion that streams them.

``generate`` calls :class:`Rows` after every step. It first lets the engine make the adapter
changes that are safe mid-batch, then hands each row's new token to its request: text deltas
go to the caller's asyncio queue as soon as they decode, and a row finishes on an end-of-turn
token, a stop sequence, its own ``max_tokens`` or when its caller went away, without stopping
the other rows. Each token's log-probabilities, when a row asked for them, ride on the row's
next delta. This module knows nothing about models, adapters or how batches are formed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from transformers import StoppingCriteria

from serve.decoding import StepLogprobs, TextStream
from serve.engine import Delta, SamplingParams, TokenLogprob
from serve.row_adapters import RowAdapter


@dataclass
class RowRequest:
    """One request in the LocalEngine: its prompt, settings, adapter, and where its deltas go."""

    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    row: RowAdapter | None  # the adapter when it is not a LoRA (applied by serve.row_adapters)
    text: TextStream
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    grammar: object | None = None  # the xgrammar grammar of a structured output, compiled
    alone: bool = False  # its adapter cannot share a batch with others (PEFT runs DoRA on the whole batch)
    cancelled: bool = False
    done: bool = False
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet sent

    @property
    def batch_key(self) -> tuple:
        """Rows that sample alike share a batch, whatever their length, stops, grammar, logprobs and (but for DoRA)
        adapters."""
        return replace(self.params, max_tokens=0, stop=(), json_schema=None, logprobs=None), self.alone and self.adapter

    def send(self, text: str) -> None:
        delta, self.logprobs = Delta(text, logprobs=self.logprobs), []
        self.loop.call_soon_threadsafe(self.out.put_nowait, delta)

    def finish(self, reason: str, text: str = "") -> None:
        self.done = True
        delta = Delta(text, reason, len(self.prompt_ids), self.completion_tokens, self.logprobs)
        self.loop.call_soon_threadsafe(self.out.put_nowait, delta)


@dataclass
class Rows(StoppingCriteria):
    """Called by ``generate`` after each step: route every row's new token to its request."""

    requests: list[RowRequest]
    eos_ids: set[int]
    between_steps: Callable[[], None]  # makes the adapter changes that are safe while this batch runs
    logprobs: StepLogprobs | None = None  # this step's distributions, for the rows that asked

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.between_steps()
        tokens = input_ids[:, -1].tolist()  # one copy from the device per step, not one per row
        for row, request in enumerate(self.requests):
            if request.done:
                continue
            token = tokens[row]
            if request.cancelled:
                request.done = True
            elif token in self.eos_ids:
                request.finish("stop", request.text.flush())
            else:
                request.completion_tokens += 1
                if request.params.logprobs is not None:
                    decode = request.text.tokenizer.decode
                    request.logprobs.append(self.logprobs.of(row, token, request.params.logprobs, decode))
                piece = request.text.add(token)
                if request.text.stopped:
                    request.finish("stop", piece)
                elif request.completion_tokens >= request.params.max_tokens:
                    request.finish("length", piece + request.text.flush())
                elif piece:
                    request.send(piece)
        return torch.tensor([r.done for r in self.requests], device=input_ids.device)
