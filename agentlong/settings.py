"""One settings tree (pydantic-settings). Env prefix ``AGENTLONG_``, nested with ``__``.

Sources, highest first: keyword arguments, environment, ``$AGENTLONG_CONFIG`` or
``$AGENTLONG_HOME/config.toml``, defaults.

>>> s = Settings(model="fake")
>>> s.model
'fake'
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "LlamaSettings", "OpenAISettings", "StoreSettings", "ChunkSettings", "MemorySettings", "home_dir"]

DEFAULT_MODEL = "llama:qwen2.5-coder-0.5b"


def home_dir() -> Path:
    """Where all user state lives: ``$AGENTLONG_HOME`` or ``~/.cache/agentlong``."""
    env = os.environ.get("AGENTLONG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agentlong"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LlamaSettings(_Section):
    n_ctx: int = Field(8192, ge=256, description="context window to allocate (capped at the model's trained context)")
    n_threads: int | None = Field(None, description="CPU threads; None = number of cores")
    n_batch: int = Field(512, ge=8, description="prompt-processing batch size")
    n_gpu_layers: int = Field(-1, description="layers to offload when llama.cpp has GPU support (-1 = all); ignored on CPU builds")
    seed: int = Field(0, description="sampling seed, for reproducible runs")
    verbose: bool = Field(False, description="let llama.cpp print its own logs")


class OpenAISettings(_Section):
    base_url: str | None = Field(None, description="OpenAI-compatible base URL; None = api.openai.com or OPENAI_BASE_URL")
    api_key: SecretStr | None = Field(None, description="API key; falls back to OPENAI_API_KEY; never logged")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds")
    max_retries: int = Field(3, ge=0, description="retries on 429/5xx/timeouts, with exponential backoff")
    backoff_s: float = Field(0.5, ge=0, description="first backoff delay; doubles each retry")
    context_window: int | None = Field(None, description="override the model's context window in tokens")
    max_concurrency: int = Field(8, ge=1, description="parallel requests graphs and batch jobs may make")


class StoreSettings(_Section):
    chroma_host: str | None = Field(None, description="Chroma server host; None = embedded PersistentClient")
    chroma_port: int = Field(8000, description="Chroma server port")
    path: Path | None = Field(None, description="embedded Chroma folder; None = $AGENTLONG_HOME/chroma")
    embedder: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model name or local path")
    embed_batch_size: int = Field(32, ge=1, description="texts per embedding batch")
    device: str = Field("cpu", description="torch device for the embedder")


class ChunkSettings(_Section):
    chunk_tokens: int | None = Field(None, description="chunk size in model tokens; None = derived from the context window")
    index_chunk_tokens: int = Field(256, ge=32, description="chunk size used when indexing for retrieval")
    max_file_mb: float = Field(20.0, gt=0, description="files above this size are skipped in folders and refused when given alone")
    output_reserve: int = Field(512, ge=16, description="tokens reserved for the model's answer in each call")
    note_tokens: int = Field(768, ge=64, description="budget of the running note in chain-of-agents")


class MemorySettings(_Section):
    flash_turns: int = Field(3, ge=0, description="recent chat turns always kept in context (raw, or their summary when large)")
    archive_k: int = Field(4, ge=0, description="most archived memories injected into one turn")
    flash_share: float = Field(0.5, gt=0, lt=1, description="share of a chat prompt's free tokens for flash memory")
    archive_share: float = Field(0.3, gt=0, lt=1, description="share of a chat prompt's free tokens for archived memories")
    summary_threshold: int | None = Field(None, description="turns above this many tokens get a summary; None = window/16 (at least 96)")
    summary_words: int = Field(60, ge=10, description="target length of a turn summary in words")
    min_relevance: float = Field(0.3, description="similarity an archived memory needs when no rule asked for memory")
    recency_weight: float = Field(0.15, ge=0, description="weight of recency next to relevance when ranking archived memories")
    recency_half_life: float = Field(20.0, gt=0, description="turns after which the recency bonus halves")
    decide_with_model: bool = Field(False, description="ask the model (tiny JSON call) whether memory is needed when rules are unsure")


class Settings(BaseSettings):
    """All agentlong settings."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTLONG_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    model: str = Field(DEFAULT_MODEL, description="model string: llama:NAME|PATH, openai:MODEL[@URL], fake[:MODE]")
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature")
    reasoner: str | None = Field(None, description="model string for the steps that decide (the answer, the writer's "
                                                   "plan and review) while `model` reads every chunk; None = `model`")
    prompts_dir: Path | None = Field(None, description="folder of your own prompt templates, overriding built-in ones by name")
    show_progress: bool = Field(True, description="progress bars on stderr in the CLI")
    confirm_minutes: float | None = Field(
        15.0, ge=0, description="work estimated above this many minutes asks first (CLI; --yes skips) or raises "
                                "(SDK); None = never ask")
    llama: LlamaSettings = Field(default_factory=LlamaSettings, description="llama.cpp backend")
    openai: OpenAISettings = Field(default_factory=OpenAISettings, description="OpenAI-compatible backend")
    store: StoreSettings = Field(default_factory=StoreSettings, description="vector store and embedder")
    chunking: ChunkSettings = Field(default_factory=ChunkSettings, description="chunk sizes and budgets")
    memory: MemorySettings = Field(default_factory=MemorySettings, description="chat memory controller")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = os.environ.get("AGENTLONG_CONFIG") or str(home_dir() / "config.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml))

    @property
    def home(self) -> Path:
        return home_dir()

    def chroma_path(self) -> Path:
        return self.store.path or (self.home / "chroma")

    def public_dict(self) -> dict[str, Any]:
        """Settings without secrets, for provenance and logs."""
        data = self.model_dump(mode="json")
        data["openai"]["api_key"] = "***" if self.openai.api_key else None
        return data

    def fingerprint(self) -> str:
        """Short hash of the public settings, stored with every result."""
        blob = json.dumps(self.public_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
