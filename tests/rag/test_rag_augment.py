import pytest

from rag.augment import DEFAULT_INSTRUCTION, augment, query_text
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


def test_augment_puts_the_instruction_and_numbered_sources_after_the_system_message():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Old question?"},
        {"role": "assistant", "content": "Old answer."},
        {"role": "user", "content": "What grew?"},
    ]
    hits = [hit(7, "Revenue grew 5%.", page=3), hit(9, "  Costs   fell.\n", section="Finance > Costs")]
    augmented, citations = augment(messages, hits)

    assert augmented[1:] == messages[1:] and messages[0]["content"] == "Be brief.", "input is not mutated"
    system = augmented[0]["content"]
    assert system.startswith(f"Be brief.\n\n{DEFAULT_INSTRUCTION}\n\n")
    assert system.endswith("[1] file7.pdf, page 3\nRevenue grew 5%.\n\n[2] file9.pdf, Finance > Costs\nCosts   fell.")
    assert [(c.index, c.chunk_id, c.document_id, c.page, c.snippet) for c in citations] == [
        (1, 7, "doc_7", 3, "Revenue grew 5%."),
        (2, 9, "doc_9", None, "Costs fell."),
    ]


def test_without_a_system_message_the_sources_become_one():
    augmented, _ = augment([{"role": "user", "content": "What grew?"}], [hit(1, "Revenue grew.")])
    assert augmented == [
        {"role": "system", "content": f"{DEFAULT_INSTRUCTION}\n\n[1] file1.pdf\nRevenue grew."},
        {"role": "user", "content": "What grew?"},
    ]


def test_augment_handles_content_parts_no_hits_and_long_snippets():
    system = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    messages = [system, {"role": "user", "content": [{"type": "text", "text": "Describe this."}]}]
    augmented, citations = augment(messages, [hit(1, "word " * 100)], snippet_chars=20)
    parts = augmented[0]["content"]
    assert parts[0] == {"type": "text", "text": "Be brief."} and parts[1]["text"].startswith(
        f"\n\n{DEFAULT_INSTRUCTION}"
    )
    assert parts[1]["text"].endswith("[1] file1.pdf\n" + ("word " * 100).strip())
    assert augmented[1] == messages[1]
    assert len(citations[0].snippet) == 20 and citations[0].snippet.endswith("…")
    assert augment(messages, []) == (messages, [])
    assert query_text(messages) == "Describe this."
    with pytest.raises(ValueError):
        augment([{"role": "system", "content": "x"}], [hit(1, "y")])
