"""LocalEngine structured outputs and logprobs on the tiny random model.

A random model is the hardest client of a grammar: nothing but the mask keeps its output valid.
"""

from __future__ import annotations

import asyncio
import json
import math
import random

import jsonschema
import pytest

from serve.adapters import AdapterRegistry
from serve.engine import InvalidRequest, Message, SamplingParams
from serve.local_engine import LocalEngine

ASK = [Message("user", "Describe a person as JSON.")]
ADAPTERS = [None, "alpha", "beta", "gamma"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir, random_adapters):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    engine = LocalEngine(tiny_model_dir, base["id"])
    registry = AdapterRegistry(next(iter(random_adapters.values())).parent, base["id"], base["sha256"])

    async def load():
        for spec in registry.scan().adapters.values():
            await engine.load_adapter(spec)

    asyncio.run(load())
    yield engine
    asyncio.run(engine.close())


def generated_schema(rng: random.Random, depth: int = 0) -> dict:
    """A random JSON schema: objects with required and optional fields, enums, arrays, numbers, nesting."""
    kinds = ["string", "integer", "number", "boolean", "enum", "array"] + (["object"] * 2 if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "string":
        return {"type": "string", "maxLength": rng.randint(1, 12)}
    if kind == "integer":
        low = rng.randint(-50, 50)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(0, 500)}
    if kind == "number":
        return {"type": "number", "minimum": -10, "maximum": 1000}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", "cyan", "x y", "Zürich"], rng.randint(1, 4))}
    if kind == "array":
        return {"type": "array", "items": generated_schema(rng, depth + 1), "maxItems": rng.randint(1, 3)}
    return generated_object(rng, depth + 1)


def generated_object(rng: random.Random, depth: int = 0) -> dict:
    names = rng.sample(["name", "age", "tags", "score", "city", "ok", "inner", "list"], rng.randint(1, 4))
    return {
        "type": "object",
        "properties": {name: generated_schema(rng, depth) for name in names},
        "required": rng.sample(names, rng.randint(0, len(names))),
        "additionalProperties": False,
    }


SCHEMAS = [generated_object(random.Random(seed)) for seed in range(20)]


def test_every_generated_schema_is_followed_in_batches_that_mix_adapters_and_free_rows(engine):
    async def go():
        jobs = []
        for i, schema in enumerate(SCHEMAS):
            params = SamplingParams(max_tokens=400, temperature=1.0, seed=i, json_schema=json.dumps(schema))
            jobs.append(engine.generate(ASK, params, ADAPTERS[i % 4]))
            jobs.append(engine.generate(ASK, SamplingParams(max_tokens=8, temperature=1.0, seed=i), ADAPTERS[i % 3]))
        return await asyncio.gather(*jobs)

    engine.batch_sizes.clear()
    results = asyncio.run(go())
    assert max(engine.batch_sizes) > 1  # constrained and free rows, of several adapters, shared batches
    for schema, result in zip(SCHEMAS, results[::2], strict=True):
        assert result.finish_reason == "stop", (schema, result.text)
        jsonschema.validate(json.loads(result.text), schema)
    assert sum(r.text.startswith("{") for r in results[1::2]) < 5  # the free rows next to them stay free


def test_a_schema_that_cannot_compile_is_an_invalid_request(engine):
    broken = {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}, "required": ["a"]}
    with pytest.raises(InvalidRequest, match="JSON schema"):
        asyncio.run(engine.generate(ASK, SamplingParams(json_schema=json.dumps(broken))))


def test_logprobs_rank_and_sum_consistently(engine):
    params = SamplingParams(max_tokens=10, temperature=0, logprobs=5)
    result = asyncio.run(engine.generate(ASK, params, "beta"))
    assert len(result.logprobs) == result.completion_tokens == 10
    for token in result.logprobs:
        values = [v for _, v in token.top]
        assert values == sorted(values, reverse=True) and len(values) == 5
        assert token.top[0] == (token.token, pytest.approx(token.logprob))  # greedy takes the likeliest
        assert token.logprob <= 0 and sum(math.exp(v) for v in values) <= 1 + 1e-5


def test_sampled_logprobs_stream_as_they_come_and_match_the_whole_answer(engine):
    params = SamplingParams(max_tokens=12, temperature=0.8, seed=3, logprobs=2)

    async def go():
        deltas = [d async for d in engine.stream(ASK, params, "gamma")]
        return deltas, await engine.generate(ASK, params, "gamma")

    deltas, whole = asyncio.run(go())
    streamed = [t for d in deltas for t in d.logprobs]
    assert [t.token for t in streamed] == [t.token for t in whole.logprobs]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in whole.logprobs], abs=1e-4)
