"""A tiny random sentence-transformers model and a generated corpus it can be tuned on, for the tuning tests.

The model is a 2-layer BERT of width 32 over a word-level vocabulary of made-up words (w0, w1, ...),
mean-pooled: it embeds in milliseconds and knows nothing until tuned. Each generated document draws
eight topic words from the corpus's 300 and mixes them with filler words every document uses,
so a sentence is answered by its own document, and an untuned model is misled by the fillers.
"""

from __future__ import annotations

import random
from pathlib import Path

VOCABULARY = 1400
FILLER = 40
TOPIC_WORDS = 8
DOMAIN_WORDS = 300


def build_tiny_embedder(folder: Path) -> Path:
    """Write the tiny model to `folder`; return it (a path `load_embedder` takes)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers import models as token_models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(VOCABULARY)]
    tokenizer = Tokenizer(token_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder / "bert")
    fast.save_pretrained(folder / "bert")
    transformer = models.Transformer(str(folder / "bert"), max_seq_length=120)
    SentenceTransformer(modules=[transformer, models.Pooling(32, "mean")]).save(str(folder / "model"))
    return folder / "model"


def generated_corpus(documents: int = 100, seed: int = 0) -> dict[str, str]:
    """{filename: text}: documents of four sentences, each three of the document's topic words among five fillers
    (shared by all documents, so that an untuned model is misled by them)."""
    rng = random.Random(seed)
    corpus = {}
    for d in range(documents):
        topic = [f"w{FILLER + i}" for i in rng.sample(range(DOMAIN_WORDS), TOPIC_WORDS)]
        sentences = [
            " ".join(rng.sample(topic, 3) + [f"w{rng.randrange(FILLER)}" for _ in range(5)]) + "." for _ in range(4)
        ]
        corpus[f"doc{d:03d}.txt"] = " ".join(sentences)
    return corpus
