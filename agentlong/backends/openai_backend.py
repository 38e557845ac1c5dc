"""OpenAI and OpenAI-compatible servers (llama.cpp server, vLLM, Ollama, LM Studio) via the openai SDK.

Retries are ours (the SDK's are off) so they are bounded, testable and uniform: 429, 5xx, timeouts,
connection errors and malformed replies are retried with exponential backoff; what is still failing
after ``settings.max_retries`` becomes an error from the agentlong tree. Structured output asks for
``json_schema`` first and falls back to ``json_object`` when the server rejects it. The API key
never appears in an error message.

>>> b = OpenAIBackend("qwen", base_url="http://127.0.0.1:8000/v1")  # a local server needs no key
>>> b.name, b.max_concurrency
('openai:qwen@http://127.0.0.1:8000/v1', 8)
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import threading
import time
import weakref
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import (AgentlongError, BackendError, BackendUnavailable, ConfigError, ContextWindowExceeded,
                      RateLimited, missing_dependency)
from ..settings import OpenAISettings
from ..types import Completion, Message, Usage
from .base import BaseBackend, Stream, check_fits, decode_json
from .openai_probe import ServerProbe
from .pricing import cost, known_context_window

__all__ = ["OpenAIBackend"]

_CLIENT_LOCK = threading.Lock()

T = TypeVar("T")
OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "sk-no-key-required"  # local servers accept any key; the SDK insists on one
KEY_HINT = "set a valid key in OPENAI_API_KEY or AGENTLONG_OPENAI__API_KEY"
FORMATS = ("json_schema", "json_object+schema", "json_object")
DEFAULT_WINDOW = 8192


class _Malformed(Exception):
    """A 200 reply that is not a chat completion (a proxy page, truncated JSON...)."""


class _FormatRejected(Exception):
    """The server refused the structured-output format we asked for."""


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise missing_dependency("openai", "openai") from exc
    return openai


def safe_url(url: str) -> str:
    """``url`` without user:password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class OpenAIBackend(BaseBackend):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(self, model: str, base_url: str | None = None, settings: OpenAISettings | None = None,
                 *, name: str | None = None) -> None:
        self.settings = settings or OpenAISettings()
        self.model = model
        url = base_url or self.settings.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        self.base_url = url.rstrip("/")
        self.url = safe_url(self.base_url)
        self.name = name or (f"openai:{model}@{base_url}" if base_url else f"openai:{model}")
        self.max_concurrency = self.settings.max_concurrency
        self.hosted = urlsplit(self.base_url).hostname == "api.openai.com"
        self._key = self._api_key()
        self._client: Any = None
        self._aclients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._format = 0  # index into FORMATS; advances when the server rejects a format
        self._format_lock = threading.Lock()  # concurrent calls rejected with one format advance it once
        self._stream_usage = True  # ask for usage in streams until the server refuses
        self.probe = ServerProbe(self.base_url, self.model, self._key, timeout_s=min(self.settings.timeout_s, 10.0))
        self._window: int | None = None
        self.retries = 0  # retries made so far, for diagnostics

    def _api_key(self) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if self.hosted:
            raise ConfigError(f"no API key for {self.url}", hint=KEY_HINT)
        return NO_KEY

    # -- sizes -----------------------------------------------------------------
    def context_window(self) -> int:
        """settings override, else the known table, else what the server reports, else 8192."""
        if self.settings.context_window:
            return self.settings.context_window
        if self._window is None:
            self._window = known_context_window(self.model) or self.probe.context_window() or DEFAULT_WINDOW
        return self._window

    def count_tokens(self, text: str) -> int:
        """The server's tokenizer when it is llama.cpp's; else a conservative chars/3."""
        if not text:
            return 0
        if not self.hosted:
            counted = self.probe.count_tokens(text)
            if counted is not None:
                return counted
        return math.ceil(len(text) / 3)

    # -- clients ---------------------------------------------------------------
    def _sync(self) -> Any:
        if self._client is None:
            with _CLIENT_LOCK:  # threads of a batch job would otherwise each build a client (~0.2 s CPU each)
                if self._client is None:
                    openai = _import_openai()
                    self._client = openai.OpenAI(api_key=self._key, base_url=self.base_url,
                                                 timeout=self.settings.timeout_s, max_retries=0)
        return self._client

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()  # httpx async clients belong to one event loop
        if loop not in self._aclients:
            openai = _import_openai()
            self._aclients[loop] = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url,
                                                      timeout=self.settings.timeout_s, max_retries=0)
        return self._aclients[loop]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.probe.close()

    # -- requests --------------------------------------------------------------
    def _body(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None,
              schema: dict | None = None, stream: bool = False, fmt: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": m.role, "content": m.content} for m in messages]}
        body["max_completion_tokens" if self.hosted else "max_tokens"] = max_tokens
        if not (self.hosted and _reasoning_model(self.model)):  # o-series / gpt-5 accept only the default
            body["temperature"] = temperature
        if stop:
            body["stop"] = stop
        if schema is not None:
            body["response_format"] = _response_format(FORMATS[self._format if fmt is None else fmt], schema)
        if stream:
            body["stream"] = True
            if self._stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def _completion(self, response: Any, started: float, schema: dict | None) -> Completion:
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            finish = choice.finish_reason
        except (AttributeError, IndexError, TypeError, KeyError) as exc:
            raise _Malformed(f"no choices in {str(response)[:80]!r}") from exc
        usage = self._usage(getattr(response, "usage", None), time.perf_counter() - started)
        return Completion(text=text, usage=usage, finish_reason=finish, model=getattr(response, "model", None) or self.model,
                          parsed=_try_json(text) if schema is not None else None)

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        return cost(self.model, prompt_tokens, completion_tokens) if self.hosted else None

    def _usage(self, raw: Any, seconds: float, estimate: tuple[int, int] = (0, 0)) -> Usage:
        prompt = getattr(raw, "prompt_tokens", None) or estimate[0]
        completion = getattr(raw, "completion_tokens", None) or estimate[1]
        details = getattr(raw, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or 0
        price = cost(self.model, prompt, completion, cached) if self.hosted else None
        return self.usage(prompt, completion, seconds, price, cached=cached)

    def complete(self, messages, *, max_tokens, temperature=0.0, schema=None, stop=None) -> Completion:
        check_fits(self, messages, max_tokens)
        started = time.perf_counter()
        while True:
            fmt = self._format
            body = self._body(messages, max_tokens, temperature, stop, schema, fmt=fmt)
            try:
                return self._retrying(lambda: self._completion(self._sync().chat.completions.create(**body), started, schema), body)
            except _FormatRejected:
                self._rejected(fmt)

    async def acomplete(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
                        schema: dict | None = None, stop: list[str] | None = None) -> Completion:
        check_fits(self, messages, max_tokens)
        started = time.perf_counter()
        while True:
            fmt = self._format
            body = self._body(messages, max_tokens, temperature, stop, schema, fmt=fmt)

            async def attempt() -> Completion:
                return self._completion(await self._async().chat.completions.create(**body), started, schema)

            try:
                return await self._aretrying(attempt, body)
            except _FormatRejected:
                self._rejected(fmt)

    def _rejected(self, fmt: int) -> None:
        """The server refused format ``fmt``: move past it, once however many calls were refused with it."""
        with self._format_lock:
            if self._format == fmt:
                self._format = fmt + 1

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None) -> Stream:
        """Deltas as the server sends them; the request (and its retries) happens before this returns."""
        check_fits(self, messages, max_tokens)
        started = time.perf_counter()
        raw = self._open_stream(messages, max_tokens, temperature, stop)
        box: dict[str, Any] = {}

        def deltas():
            try:
                for chunk in raw:
                    yield from self._chunk_text(chunk, box)
            except Exception as exc:
                raise self._translate(exc, 1)[0] from exc
            finally:
                raw.close()

        def finish(text: str) -> Completion:
            # servers that ignore stream_options send no usage: estimate (content + ~4 template tokens a message)
            estimate = (sum(self.count_tokens(m.content) + 4 for m in messages), self.count_tokens(text))
            return Completion(text=text, model=self.model, finish_reason=box.get("finish"),
                              usage=self._usage(box.get("usage"), time.perf_counter() - started, estimate))

        return Stream(deltas(), finish)

    async def astream(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
                      stop: list[str] | None = None):
        """Async text deltas through ``AsyncOpenAI``."""
        check_fits(self, messages, max_tokens)
        body = self._body(messages, max_tokens, temperature, stop, stream=True)
        raw = await self._aretrying(lambda: self._async().chat.completions.create(**body), body)
        try:
            async for chunk in raw:
                for text in self._chunk_text(chunk, {}):
                    yield text
        except Exception as exc:
            raise self._translate(exc, 1)[0] from exc
        finally:
            await raw.close()

    def _open_stream(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None) -> Any:
        body = self._body(messages, max_tokens, temperature, stop, stream=True)
        try:
            return self._retrying(lambda: self._sync().chat.completions.create(**body), body)
        except BackendError as error:
            if "stream_options" not in body or getattr(error.__cause__, "status_code", None) not in (400, 422):
                raise
            self._stream_usage = False  # some servers refuse stream_options; usage is then estimated
            body.pop("stream_options")
            return self._retrying(lambda: self._sync().chat.completions.create(**body), body)

    @staticmethod
    def _chunk_text(chunk: Any, box: dict[str, Any]):
        if getattr(chunk, "usage", None):
            box["usage"] = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            box["finish"] = choice.finish_reason or box.get("finish")
            text = getattr(choice.delta, "content", None)
            if text:
                yield text

    # -- retries and errors ----------------------------------------------------
    def _retrying(self, attempt: Callable[[], T], body: dict) -> T:
        for n in range(self.settings.max_retries + 1):
            try:
                return attempt()
            except Exception as exc:
                error, retry = self._classify(exc, n + 1, body)
                if not retry or n == self.settings.max_retries:
                    raise error from exc
                self.retries += 1
                time.sleep(self._delay(n, exc))
        raise AssertionError("unreachable")

    async def _aretrying(self, attempt: Callable[[], Any], body: dict) -> Any:
        for n in range(self.settings.max_retries + 1):
            try:
                return await attempt()
            except Exception as exc:
                error, retry = self._classify(exc, n + 1, body)
                if not retry or n == self.settings.max_retries:
                    raise error from exc
                self.retries += 1
                await asyncio.sleep(self._delay(n, exc))
        raise AssertionError("unreachable")

    def _delay(self, n: int, exc: Exception) -> float:
        """Exponential backoff with a little jitter; a short Retry-After from the server wins."""
        delay = self.settings.backoff_s * (2**n) * (1 + random.random() * 0.1)
        after = _retry_after(exc)
        return delay if after is None else max(delay, after)

    def _classify(self, exc: Exception, attempts: int, body: dict) -> tuple[Exception, bool]:
        """(error to raise, whether to retry)."""
        status = getattr(exc, "status_code", None)
        sent = _sent_format(body)  # what this request carried, not what other threads moved on to
        if status and sent is not None and sent < len(FORMATS) - 1 and not _context_overflow(exc):
            # llama-cpp-python's server answers an unknown format with 500 and a validation message
            if status in (400, 422) or "response_format" in str(getattr(exc, "message", "") or exc):
                return _FormatRejected(), False
        return self._translate(exc, attempts)

    def _translate(self, exc: Exception, attempts: int) -> tuple[Exception, bool]:
        if isinstance(exc, AgentlongError):
            return exc, False
        openai = _import_openai()
        tried = f" after {attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(f"{self.url} did not answer within {self.settings.timeout_s:g}s{tried}",
                                hint="raise AGENTLONG_OPENAI__TIMEOUT_S or check the server's load"), True
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(f"cannot reach {self.url}{tried}",
                                      hint="start the server, or fix the URL (AGENTLONG_OPENAI__BASE_URL or openai:MODEL@URL)"), True
        if isinstance(exc, (_Malformed, json.JSONDecodeError, openai.APIResponseValidationError)):
            return BackendError(f"{self.url} returned a malformed reply{tried}",
                                hint="check that the URL is an OpenAI-compatible API ending in /v1"), True
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc, exc.status_code, tried)
        return BackendError(f"{self.url}: {type(exc).__name__}: {self._redact(str(exc))}"), False

    def _status_error(self, exc: Any, status: int, tried: str) -> tuple[Exception, bool]:
        if status == 401:
            return ConfigError(f"{self.url} rejected the API key (401)", hint=KEY_HINT), False
        if status == 403:
            return ConfigError(f"{self.url} refused access to {self.model!r} (403)",
                               hint="check the key's project and permissions (OPENAI_API_KEY / AGENTLONG_OPENAI__API_KEY)"), False
        if status == 404:
            return BackendError(f"{self.url} has no model {self.model!r} or no chat endpoint (404)",
                                hint="check the model name (a local server's --model_alias) and that the URL ends in /v1"), False
        if status == 429:
            quota = getattr(exc, "code", None) == "insufficient_quota"
            return RateLimited(f"{self.url} is rate limiting requests (429){tried}",
                               hint="check the account's billing and quota" if quota else None,
                               retry_after=_retry_after(exc)), not quota
        if status >= 500 or status == 408:
            return BackendError(f"{self.url} failed with HTTP {status}{tried}",
                                hint="the server had an error; retry later or check its logs"), True
        if _context_overflow(exc):
            window = _window_from(str(getattr(exc, "message", "") or exc))
            if window:
                self._window = window
            return ContextWindowExceeded(f"{self.url}: the prompt does not fit the context of {self.model!r}"
                                         + (f" ({window} tokens)" if window else "")), False
        message = self._redact(str(getattr(exc, "message", "") or exc))
        return BackendError(f"{self.url} rejected the request (HTTP {status}): {message[:200]}"), False

    def _redact(self, text: str) -> str:
        text = " ".join(text.split())
        return text.replace(self._key, "***") if self._key and self._key != NO_KEY else text


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds (at most 60), or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return min(float(headers.get("retry-after", "")), 60.0)
    except ValueError:
        return None


def _sent_format(body: dict) -> int | None:
    """The index in FORMATS of the response_format ``body`` carries (None: no schema asked)."""
    form = body.get("response_format")
    if form is None:
        return None
    if form.get("type") == "json_schema":
        return 0
    return 1 if "schema" in form else 2


def _response_format(kind: str, schema: dict) -> dict:
    if kind == "json_schema":
        name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(schema.get("title", "output")))[:64]
        return {"type": "json_schema", "json_schema": {"name": name or "output", "schema": schema, "strict": False}}
    if kind == "json_object+schema":  # llama.cpp server, Anyscale, Together: grammar from the schema
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _reasoning_model(model: str) -> bool:
    name = model.lower()
    return name.startswith(("o1", "o3", "o4", "gpt-5"))


def _context_overflow(exc: Exception) -> bool:
    text = f"{getattr(exc, 'code', '')} {getattr(exc, 'message', '')} {exc}".lower()
    return "context_length_exceeded" in text or "maximum context length" in text or "exceed context window" in text


def _window_from(message: str) -> int | None:
    import re

    match = re.search(r"maximum context length is (\d+)|context window of (\d+)", message)
    return int(next(g for g in match.groups() if g)) if match else None


def _try_json(text: str) -> Any:
    """The decoded JSON, or None so the LLM layer can run its repair retry."""
    try:
        return decode_json(text)
    except BackendError:
        return None
