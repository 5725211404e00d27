"""Metrics after training: perplexity, classification scores, and an overfitting check.

Classification rows are scored by ranking: the model's log-likelihood of each label (and the
end of turn after it) given the prompt; the most likely label is the prediction. This module
takes a model, a tokenizer and rows; it knows nothing about trainers or files.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


def perplexity(eval_loss: float) -> float:
    return math.exp(min(eval_loss, 50.0))


def classification_scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 over ``labels``."""
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    n = len(labels)
    return {"accuracy": accuracy, "precision": sum(precisions) / n, "recall": sum(recalls) / n, "f1": sum(f1s) / n}


@torch.no_grad()
def predict_labels(model, tokenizer, rows: list[dict], labels: list[str], batch_size: int = 8) -> list[str]:
    """The most likely label for each classification row (its last message is the gold label)."""
    end = tokenizer.eos_token or ""
    pairs = []  # (prompt ids, label ids) for every row x label
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for label in labels:
            pairs.append((prompt_ids, tokenizer(label + end, add_special_tokens=False)["input_ids"]))
    scores = []
    model.eval()
    for start in tqdm(range(0, len(pairs), batch_size), desc="classify eval rows", unit="batch"):
        scores += _sequence_logprobs(model, pairs[start : start + batch_size], tokenizer.pad_token_id)
    best = []
    for i in range(len(rows)):
        row_scores = scores[i * len(labels) : (i + 1) * len(labels)]
        best.append(labels[max(range(len(labels)), key=row_scores.__getitem__)])
    return best


def _sequence_logprobs(model, pairs, pad_id: int) -> list[float]:
    """Sum of log p(label ids | prompt ids) for each pair, in one right-padded batch."""
    sequences = [p + c for p, c in pairs]
    width = max(map(len, sequences))
    device = next(model.parameters()).device
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, device=device)
        mask[i, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits
    out = []
    for i, (prompt, completion) in enumerate(pairs):
        positions = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1, device=device)
        logprobs = torch.log_softmax(logits[i, positions].float(), dim=-1)
        out.append(logprobs.gather(1, torch.tensor(completion, device=device)[:, None]).sum().item())
    return out


def overfitting_warning(train: list[dict], evals: list[dict]) -> str | None:
    """A line when eval loss rose from its best while train loss kept falling, else None."""
    if len(evals) < 2 or not train:
        return None
    best = min(evals, key=lambda e: e["loss"])
    last = evals[-1]
    if last["loss"] <= best["loss"] * 1.02:
        return None

    def train_loss_near(step: int) -> float:
        return min(train, key=lambda t: abs(t["step"] - step))["loss"]

    if train_loss_near(last["step"]) < train_loss_near(best["step"]):
        return (
            f"possible overfitting: eval loss rose from {best['loss']:.3f} (step {best['step']}) to "
            f"{last['loss']:.3f} (step {last['step']}) while train loss fell; consider fewer steps, "
            "early_stopping_patience, more data or a lower learning rate"
        )
    return None
