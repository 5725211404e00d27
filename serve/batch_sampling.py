"""How one LocalEngine batch samples: the keyword arguments of its ``generate`` call.

The rows of a batch share their sampling settings (temperature, top-p, penalties, ...), which
become transformers' own options; what differs per row rides in logits processors: each row's
log-probabilities, if it asked, and its structured-output grammar, if it has one. This module
knows nothing about adapters, queues or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

from serve.batch_rows import RowRequest
from serve.constrained import Grammars
from serve.decoding import OpenAIPenalties, StepLogprobs


def sampling_kwargs(
    batch: list[RowRequest], prompt_width: int, grammars: Callable[[], Grammars]
) -> tuple[dict, StepLogprobs]:
    """``generate`` keyword arguments for ``batch`` (prompts padded to ``prompt_width``), and its logprob keeper;
    ``grammars`` gives the engine's structured-output compiler."""
    params = batch[0].params
    kwargs = {"max_new_tokens": max(r.params.max_tokens for r in batch), "do_sample": params.temperature > 0}
    if params.temperature > 0:
        kwargs |= {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
        kwargs |= {"min_p": params.min_p} if params.min_p else {}
    if params.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if params.logit_bias:
        kwargs["sequence_bias"] = [[[token], bias] for token, bias in params.logit_bias]
    processors = []
    if params.presence_penalty or params.frequency_penalty:
        processors.append(OpenAIPenalties(params.presence_penalty, params.frequency_penalty, prompt_width))
    logprobs = StepLogprobs([i for i, r in enumerate(batch) if r.params.logprobs is not None])
    processors.append(logprobs)
    if any(r.grammar is not None for r in batch):
        processors.append(grammars().mask([r.grammar for r in batch], lambda i: batch[i].done))
    kwargs["logits_processor"] = processors
    return kwargs, logprobs
