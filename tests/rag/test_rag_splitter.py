import pytest

from rag.embedder import HashingEmbedder
from rag.loaders import load_document
from rag.splitter import ChunkingSettings, split_document

count = HashingEmbedder().count_tokens


def test_chunks_fit_the_budget_overlap_and_point_into_the_text():
    sentences = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(80))
    [doc] = load_document("long.txt", sentences.encode())
    settings = ChunkingSettings(chunk_size=40, chunk_overlap=10)
    chunks = split_document(doc, settings, count)
    assert len(chunks) > 5
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert count(chunk.text) <= 40
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False)), "consecutive chunks overlap"
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)


def test_short_segments_are_one_chunk_each_and_keep_their_page(make_pdf):
    [doc] = load_document("two.pdf", make_pdf(["First page words", "Second page words"]))
    chunks = split_document(doc, ChunkingSettings(64, 8), count)
    assert [(c.text, c.page) for c in chunks] == [("First page words", 1), ("Second page words", 2)]


def test_markdown_sections_are_chunk_context():
    body = " ".join(f"word{i}" for i in range(60))
    source = f"# Manual\n\n## Setup\n\n{body}\n\n## Usage\n\nShort usage.\n"
    [doc] = load_document("manual.md", source.encode())
    chunks = split_document(doc, ChunkingSettings(chunk_size=32, chunk_overlap=4), count)
    setup = [c for c in chunks if c.section == "Manual > Setup"]
    assert len(setup) >= 2, "the long section is split, every piece keeps its heading trail"
    for chunk in setup:
        assert chunk.indexed_text == f"Manual > Setup\n\n{chunk.text}"
        assert count(chunk.indexed_text) <= 32
        assert source[chunk.start : chunk.end] == chunk.text
    assert chunks[-1].section == "Manual > Usage" and chunks[-1].text == "## Usage\n\nShort usage."


def test_default_settings_fill_the_embedder_input():
    assert ChunkingSettings.for_embedder(256) == ChunkingSettings(chunk_size=256, chunk_overlap=32)
    with pytest.raises(ValueError):
        ChunkingSettings(chunk_size=64, chunk_overlap=64)
