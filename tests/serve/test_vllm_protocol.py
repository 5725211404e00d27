"""vLLM's wire format as the VllmEngine reads it: server-sent events however they are cut, and whole replies."""

import asyncio
import json

from serve.engine import TokenLogprob
from serve.vllm_protocol import generation, stream_deltas


class Body:
    """A response body that arrives in the given pieces (what aiohttp's ``StreamReader.iter_any`` yields)."""

    def __init__(self, *pieces: bytes):
        self.pieces = pieces

    async def iter_any(self):
        for piece in self.pieces:
            yield piece


def event(chunk: dict, end: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(chunk).encode() + end


def deltas(*pieces: bytes) -> list:
    async def go():
        return [d async for d in stream_deltas(Body(*pieces))]

    return asyncio.run(go())


HELLO = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]})
LO = event({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "length"}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})


def test_events_cut_anywhere_give_the_same_deltas_and_the_last_has_the_finish_and_usage():
    body = HELLO + LO + USAGE + b"data: [DONE]\n\n"
    whole = deltas(body)
    assert [(d.text, d.finish_reason) for d in whole] == [("Hel", None), ("lo", None), ("", "length")]
    assert (whole[-1].prompt_tokens, whole[-1].completion_tokens) == (3, 2)
    for cut in range(1, len(body)):  # a line may be split across reads anywhere
        assert deltas(body[:cut], body[cut:]) == whole
    assert deltas(*(bytes([b]) for b in body)) == whole


def test_crlf_line_ends_and_a_last_line_without_its_end_are_read():
    last = event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}, end=b"")
    body = HELLO.replace(b"\n", b"\r\n") + last
    got = deltas(body)
    assert [d.text for d in got] == ["Hel", ""] and got[-1].finish_reason == "stop" and got[-1].prompt_tokens == 1


def test_a_stream_without_usage_ends_with_stop_and_no_counts():
    got = deltas(HELLO, b"data: [DONE]\n\n")
    assert (got[-1].finish_reason, got[-1].prompt_tokens, got[-1].completion_tokens) == ("stop", 0, 0)


def test_logprobs_come_back_streamed_and_whole():
    logprobs = {"content": [{"token": "Hel", "logprob": -0.5, "top_logprobs": [{"token": "He", "logprob": -1.0}]}]}
    streamed = deltas(event({"choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": logprobs}]}))
    reply = {
        "choices": [{"message": {"content": "Hel"}, "finish_reason": "length", "logprobs": logprobs}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1},
    }
    whole = generation(reply)
    expected = [TokenLogprob("Hel", -0.5, (("He", -1.0),))]
    assert streamed[0].logprobs == expected and whole.logprobs == expected
    assert (whole.text, whole.finish_reason, whole.prompt_tokens, whole.completion_tokens) == ("Hel", "length", 4, 1)
