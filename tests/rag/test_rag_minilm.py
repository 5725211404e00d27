import numpy as np
import pytest

from rag.embedder import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
from rag.retriever import retrieve
from rag.store import KnowledgeBase


@pytest.mark.slow
def test_packaged_minilm_embeds_and_retrieves(tmp_path):
    embedder = SentenceTransformerEmbedder()
    assert (embedder.id, embedder.dimension, embedder.max_tokens) == (DEFAULT_EMBEDDER, 384, 254)
    vectors = embedder.embed(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell today."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.count_tokens("hello world") == 2

    kb = KnowledgeBase.create(tmp_path / "kb", embedder)
    assert kb.manifest.chunking.chunk_size == 254
    kb.ingest("pets.txt", b"Kittens are young cats that love to play.")
    kb.ingest("finance.txt", b"Interest rates were raised by the central bank.")
    assert retrieve(kb, "baby felines", mode="dense", top_k=1)[0].filename == "pets.txt"
