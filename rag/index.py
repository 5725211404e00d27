"""Search indexes keyed by chunk id: dense vectors on FAISS, and BM25 on bm25s.

`DenseIndex` holds unit vectors in an exact inner-product index (`IndexIDMap(IndexFlatIP)`) and
moves them to HNSW once it holds `hnsw_threshold` vectors or more (and back below it). HNSW has
no removal, so removing from it rebuilds it from the vectors it stores.

`BM25Index` keeps each chunk's tokens (see `rag.tokenize`: words of spaced scripts lower-cased, stopwords
of `language` removed and Snowball-stemmed unless `language=None`; Chinese segmented by jieba; other
scripts without spaces cut into character bigrams), so chunks can be added and removed; the bm25s model
over all of them is rebuilt lazily at the next search after a change. Its defaults are Lucene's
BM25 with Anserini's k1=0.9, b=0.4.

Both save to one file, atomically, and load it back. Searches take an optional array of allowed
chunk ids (a metadata filter already resolved by the caller). This module knows nothing about
documents, SQLite or embedders: it is given ids, vectors and texts.
"""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import bm25s
import faiss
import numpy as np

from rag.atomic import atomic_write
from rag.tokenize import TOKENIZER_VERSION, Tokenizer

Scored = list[tuple[int, float]]
HNSW_THRESHOLD = 100_000
"""Default vector count from which DenseIndex is HNSW instead of exact."""


class CorruptIndex(RuntimeError):
    """An index file that is missing, truncated or not written by this module."""


class DenseIndex:
    """Inner-product search over unit vectors; flat (exact) when small, HNSW when large."""

    def __init__(self, dimension: int, *, hnsw_threshold: int = HNSW_THRESHOLD, hnsw_m: int = 32, ef_search: int = 128):
        self.dimension = dimension
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self._index = faiss.IndexIDMap(faiss.IndexFlatIP(dimension))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """ "flat" or "hnsw"."""
        return "hnsw" if isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSWFlat) else "flat"

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        with self._lock:
            self._index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
            if self.kind == "flat" and len(self) >= self.hnsw_threshold:
                self._rebuild(self.ids(), self._vectors())

    def remove(self, ids: Iterable[int]) -> None:
        doomed = np.asarray(list(ids), dtype=np.int64)
        if doomed.size == 0:
            return
        with self._lock:
            if self.kind == "flat":
                self._index.remove_ids(doomed)
            else:
                current = self.ids()
                keep = ~np.isin(current, doomed)
                self._rebuild(current[keep], self._vectors()[keep])

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Scored:
        """The `k` nearest chunk ids by inner product, best first, restricted to `allowed` if given."""
        if k <= 0 or len(self) == 0 or (allowed is not None and allowed.size == 0):
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dimension)
        with self._lock:
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            else:
                params = faiss.SearchParameters()
            if allowed is not None:
                params.sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            scores, labels = self._index.search(query, min(k, len(self)), params=params)
        return [(int(label), float(score)) for label, score in zip(labels[0], scores[0], strict=True) if label >= 0]

    def save(self, path: Path) -> None:
        with self._lock:
            atomic_write(path, lambda target: faiss.write_index(self._index, str(target)))

    @classmethod
    def load(cls, path: Path, *, hnsw_threshold: int = HNSW_THRESHOLD) -> DenseIndex:
        """Read an index written by `save`; raises CorruptIndex if the file is not one."""
        try:
            stored = faiss.read_index(str(path))
        except RuntimeError as error:
            raise CorruptIndex(f"{path}: {error}") from error
        if not isinstance(stored, faiss.IndexIDMap):
            raise CorruptIndex(f"{path} is not an id-mapped FAISS index")
        dense = cls(stored.d, hnsw_threshold=hnsw_threshold)
        inner = faiss.downcast_index(stored.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            dense.hnsw_m = inner.hnsw.nb_neighbors(1)
        dense._index = stored
        return dense

    def vectors(self) -> dict[int, np.ndarray]:
        """Every stored vector by chunk id (e.g. to copy them elsewhere without embedding again)."""
        with self._lock:
            return dict(zip(self.ids().tolist(), self._vectors(), strict=True))

    def _vectors(self) -> np.ndarray:
        return self._index.index.reconstruct_n(0, len(self))

    def _rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) >= self.hnsw_threshold:
            inner = faiss.IndexHNSWFlat(self.dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 2 * self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexIDMap(inner)
        if len(ids):
            index.add_with_ids(vectors, ids)
        self._index = index


class BM25Index:
    """BM25 (Lucene variant) over chunk texts, with add/remove by chunk id."""

    def __init__(self, *, language: str | None = "english", k1: float = 0.9, b: float = 0.4):
        self.language = language
        self.k1 = k1
        self.b = b
        self._tokens: dict[int, list[str]] = {}
        self._model: bm25s.BM25 | None = None
        self._order = np.zeros(0, dtype=np.int64)
        self._lock = threading.Lock()
        self._tokenizer = Tokenizer(language)

    def __len__(self) -> int:
        return len(self._tokens)

    def ids(self) -> np.ndarray:
        return np.fromiter(self._tokens, dtype=np.int64, count=len(self._tokens))

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        return self._tokenizer(texts)

    def add(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        tokens = self.tokenize(list(texts))
        with self._lock:
            self._tokens.update(zip((int(i) for i in ids), tokens, strict=True))
            self._model = None

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            for chunk_id in ids:
                self._tokens.pop(int(chunk_id), None)
            self._model = None

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> Scored:
        """The `k` best-scoring chunk ids that share a term with `query`, restricted to `allowed` if given."""
        query_tokens = self.tokenize([query])[0]
        with self._lock:
            if k <= 0 or not any(self._tokens.values()):  # bm25s cannot index a corpus without tokens
                return []
            if self._model is None:
                self._order = self.ids()
                self._model = bm25s.BM25(k1=self.k1, b=self.b)
                self._model.index([self._tokens[int(i)] for i in self._order], show_progress=False)
            model, order = self._model, self._order
        token_ids = model.get_tokens_ids(query_tokens)
        if not token_ids:
            return []
        scores = model.get_scores_from_ids(token_ids)
        if allowed is not None:
            scores = np.where(np.isin(order, allowed), scores, 0.0)
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k == 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(order[i]), float(scores[i])) for i in best]

    def save(self, path: Path) -> None:
        """One .npz file: settings, chunk ids, and their tokens as ids into a vocabulary."""
        with self._lock:
            ids = self.ids()
            vocabulary: dict[str, int] = {}
            flat = [vocabulary.setdefault(token, len(vocabulary)) for i in ids for token in self._tokens[int(i)]]
            lengths = [len(self._tokens[int(i)]) for i in ids]
        settings = json.dumps({"language": self.language, "k1": self.k1, "b": self.b, "tokenizer": TOKENIZER_VERSION})
        arrays = {
            "settings": np.frombuffer(settings.encode("utf-8"), dtype=np.uint8),
            "ids": ids,
            "lengths": np.asarray(lengths, dtype=np.int64),
            "tokens": np.asarray(flat, dtype=np.int32),
            "vocabulary": np.frombuffer("\n".join(vocabulary).encode("utf-8"), dtype=np.uint8),
        }

        def write(target: Path) -> None:
            with open(target, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        """Read an index written by `save`; raises CorruptIndex if the file is not one, or if its tokens were
        cut by another tokenizer (an older lorag's: then the caller rebuilds it from the chunks)."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                settings = json.loads(stored["settings"].tobytes().decode("utf-8"))
                if settings.pop("tokenizer", None) != TOKENIZER_VERSION:
                    raise CorruptIndex(f"{path}: tokens cut by an older tokenizer than {TOKENIZER_VERSION}")
                vocabulary = np.array(stored["vocabulary"].tobytes().decode("utf-8").split("\n"), dtype=object)
                ids, lengths, flat = stored["ids"], stored["lengths"], stored["tokens"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise CorruptIndex(f"{path}: {error}") from error
        bm25 = cls(**settings)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for position, chunk_id in enumerate(ids):
            bm25._tokens[int(chunk_id)] = vocabulary[flat[bounds[position] : bounds[position + 1]]].tolist()
        return bm25
