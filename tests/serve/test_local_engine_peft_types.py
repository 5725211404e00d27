"""LocalEngine serves IA3, prompt-tuning and prefix-tuning adapters next to LoRA, as plain PEFT would.

Each adapter is random (so it visibly changes the tiny model's output), registered through the
adapter registry with LocalEngine's limits, and checked against PEFT's own ``generate``.
"""

import asyncio
import json

import pytest
import torch

from serve.adapters import AdapterRegistry
from serve.engine import Message, SamplingParams, UnknownAdapter
from serve.local_engine import LIMITS, LocalEngine

GREEDY = SamplingParams(max_tokens=12, temperature=0)
SAMPLED = SamplingParams(max_tokens=12, temperature=1.0, seed=11)
ASK = [Message("user", "Who are you?")]
TYPES = {"ia3": "IA3", "prompt": "PROMPT_TUNING", "prefix": "PREFIX_TUNING"}


def _configs():
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    return {
        "lora": LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False),
        "ia3": IA3Config(init_ia3_weights=False, task_type="CAUSAL_LM"),
        "prompt": PromptTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"),
        "prefix": PrefixTuningConfig(num_virtual_tokens=3, task_type="CAUSAL_LM"),
    }


@pytest.fixture(scope="module")
def adapters_dir(tiny_model_dir, tmp_path_factory):
    """One random adapter of each type for the tiny model, each with a lorag.json naming that model."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("peft-types")
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    for seed, (name, config) in enumerate(_configs().items()):
        torch.manual_seed(200 + seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        get_peft_model(model, config).save_pretrained(folder / name)
        manifest = {"name": name, "base_model": {"id": base["id"], "sha256": base["sha256"]}}
        (folder / name / "lorag.json").write_text(json.dumps(manifest))
    return folder


def registry(folder, tiny_model_dir, limits):
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    return AdapterRegistry(folder, base["id"], base["sha256"], limits)


@pytest.fixture
def engine(tiny_model_dir, adapters_dir):
    scan = registry(adapters_dir, tiny_model_dir, LIMITS).scan()
    assert scan.refused == {} and {s.peft_type for s in scan.adapters.values()} == {"LORA", *TYPES.values()}
    engine = LocalEngine(tiny_model_dir, "tiny")

    async def load():
        for spec in scan.adapters.values():
            await engine.load_adapter(spec)

    asyncio.run(load())
    yield engine
    asyncio.run(engine.close())


def run(coro):
    return asyncio.run(coro)


def plain_peft(tiny_model_dir, adapter_dir, params: SamplingParams) -> str:
    """PEFT's own generation for one adapter: a fresh model, ``PeftModel.from_pretrained``, ``generate``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    chat = [{"role": "user", "content": ASK[0].content}]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    sampling = {"do_sample": False}
    if params.temperature > 0:
        sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, **sampling)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("name", TYPES)
def test_each_type_changes_the_output_exactly_as_plain_peft_does(engine, tiny_model_dir, adapters_dir, name):
    async def go():
        return [(await engine.generate(ASK, p, a)).text for p in (GREEDY, SAMPLED) for a in (None, name)]

    base_greedy, greedy, base_sampled, sampled = run(go())
    assert greedy != base_greedy and sampled != base_sampled
    assert greedy == plain_peft(tiny_model_dir, adapters_dir / name, GREEDY)
    assert sampled == plain_peft(tiny_model_dir, adapters_dir / name, SAMPLED)


def test_a_batch_mixing_every_type_gives_each_request_its_own_output(engine):
    adapters = [None, "lora", "ia3", "prompt", "prefix", "prefix", "ia3", None]

    async def alone():
        return [(await engine.generate(ASK, GREEDY, a)).text for a in adapters]

    async def together():
        results = await asyncio.gather(*(engine.generate(ASK, GREEDY, a) for a in adapters))
        return [r.text for r in results]

    solo = run(alone())
    assert len(set(solo)) == 5
    engine.batch_sizes.clear()
    assert run(together()) == solo
    assert len(engine.batch_sizes) < len(adapters)  # requests of different types shared batches


@pytest.mark.parametrize("name", TYPES)
def test_streaming_max_tokens_and_stop_sequences_for_every_type(engine, name):
    async def go():
        deltas = [d async for d in engine.stream(ASK, GREEDY, name)]
        whole = await engine.generate(ASK, GREEDY, name)
        short = await engine.generate(ASK, SamplingParams(max_tokens=3, temperature=0), name)
        stop = whole.text[4:6]
        stopped = await engine.generate(ASK, SamplingParams(max_tokens=12, temperature=0, stop=(stop,)), name)
        return deltas, whole, short, stop, stopped

    deltas, whole, short, stop, stopped = run(go())
    assert "".join(d.text for d in deltas) == whole.text and deltas[-1].finish_reason == whole.finish_reason
    assert short.finish_reason == "length" and short.completion_tokens == 3
    assert stopped.finish_reason == "stop" and stopped.text == whole.text[: whole.text.index(stop)]


def test_a_caller_that_goes_away_does_not_disturb_other_types(engine):
    async def go():
        expected = await engine.generate(ASK, GREEDY, "ia3")
        abandoned = engine.stream(ASK, SamplingParams(max_tokens=200, temperature=0), "prefix")
        await abandoned.__anext__()
        other = asyncio.create_task(engine.generate(ASK, GREEDY, "ia3"))
        await abandoned.aclose()
        return expected, await other

    expected, other = run(go())
    assert other.text == expected.text


@pytest.mark.parametrize("name", TYPES)
def test_unloading_one_type_drains_it_and_leaves_the_others_serving(engine, name):
    others = [a for a in ("lora", *TYPES) if a != name]

    async def go():
        before = {a: (await engine.generate(ASK, GREEDY, a)).text for a in others}
        running = asyncio.create_task(engine.generate(ASK, SamplingParams(max_tokens=30, temperature=0), name))
        await asyncio.sleep(0.05)
        unloading = asyncio.create_task(engine.unload_adapter(name))
        await asyncio.sleep(0)
        assert name not in engine.adapters()
        with pytest.raises(UnknownAdapter):
            await engine.generate(ASK, GREEDY, name)
        await unloading
        after = {a: (await engine.generate(ASK, GREEDY, a)).text for a in others}
        return await running, before, after

    finished, before, after = run(go())
    assert finished.completion_tokens > 0
    assert after == before and engine.adapters() == sorted(others)


def test_non_lora_types_outlive_the_last_lora(engine):
    """Unloading the last LoRA turns the PeftModel back into the plain model; the other types keep working."""

    async def go():
        before = {a: (await engine.generate(ASK, GREEDY, a)).text for a in TYPES}
        await engine.unload_adapter("lora")
        return before, {a: (await engine.generate(ASK, GREEDY, a)).text for a in TYPES}

    before, after = run(go())
    assert engine.model is engine.base and after == before


def test_vllm_refuses_what_only_the_local_engine_serves(tiny_model_dir, adapters_dir):
    from serve.vllm_engine import VllmEngine

    limits = VllmEngine(tiny_model_dir, "tiny").info.limits
    scan = registry(adapters_dir, tiny_model_dir, limits).scan()
    assert list(scan.adapters) == ["lora"]
    for name, peft_type in TYPES.items():
        assert scan.refused[name] == f"PEFT type {peft_type} is not served by this engine (it serves LORA)"


def test_rank_limits_apply_to_lora_only(tiny_model_dir, adapters_dir):
    from serve.adapters import EngineLimits

    scan = registry(adapters_dir, tiny_model_dir, EngineLimits(peft_types=LIMITS.peft_types, max_rank=2)).scan()
    assert set(scan.adapters) == set(TYPES) and "rank 4 is over" in scan.refused["lora"]
    assert all(scan.adapters[name].rank is None for name in TYPES)
