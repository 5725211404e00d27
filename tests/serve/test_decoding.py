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


class Chars:
    """A tokenizer whose token ids are characters' code points."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))


def stream_text(text: str, stop: tuple[str, ...]) -> tuple[str, bool, list[str]]:
    stream, pieces = TextStream(Chars(), stop=stop), []
    for char in text:
        pieces.append(stream.add(ord(char)))
        if stream.stopped:
            return "".join(pieces), True, pieces
    return "".join(pieces) + stream.flush(), False, pieces


def test_stop_sequences_end_the_text_at_the_first_one_found_whatever_their_overlaps():
    import random

    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice("ab") for _ in range(rng.randint(0, 30)))
        stop = tuple("".join(rng.choice("ab") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 4)))
        ends = [(text.find(s) + len(s), text.find(s)) for s in stop if s in text]
        expected = text[: min(ends)[1]] if ends else text
        assert stream_text(text, stop)[:2] == (expected, bool(ends)), (text, stop)


def test_text_that_might_begin_a_stop_sequence_is_held_back_until_it_cannot():
    text, stopped, pieces = stream_text("aaab tail", ("aab!",))
    assert not stopped and text == "aaab tail"
    assert pieces[:5] == ["", "", "a", "", "aab "]  # "aa" could begin "aab!", "aab" too, until " " came
