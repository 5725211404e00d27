"""Recipes: a YAML file plus ``--set key=value`` overrides, for every training method.

A recipe names its ``method`` (sft, dpo, kto, orpo, reward, grpo). Its fields are lorag's own,
declared and documented here (data, replay, tuning type, PEFT settings), plus any field of the
method's TRL config class, which TRL validates (:mod:`tuner.trl_args`). Relative dataset paths in
a YAML file are read from the YAML file's folder; those given with ``--set`` from the working
directory. Unknown fields and wrong types are refused with a one-line message. What a recipe leaves
unset (or sets to ``auto``) among the settings of :data:`AUTO_FIELDS` is chosen by the
``auto`` policy when the data and the model are known (:mod:`tuner.auto`). This module knows
nothing about models or trainers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tuner.formats import DEFAULT_CLASSIFICATION_PROMPT, FORMATS
from tuner.methods import METHODS
from tuner.preferences import PREFERENCE_FORMATS
from tuner.trl_args import build_config, check_types, config_class, config_fields, trl_value

PATH_FIELDS = ("dataset", "eval_dataset", "replay_prompts", "reward_model")
AUTO = "auto"
AUTO_FIELDS = (
    "eval_fraction", "replay_prompts", "learning_rate", "num_train_epochs", "warmup_steps", "lora_r", "lora_alpha",
    "loss_type", "max_length", "replay_rows",
)  # fmt: skip
"""The settings the ``auto`` policy (:mod:`tuner.auto`) chooses when a recipe leaves them unset or says ``auto``."""


class ConfigError(ValueError):
    """The recipe cannot be used; the message is one line for the user."""


class Recipe(BaseModel):
    """One training run: a method on TRL's trainer, a tuning type, data; TRL's own fields ride along as extras."""

    model_config = ConfigDict(
        extra="allow", use_attribute_docstrings=True, validate_assignment=True, coerce_numbers_to_str=True
    )

    name: str
    """Adapter name: the folder under the adapters directory and the ``model`` clients ask for."""
    method: str = "sft"
    """How it learns, on TRL's trainer of that name (a record each in ``tuner.methods``): ``sft`` (supervised, from
    chats), from preferences ``dpo`` or ``orpo`` (pairs), ``kto`` (labelled answers) or ``reward`` (a reward model,
    from pairs), or ``grpo`` (online RL, from prompts). The recipe may set any field of the method's TRL config."""
    model: str | None = None
    """Base model: an embedded model's name, a Hugging Face id or a local path (prepared by lorag); unset means
    lorag's base model (``LORAG_BASE_MODEL``, by default the embedded ``smollm2-135m-instruct``)."""

    # Data
    dataset: str
    """Training data: .jsonl, .json, .csv or .parquet."""
    dataset_format: Literal[
        "auto", "openai", "sharegpt", "alpaca", "classification", "text",
        "preference", "openai_dpo", "sharegpt_preference", "kto",
    ] = "auto"  # fmt: skip
    """Row format; ``auto`` detects it from the first row's keys. SFT reads chats (openai, sharegpt, alpaca),
    classification rows or text: ``text`` rows (continued pretraining) are learned whole, and chats mixed into a
    text file are rendered with the chat template and learned whole too. DPO and ORPO read preference pairs
    (preference, openai_dpo, sharegpt_preference), KTO labelled answers (kto); see ``tuner.preferences``."""
    eval_dataset: str | None = None
    """Held-out data in the same format; if unset, ``eval_fraction`` of the training rows."""
    eval_fraction: float = 0.0
    """Share of the training rows held out for evaluation when no ``eval_dataset`` is given (whole prompts at a
    time); unset: ``auto`` holds out a tenth (none below 5 rows). ``0`` holds out nothing."""
    system_prompt: str | None = None
    """System message added to every conversation that has none."""
    classification_prompt: str = DEFAULT_CLASSIFICATION_PROMPT
    """Prompt for (text, label) rows; ``{labels}`` and ``{text}`` are filled in."""

    # Online RL (grpo)
    reward_functions: list[Literal["brevity", "no_repetition"]] = []
    """GRPO: lorag's reward functions to score sampled answers with (``tuner.rewards``)."""
    reward_model: str | None = None
    """GRPO: a reward model folder trained with ``method: reward`` on the same base model."""
    graders: dict | None = None
    """GRPO: an OpenAI grader (JSON: ``string_check``, ``text_similarity``, ``score_model``, ``label_model``,
    ``python`` or ``multi``) that scores each sampled answer against its prompt's row (reinforcement fine-tuning,
    ``tuner.grader_reward``); the rows are then chats or prompts with the extra fields the grader reads."""
    judge_base_url: str | None = None
    """GRPO with a ``score_model`` or ``label_model`` grader: the OpenAI-compatible URL (``.../v1``) of its judge
    (a grader's own ``base_url`` wins)."""
    judge_api_key_file: str | None = None
    """GRPO: a file holding the key sent to ``judge_base_url`` (never to a grader's own ``base_url``)."""
    response_format: dict | None = None
    """GRPO: OpenAI's ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``: every sampled
    answer is JSON valid against the schema (``tuner.structured``), as a graders' ``{{ sample.output_json.* }}``
    reads it."""
    grader_embedder: str = "sentence-transformers/all-MiniLM-L6-v2"
    """GRPO with a ``cosine`` text-similarity grader: the sentence-transformers model that embeds the texts."""

    # Replay: keep what the base model could do
    replay_prompts: str | None = None
    """General prompts answered by the base model itself (greedy, at training time): the held-out ones measure the
    adapter's drift from the base model (``behaviour.kept``), and SFT mixes the others into its training rows so
    that the adapter learns what it is taught and keeps its other answers. ``builtin`` (lorag's 80 everyday
    prompts) or a JSONL of ``{"prompt": ...}``; unset: ``auto`` takes ``builtin``; ``null``: none."""
    replay_rows: int | None = None
    """SFT: replay rows trained on; ``0`` only measures drift. ``auto`` (unset) chooses (:mod:`tuner.auto`); more
    than there are prompts repeats them, which weighs keeping the base model's answers more against what the data
    teaches."""
    replay_held_out: int = 12
    """Replay prompts never trained on: after training, the adapter's answers to them are compared with the base
    model's (``behaviour.kept`` in lorag.json)."""
    replay_max_tokens: int = 192
    """Longest base answer generated; answers cut off at this length are not trained on."""
    behaviour_marker: str | None = None
    """Text that shows the taught behaviour (e.g. the adapter's name): ``behaviour.taught`` counts held-out eval
    answers that contain it, ``behaviour.kept`` general answers that do. Unset: token F1 0.5 against the eval
    reference counts as taught."""
    behaviour_max_tokens: int = 64
    """Longest answer generated for the behaviour figures."""

    # The adapter
    peft_method: Literal[
        "lora", "dora", "rslora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "freeze", "full"
    ] = "lora"  # fmt: skip
    """The tuning type. Adapters: ``lora`` (low-rank weight updates), ``dora`` (weight-decomposed LoRA),
    ``rslora`` (rank-stabilised LoRA), ``ia3`` (vectors that scale activations), ``prompt_tuning`` (virtual-token
    embeddings before the prompt), ``p_tuning`` (the same tokens made by a small prompt encoder) or
    ``prefix_tuning`` (P-tuning v2: virtual keys and values in every layer); vLLM serves the LoRA kinds, the
    in-process LocalEngine all of them. Whole models: ``freeze`` (only the last ``freeze_trainable_layers``
    layers learn) or ``full`` (every weight learns); they are written as a complete model folder, served as a
    base model, not hot-swapped."""
    freeze_trainable_layers: int = 2
    """Freeze: how many of the last transformer layers learn (plus the final norm); the rest stay frozen."""

    # LoRA
    lora_r: int = 8
    """LoRA rank; unset: ``auto`` chooses by the data's tokens."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA); unset: ``auto``, twice the rank."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """LoRA and IA3: modules that get adapters, ``all-linear`` or a list of module names (q_proj, v_proj, ...)."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilised LoRA scaling (alpha / sqrt(r))."""

    # IA3, prompt tuning, prefix tuning
    feedforward_modules: list[str] | None = None
    """IA3: modules whose input, not output, is scaled; unset means PEFT's choice for the architecture."""
    num_virtual_tokens: int = 20
    """Prompt tuning, P-tuning and prefix tuning: how many virtual tokens are learned."""
    encoder_hidden_size: int = 128
    """P-tuning: width of the prompt encoder's MLP."""
    prompt_tuning_init_text: str | None = None
    """Prompt tuning: start the virtual tokens from this text's embeddings instead of random ones."""
    prefix_projection: bool = False
    """Prefix tuning: learn the prefix through a two-layer MLP (more parameters during training only)."""

    # Optimisation
    batch_size: int = 4
    """Examples per device per forward pass."""
    learning_rate_multiplier: float = 1.0
    """Scales the learning rate (the recipe's ``learning_rate``, else lorag's default for the method), as OpenAI's
    fine-tuning hyperparameter of that name does."""
    bf16: bool | None = None
    """bfloat16 mixed precision; unset means on where the hardware computes it natively (CUDA GPUs that support it,
    CPUs with AVX512-BF16 or AMX), off elsewhere."""
    compact_lm_head: bool = True
    """Project onto the vocabulary only at positions that have a label (lorag's CPU speed-up)."""
    num_processes: int = 1
    """Training processes: ``lorag finetune`` runs more than one through ``accelerate launch`` (data parallel,
    one per GPU, or gloo on CPUs); ``--num-processes`` overrides it. The adapter records the world size."""

    # Evaluation, logging, checkpoints
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without a lower eval loss; keeps the best checkpoint."""
    max_checkpoints: int | None = None
    """Save at the end of epochs instead of every ``save_steps``: every epoch, or every few epochs so that the run
    saves at most this many checkpoints (fine-tuning jobs: 10, as OpenAI saves one per epoch)."""
    resume_from_checkpoint: bool | str = False
    """Resume: ``true`` for the run's latest checkpoint, or a checkpoint folder."""
    overwrite: bool = False
    """Replace an existing adapter of the same name instead of refusing."""
    events_file: str | None = None
    """A JSON-lines file that training appends its progress to (steps, losses, learning rate, checkpoints), for
    a watcher in another process such as the gateway's fine-tuning jobs (``tuner.events``)."""

    @model_validator(mode="before")
    @classmethod
    def _auto_is_unset(cls, data):
        """``auto`` for a setting the policy chooses means the same as leaving it out."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in AUTO_FIELDS and v == AUTO)}
        return data

    @field_validator("method")
    @classmethod
    def _registered_method(cls, method: str) -> str:
        if method not in METHODS:
            *names, last = map(repr, METHODS)
            raise PydanticCustomError("literal_error", f"Input should be {', '.join(names)} or {last}")
        return method

    @field_validator("name")
    @classmethod
    def _name_is_servable(cls, name: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:")
        if not name or not set(name) <= allowed or name[0] in ".-:":
            raise ValueError("use letters, digits, '.', '_', '-' and ':' only ('@' is reserved for knowledge bases)")
        return name

    @field_validator("replay_held_out", "replay_rows")
    @classmethod
    def _not_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more")
        return value

    @field_validator(
        "num_virtual_tokens", "replay_max_tokens", "behaviour_max_tokens", "freeze_trainable_layers",
        "encoder_hidden_size", "batch_size", "num_processes", "max_checkpoints",
    )  # fmt: skip
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _above_zero(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be above 0")
        return value

    @field_validator("eval_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError("must be at least 0 and below 1")
        return value

    @model_validator(mode="after")
    def _fits_its_method(self):
        if self.method == "grpo" and not (self.reward_functions or self.reward_model or self.graders):
            raise ValueError("method grpo needs reward_functions, a reward_model or graders to score answers with")
        if self.graders is not None or self.response_format is not None:
            from tuner.grader_reward import check_fields

            check_fields(self.method, self.graders, self.judge_base_url, self.response_format)
        formats = {"chats": FORMATS, "prompts": ()}.get(METHODS[self.method].data, PREFERENCE_FORMATS)
        if self.dataset_format != "auto" and self.dataset_format not in formats:
            raise ValueError(f"dataset_format '{self.dataset_format}' is not data for method '{self.method}'")
        unknown = sorted(set(self.model_extra or {}) - config_fields(self.method))
        if unknown:
            raise ValueError(
                f"unknown field '{unknown[0]}': neither a lorag recipe field nor a field of TRL's "
                f"{config_class(self.method).__name__}"
            )
        if self.__pydantic_extra__:
            self.__pydantic_extra__.update(check_types(self.method, self.__pydantic_extra__))
        return self

    def trl(self, name: str):
        """A TRL setting as the run uses it: the recipe's, else lorag's default, else TRL's own."""
        return trl_value(self.method, self.model_extra or {}, name)

    @property
    def trl_fields(self) -> dict:
        """The TRL config fields the recipe sets."""
        return dict(self.model_extra or {})


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read a recipe YAML and apply ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read recipe {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of recipe fields")
    for key in PATH_FIELDS:
        if isinstance(data.get(key), str) and data[key] != "builtin" and not Path(data[key]).is_absolute():
            data[key] = str((path.parent / data[key]).resolve())
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got '{override}'")
        data[key.strip()] = yaml.safe_load(value) if value.strip() else None
    try:
        recipe = Recipe(**data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "recipe"
        raise ConfigError(f"{path}: {field}: {first['msg']}") from None
    try:  # TRL validates its own fields: types, ranges, combinations
        build_config(recipe.method, recipe.trl_fields, Path("unused"), recipe.batch_size, True, False, False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    return recipe
