"""Chat templates lorag writes into a prepared base model's tokenizer.

The prepared tokenizer is the single source of the chat template: the trainer saves it with
every adapter and both engines read it from there. This module holds the templates for base
models that ship without one, and adds ``{% generation %}`` markers to a model's own template
where it knows that template's turn expression; the rendered text never changes.

Both templates wrap assistant turns in ``{% generation %}`` markers, so TRL's
``assistant_only_loss`` can mask everything but the assistant's tokens (end of turn included,
so the model learns to stop).
"""

import re

# Gemma turn format: roles user/model, a system message folded into the first user turn,
# every turn closed by <end_of_turn>.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] | trim -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{%- generation -%}{{ (message['content'] | trim) + '<end_of_turn>' }}{%- endgeneration -%}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + message['role'] + '\n' }}"
    "{%- if loop.first and system -%}{{ system + '\n\n' }}{%- endif -%}"
    "{{ (message['content'] | trim) + '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
GEMMA_END_OF_TURN = "<end_of_turn>"

# ChatML, for other base models that come without a template.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\n' }}"
    "{%- generation -%}{{ (message['content'] | trim) + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] | trim) + '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
CHATML_END_OF_TURN = "<|im_end|>"


def template_for(model_type: str) -> tuple[str, str]:
    """The (template, end-of-turn token) lorag gives a base model of this architecture."""
    if model_type.startswith("gemma"):
        return GEMMA_TEMPLATE, GEMMA_END_OF_TURN
    return CHATML_TEMPLATE, CHATML_END_OF_TURN


# The per-message expression of Hugging Face's ChatML templates (SmolLM2-Instruct among them), and the same
# expression with the assistant's content and end of turn inside generation markers: renders identically.
_CHATML_TURN = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
_CHATML_TURN_MARKED = (
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\n' }}"
    "{%- else -%}" + _CHATML_TURN + "{%- endif -%}"
)


def with_generation_markers(template: str) -> str:
    """``template`` with ``{% generation %}`` around assistant replies, where lorag knows its turn expression.

    TRL's ``assistant_only_loss`` needs the markers; models' own templates rarely have them. A template
    that already has them, or whose turn expression is unknown, is returned unchanged.
    """
    if re.search(r"\{%-?\s*generation\s*-?%\}", template) or _CHATML_TURN not in template:
        return template
    return template.replace(_CHATML_TURN, _CHATML_TURN_MARKED)
