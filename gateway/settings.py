"""Every ``LORAG_*`` environment variable, read in this one place.

Everything below the gateway takes plain arguments; the CLI and the app pass these values on.
"""

import shlex
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serve.embedded import DEFAULT_MODEL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORAG_")

    base_model: str = Field(
        DEFAULT_MODEL,
        description="Base model served and fine-tuned: an embedded model (smollm2-135m-instruct, the default, or "
        "gemma-3-270m), a hub id or a path.",
    )
    cache_dir: Path = Field(Path("~/.cache/lorag"), description="Prepared models and other caches.")
    adapters_dir: Path = Field(Path("adapters"), description="Folder of adapters: one sub-folder per adapter.")
    runs_dir: Path = Field(Path("runs"), description="Training checkpoints and logs, one sub-folder per run.")
    reports_dir: Path = Field(Path("reports"), description="Compare reports, one sub-folder per run.")
    jobs_dir: Path = Field(
        Path("jobs"), description="Fine-tuning files and jobs: jobs.sqlite, uploaded files, each job's work folder."
    )
    max_training_file_mb: float = Field(512.0, gt=0, description="Largest fine-tuning file upload, in MiB.")
    max_training_jobs: int = Field(1, ge=1, description="Fine-tuning jobs that train at once; the rest queue.")
    max_stored_mb_per_key: float = Field(
        4096.0, ge=0, description="Most a key may keep stored in /v1/files, in MiB (more is 413). 0: no limit."
    )
    responses_dir: Path = Field(
        Path("responses"), description="Stored responses of /v1/responses (store: true): responses.sqlite."
    )
    responses_retention_days: float = Field(
        30.0, gt=0, description="Days a stored response is kept; older ones are deleted (OpenAI keeps 30)."
    )
    kb_dir: Path = Field(Path("knowledge_bases"), description="Folder of knowledge bases: one sub-folder each.")
    milvus_uri: str | None = Field(
        None,
        description="Keep every knowledge base in Milvus at this URI instead of LORAG_KB_DIR (e.g. "
        "http://milvus:19530): every gateway with the same URI shares them (docs/rag.md).",
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus token (user:password, or a Zilliz Cloud key).")
    milvus_db: str | None = Field(None, description="Milvus database of the knowledge bases (default: 'default').")
    embedder: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Embedder of new knowledge bases and of /v1/embeddings: a sentence-transformers id or path.",
    )
    max_upload_mb: float = Field(64.0, gt=0, description="Largest file a knowledge-base upload accepts, in MiB.")
    max_unpacked_mb: float = Field(
        32.0, gt=0, description="Largest a packaged upload (.docx) may unpack to, in MiB; larger is refused (413)."
    )
    max_text_mb: float = Field(
        16.0, gt=0, description="Most text one uploaded file may hold, in Mi characters; more is refused (413)."
    )
    engine: str = Field("auto", description="Serving engine: auto (vLLM on a GPU, else local), vllm or local.")
    vllm_urls: Annotated[list[str], NoDecode] = Field(
        [], description="Running vLLM servers to use instead of starting one, comma-separated URLs."
    )
    vllm_args: Annotated[list[str], NoDecode] = Field(
        [],
        description="Arguments added to the command line of the vLLM server lorag starts (not of LORAG_VLLM_URLS), "
        "shell-quoted, e.g. `--tensor-parallel-size 2 --max-loras 8 --kv-cache-memory-bytes 20G`; they win over "
        "lorag's own (docs/deploy.md).",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [], description="Comma-separated keys; when set, every /v1 route needs `Authorization: Bearer <key>`."
    )
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [], description="Comma-separated keys allowed to administer: adapters, knowledge-base writes."
    )
    keys_file: Path | None = Field(
        None, description="YAML file of API keys with scopes and rate limits (docs/api.md); with the keys above."
    )
    max_concurrent_requests: int = Field(
        64, ge=0, description="Completions in flight at once; more are answered 429 with Retry-After. 0: no limit."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a client may take to send a JSON request body; slower is answered 408."
    )
    max_request_mb: float = Field(32.0, gt=0, description="Largest JSON request body, in MiB; larger is 413.")
    shutdown_timeout_s: float = Field(
        5.0, gt=0, description="On SIGTERM, seconds requests in flight may finish before they are cancelled."
    )
    adapter_refresh_s: float = Field(
        5.0, ge=0, description="Seconds between scans of the adapters folder while serving. 0: scan only at start."
    )

    outbound_urls: Annotated[list[str], NoDecode] = Field(
        [],
        description="URL prefixes the gateway may call for an API client (a compare judge's base_url), "
        "comma-separated; none: it calls only itself.",
    )
    self_url: str | None = Field(
        None,
        description="This gateway's base URL as its own training processes reach it (http://127.0.0.1:8000): a "
        "fine-tuning job's model graders ask its models there. `lorag serve` sets it from --host and --port.",
    )
    allow_python_graders: bool = Field(
        False,
        description="Run python graders (user code, in a sandboxed child process with the limits below) in "
        "/v1/fine_tuning/alpha/graders and reinforcement fine-tuning jobs; off: they are refused with a 400.",
    )
    python_grader_cpu_s: int = Field(10, ge=1, description="CPU seconds one python grader run may use.")
    python_grader_timeout_s: float = Field(20.0, gt=0, description="Wall-clock seconds one python grader run may take.")
    python_grader_memory_mb: int = Field(1024, ge=64, description="Address space one python grader run may map, MiB.")

    @field_validator("vllm_urls", "api_keys", "admin_keys", "outbound_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("vllm_args", mode="before")
    @classmethod
    def _shell_words(cls, value):
        return shlex.split(value) if isinstance(value, str) else value


def get_settings() -> Settings:
    return Settings()
