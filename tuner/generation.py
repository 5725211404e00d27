"""Greedy answers of a model (base or adapter) to chat prompts, in left-padded batches.

Used before training to record the base model's own answers (replay rows) and after training to
compare the adapter's answers with them. Each answer says whether the model ended its turn or ran
out of tokens. This module takes a model and a tokenizer; it knows nothing of recipes or files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Answer:
    text: str
    finished: bool  # False when it stopped at ``max_new_tokens`` instead of the end of turn


@torch.no_grad()
def greedy_answers(
    model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, batch_size: int = 16, desc: str = "generate"
) -> list[Answer]:
    """The model's greedy reply to each conversation (its messages up to the reply), in input order."""
    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    answers: dict[int, Answer] = {}
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    stop_ids = model.generation_config.eos_token_id
    stop_ids = {stop_ids} if isinstance(stop_ids, int) else set(stop_ids or [tokenizer.eos_token_id])
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
            batch = order[start : start + batch_size]
            encoded = tokenizer(
                [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(stop_ids),
            )
            for i, ids in zip(batch, output[:, encoded["input_ids"].shape[1] :].tolist(), strict=True):
                finished = any(t in stop_ids for t in ids)
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                answers[i] = Answer(text, finished)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return [answers[i] for i in range(len(prompts))]
