"""Every ``LORAG_*`` environment variable, read in this one place.

Everything below the gateway takes plain arguments; the CLI and the app pass these values on.
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORAG_")

    base_model: str = Field(
        "gemma-3-270m", description="Base model served and fine-tuned: the embedded default, a hub id or a path."
    )
    cache_dir: Path = Field(Path("~/.cache/lorag"), description="Prepared models and other caches.")
    adapters_dir: Path = Field(Path("adapters"), description="Folder of adapters: one sub-folder per adapter.")
    runs_dir: Path = Field(Path("runs"), description="Training checkpoints and logs, one sub-folder per run.")


def get_settings() -> Settings:
    return Settings()
