"""What an OpenAI-compatible server can tell about itself beyond the OpenAI API.

- token counts: llama-cpp-python's server has ``POST /extras/tokenize/count``;
- context size: llama.cpp's ``llama-server`` reports it in ``GET /props``, vLLM as ``max_model_len``
  in ``GET /v1/models``, others as ``context_length``; llama-server's models list has ``meta.n_ctx_train``.

Every answer is optional: ``None`` means "the server does not say", and callers fall back.

>>> ServerProbe("http://127.0.0.1:8000/v1", "qwen", "sk-no-key-required").root
'http://127.0.0.1:8000'
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ServerProbe"]

WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx", "max_context_length")
MAX_CACHED_COUNTS = 4096


class ServerProbe:
    """Lazy, cached HTTP questions to one server (httpx; the key goes only in the header)."""

    def __init__(self, base_url: str, model: str, key: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self.model = model
        self._key = key
        self._timeout = timeout_s
        self._client: Any = None
        self._tokenizer: bool | None = None  # None: not asked yet
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(timeout=self._timeout, headers={"Authorization": f"Bearer {self._key}"})
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def count_tokens(self, text: str) -> int | None:
        """Tokens by the server's own tokenizer, or None when it has no tokenize endpoint."""
        if self._tokenizer is False:
            return None
        if text in self._counts:
            return self._counts[text]
        import httpx

        try:
            reply = self._http().post(f"{self.root}/extras/tokenize/count", json={"input": text, "model": self.model})
        except httpx.HTTPError:
            return None  # unreachable now: estimate, and ask again next time
        if reply.status_code != 200:
            if reply.status_code in (404, 405, 501):
                self._tokenizer = False
            return None
        try:
            data = reply.json()
        except ValueError:
            return None  # a cut-off reply: estimate this once, ask again next time
        try:
            count = int(data["count"])
        except (ValueError, KeyError, TypeError):
            if self._tokenizer is None:  # whole JSON that never held a count: not a tokenizer endpoint
                self._tokenizer = False
            return None
        self._tokenizer = True
        if len(self._counts) >= MAX_CACHED_COUNTS:
            self._counts.clear()
        self._counts[text] = count
        return count

    def context_window(self) -> int | None:
        """The context size the server reports for this model, or None."""
        props = self._get(f"{self.root}/props")
        if isinstance(props, dict):
            settings = props.get("default_generation_settings") or {}
            for value in (settings.get("n_ctx"), props.get("n_ctx")):
                if _positive(value):
                    return int(value)
        listing = self._get(f"{self.base_url}/models")
        entries = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(entries, list):
            return None
        entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == self.model), None)
        if entry is None and len(entries) == 1 and isinstance(entries[0], dict):
            entry = entries[0]
        return _window_of(entry) if entry else None

    def _get(self, url: str) -> Any:
        import httpx

        try:
            reply = self._http().get(url)
            return reply.json() if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _window_of(entry: dict) -> int | None:
    for key in WINDOW_KEYS:
        if _positive(entry.get(key)):
            return int(entry[key])
    meta = entry.get("meta") or {}
    for key in ("n_ctx", "n_ctx_train"):
        if isinstance(meta, dict) and _positive(meta.get(key)):
            return int(meta[key])
    return None
