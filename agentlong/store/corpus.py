"""Named corpora: incremental indexing of files and folders into the vector store, and search.

A corpus is a set of paths indexed with one embedder. Re-indexing compares each document's content
hash with the registry: unchanged documents are skipped (not even chunked), changed ones are
re-chunked and re-embedded (their old chunks deleted), and documents that disappeared are removed.
Index chunks are sized in the *embedder's* tokenizer (``settings.chunking.index_chunk_tokens``, capped
at what the embedder reads), so indexing never loads the chat model.

>>> import os, pathlib, tempfile
>>> os.environ["AGENTLONG_HOME"] = tempfile.mkdtemp()  # keep the example's registry and store out of yours
>>> from agentlong import Agentlong
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "notes"; folder.mkdir()
>>> _ = (folder / "cats.txt").write_text("Cats sleep sixteen hours a day.")
>>> al = Agentlong(model="fake")
>>> report = index_paths(al, [str(folder)], name=None, emit=lambda event: None)
>>> report.corpus, len(report.indexed)
('notes', 1)
>>> search(al, "notes", "how long do cats sleep", k=1)[0].chunk.source.endswith("cats.txt")
True
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..errors import InputError, StoreError
from ..events import Emit, Notice, Progress
from ..locks import ProcessLock
from ..types import Chunk, Document
from .base import safe_collection_name
from .embeddings import Embedder, get_embedder
from .registry import CorpusInfo, Registry, now_iso

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["index_paths", "open_corpus", "corpus_exists", "list_corpora", "corpus_info", "drop_corpus", "search",
           "Corpus", "Hit", "IndexReport", "CorpusInfo", "corpus_key"]

GROUP_CHUNKS = 512  # chunks embedded and stored together; a kill loses at most one group's work


class Hit(BaseModel):
    """A search result: the chunk and its cosine similarity to the query."""

    chunk: Chunk
    score: float


class Skip(BaseModel):
    path: str
    reason: str


class IndexReport(BaseModel):
    """What one ``index_paths`` run did."""

    corpus: str
    embedder: str
    indexed: list[str] = Field(default_factory=list, description="documents (re-)embedded in this run")
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    skipped: list[Skip] = Field(default_factory=list)
    chunks: int = Field(0, description="chunks of the documents (re-)indexed in this run")
    reused: int = Field(0, description="of those, chunks whose stored vectors were kept (same text and place): "
                                       "an interrupted run's work, or the unchanged part of an edited file")
    total_documents: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0


def corpus_key(name: str) -> str:
    """The canonical corpus name: lower case, ``[a-z0-9._-]``. ``"War and Peace"`` → ``"war-and-peace"``."""
    key = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("._-")[:200]
    if not key:
        raise InputError(f"{name!r} is not a usable corpus name", hint="use letters, digits, '.', '_' or '-'")
    return key


def default_name(path: str) -> str:
    """A corpus name derived from a path: the file stem or folder name."""
    p = Path(path).expanduser().resolve()
    return corpus_key(p.stem if p.is_file() else p.name or "corpus")


def registry(app: "Agentlong") -> Registry:
    return Registry(app.settings.home / "corpora.sqlite")


def mismatch_error(info: CorpusInfo, embedder: Embedder) -> StoreError:
    paths = " ".join(info.paths)
    paths = paths if len(paths) < 120 else "PATH..."
    return StoreError(f"corpus {info.name} was indexed with {info.embedder}, current embedder is {embedder.name}",
                      hint=f"re-index with agentlong index {paths} --name {info.name} --reindex")


class Corpus:
    """An indexed corpus: its documents, chunks (document order) and dense search."""

    def __init__(self, app: "Agentlong", info: CorpusInfo, embedder: Embedder) -> None:
        self.app, self.info, self.embedder = app, info, embedder
        self.name = info.name

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, documents={self.info.documents}, chunks={self.info.chunks})"

    def documents(self) -> list[Document]:
        """Full texts, for quote verification and whole-text strategies."""
        return registry(self.app).documents(self.name)

    def chunks(self) -> list[Chunk]:
        """All index chunks in document order (for BM25 and neighbours)."""
        return registry(self.app).chunks(self.name)

    def search(self, query: str, k: int = 8) -> list[Hit]:
        """The ``k`` chunks most similar to ``query``, best first."""
        if not query.strip() or k <= 0:
            return []
        hits = self.app.store.query(self.info.collection, self.embedder.embed_query(query), k)
        return [Hit(chunk=_chunk_from_store(h.id, h.text, h.metadata), score=float(h.score or 0.0)) for h in hits]


def _chunk_from_store(id_: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(doc_id=str(meta.get("doc_id", id_.rsplit(":", 1)[0])), source=str(meta.get("source", "")),
                 index=int(meta.get("index", 0)), text=text, char_start=int(meta.get("char_start", 0)),
                 char_end=int(meta.get("char_end", len(text))), line_start=int(meta.get("line_start", 1)),
                 line_end=int(meta.get("line_end", 1)), section=meta.get("section"), symbol=meta.get("symbol"),
                 tokens=int(meta.get("tokens", 0)))


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    meta = {"doc_id": chunk.doc_id, "source": chunk.source, "index": chunk.index, "char_start": chunk.char_start,
            "char_end": chunk.char_end, "line_start": chunk.line_start, "line_end": chunk.line_end,
            "section": chunk.section, "symbol": chunk.symbol, "tokens": chunk.tokens}
    return {key: value for key, value in meta.items() if value is not None}


# -- opening, listing, dropping ---------------------------------------------------------------
def corpus_exists(app: "Agentlong", name: str) -> bool:
    """True when a corpus of that name is registered (cheap: no store, no model)."""
    try:
        return registry(app).corpus(corpus_key(name)) is not None
    except InputError:
        return False


def list_corpora(app: "Agentlong") -> list[CorpusInfo]:
    reg = registry(app)
    return [info for name in reg.names() if (info := reg.corpus(name)) is not None]


def corpus_info(app: "Agentlong", name: str) -> CorpusInfo:
    """The registry entry of corpus ``name``; InputError naming the known corpora when there is none."""
    info = registry(app).corpus(corpus_key(name))
    if info is None:
        known = registry(app).names()
        offer = f" (known corpora: {', '.join(known)})" if known else " (no corpora yet)"
        raise InputError(f"no corpus named {name}", hint=f"run agentlong index PATH --name {name}{offer}")
    return info


def open_corpus(app: "Agentlong", name: str) -> Corpus:
    """The corpus ``name``; InputError when unknown, StoreError when its embedder or store changed.

    >>> import os, tempfile
    >>> os.environ["AGENTLONG_HOME"] = tempfile.mkdtemp()
    >>> from agentlong import Agentlong
    >>> open_corpus(Agentlong(model="fake"), "nothing-here")
    Traceback (most recent call last):
    ...
    agentlong.errors.InputError: no corpus named nothing-here — run agentlong index PATH --name nothing-here (no corpora yet)
    """
    info = corpus_info(app, name)
    embedder = get_embedder(app.settings)
    if info.embedder != embedder.name:
        raise mismatch_error(info, embedder)
    stored = app.store.count(info.collection)
    if stored != info.chunks:
        raise StoreError(f"corpus {info.name} has {info.chunks} chunks registered but {stored} in {app.store.name}",
                         hint=f"run agentlong index --name {info.name} to repair it (it was indexed into {info.store})")
    return Corpus(app, info, embedder)


def drop_corpus(app: "Agentlong", name: str) -> None:
    """Delete a corpus: its vectors and its registry rows."""
    info = corpus_info(app, name)
    app.store.drop(info.collection)
    registry(app).drop_corpus(info.name)


def search(app: "Agentlong", corpus: str, query: str, *, k: int = 8) -> list[Hit]:
    """Dense search of an indexed corpus: ``k`` hits, best first."""
    return open_corpus(app, corpus).search(query, k)


# -- indexing ---------------------------------------------------------------------------
def index_paths(app: "Agentlong", paths: list[str], *, name: str | None, emit: Emit,
                reindex: bool = False) -> IndexReport:
    """Index files/folders into corpus ``name`` (default: derived from the first path), incrementally.

    A corpus remembers its paths: later runs add new paths to them, and ``paths=[]`` refreshes them all.
    ``reindex=True`` drops the corpus's vectors and embeds everything again (needed after changing embedder).
    """
    from .indexer import Indexer

    started = time.perf_counter()
    reg = registry(app)
    if not paths and not name:
        raise InputError("nothing to index", hint="give one or more files or folders: agentlong index PATH")
    key = corpus_key(name) if name else default_name(paths[0])
    info = reg.corpus(key)
    if info is None and not paths:
        raise InputError(f"no corpus named {key} to refresh", hint=f"run agentlong index PATH --name {key}")
    resolved = _resolve(paths)
    with ProcessLock(app.settings.home / "locks" / f"corpus-{key}.lock", f"indexing corpus {key}",
                     on_wait=lambda line: notice(emit, line, "info")):
        info = reg.corpus(key)  # read again: a process we waited for may have changed it
        report = Indexer(app, reg, key, info, emit, reindex=reindex).run(resolved)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _resolve(paths: list[str]) -> list[str]:
    out: list[str] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise InputError(f"no such file or folder: {raw}", hint="check the path")
        resolved = str(p.resolve())
        if resolved not in out:
            out.append(resolved)
    return out


def notice(emit: Emit, message: str, level: str = "warning") -> None:
    emit(Notice(level=level, message=message))  # type: ignore[arg-type]


def progress(emit: Emit, task: str, done: int, total: int | None, detail: str = "") -> None:
    emit(Progress(task=task, done=done, total=total, detail=detail))


def collection_for(name: str) -> str:
    """The vector-store collection of corpus ``name``."""
    return safe_collection_name(f"agentlong-corpus-{name}")


def new_info(app: "Agentlong", name: str, paths: list[str], embedder: Embedder, chunk_tokens: int) -> CorpusInfo:
    stamp = now_iso()
    return CorpusInfo(name=name, collection=collection_for(name), paths=paths, embedder=embedder.name,
                      dimension=embedder.dimension, chunk_tokens=chunk_tokens, store=app.store.name,
                      created=stamp, updated=stamp)

