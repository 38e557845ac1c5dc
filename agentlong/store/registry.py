"""The corpus registry: SQLite at ``$AGENTLONG_HOME/corpora.sqlite``.

It records each corpus (paths, embedder, chunk size, store) and, per document, its full text,
content hash and chunk spans. The vector store holds the embeddings; a document's rows are written
in one transaction only after its chunks are in the store. A document whose store rows are being
changed is marked *pending* first, so a run killed half-way redoes it instead of trusting it.

>>> import tempfile, pathlib
>>> reg = Registry(pathlib.Path(tempfile.mkdtemp()) / "corpora.sqlite")
>>> reg.names()
[]
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import StoreError
from ..types import Chunk, Document

__all__ = ["Registry", "CorpusInfo", "DocState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corpora (
  name TEXT PRIMARY KEY, collection TEXT NOT NULL, paths TEXT NOT NULL, embedder TEXT NOT NULL,
  dimension INTEGER NOT NULL, chunk_tokens INTEGER NOT NULL, store TEXT NOT NULL,
  created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
  corpus TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL, sha256 TEXT NOT NULL, kind TEXT NOT NULL,
  title TEXT, metadata TEXT NOT NULL, warnings TEXT NOT NULL, text TEXT NOT NULL, position INTEGER NOT NULL,
  chunks INTEGER NOT NULL, indexed_at TEXT NOT NULL, PRIMARY KEY (corpus, id));
CREATE TABLE IF NOT EXISTS chunks (
  corpus TEXT NOT NULL, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, char_start INTEGER NOT NULL,
  char_end INTEGER NOT NULL, line_start INTEGER NOT NULL, line_end INTEGER NOT NULL, section TEXT, symbol TEXT,
  tokens INTEGER NOT NULL, PRIMARY KEY (corpus, doc_id, idx));
CREATE TABLE IF NOT EXISTS pending (corpus TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (corpus, doc_id));
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CorpusInfo(BaseModel):
    """A registered corpus, with its document and chunk counts."""

    name: str
    collection: str
    paths: list[str]
    embedder: str
    dimension: int
    chunk_tokens: int
    store: str = Field(description="the vector store it was indexed into")
    created: str
    updated: str
    documents: int = 0
    chunks: int = 0


class DocState(BaseModel):
    """What the registry knows about one indexed document."""

    id: str
    source: str
    sha256: str
    chunks: int
    pending: bool = False


class Registry:
    """Thin data access over the registry database (one short connection per operation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the corpus registry {path}: {exc}",
                             hint="check that AGENTLONG_HOME is writable and the file is not corrupt") from exc

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(str(self.path), timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        finally:
            conn.close()

    # -- corpora -----------------------------------------------------------------
    def names(self) -> list[str]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT name FROM corpora ORDER BY name")]

    def corpus(self, name: str) -> CorpusInfo | None:
        with self._db() as db:
            row = db.execute("SELECT name, collection, paths, embedder, dimension, chunk_tokens, store, created, "
                             "updated FROM corpora WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            docs, chunks = db.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents WHERE corpus = ?",
                                      (name,)).fetchone()
        keys = ["name", "collection", "paths", "embedder", "dimension", "chunk_tokens", "store", "created", "updated"]
        data = dict(zip(keys, row))
        data["paths"] = json.loads(data["paths"])
        return CorpusInfo(**data, documents=docs, chunks=chunks)

    def save_corpus(self, info: CorpusInfo) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO corpora (name, collection, paths, embedder, dimension, chunk_tokens, store, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET collection = excluded.collection,"
                " paths = excluded.paths, embedder = excluded.embedder, dimension = excluded.dimension,"
                " chunk_tokens = excluded.chunk_tokens, store = excluded.store, updated = excluded.updated",
                (info.name, info.collection, json.dumps(info.paths), info.embedder, info.dimension,
                 info.chunk_tokens, info.store, info.created, info.updated))

    def drop_corpus(self, name: str) -> None:
        with self._db() as db:
            for table, key in (("corpora", "name"), ("documents", "corpus"), ("chunks", "corpus"), ("pending", "corpus")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (name,))

    def clear_documents(self, name: str) -> None:
        with self._db() as db:
            for table in ("documents", "chunks", "pending"):
                db.execute(f"DELETE FROM {table} WHERE corpus = ?", (name,))

    # -- documents -----------------------------------------------------------------
    def doc_states(self, corpus: str) -> dict[str, DocState]:
        with self._db() as db:
            pending = {row[0] for row in db.execute("SELECT doc_id FROM pending WHERE corpus = ?", (corpus,))}
            states = {
                row[0]: DocState(id=row[0], source=row[1], sha256=row[2], chunks=row[3], pending=row[0] in pending)
                for row in db.execute("SELECT id, source, sha256, chunks FROM documents WHERE corpus = ?", (corpus,))
            }
        for doc_id in pending - set(states):  # a new document whose first indexing was cut short
            states[doc_id] = DocState(id=doc_id, source="", sha256="", chunks=0, pending=True)
        return states

    def mark_pending(self, corpus: str, doc_ids: list[str]) -> None:
        with self._db() as db:
            db.executemany("INSERT OR IGNORE INTO pending (corpus, doc_id) VALUES (?, ?)",
                           [(corpus, d) for d in doc_ids])

    def commit_documents(self, corpus: str, docs: list[tuple[Document, list[Chunk], int]]) -> None:
        """Write ``(document, chunks, position)`` rows and clear their pending marks, in one transaction."""
        stamp = now_iso()
        with self._db() as db:
            for doc, chunks, position in docs:
                db.execute("DELETE FROM chunks WHERE corpus = ? AND doc_id = ?", (corpus, doc.id))
                db.execute(
                    "INSERT OR REPLACE INTO documents (corpus, id, source, sha256, kind, title, metadata, warnings,"
                    " text, position, chunks, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (corpus, doc.id, doc.source, doc.sha256, doc.kind, doc.title, json.dumps(doc.metadata, default=str),
                     json.dumps(doc.warnings), doc.text, position, len(chunks), stamp))
                db.executemany(
                    "INSERT INTO chunks (corpus, doc_id, idx, char_start, char_end, line_start, line_end, section,"
                    " symbol, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(corpus, doc.id, c.index, c.char_start, c.char_end, c.line_start, c.line_end, c.section,
                      c.symbol, c.tokens) for c in chunks])
                db.execute("DELETE FROM pending WHERE corpus = ? AND doc_id = ?", (corpus, doc.id))

    def set_positions(self, corpus: str, positions: dict[str, int]) -> None:
        with self._db() as db:
            db.executemany("UPDATE documents SET position = ? WHERE corpus = ? AND id = ?",
                           [(pos, corpus, doc_id) for doc_id, pos in positions.items()])

    def remove_documents(self, corpus: str, doc_ids: list[str]) -> None:
        with self._db() as db:
            for table, key in (("documents", "id"), ("chunks", "doc_id"), ("pending", "doc_id")):
                db.executemany(f"DELETE FROM {table} WHERE corpus = ? AND {key} = ?", [(corpus, d) for d in doc_ids])

    def documents(self, corpus: str) -> list[Document]:
        with self._db() as db:
            rows = db.execute("SELECT id, source, text, sha256, kind, title, warnings, metadata FROM documents"
                              " WHERE corpus = ? ORDER BY position, source", (corpus,)).fetchall()
        return [Document(id=r[0], source=r[1], text=r[2], sha256=r[3], kind=r[4], title=r[5],
                         warnings=json.loads(r[6]), metadata=json.loads(r[7])) for r in rows]

    def chunks(self, corpus: str) -> list[Chunk]:
        """All chunks in document order, their text sliced from the stored document text."""
        with self._db() as db:
            texts = {r[0]: (r[1], r[2]) for r in db.execute(
                "SELECT id, source, text FROM documents WHERE corpus = ?", (corpus,))}
            rows = db.execute(
                "SELECT c.doc_id, c.idx, c.char_start, c.char_end, c.line_start, c.line_end, c.section, c.symbol,"
                " c.tokens FROM chunks c JOIN documents d ON d.corpus = c.corpus AND d.id = c.doc_id"
                " WHERE c.corpus = ? ORDER BY d.position, d.source, c.idx", (corpus,)).fetchall()
        out = []
        for doc_id, idx, start, end, line_start, line_end, section, symbol, tokens in rows:
            source, text = texts[doc_id]
            out.append(Chunk(doc_id=doc_id, source=source, index=idx, text=text[start:end], char_start=start,
                             char_end=end, line_start=line_start, line_end=line_end, section=section,
                             symbol=symbol, tokens=tokens))
        return out
