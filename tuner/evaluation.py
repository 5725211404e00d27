"""Metrics after training: perplexity, classification scores, and the overfitting and underfitting checks.

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


LEARNED_F1 = 0.1
"""Held-out answers must come this much closer to the references (token F1) than the base model's to count as
learned, unless more of them show the taught behaviour."""
RANKED = 0.6
"""Held-out pairs a preference adapter or reward model must rank right to count as learned."""
LOSS_FELL = 0.9
"""The last logged training loss must be below this share of the first."""


def underfitting_warning(train: list[dict], findings: dict, recipe) -> str | None:
    """A line naming what to change when the run learned nothing measurable, else None.

    ``findings``: ``{"metrics", "behaviour"?}`` as ``lorag.json`` records them; ``recipe``: as the run trained."""
    metrics, taught = findings.get("metrics", {}), findings.get("behaviour", {}).get("taught", {})
    reason = None
    if "base_f1" in taught and taught["rate"] <= taught["base_rate"] and taught["f1"] < taught["base_f1"] + LEARNED_F1:
        reason = (f"on {taught['prompts']} held-out prompts the answers are no closer to the references than the base "
                  f"model's (token F1 {taught['f1']:.2f} against {taught['base_f1']:.2f})")  # fmt: skip
    for name in ("preference_accuracy", "pairwise_accuracy"):
        if reason is None and metrics.get(name) is not None and metrics[name] <= RANKED:
            reason = f"only {metrics[name]:.0%} of the held-out pairs are ranked right"
    before, after = metrics.get("reward_before"), metrics.get("reward_after")
    if reason is None and before is not None and after is not None and after <= before:
        reason = f"the held-out reward did not rise ({before:.3f} -> {after:.3f})"
    if reason is None and len(train) >= 2 and train[-1]["loss"] > train[0]["loss"] * LOSS_FELL:
        reason = f"the training loss barely fell ({train[0]['loss']:.3f} -> {train[-1]['loss']:.3f})"
    if reason is None:
        return None
    learning_rate = recipe.trl("learning_rate") * recipe.learning_rate_multiplier
    replay = ""
    if "base_f1" in taught and recipe.replay_prompts and recipe.replay_rows:
        replay = (f"; for a style meant for every answer, set replay_rows: 0 (its {recipe.replay_rows} replay rows "
                  "teach the base model's own answers back)")  # fmt: skip
    return (
        f"possible underfitting: {reason}; raise num_train_epochs (now {recipe.trl('num_train_epochs'):g}) or "
        f"learning_rate (now {learning_rate:.2g}), or add rows that show what to learn{replay}"
    )
