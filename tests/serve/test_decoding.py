"""Incremental decoding gives exactly the text of decoding everything at once, stops included."""

import pytest
from transformers import AutoTokenizer

from serve.decoding import TextStream

TEXT = "Héllo wörld — ünïcödé ✓ 日本語 text, and more words after it. 🙂 Fin."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_pieces_add_up_to_the_whole_decoded_text(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(TEXT) / 2  # byte-level pieces: many characters span several tokens
    stream = TextStream(tokenizer)
    pieces = [stream.add(i) for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + stream.flush() == tokenizer.decode(ids, skip_special_tokens=True)


def test_a_stop_sequence_ends_the_text_before_it_and_is_never_emitted(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    stream = TextStream(tokenizer, stop=("more words",))
    pieces = []
    for i in ids:
        pieces.append(stream.add(i))
        if stream.stopped:
            break
    assert stream.stopped and "".join(pieces) == TEXT[: TEXT.index("more words")]
