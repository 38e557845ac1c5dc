"""Archived memory: embeddings of a session's stream in the vector store, searched by relevance.

The SQLite stream is the source of truth; the vector store is an index of it. Turns are embedded
lazily, in one batch, the first time the archive is searched (short chats never load the
embedder), and re-embedded when the embedder changes or a summary is added. If the store or the
embedder cannot be used, search falls back to word overlap and says so once (a Notice).

>>> from agentlong.store.memory import MemoryStore
>>> class Letters:  # a toy embedder: letter counts
...     name, dimension = "letters", 26
...     def embed(self, texts):
...         return [[t.lower().count(c) + 0.01 for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]
>>> from agentlong.memory.stream import Turn
>>> turns = [Turn(id=1, session="s", n=1, user="zebra zoo", assistant="zz"),
...          Turn(id=2, session="s", n=2, user="apple", assistant="aa")]
>>> arch = Archive("s", embedder=Letters(), store=MemoryStore())
>>> [t.n for t, _ in arch.search("zzz", turns, k=1)]
[1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..errors import AgentlongError
from ..events import Emit, EventBus, Notice
from ..lexical import content_words
from .stream import SessionDB, Turn

__all__ = ["Archive", "collection_for", "embed_text", "lexical_scores"]

EMBED_CHARS = 1500  # MiniLM-class embedders read ~256 word pieces; more is cut off anyway


def collection_for(session: str) -> str:
    """The vector-store collection holding ``session``'s memory (stable, valid for Chroma)."""
    return f"agentlong-memory-{hashlib.sha256(session.encode()).hexdigest()[:16]}"


def embed_text(turn: Turn) -> str:
    """What is embedded for a turn: the user's words plus the summary (or the answer)."""
    body = turn.summary or turn.assistant
    head = f"Note ({turn.user})" if turn.kind == "note" else turn.user
    return f"{head}\n{body}"[:EMBED_CHARS]


def lexical_scores(query: str, turns: list[Turn]) -> list[tuple[Turn, float]]:
    """Fallback relevance: share of the query's content words found in each turn."""
    q = content_words(query)
    if not q:
        return [(t, 0.0) for t in turns]
    return [(t, len(q & content_words(embed_text(t))) / len(q)) for t in turns]


class Archive:
    """Embedding index of one session's memory stream."""

    def __init__(
        self,
        session: str,
        *,
        embedder: Any = None,
        store: Any = None,
        embedder_factory: Callable[[], Any] | None = None,
        store_factory: Callable[[], Any] | None = None,
        emit: Emit | None = None,
    ) -> None:
        self.session = session
        self.collection = collection_for(session)
        self._embedder = embedder
        self._store = store
        self._embedder_factory = embedder_factory
        self._store_factory = store_factory
        self.emit: Emit = emit or EventBus()
        self.broken: str | None = None  # why the vector index is unusable (then: word overlap)

    # -- parts, created on first use -------------------------------------------
    def _get_store(self) -> Any:
        if self._store is None and self._store_factory is not None and not self.broken:
            try:
                self._store = self._store_factory()
            except (AgentlongError, ImportError) as exc:
                self._fail(exc)
        return self._store

    def _parts(self) -> tuple[Any, Any] | None:
        if self.broken:
            return None
        if self._embedder is None and self._embedder_factory is not None:
            try:
                self._embedder = self._embedder_factory()
            except (AgentlongError, ImportError) as exc:
                self._fail(exc)
                return None
        store = self._get_store()
        if self.broken:
            return None
        if self._embedder is None or store is None:
            self._fail("no embedder or vector store configured")
            return None
        return self._embedder, store

    def _fail(self, why: str | Exception) -> None:
        why = why if isinstance(why, str) else (why.one_line() if isinstance(why, AgentlongError) else f"{type(why).__name__}: {why}")
        self.broken = why
        self.emit(Notice(level="warning", message=f"archived memory falls back to word overlap: {why}"))

    # -- indexing --------------------------------------------------------------
    def sync(self, turns: list[Turn], db: SessionDB | None = None) -> int:
        """Embed the usable turns whose vector is missing or stale. Returns how many were embedded."""
        parts = self._parts()
        if parts is None:
            return 0
        embedder, store = parts
        usable = [t for t in turns if t.usable]
        try:
            if store.count(self.collection) < sum(t.embedded == embedder.name for t in usable):
                for t in usable:  # the index was lost (store wiped or moved): rebuild it from the stream
                    t.embedded = None
        except AgentlongError as exc:
            self._fail(exc.one_line())
            return 0
        stale = [t for t in usable if t.embedded != embedder.name]
        if not stale:
            return 0
        try:
            vectors = embedder.embed([embed_text(t) for t in stale])
            store.upsert(self.collection, [str(t.id) for t in stale], vectors, [embed_text(t) for t in stale],
                         [{"n": t.n, "kind": t.kind} for t in stale])
        except AgentlongError as exc:
            self._fail(exc.one_line())
            return 0
        if db is not None:
            db.mark_embedded([t.id for t in stale], embedder.name)
        for t in stale:
            t.embedded = embedder.name
        return len(stale)

    def search(self, query: str, candidates: list[Turn], k: int, db: SessionDB | None = None) -> list[tuple[Turn, float]]:
        """The ``k`` candidates most similar to ``query``, best first, with their similarity."""
        if not candidates or k <= 0:
            return []
        self.sync(candidates, db)
        parts = self._parts()
        if parts is None:
            scored = lexical_scores(query, candidates)
        else:
            scored = self._dense(query, candidates, k, *parts)
            if scored is None:
                scored = lexical_scores(query, candidates)
        scored.sort(key=lambda pair: -pair[1])
        return scored[:k]

    def _dense(self, query: str, candidates: list[Turn], k: int, embedder: Any, store: Any) -> list[tuple[Turn, float]] | None:
        by_id = {str(t.id): t for t in candidates}
        try:
            vector = embedder.embed([query])[0]
            # ask for more than k: hits outside the candidates (flash turns) are filtered out here
            hits = store.query(self.collection, vector, k=k + 16)
            if len([h for h in hits if h.id in by_id]) < min(k, len(by_id)):
                hits = store.query(self.collection, vector, k=store.count(self.collection))
        except AgentlongError as exc:
            self._fail(exc.one_line())
            return None
        return [(by_id[h.id], float(h.score or 0.0)) for h in hits if h.id in by_id]

    def forget(self, turn_ids: list[int] | None = None) -> None:
        """Remove some turns' vectors, or the whole collection."""
        store = self._get_store()
        if store is None:
            return
        try:
            if turn_ids is None:
                store.drop(self.collection)
            elif turn_ids:
                store.delete(self.collection, ids=[str(i) for i in turn_ids])
        except AgentlongError as exc:
            self._fail(exc.one_line())
