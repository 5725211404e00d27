"""The chat template lorag writes renders Gemma's turn format exactly, and masks assistant turns."""

import pytest
from transformers import AutoTokenizer

from serve.chat_template import with_generation_markers


def test_gemma_turn_format_is_rendered_exactly(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Who are you?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nWho are you?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_assistant_mask_covers_the_reply_and_its_end_of_turn(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Hello<end_of_turn>"
    assert tokenizer.eos_token == "<end_of_turn>"


SMOLLM2_TEMPLATE = (  # SmolLM2-135M-Instruct's own, as its GGUF carries it
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.mark.parametrize("system", [[], [{"role": "system", "content": "Answer from the sources."}]])
def test_a_models_own_chatml_template_gets_generation_markers_and_renders_the_same(tiny_model_dir, system):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    marked = with_generation_markers(SMOLLM2_TEMPLATE)
    assert marked != SMOLLM2_TEMPLATE and with_generation_markers(marked) == marked
    chat = [*system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    for messages, prompt in ((chat, False), (chat + [{"role": "user", "content": "And you?"}], True)):
        own = tokenizer.apply_chat_template(
            messages, chat_template=SMOLLM2_TEMPLATE, tokenize=False, add_generation_prompt=prompt
        )
        ours = tokenizer.apply_chat_template(
            messages, chat_template=marked, tokenize=False, add_generation_prompt=prompt
        )
        assert ours == own
    out = tokenizer.apply_chat_template(chat, chat_template=marked, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Hello<|im_end|>"


def test_templates_lorag_does_not_know_are_left_alone():
    assert with_generation_markers("{{ messages[0]['content'] }}") == "{{ messages[0]['content'] }}"
