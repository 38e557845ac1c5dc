"""A real backend without a model, for tests and offline demos (DSPy ``DummyLM`` style).

Modes:
- ``echo``: answers with the last user message (trimmed to ``max_tokens``).
- ``scripted``: answers with ``responses`` in order (list); the last one repeats.
- ``keyed``: ``responses`` is a dict; the first key found as a substring of the prompt wins.

A response may be a string, a dict/list (sent as JSON), a callable ``(messages) -> response``,
or an exception instance to raise. Every call is recorded in ``calls``.

>>> fb = FakeBackend(mode="keyed", responses={"capital": "Paris"}, default="?")
>>> fb.complete([Message(role="user", content="capital of France?")], max_tokens=4).text
'Paris'
>>> len(fb.calls), fb.calls[0].max_tokens
(1, 4)
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, ParseError
from ..types import Completion, Message
from .base import BaseBackend, Stream, check_fits

__all__ = ["FakeBackend", "FakeCall"]


@dataclass
class FakeCall:
    messages: list[Message]
    max_tokens: int
    schema: dict | None = None
    stream: bool = False
    response: str = field(default="")
    temperature: float = 0.0

    @property
    def prompt(self) -> str:
        return "\n".join(m.content for m in self.messages)


class FakeBackend(BaseBackend):
    """Deterministic model stand-in; tokens are counted as ceil(chars / 4)."""

    def __init__(
        self,
        mode: str = "echo",
        responses: Any = None,
        *,
        default: Any = "",
        context_window: int = 8192,
        max_concurrency: int = 4,
        delay_s: float = 0.0,
        name: str = "fake",
    ) -> None:
        if mode not in ("echo", "scripted", "keyed"):
            raise ConfigError(f"unknown fake backend mode {mode!r}", hint="use echo, scripted or keyed")
        self.mode = mode
        self.responses = responses if responses is not None else ([] if mode == "scripted" else {})
        self.default = default
        self._window = context_window
        self.max_concurrency = max_concurrency
        self.delay_s = delay_s
        self.name = name
        self.model = f"fake-{mode}"
        self.calls: list[FakeCall] = []
        self._lock = threading.Lock()
        self._cursor = 0

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def context_window(self) -> int:
        return self._window

    def _pick(self, messages: list[Message]) -> Any:
        prompt = "\n".join(m.content for m in messages)
        if self.mode == "echo":
            return next((m.content for m in reversed(messages) if m.role == "user"), "")
        if self.mode == "keyed":
            for key, value in self.responses.items():
                if key in prompt:
                    return value
            return self.default
        with self._lock:
            if not self.responses:
                return self.default
            value = self.responses[min(self._cursor, len(self.responses) - 1)]
            self._cursor += 1
            return value

    def _respond(self, messages: list[Message], max_tokens: int, schema: dict | None, stream: bool,
                 temperature: float = 0.0) -> str:
        check_fits(self, messages, max_tokens)
        value = self._pick(messages)
        if callable(value) and not isinstance(value, type):
            value = value(messages)
        call = FakeCall(messages=list(messages), max_tokens=max_tokens, schema=schema, stream=stream, temperature=temperature)
        with self._lock:
            self.calls.append(call)
        if isinstance(value, BaseException):
            raise value
        text = value if isinstance(value, str) else json.dumps(value)
        if self.mode == "echo":
            text = text[: max_tokens * 4]
        call.response = text
        if self.delay_s:
            time.sleep(self.delay_s)
        return text

    def _completion(self, messages: list[Message], text: str, started: float, schema: dict | None) -> Completion:
        prompt_tokens = sum(self.count_tokens(m.content) for m in messages)
        parsed = None
        if schema is not None:
            from .base import decode_json

            try:
                parsed = decode_json(text)
            except ParseError:  # left to the LLM layer's repair retry, as with real backends
                parsed = None
        return Completion(
            text=text, model=self.model, finish_reason="stop", parsed=parsed,
            usage=self.usage(prompt_tokens, self.count_tokens(text), time.perf_counter() - started),
        )

    def complete(self, messages, *, max_tokens, temperature=0.0, schema=None, stop=None) -> Completion:
        started = time.perf_counter()
        text = self._respond(messages, max_tokens, schema, stream=False, temperature=temperature)
        return self._completion(messages, text, started, schema)

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None) -> Stream:
        started = time.perf_counter()
        text = self._respond(messages, max_tokens, None, stream=True, temperature=temperature)
        words = text.split(" ")
        deltas = iter([w if i == 0 else " " + w for i, w in enumerate(words)])
        return Stream(deltas, lambda full: self._completion(messages, full, started, None))
