"""Merged engine streams: every choice's deltas in arrival order, in batches or one by one, errors in their turn."""

import asyncio

import pytest

from gateway.api.merged import Merged
from serve.engine import Delta, Message, SamplingParams


class Scripted:
    """An engine whose stream for a prompt ``"a b !"`` yields ``a``, ``b``, then fails at ``!`` (else finishes)."""

    async def stream(self, messages: list[Message], params: SamplingParams, adapter=None):
        for word in messages[-1].content.split():
            await asyncio.sleep(0)
            if word == "!":
                raise RuntimeError("engine failed")
            yield Delta(word)
        yield Delta("", "stop", 1, 2)


def merged(*prompts: str) -> Merged:
    return Merged(Scripted(), None, [([Message("user", p)], SamplingParams()) for p in prompts])


def test_batches_hold_what_arrived_together_and_end_empty_when_every_choice_has_finished():
    async def go():
        deltas = merged("a b", "c")
        await asyncio.sleep(0.01)  # both streams have finished meanwhile
        first = await deltas.batch(wait=False)
        rest = await deltas.batch()
        await deltas.aclose()
        return first, rest, deltas.running

    first, rest, running = asyncio.run(go())
    assert sorted((i, d.text) for i, d in first) == [(0, ""), (0, "a"), (0, "b"), (1, ""), (1, "c")]
    assert [d.finish_reason for i, d in first if i == 0] == [None, None, "stop"] and rest == [] and running == 0


def test_iterating_gives_the_same_items_one_by_one():
    async def go():
        deltas = merged("a b", "c")
        items = [(i, d.text) async for i, d in deltas]
        await deltas.aclose()
        return items

    items = asyncio.run(go())
    assert [t for i, t in items if i == 0] == ["a", "b", ""] and [t for i, t in items if i == 1] == ["c", ""]


def test_an_engine_error_comes_after_what_arrived_before_it():
    async def go():
        deltas = merged("a !")
        await asyncio.sleep(0.01)
        before = await deltas.batch()
        with pytest.raises(RuntimeError, match="engine failed"):
            await deltas.batch()
        await deltas.aclose()
        return before

    assert [(i, d.text) for i, d in asyncio.run(go())] == [(0, "a")]


def test_closing_early_cancels_the_streams_still_running():
    async def go():
        deltas = merged(" ".join(["w"] * 1000))
        await deltas.batch()
        await deltas.aclose()
        return deltas.tasks[0]

    assert asyncio.run(go()).cancelled()
