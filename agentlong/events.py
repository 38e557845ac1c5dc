"""Typed events that flow up from graphs to the SDK, CLI progress bars and REPL.

The core never prints: it calls ``emit(event)``; the CLI decides how to render.

>>> seen = []
>>> bus = EventBus([seen.append])
>>> bus(Progress(task="read", done=1, total=3))
>>> seen[0].done
1
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from .errors import debug_traceback
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
    """Fan an event out to listeners. A failing listener never breaks the run: its first failure
    is one warning line on stderr (the traceback with ``AGENTLONG_DEBUG=1``), later ones are counted
    in ``failures``."""

    def __init__(self, listeners: list[Emit] | None = None) -> None:
        self.listeners: list[Emit] = list(listeners or [])
        self.failures: dict[int, int] = {}

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # a display problem must not stop the work, nor go unseen
                seen = self.failures.get(id(listener), 0)
                self.failures[id(listener)] = seen + 1
                if not seen:
                    debug_traceback()
                    name = getattr(listener, "__qualname__", type(listener).__name__)
                    msg = " ".join(str(exc).split())[:200]
                    print(f"agentlong: warning: the event listener {name} failed on a {event.kind} event "
                          f"({type(exc).__name__}: {msg}); the work goes on, later failures are not shown "
                          "(AGENTLONG_DEBUG=1 for a traceback)", file=sys.stderr)

    def subscribe(self, listener: Emit) -> None:
        self.listeners.append(listener)
