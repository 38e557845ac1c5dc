"""The backend protocol: one small interface every model implements.

>>> from agentlong.backends.fake import FakeBackend
>>> b = FakeBackend(mode="echo")
>>> b.complete([Message(role="user", content="hi")], max_tokens=8).text
'hi'
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from ..errors import ContextWindowExceeded, ParseError
from ..types import Completion, Message, Usage

__all__ = ["Backend", "Stream", "BaseBackend", "check_fits", "decode_json"]


@runtime_checkable
class Backend(Protocol):
    """What graphs need from a model."""

    name: str  # the model string it was made from
    model: str
    max_concurrency: int

    def complete(
        self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
        schema: dict[str, Any] | None = None, stop: list[str] | None = None,
    ) -> Completion: ...

    def stream(
        self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> "Stream": ...

    async def acomplete(self, messages: list[Message], **kwargs: Any) -> Completion: ...

    def astream(self, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def context_window(self) -> int: ...


class Stream:
    """Iterate for text deltas; ``completion`` holds the full result once iteration ends."""

    def __init__(self, deltas: Iterator[str], finish: Any) -> None:
        self._deltas = deltas
        self._finish = finish  # callable(text) -> Completion
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        for delta in self._deltas:
            parts.append(delta)
            yield delta
        self.completion = self._finish("".join(parts))

    def collect(self, until: Callable[[str], bool] | None = None) -> Completion:
        """The whole completion; with ``until``, generation stops as soon as ``until(text so far)`` is true
        (the completion then has ``finish_reason="stopped"`` and the usage of what was generated)."""
        if until is None:
            for _ in self:
                pass
            assert self.completion is not None
            return self.completion
        parts: list[str] = []
        for delta in self._deltas:
            parts.append(delta)
            if until("".join(parts)):
                close = getattr(self._deltas, "close", None)
                if close is not None:
                    close()  # a generator: the backend stops sampling and records its usage
                self.completion = self._finish("".join(parts)).model_copy(update={"finish_reason": "stopped"})
                return self.completion
        self.completion = self._finish("".join(parts))
        return self.completion

    def after(self, fn: Callable[[Completion], Completion]) -> "Stream":
        """The same deltas; ``fn`` sees (and may replace) the completion once the stream ends or is stopped."""
        return Stream(self._deltas, lambda text: fn(self._finish(text)))


def messages_text(messages: list[Message]) -> str:
    return "\n".join(m.content for m in messages)


def check_fits(backend: Backend, messages: list[Message], max_tokens: int, overhead: int = 8) -> int:
    """Raise ContextWindowExceeded before any call if prompt + output cannot fit. Returns prompt tokens."""
    prompt = sum(backend.count_tokens(m.content) + overhead for m in messages)
    window = backend.context_window()
    if prompt + max_tokens > window:
        raise ContextWindowExceeded(
            f"prompt of {prompt} tokens + {max_tokens} output tokens exceeds the {window}-token context of {backend.name}",
        )
    return prompt


def decode_json(text: str) -> Any:
    r"""Parse JSON from model output, tolerating code fences, leading prose and raw newlines or tabs
    inside strings (small models copy multi-line code that way).

    >>> decode_json('{"text": "def f():\n    return 1"}')
    {'text': 'def f():\n    return 1'}
    """
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`")
        s = s[s.find("\n") + 1 :] if "\n" in s else s
    try:
        return json.loads(s, strict=False)
    except json.JSONDecodeError:
        pass
    for open_c, close_c in (("{", "}"), ("[", "]")):
        i, j = s.find(open_c), s.rfind(close_c)
        if 0 <= i < j:
            try:
                return json.loads(s[i : j + 1], strict=False)
            except json.JSONDecodeError:
                continue
    raise ParseError(f"model output is not valid JSON: {text[:80]!r}")


class BaseBackend:
    """Shared plumbing: async variants run the sync call in a thread; usage helpers."""

    name: str = "base"
    model: str = "base"
    max_concurrency: int = 1

    def complete(self, messages, *, max_tokens, temperature=0.0, schema=None, stop=None) -> Completion:
        raise NotImplementedError

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None) -> Stream:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def context_window(self) -> int:
        raise NotImplementedError

    async def acomplete(self, messages: list[Message], **kwargs: Any) -> Completion:
        return await asyncio.to_thread(self.complete, messages, **kwargs)

    async def astream(self, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]:
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        done = object()

        def pump() -> None:
            try:
                for delta in self.stream(messages, **kwargs):
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except BaseException as exc:  # delivered to the consumer below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, done)

        task = loop.run_in_executor(None, pump)
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
        await task

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """US dollars these tokens would cost; None when nothing is billed or no price is known."""
        return None

    def close(self) -> None:
        """Release resources (model memory, HTTP clients)."""

    @staticmethod
    def usage(prompt: int, completion: int, seconds: float, cost: float | None = None, cached: int = 0) -> Usage:
        return Usage(prompt_tokens=prompt, completion_tokens=completion, calls=1,
                     seconds=round(seconds, 4), cost_usd=cost, cached_tokens=cached)
