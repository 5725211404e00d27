import pytest

from rag.augment import augment, query_text
from rag.retriever import Hit, reciprocal_rank_fusion


def hit(number: int, text: str, page: int | None = None, section: str | None = None) -> Hit:
    return Hit(number, f"doc_{number}", f"file{number}.pdf", text, 0.5, page, section, 0, len(text), {})


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([[(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 7.0), (4, 5.0)]], [1.0, 1.0], rrf_k=60)
    assert [item for item, _ in fused] == [2, 1, 4, 3]
    assert fused[0][1] == pytest.approx((1 / 62 + 1 / 61) / (2 / 61))
    assert reciprocal_rank_fusion([[(5, 1.0)], [(5, 1.0)]], [1.0, 2.0])[0][1] == pytest.approx(1.0)
    weighted = reciprocal_rank_fusion([[(1, 0.0)], [(2, 0.0)]], [1.0, 3.0])
    assert [item for item, _ in weighted] == [2, 1]


def test_augment_numbers_sources_in_the_last_user_turn():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Old question?"},
        {"role": "assistant", "content": "Old answer."},
        {"role": "user", "content": "What grew?"},
    ]
    hits = [hit(7, "Revenue grew 5%.", page=3), hit(9, "  Costs   fell.\n", section="Finance > Costs")]
    augmented, citations = augment(messages, hits)

    assert augmented[:3] == messages[:3] and messages[3]["content"] == "What grew?", "input is not mutated"
    content = augmented[3]["content"]
    assert "[1] file7.pdf, page 3\nRevenue grew 5%." in content
    assert "[2] file9.pdf, Finance > Costs\nCosts   fell." in content
    assert "cite" in content.lower() and content.endswith("Question: What grew?")
    assert [(c.index, c.chunk_id, c.document_id, c.page, c.snippet) for c in citations] == [
        (1, 7, "doc_7", 3, "Revenue grew 5%."),
        (2, 9, "doc_9", None, "Costs fell."),
    ]


def test_augment_handles_content_parts_no_hits_and_long_snippets():
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe this."}]}]
    augmented, citations = augment(messages, [hit(1, "word " * 100)], snippet_chars=20)
    preamble = augmented[0]["content"][0]["text"]
    assert preamble.startswith("[1] file1.pdf\nword word") and preamble.endswith("say so.\n\nQuestion:")
    assert augmented[0]["content"][1] == {"type": "text", "text": "Describe this."}
    assert len(citations[0].snippet) == 20 and citations[0].snippet.endswith("…")
    assert augment(messages, []) == (messages, [])
    assert query_text(messages) == "Describe this."
    with pytest.raises(ValueError):
        augment([{"role": "system", "content": "x"}], [hit(1, "y")])
