"""Typed events that flow up from graphs to the SDK, CLI progress bars and REPL.

The core never prints: it calls ``emit(event)``; the CLI decides how to render.

>>> seen = []
>>> bus = EventBus([seen.append])
>>> bus(Progress(task="read", done=1, total=3))
>>> seen[0].done
1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from .types import Citation, Usage

__all__ = ["Event", "Progress", "TextDelta", "StepDone", "UsageUpdate", "CitationFound", "Notice", "EventBus", "Emit"]


class Event(BaseModel):
    kind: str = "event"


class Progress(Event):
    """``done`` of ``total`` units of ``task`` (workers, chunks, files, words, documents)."""

    kind: Literal["progress"] = "progress"
    task: str
    done: int
    total: int | None = None
    detail: str = ""


class TextDelta(Event):
    kind: Literal["text"] = "text"
    text: str


class StepDone(Event):
    kind: Literal["step"] = "step"
    step: str
    detail: str = ""
    usage: Usage = Usage()


class UsageUpdate(Event):
    kind: Literal["usage"] = "usage"
    usage: Usage


class CitationFound(Event):
    kind: Literal["citation"] = "citation"
    citation: Citation


class Notice(Event):
    """A diagnostic for stderr (skipped file, retry, strategy choice)."""

    kind: Literal["notice"] = "notice"
    level: Literal["info", "warning", "error"] = "info"
    message: str


Emit = Callable[[Event], None]


class EventBus:
    """Fan an event out to listeners. A failing listener never breaks the run."""

    def __init__(self, listeners: list[Emit] | None = None) -> None:
        self.listeners: list[Emit] = list(listeners or [])

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a display problem must not stop the work
                pass

    def subscribe(self, listener: Emit) -> None:
        self.listeners.append(listener)
