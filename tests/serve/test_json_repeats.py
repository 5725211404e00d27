"""The repetition guard of constrained rows, on a made-up vocabulary: string content only, no duplicate items."""

from __future__ import annotations

import torch

from serve.json_repeats import DUPLICATE, StringRepeats

TEXTS = [b"", b'{"', b"Movie", b'",', b' "', b"cast", b'":', b' ["', b'\\"', b"x", b'"]', b'"}', b"MOVIE "]
OPEN, MOVIE, END, NEXT, CAST, COLON, LIST, ESCAPE, X, CLOSE_LIST, CLOSE_OBJECT, UPPER = range(1, 13)


def written(*tokens: int, penalty: float = 1.5) -> StringRepeats:
    guard = StringRepeats(TEXTS, penalty)
    for token in tokens:
        guard.add(0, token)
    return guard


def penalized(guard: StringRepeats) -> torch.Tensor:
    scores = torch.zeros(2, len(TEXTS))
    guard.penalize(0, scores)
    assert scores[1].abs().sum() == 0  # the other row is left alone
    return scores[0]


def test_tokens_repeated_inside_strings_cost_more_and_only_inside_a_string():
    guard = written(OPEN, CAST, COLON, LIST, MOVIE, END, NEXT, MOVIE, END)  # {"cast": ["Movie", "Movie",
    assert penalized(guard).abs().sum() == 0  # between items: another item or the end, as the model likes
    guard.add(0, NEXT)  # "
    scores = penalized(guard)
    assert scores[MOVIE] == -3.0 and scores[CAST] == -1.5  # Movie twice; the key once
    assert scores[[OPEN, END, NEXT, COLON, CLOSE_LIST]].abs().sum() == 0  # punctuation never


def test_an_item_equal_to_an_earlier_one_of_its_array_may_not_close():
    guard = written(OPEN, CAST, COLON, LIST, MOVIE, END, NEXT, UPPER, penalty=0)  # ["Movie", "MOVIE
    scores = penalized(guard)
    assert scores[END] == scores[CLOSE_LIST] == scores[CLOSE_OBJECT] == -DUPLICATE  # every token closing it
    assert scores[X] == 0  # growing it into another item is free
    guard.add(0, X)
    assert penalized(guard).abs().sum() == 0


def test_a_value_equal_to_a_key_or_to_an_item_of_another_array_may_close():
    guard = written(OPEN, MOVIE, COLON, NEXT, MOVIE, penalty=0)  # {"Movie": "Movie   (no array)
    assert penalized(guard).abs().sum() == 0
    guard = written(LIST, MOVIE, CLOSE_LIST, NEXT, MOVIE, penalty=0)  # ["Movie"] "Movie   (the array closed)
    assert penalized(guard).abs().sum() == 0


def test_an_escaped_quote_stays_inside_the_string():
    guard = written(OPEN, X, ESCAPE, X)  # {"x\"x
    assert guard.rows[0].inside and guard.rows[0].counts == {X: 2, ESCAPE: 1}
    assert guard.rows[0].text == bytearray(b'x\\"x')
