"""The SDK facade. Every capability is one method; each returns a pydantic result with usage.

>>> from agentlong import Agentlong
>>> al = Agentlong(model="fake")
>>> al.complete("hello").text
'hello'
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .backends import Backend, get_backend
from .events import Emit, Event, EventBus
from .llm import LLM
from .settings import Settings
from .types import Completion, Message, RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from .types import Answer

__all__ = ["Agentlong", "iterate"]

Source = str | Path | Sequence[str | Path]


class Agentlong:
    """Entry point: holds settings and a backend; runs graphs.

    ``Agentlong(model="llama:qwen2.5-coder-0.5b")`` or ``Agentlong(settings=Settings(...))``;
    keyword overrides are applied on top of the environment and config file.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        settings: Settings | None = None,
        backend: Backend | None = None,
        reasoner_backend: Backend | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings(**({"model": model} if model else {}), **overrides)
        elif model or overrides:
            settings = settings.model_copy(update={**({"model": model} if model else {}), **overrides})
        self.settings = settings
        self._backend = backend
        # asked before work estimated above settings.confirm_minutes; None: such work raises (the CLI sets one)
        self.confirm: Callable[[str], bool] | None = None
        self._reasoner: Backend | None = reasoner_backend
        self._store = None

    # -- parts -----------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = get_backend(self.settings.model, self.settings)
        return self._backend

    @property
    def reasoner_backend(self) -> Backend | None:
        """The backend of ``settings.reasoner`` (or the ``reasoner_backend`` given; loaded on first use);
        None when unset or the same as ``model``."""
        if self._reasoner is not None:
            return self._reasoner
        name = self.settings.reasoner
        if not name or name == self.settings.model:
            return None
        self._reasoner = get_backend(name, self.settings)
        return self._reasoner

    @property
    def store(self):
        """The vector store (Chroma embedded or server), created on first use."""
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.settings)
        return self._store

    def llm(self, on_event: Emit | None = None) -> LLM:
        """A fresh metered LLM helper for one run."""
        return LLM(self.backend, self.settings, EventBus([on_event] if on_event else []))

    def record(self, llm: LLM, started: float, started_at: str) -> RunRecord:
        """Provenance for a finished run."""
        return RunRecord(
            backend=self.backend.name, model=self.backend.model, settings_hash=self.settings.fingerprint(),
            prompts=list(llm.prompts_used), started_at=started_at, duration_s=round(time.perf_counter() - started, 3),
            usage=llm.usage, agentlong_version=__version__,
        )

    # -- capabilities ----------------------------------------------------------
    def complete(self, prompt: str, *, max_tokens: int = 256, system: str | None = None) -> Completion:
        """One plain completion (no documents)."""
        msgs = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]
        return self.llm().send(msgs, step="complete", max_tokens=max_tokens)

    def load(self, path: str | Path):
        """Load a file or folder into Documents (skips are reported, not raised)."""
        from .documents import load_path

        return load_path(path, self.settings)

    def index(self, paths: Source, *, name: str | None = None, reindex: bool = False, on_event: Emit | None = None):
        """Index files/folders into a named corpus in the vector store (incremental; ``reindex`` rebuilds)."""
        from .store.corpus import index_paths

        return index_paths(self, _as_list(paths), name=name, emit=EventBus([on_event] if on_event else []),
                           reindex=reindex)

    def search(self, corpus: str, query: str, *, k: int = 8):
        """Dense search of an indexed corpus: hits with scores and provenance."""
        from .store.corpus import search

        return search(self, corpus, query, k=k)

    def ask(self, source: Source, question: str, *, strategy: str = "auto", on_event: Emit | None = None) -> "Answer":
        """Answer ``question`` about a file, folder or corpus name, with citations."""
        from .graphs.router import ask

        return ask(self, source, question, strategy=strategy, emit=EventBus([on_event] if on_event else []))

    def summarize(
        self, source: Source, *, words: int = 300, strategy: str = "auto", on_event: Emit | None = None
    ) -> "Answer":
        """Summarize a whole document or codebase in about ``words`` words."""
        from .graphs.router import summarize

        return summarize(self, source, words=words, strategy=strategy, emit=EventBus([on_event] if on_event else []))

    def write(self, instruction: str, *, words: int, sources: Source | None = None, outline: Any = None,
              on_event: Emit | None = None):
        """Plan-write-review a long text of about ``words`` words."""
        from .graphs.writer import write

        return write(self, instruction, words=words, sources=sources, outline=outline,
                     emit=EventBus([on_event] if on_event else []))

    def chat(self, session: str | None = None, *, sources: Source = ()):
        """A chat with a memory controller; resumes ``session`` when it exists."""
        from .memory.chat import Chat

        return Chat(self, session=session, sources=_as_list(sources) if sources else [])


def _as_list(source: Source) -> list[str]:
    if isinstance(source, (str, Path)):
        return [str(source)]
    return [str(s) for s in source]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def iterate(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Event | Any]:
    """Run ``fn(*args, on_event=..., **kwargs)`` in a thread; yield its events, then its result.

    >>> al = Agentlong(model="fake")
    >>> items = list(iterate(lambda on_event: 7))
    >>> items[-1]
    7
    """
    q: queue.Queue = queue.Queue()
    done = object()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn(*args, on_event=q.put, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        q.put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (item := q.get()) is not done:
        yield item
    thread.join()
    if "error" in box:
        raise box["error"]
    yield box["result"]
