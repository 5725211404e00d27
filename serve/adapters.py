"""The adapter registry: which adapter folders an engine may serve, and why the others may not.

An adapter folder is what the tuner writes: PEFT files (``adapter_config.json``,
``adapter_model.safetensors``) plus ``lorag.json``. The registry checks every folder against the
served base model (id and weights sha256), the engine's limits (PEFT types, max LoRA rank, target
modules) and the weights file itself (readable safetensors whose LoRA shapes match the rank),
before any request reaches an engine. A bad folder is refused with a reason and never disturbs
the others. :meth:`AdapterRegistry.scan` is cheap enough to call on every poll: it reads only
JSON files and the safetensors header. This module knows nothing about engines or HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open

MANIFEST = "lorag.json"
PEFT_CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class AdapterSpec:
    """A servable adapter: what an engine needs to load it."""

    name: str
    path: Path
    peft_type: str  # "LORA", "PROMPT_TUNING", "PREFIX_TUNING", "IA3", ...
    rank: int | None  # LoRA rank; None for types without one
    target_modules: tuple[str, ...]
    version: str  # changes whenever the folder's files change: reload when it does
    manifest: dict = field(compare=False, repr=False)
    dora: bool = False  # a weight-decomposed LoRA (PEFT ``use_dora``)


@dataclass(frozen=True)
class EngineLimits:
    """What an engine can serve; the registry refuses anything beyond it."""

    peft_types: frozenset[str] = frozenset({"LORA"})
    max_rank: int = 64
    max_rank_setting: str = ""
    """Where a user raises ``max_rank``, named in the refusal (empty: it cannot be raised)."""
    unsupported_targets: frozenset[str] = frozenset()
    """Module names (the last part of the path, e.g. ``lm_head``) the engine cannot adapt."""
    modules_to_save: bool = True
    """Whether the engine serves adapters that carry whole trained copies of modules (PEFT ``modules_to_save``)."""
    dora: bool = False
    """Whether the engine serves weight-decomposed LoRA (DoRA); vLLM does not."""


@dataclass
class Scan:
    adapters: dict[str, AdapterSpec]
    refused: dict[str, str]  # name -> reason


class AdapterRefused(ValueError):
    """One adapter cannot be served; the message says why."""


class AdapterRegistry:
    """Adapters under ``folder`` that fit the base model ``base_id``/``base_sha256`` and ``limits``."""

    def __init__(self, folder: Path, base_id: str, base_sha256: str, limits: EngineLimits = EngineLimits()):
        self.folder = Path(folder)
        self.base_id = base_id
        self.base_sha256 = base_sha256
        self.limits = limits

    def scan(self) -> Scan:
        """Check every adapter folder; hidden folders (``.name``, in-progress writes) are skipped."""
        scan = Scan({}, {})
        if not self.folder.is_dir():
            return scan
        for path in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                scan.adapters[path.name] = self.check(path)
            except AdapterRefused as e:
                scan.refused[path.name] = str(e)
            except Exception as e:  # whatever is wrong with one folder must not hide the others
                scan.refused[path.name] = f"cannot be checked ({type(e).__name__}: {e})"
        return scan

    def check(self, path: Path) -> AdapterSpec:
        """Validate one adapter folder; raise :class:`AdapterRefused` with the reason."""
        path = Path(path)
        manifest = _json(path / MANIFEST)
        kind = manifest.get("kind", "adapter")
        if kind == "model":
            raise AdapterRefused(
                f"is a whole model, not an adapter: serve it as the base model, LORAG_BASE_MODEL={path}"
            )
        if kind != "adapter":
            raise AdapterRefused(f"is a {kind.replace('_', ' ')}, not a chat adapter")
        config = _json(path / PEFT_CONFIG)
        name = manifest.get("name")
        if name != path.name:
            raise AdapterRefused(f"lorag.json names '{name}' but the folder is '{path.name}'")
        base = manifest.get("base_model")
        if not isinstance(base, dict):
            raise AdapterRefused("lorag.json has no base_model object")
        if base.get("sha256") != self.base_sha256:
            raise AdapterRefused(
                f"trained on base model '{base.get('id')}' (sha256 {str(base.get('sha256'))[:12]}), "
                f"but this server runs '{self.base_id}' (sha256 {self.base_sha256[:12]})"
            )
        peft_type = str(config.get("peft_type", "")).upper()
        if peft_type not in self.limits.peft_types:
            raise AdapterRefused(
                f"PEFT type {peft_type or 'unknown'} is not served by this engine "
                f"(it serves {', '.join(sorted(self.limits.peft_types))})"
            )
        rank = config.get("r") if peft_type == "LORA" else None
        if peft_type == "LORA" and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
            raise AdapterRefused(f"adapter_config.json: LoRA rank r must be a positive integer, not {rank!r}")
        if rank is not None and rank > self.limits.max_rank:
            setting = f" (raise it with {self.limits.max_rank_setting})" if self.limits.max_rank_setting else ""
            raise AdapterRefused(f"LoRA rank {rank} is over this engine's maximum of {self.limits.max_rank}{setting}")
        targets = _target_modules(config.get("target_modules"))
        if unsupported := sorted(set(targets) & self.limits.unsupported_targets):
            raise AdapterRefused(f"targets modules this engine cannot adapt: {', '.join(unsupported)}")
        if config.get("modules_to_save") and not self.limits.modules_to_save:
            saved = ", ".join(map(str, config["modules_to_save"]))
            raise AdapterRefused(f"carries trained copies of whole modules ({saved}), which this engine cannot serve")
        if config.get("use_dora") and not self.limits.dora:
            raise AdapterRefused(
                "is a DoRA adapter, which this engine does not serve: serve it with the LocalEngine "
                "(--engine local), or merge it into a model with `lorag export --merge`"
            )
        _check_weights(path / WEIGHTS, rank)
        version = "-".join(str((path / f).stat().st_mtime_ns) for f in (MANIFEST, PEFT_CONFIG, WEIGHTS))
        dora = bool(config.get("use_dora"))
        return AdapterSpec(path.name, path, peft_type, rank, tuple(targets), version, manifest, dora)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AdapterRefused(f"no {path.name}") from None
    except (OSError, ValueError) as e:
        raise AdapterRefused(f"{path.name} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise AdapterRefused(f"{path.name} must be a JSON object")
    return data


def _target_modules(value) -> list[str]:
    """Leaf module names; PEFT writes full paths for ``all-linear`` and a regex string for some configs."""
    if isinstance(value, str):
        return [value]
    return sorted({str(m).rsplit(".", 1)[-1] for m in value or []})


def _check_weights(path: Path, rank: int | None) -> None:
    """The weights must be a readable safetensors file whose LoRA matrices have the declared rank."""
    if not path.is_file():
        raise AdapterRefused(f"no {path.name}")
    try:
        with safe_open(str(path), framework="pt") as weights:
            shapes = {key: weights.get_slice(key).get_shape() for key in weights.keys()}
    except Exception as e:  # safetensors raises several types for a damaged header
        raise AdapterRefused(f"{path.name} is unreadable ({type(e).__name__}: {e})") from None
    if not shapes:
        raise AdapterRefused(f"{path.name} holds no tensors")
    if rank is not None:
        for key, shape in shapes.items():
            if ".lora_A." in key and shape[0] != rank or ".lora_B." in key and shape[-1] != rank:
                raise AdapterRefused(f"{path.name}: {key} has shape {shape}, not rank {rank}")
