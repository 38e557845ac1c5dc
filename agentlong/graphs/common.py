"""What every graph shares: the run context, the SQLite checkpointer and a resumable runner.

Graph state is a TypedDict of JSON-able values (pydantic values are stored with ``model_dump``),
so checkpoints stay portable. Dependencies (the LLM, settings, store, event sink) travel in
``RunContext`` through LangGraph's runtime context, never in state.

Runs are identified by a deterministic ``thread_id`` built from what defines the work (graph,
inputs, question, settings), so running the same command again after a crash resumes it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import GraphError
from ..events import Emit, EventBus
from ..llm import LLM
from ..settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["RunContext", "reasoner_for", "thread_id_for", "checkpointer", "run_graph", "checkpoint_path"]


@dataclass
class RunContext:
    """Run-scoped dependencies handed to every node via ``runtime.context``."""

    llm: LLM
    settings: Settings
    emit: Emit = field(default_factory=EventBus)
    app: "Agentlong | None" = None
    reasoner: LLM | None = None  # settings.reasoner: the model for the steps that decide; None = llm

    @property
    def decider(self) -> LLM:
        """The LLM for the few steps that decide (the answer, the writer's plan and review); the
        per-chunk reading stays on ``llm``."""
        return self.reasoner or self.llm

    @classmethod
    def from_app(cls, app: "Agentlong", emit: Emit | None = None) -> "RunContext":
        bus = emit or EventBus()
        llm = LLM(app.backend, app.settings, bus)
        return cls(llm=llm, settings=app.settings, emit=bus, app=app, reasoner=reasoner_for(app, llm))


def reasoner_for(app: "Agentlong", llm: LLM) -> LLM | None:
    """The run's second model (``settings.reasoner``), counting in ``llm``'s usage; None when unset."""
    backend = app.reasoner_backend
    return llm.sibling(backend) if backend is not None else None


def thread_id_for(graph: str, *parts: Any) -> str:
    """Deterministic id for a run: same graph + same inputs → same checkpoint thread."""
    blob = json.dumps([graph, *parts], sort_keys=True, default=str)
    return f"{graph}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def checkpoint_path(settings: Settings) -> Path:
    return settings.home / "checkpoints.sqlite"


_locks: dict[str, threading.Lock] = {}


@contextmanager
def checkpointer(path: Path | None) -> Iterator[Any]:
    """A SqliteSaver on ``path`` (None → in-memory saver)."""
    if path is None:
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def run_graph(
    builder: Any,
    inputs: dict[str, Any],
    ctx: RunContext,
    *,
    thread_id: str,
    recursion_limit: int = 50,
    checkpoint: Path | None | bool = True,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """Compile ``builder`` with a checkpointer and run it; resume if ``thread_id`` was interrupted.

    ``checkpoint=True`` uses ``$AGENTLONG_HOME/checkpoints.sqlite``; ``False`` runs in memory.
    ``max_concurrency`` caps parallel node tasks (e.g. ``Send`` fan-out) per step.
    """
    path = checkpoint_path(ctx.settings) if checkpoint is True else (None if checkpoint is False else checkpoint)
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit}
    if max_concurrency is not None:
        config["max_concurrency"] = max_concurrency
    with checkpointer(path) as saver:
        graph = builder.compile(checkpointer=saver)
        snapshot = graph.get_state(config)
        resuming = bool(snapshot.next)
        if snapshot.values and not resuming:  # a finished run with the same id: start clean
            saver.delete_thread(thread_id)
        try:
            result = graph.invoke(None if resuming else inputs, config, context=ctx)
        except RecursionError as exc:  # pragma: no cover - defensive
            raise GraphError(f"graph {thread_id} recursed too deep") from exc
        except Exception as exc:
            from langgraph.errors import GraphRecursionError

            if isinstance(exc, GraphRecursionError):
                raise GraphError(f"graph {thread_id} hit its recursion limit ({recursion_limit})",
                                 hint="this is a bug in the step plan; report it") from exc
            raise
        saver.delete_thread(thread_id)  # finished: the checkpoint has done its job
    result = dict(result)
    result["_resumed"] = resuming
    return result
