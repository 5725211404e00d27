"""The wire models of lorag's adapter administration API (``/v1/adapters``), lorag's own, not OpenAI's.

This module knows nothing about routes or engines.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class AdapterRegistration(BaseModel):
    """POST /v1/adapters: serve the adapter folder at ``path`` (on the server) as ``name``."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)

    @field_validator("name", "path")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class AdapterInfo(BaseModel):
    name: str
    object: Literal["adapter"] = "adapter"
    source: Literal["folder", "registered"]  # the adapters folder, or POST /v1/adapters
    path: str
    peft_type: str
    rank: int | None
    target_modules: list[str]
    manifest: dict[str, Any]  # a summary of lorag.json: method, base model, LoRA settings, metrics, created


class RefusedAdapter(BaseModel):
    name: str
    reason: str


class AdapterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdapterInfo]
    refused: list[RefusedAdapter]
