"""Backend registry: one model string picks a backend.

Model strings:
- ``llama:qwen2.5-coder-0.5b`` (embedded default), ``llama:gemma3-270m``, ``llama:/path/to/any.gguf``
- ``openai:gpt-4o-mini``, ``openai:<model>@http://127.0.0.1:8000/v1``
- ``fake`` or ``fake:echo`` (``fake:scripted`` / ``fake:keyed`` are built in code)

>>> parse_model_string("openai:qwen@http://127.0.0.1:8000/v1")
ModelSpec(provider='openai', name='qwen', base_url='http://127.0.0.1:8000/v1')
>>> parse_model_string("llama:/m/x.gguf").name
'/m/x.gguf'
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from ..errors import ConfigError
from ..settings import Settings
from .base import Backend, BaseBackend, Stream

__all__ = ["Backend", "BaseBackend", "Stream", "ModelSpec", "parse_model_string", "get_backend", "PROVIDERS"]

PROVIDERS = ("llama", "openai", "fake")


class ModelSpec(NamedTuple):
    provider: str
    name: str
    base_url: str | None = None


def parse_model_string(model: str) -> ModelSpec:
    """Split ``provider:name[@base_url]``; an unknown provider is a ConfigError."""
    text = (model or "").strip()
    if not text:
        raise ConfigError("empty model string", hint="use e.g. llama:qwen2.5-coder-0.5b, openai:gpt-4o-mini or fake")
    provider, _, rest = text.partition(":")
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown model string {model!r}",
            hint="use llama:NAME|PATH.gguf, openai:MODEL[@URL] or fake (see `agentlong models list`)",
        )
    if provider == "openai":
        if not rest:
            raise ConfigError(f"model string {model!r} names no model", hint="use openai:MODEL[@http://HOST:PORT/v1]")
        name, _, url = rest.partition("@")
        return ModelSpec("openai", name, url or None)
    if provider == "llama" and not rest:
        raise ConfigError(f"model string {model!r} names no model", hint="use llama:qwen2.5-coder-0.5b or llama:/path/to/model.gguf")
    return ModelSpec(provider, rest or "echo")


_cache: dict[tuple, Backend] = {}
_cache_lock = threading.Lock()


def get_backend(model: str | None = None, settings: Settings | None = None) -> Backend:
    """The backend for ``model`` (default: ``settings.model``). Local models are loaded once and shared."""
    settings = settings or Settings()
    spec = parse_model_string(model or settings.model)
    if spec.provider == "fake":
        from .fake import FakeBackend

        return FakeBackend(mode=spec.name, name=model or settings.model)
    if spec.provider == "llama":
        from .llama import LlamaBackend

        key = ("llama", spec.name, settings.llama.model_dump_json())
        with _cache_lock:
            if key not in _cache:
                _cache[key] = LlamaBackend.from_name(spec.name, settings.llama)
            return _cache[key]
    from .openai_backend import OpenAIBackend

    return OpenAIBackend(spec.name, base_url=spec.base_url, settings=settings.openai)
