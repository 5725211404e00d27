"""A reward model trained by the tuner (``method: reward``), loaded to score answers.

The folder is a PEFT sequence-classification adapter (or, for ``freeze``/``full``, a whole model)
with ``lorag.json`` of kind ``reward_model``; its base model is prepared from the cache like any
other. :meth:`RewardModel.scores` renders each conversation with the base model's chat template,
reads the one-output head at the last token, and returns the logistic of that score, a value in
(0, 1): the chance the answer would be preferred over one that scores 0, under the Bradley-Terry
model the reward model was trained with. This module knows nothing about comparisons or HTTP.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from serve.models import PreparedModel, prepare


class NotARewardModel(ValueError):
    """The folder is not a reward model lorag can load; the message says why."""


class RewardModel:
    def __init__(self, model, tokenizer, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name

    @classmethod
    def load(cls, folder: Path, cache_dir: Path) -> RewardModel:
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        try:
            manifest = json.loads((folder / "lorag.json").read_text())
        except (OSError, ValueError) as e:
            raise NotARewardModel(f"{folder} has no readable lorag.json ({type(e).__name__})") from None
        if manifest.get("kind") != "reward_model":
            raise NotARewardModel(f"{folder} is not a reward model (lorag.json kind is '{manifest.get('kind')}')")
        model_dir = prepare(manifest["base_model"]["id"], cache_dir)
        if PreparedModel.read(model_dir).sha256 != manifest["base_model"]["sha256"]:
            raise NotARewardModel(f"{folder} was trained on another version of '{manifest['base_model']['id']}'")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if manifest.get("peft_method") in ("freeze", "full"):
            model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
        else:
            base = AutoModelForSequenceClassification.from_pretrained(
                model_dir, dtype=torch.float32, num_labels=1, pad_token_id=tokenizer.pad_token_id
            )
            model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
        return cls(model.eval(), tokenizer, manifest.get("name", folder.name))

    @torch.no_grad()
    def scores(self, conversations: list[list[dict]], batch_size: int = 8) -> list[float]:
        """One score in (0, 1) per conversation (chat messages ending with the answer to score)."""
        out = []
        for start in range(0, len(conversations), batch_size):
            texts = [self.tokenizer.apply_chat_template(c, tokenize=False)
                     for c in conversations[start : start + batch_size]]  # fmt: skip
            side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"  # read at the last real token
            try:
                encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            finally:
                self.tokenizer.padding_side = side
            out += [1 / (1 + math.exp(-logit)) for logit in self.model(**encoded).logits[:, 0].tolist()]
        return out
