import pytest

from rag.embedder import SentenceTransformerEmbedder


@pytest.mark.slow
def test_minilm_counts_long_texts_in_full_also_after_embedding():
    """Chunk sizing relies on exact counts: the tokenizer's truncation must not cap them."""
    embedder = SentenceTransformerEmbedder()
    long_text = "cell " * 600
    assert embedder.count_tokens(long_text) == 600
    embedder.embed([long_text, "short"])  # leaves truncation set on the model's own tokenizer
    assert embedder.count_tokens(long_text) == 600
    assert [embedder.count_tokens(word) for word in ("cell", "microstructural", "")] == [1, 5, 0]
