"""The call helper every graph uses: prompts by name, context checks, JSON with repair, usage.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.settings import Settings
>>> llm = LLM(FakeBackend(mode="keyed", responses={"Question": "42"}), Settings(model="fake"))
>>> llm.call("answer_direct", max_tokens=8, question="Question?", document="doc").text
'42'
>>> llm.usage.calls
1
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .backends.base import Backend, Stream, check_fits, decode_json
from .errors import ParseError
from .events import Emit, EventBus, UsageUpdate
from .packing import truncate_to_tokens
from .prompts import render
from .settings import Settings
from .types import Completion, Message, TraceStep, Usage

__all__ = ["LLM", "StepMeter", "metered"]

M = TypeVar("M", bound=BaseModel)


class StepMeter:
    """Usage of the calls made inside one ``metered()`` block."""

    def __init__(self) -> None:
        self.usage = Usage()


_step_meter: ContextVar[StepMeter | None] = ContextVar("agentlong_step_meter", default=None)


@contextmanager
def metered() -> Iterator[StepMeter]:
    """Meter the calls made in this block (this thread/context only): per-step usage for traces,
    correct even when graph nodes call the same ``LLM`` concurrently.

    >>> from agentlong.backends.fake import FakeBackend
    >>> llm = LLM(FakeBackend(mode="echo"), Settings(model="fake"))
    >>> with metered() as step:
    ...     _ = llm.call("answer_direct", max_tokens=8, question="q", document="d")
    >>> step.usage.calls
    1
    """
    meter = StepMeter()
    token = _step_meter.set(meter)
    try:
        yield meter
    finally:
        _step_meter.reset(token)


class LLM:
    """A backend plus prompts, usage metering and events for one run."""

    def __init__(self, backend: Backend, settings: Settings, emit: Emit | None = None) -> None:
        self.backend = backend
        self.settings = settings
        self.emit: Emit = emit or EventBus()
        self.usage = Usage()
        self.trace: list[TraceStep] = []
        self.prompts_used: list[str] = []
        self._lock = threading.Lock()
        self._parent: LLM | None = None  # a sibling's calls also count in its parent's usage

    def sibling(self, backend: Backend) -> "LLM":
        """An LLM on another backend (a run's second model) whose calls count in its own usage and in
        this one's, so a run's totals stay in one place.

        >>> from agentlong.backends.fake import FakeBackend
        >>> main = LLM(FakeBackend(mode="echo"), Settings(model="fake"))
        >>> second = main.sibling(FakeBackend(mode="echo"))
        >>> _ = second.call("answer_direct", max_tokens=8, question="q", document="d")
        >>> main.usage.calls, second.usage.calls
        (1, 1)
        """
        other = LLM(backend, self.settings, self.emit)
        other._parent = self
        return other

    # -- sizes -----------------------------------------------------------------
    def tokens(self, text: str) -> int:
        return self.backend.count_tokens(text) if text else 0

    @property
    def window(self) -> int:
        return self.backend.context_window()

    # -- prompts ---------------------------------------------------------------
    def render(self, name: str, **variables: Any) -> str:
        for llm in filter(None, (self, self._parent)):  # a sibling's prompts are the run's too
            if name not in llm.prompts_used:
                llm.prompts_used.append(name)
        return render(name, self.settings.prompts_dir, **variables)

    def messages(self, prompt: str, *, system: str | None = "system", **variables: Any) -> list[Message]:
        msgs = [Message(role="system", content=self.render(system))] if system else []
        msgs.append(Message(role="user", content=self.render(prompt, **variables)))
        return msgs

    def fixed_tokens(self, prompt: str, *, system: str | None = "system", **variables: Any) -> int:
        """Tokens a prompt costs with the given (usually empty-text) variables."""
        return sum(self.tokens(m.content) + 8 for m in self.messages(prompt, system=system, **variables))

    # -- calls -----------------------------------------------------------------
    def _add(self, step: str, completion: Completion) -> Usage:
        with self._lock:
            self.usage = self.usage + completion.usage
            self.trace.append(TraceStep(step=step, usage=completion.usage))
            return self.usage

    def _account(self, step: str, completion: Completion) -> None:
        total = self._add(step, completion)
        if self._parent is not None:
            total = self._parent._add(step, completion)
        meter = _step_meter.get()
        if meter is not None:
            meter.usage = meter.usage + completion.usage
        self.emit(UsageUpdate(usage=total))

    def send(self, messages: list[Message], *, step: str, max_tokens: int, schema: dict | None = None,
             temperature: float | None = None) -> Completion:
        """Complete ``messages`` (at ``temperature``, default the settings'); usage is accounted."""
        check_fits(self.backend, messages, max_tokens)
        temperature = self.settings.temperature if temperature is None else temperature
        completion = self.backend.complete(messages, max_tokens=max_tokens, temperature=temperature, schema=schema)
        self._account(step, completion)
        return completion

    def call(self, prompt: str, *, max_tokens: int, system: str | None = "system", **variables: Any) -> Completion:
        """Render ``prompt`` and complete it."""
        return self.send(self.messages(prompt, system=system, **variables), step=prompt, max_tokens=max_tokens)

    def stream(self, messages: list[Message], *, step: str, max_tokens: int, temperature: float | None = None) -> Stream:
        """Stream a completion; usage is accounted when the stream ends (or is stopped with ``collect(until=...)``)."""
        check_fits(self.backend, messages, max_tokens)
        temperature = self.settings.temperature if temperature is None else temperature
        inner = self.backend.stream(messages, max_tokens=max_tokens, temperature=temperature)

        def account(completion: Completion) -> Completion:
            self._account(step, completion)
            return completion

        return inner.after(account)  # accounted when the stream ends, or is stopped early

    def call_json(
        self, prompt: str, model: type[M], *, max_tokens: int, system: str | None = "system", **variables: Any
    ) -> M:
        """Schema-constrained call validated into ``model``; one repair retry, then ParseError."""
        schema = model.model_json_schema()
        messages = self.messages(prompt, system=system, **variables)
        completion = self.send(messages, step=prompt, max_tokens=max_tokens, schema=schema)
        try:
            return _validate(model, completion)
        except (ParseError, ValidationError) as first:
            instruction = Message(role="user", content=self.render("json_repair", error=_short(first), schema=schema))
            echo = self._fit_echo(messages + [instruction], completion.text[:2000], max_tokens)
            repair = messages + [Message(role="assistant", content=echo), instruction]
            retry = self.send(repair, step=f"{prompt}:repair", max_tokens=max_tokens, schema=schema)
            try:
                return _validate(model, retry)
            except (ParseError, ValidationError) as second:
                raise ParseError(
                    f"step {prompt!r}: the model returned invalid JSON twice ({_short(second)})"
                ) from second

    def _fit_echo(self, messages: list[Message], text: str, max_tokens: int) -> str:
        """The invalid reply shown back in a repair call, shortened so that call fits the window too."""
        room = self.window - sum(self.tokens(m.content) + 8 for m in messages) - 8 - max_tokens
        return truncate_to_tokens(text, room, self.tokens) if room > 0 else ""


def _validate(model: type[M], completion: Completion) -> M:
    data = completion.parsed if completion.parsed is not None else decode_json(completion.text)
    return model.model_validate(data)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
