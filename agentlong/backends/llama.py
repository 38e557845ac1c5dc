"""Local GGUF models through llama-cpp-python: one model instance, one lock, KV-cache prefix reuse.

The chat template comes from the GGUF file; schema-constrained JSON uses llama.cpp grammars.
Consecutive calls that share a prompt prefix (the system prompt, a document) reuse the KV cache:
``Completion.usage.cached_tokens`` says how many prompt tokens were not evaluated again.

>>> backend = LlamaBackend.from_name("qwen2.5-coder-0.5b", LlamaSettings(n_ctx=512))
>>> backend.context_window(), backend.count_tokens("hello world")
(512, 2)
>>> backend.complete([Message(role="user", content="Reply with the word yes.")], max_tokens=4).text.lower()[:3]
'yes'
>>> backend.close()
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import BackendError, BackendUnavailable, ContextWindowExceeded, missing_dependency
from ..settings import LlamaSettings
from ..types import Completion, Message
from .base import BaseBackend, Stream, check_fits, decode_json
from .models import CATALOG, check_gguf, resolve_model_path

__all__ = ["LlamaBackend"]


@dataclass
class CallStats:
    """What one llama.cpp generation did: prompt tokens, how many came from the KV cache, tokens sampled."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated: int = 0


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise missing_dependency("llama_cpp", "local") from exc
    return llama_cpp


@lru_cache(maxsize=1)
def _quiet_logs() -> Any:
    """Send llama.cpp's C-level log lines to the ``agentlong.llama_cpp`` logger instead of stderr.

    llama-cpp-python prints ERROR-level lines even with ``verbose=False`` (e.g. gemma's SWA notice).
    """
    llama_cpp = _import_llama_cpp()
    log = logging.getLogger("agentlong.llama_cpp")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        log.debug("%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback  # cached: the C side keeps a pointer to it


@lru_cache(maxsize=1)
def _llama_class() -> type:
    """A ``llama_cpp.Llama`` that records, per generation, prompt size and KV-cache reuse.

    llama.cpp reuses the longest common token prefix of the previous prompt (``Llama.generate``);
    we compute the same prefix before delegating, and zero it when llama.cpp resets instead.
    """
    llama_cpp = _import_llama_cpp()

    class MeteredLlama(llama_cpp.Llama):
        stats: CallStats = CallStats()

        def generate(self, tokens, *args, **kwargs):  # type: ignore[override]
            tokens = list(tokens)
            stats = self.stats = CallStats(prompt_tokens=len(tokens))
            previous = self._input_ids[: self.n_tokens].tolist() if self.n_tokens else []
            common = _common_prefix(previous, tokens)
            stats.cached_tokens = common - 1 if common == len(tokens) and common > 0 else common
            inner = super().generate(tokens, *args, **kwargs)
            try:
                sent = None
                while True:
                    token = inner.send(sent)
                    if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                        stats.generated += 1
                    sent = yield token
            except StopIteration:
                return
            finally:
                inner.close()

        def reset(self) -> None:
            self.stats.cached_tokens = 0  # llama.cpp decided to evaluate the whole prompt again
            super().reset()

    return MeteredLlama


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _load(path: Path, settings: LlamaSettings, n_ctx: int, chat_format: str | None) -> Any:
    llama_cpp = _import_llama_cpp()
    if not settings.verbose:
        _quiet_logs()
    threads = settings.n_threads or os.cpu_count() or 1
    gpu_layers = settings.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0
    try:
        return _llama_class()(
            model_path=str(path), n_ctx=n_ctx, n_batch=min(settings.n_batch, n_ctx), n_threads=threads,
            n_threads_batch=threads, n_gpu_layers=gpu_layers, seed=settings.seed, verbose=settings.verbose, chat_format=chat_format,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendUnavailable(
            f"llama.cpp could not load {path} ({' '.join(str(exc).split())[:120]})",
            hint="the file may be truncated, corrupt or of an unsupported architecture; "
            "re-download it (agentlong models pull) or try a smaller n_ctx (AGENTLONG_LLAMA__N_CTX)",
        ) from exc


_LIVE: "weakref.WeakSet[LlamaBackend]" = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """Free every model still loaded while llama.cpp's bindings still exist: left to the garbage
    collector at interpreter exit, ``Llama.__del__`` prints "Exception ignored … 'NoneType' object is
    not callable"."""
    for backend in list(_LIVE):
        backend.close()


class LlamaBackend(BaseBackend):
    """A GGUF model run in-process by llama.cpp. Not thread-safe inside, so calls are serialised.

    ``LlamaBackend(path, LlamaSettings(n_ctx=4096), name="llama:my.gguf")`` or ``LlamaBackend.from_name(...)``.
    """

    def __init__(
        self, path: Path, settings: LlamaSettings | None = None, name: str | None = None, *, chat_format: str | None = None
    ) -> None:
        self.path = check_gguf(Path(path))
        self.settings = settings or LlamaSettings()
        self.name = name or f"llama:{self.path}"
        self.model = self.path.stem
        self.max_concurrency = 1
        self._lock = threading.Lock()
        self._llama = _load(self.path, self.settings, self.settings.n_ctx, chat_format)
        trained = self._llama._model.n_ctx_train()
        if 0 < trained < self.settings.n_ctx:  # never allocate more than the model was trained on
            self._llama.close()
            self._llama = _load(self.path, self.settings, trained, chat_format)
        self._window = self._llama.n_ctx()
        _LIVE.add(self)

    @classmethod
    def from_name(cls, name_or_path: str, settings: LlamaSettings | None = None) -> "LlamaBackend":
        """A catalog name (joined and verified on first use) or a path to a ``.gguf`` file."""
        entry = CATALOG.get(name_or_path)
        backend = cls(resolve_model_path(name_or_path), settings, name=f"llama:{name_or_path}",
                      chat_format=entry.chat_format if entry else None)
        if entry:
            backend.model = entry.name
        return backend

    # -- sizes -----------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's own tokenizer (no BOS)."""
        if not text:
            return 0
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def context_window(self) -> int:
        """The allocated context: min(settings.n_ctx, the model's trained context)."""
        return self._window

    # -- calls -----------------------------------------------------------------
    def complete(self, messages, *, max_tokens, temperature=0.0, schema=None, stop=None) -> Completion:
        check_fits(self, messages, max_tokens)
        kwargs = self._kwargs(messages, max_tokens, temperature, stop)
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        with self._lock:
            llama = self._model()
            started = time.perf_counter()
            with self._errors():
                response = llama.create_chat_completion(**kwargs)
            seconds = time.perf_counter() - started
            stats = llama.stats
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        return Completion(
            text=text, model=self.model, finish_reason=choice.get("finish_reason"),
            parsed=_try_json(text) if schema is not None else None,
            usage=self.usage(usage.get("prompt_tokens", stats.prompt_tokens),
                             usage.get("completion_tokens", stats.generated), seconds, cached=stats.cached_tokens),
        )

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None) -> Stream:
        """Text deltas as llama.cpp samples them; the model stays locked until the stream ends."""
        check_fits(self, messages, max_tokens)
        kwargs = self._kwargs(messages, max_tokens, temperature, stop)
        box: dict[str, Any] = {}

        def deltas() -> Iterator[str]:
            with self._lock:
                llama = self._model()
                started = time.perf_counter()
                chunks = None
                try:
                    with self._errors():
                        chunks = llama.create_chat_completion(**kwargs, stream=True)
                        for chunk in chunks:
                            choice = chunk["choices"][0]
                            box["finish"] = choice.get("finish_reason") or box.get("finish")
                            delta = choice.get("delta", {}).get("content")
                            if delta:
                                yield delta
                finally:  # also when the caller stops the stream early: sampling ends here, usage is kept
                    if chunks is not None and hasattr(chunks, "close"):
                        chunks.close()
                    box["seconds"] = time.perf_counter() - started
                    box["stats"] = llama.stats

        def finish(text: str) -> Completion:
            stats: CallStats = box["stats"]
            return Completion(
                text=text, model=self.model, finish_reason=box.get("finish"),
                usage=self.usage(stats.prompt_tokens, stats.generated, box["seconds"], cached=stats.cached_tokens),
            )

        return Stream(deltas(), finish)

    def close(self) -> None:
        """Free the model's memory; later calls raise BackendError."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    # -- helpers ---------------------------------------------------------------
    def _model(self) -> Any:
        if self._llama is None:
            raise BackendError(f"{self.name} was closed", hint="create a new backend (agentlong.backends.get_backend)")
        return self._llama

    def _kwargs(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None) -> dict:
        return {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens, "temperature": temperature, "stop": stop or [], "seed": self.settings.seed,
        }

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """llama.cpp's exceptions, re-raised from the error tree."""
        try:
            yield
        except ValueError as exc:
            if "exceed context window" in str(exc):
                raise ContextWindowExceeded(f"{self.name}: {exc}") from exc
            raise BackendError(f"{self.name}: llama.cpp rejected the request: {exc}") from exc
        except RuntimeError as exc:
            raise BackendError(f"{self.name}: llama.cpp failed: {exc}",
                               hint="retry with a shorter prompt or smaller n_batch") from exc


def _try_json(text: str) -> Any:
    """The decoded JSON, or None so the LLM layer can run its repair retry."""
    try:
        return decode_json(text)
    except BackendError:
        return None
