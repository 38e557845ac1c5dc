"""One incremental indexing run (used by :func:`agentlong.store.corpus.index_paths`).

Order of work, so that nothing is half-written: load every path (bad files become skips), compare
content hashes with the registry, remove what disappeared, then for each group of changed documents:
mark them pending → delete their old chunks → embed → upsert → commit their registry rows (one
transaction, which also clears the pending mark). A run killed anywhere leaves documents that are
either fully indexed or marked pending and redone next time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, debug_traceback
from ..estimate import embed_rate, go_ahead, record_embed_rate
from ..events import Emit
from ..types import Chunk, Document
from .corpus import (GROUP_CHUNKS, IndexReport, Skip, chunk_metadata, collection_for, mismatch_error, new_info,
                     notice, progress)
from .embeddings import get_embedder
from .base import StoreHit
from .registry import CorpusInfo, DocState, Registry, now_iso

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["Indexer"]

_DELETE_SLICE = 200  # doc ids per "$in" filter


class Indexer:
    """State of one ``index_paths`` run."""

    def __init__(self, app: "Agentlong", reg: Registry, name: str, info: CorpusInfo | None, emit: Emit,
                 *, reindex: bool = False) -> None:
        self.app, self.reg, self.name, self.info, self.emit, self.reindex = app, reg, name, info, emit, reindex
        self.store = app.store
        self.embedder = get_embedder(app.settings)
        self.chunk_tokens = min(app.settings.chunking.index_chunk_tokens, self.embedder.max_tokens)
        self.report = IndexReport(corpus=name, embedder=self.embedder.name)
        self.old_chunk_tokens = self.chunk_tokens
        self.embedded = 0
        self.to_embed = 0
        self.files_done = self.files_total = 0

    # -- the run -----------------------------------------------------------------------
    def run(self, paths: list[str]) -> IndexReport:
        if self.info is not None and self.info.embedder != self.embedder.name and not self.reindex:
            raise mismatch_error(self.info, self.embedder)
        all_paths = list(self.info.paths) if self.info else []
        all_paths += [p for p in paths if p not in all_paths]
        docs = self._load(all_paths)
        if not docs and self.info is None:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in self.report.skipped[:3]) or "no loadable files found"
            raise InputError(f"nothing to index in {' '.join(paths)} ({reasons})",
                             hint="give files with text: txt, md, rst, html, pdf, epub or source code")
        info = self._prepare(all_paths)
        states = self.reg.doc_states(self.name)
        if states and self._store_lost(info, states):
            self.store.drop(info.collection)
            self.reg.clear_documents(self.name)
            states = {}
        self._remove([s for doc_id, s in states.items() if doc_id not in docs])
        positions = {doc_id: i for i, doc_id in enumerate(docs)}
        changed = [d for d in docs.values() if self._changed(d, states.get(d.id))]
        changed_ids = {d.id for d in changed}
        self.report.unchanged = [d.source for d in docs.values() if d.id not in changed_ids]
        self.files_total = len(docs)
        self.files_done = len(self.report.unchanged)
        progress(self.emit, "files", self.files_done, self.files_total)
        work = self._chunk_all(changed)
        self._plan(work)
        self._embed_all(work, states, positions)
        record_embed_rate(self.app.settings, self.embedder.name, self.embedded, self.report.embed_seconds, self.emit)
        self.reg.set_positions(self.name, {i: positions[i] for i in docs if i not in changed_ids})
        self.reg.save_corpus(info.model_copy(update={"chunk_tokens": self.chunk_tokens, "updated": now_iso()}))
        final = self.reg.corpus(self.name)
        self.report.total_documents = final.documents if final else 0
        self.report.total_chunks = final.chunks if final else 0
        return self.report

    def _load(self, paths: list[str]) -> dict[str, Document]:
        from ..documents import load_path

        docs: dict[str, Document] = {}
        for i, path in enumerate(paths):
            progress(self.emit, "loading", i, len(paths), Path(path).name)
            if not Path(path).exists():
                notice(self.emit, f"{path} no longer exists: its documents leave corpus {self.name}")
                continue
            try:
                result = load_path(path, self.app.settings)
            except InputError as exc:
                self._skip(path, exc.one_line())
                continue
            for skipped in result.skipped:
                self._skip(str(skipped.path), skipped.reason)
            for line in result.warnings():
                notice(self.emit, line)
            for doc in result.documents:
                docs.setdefault(doc.id, doc)
        progress(self.emit, "loading", len(paths), len(paths))
        return docs

    def _skip(self, path: str, reason: str) -> None:
        self.report.skipped.append(Skip(path=path, reason=reason))
        notice(self.emit, f"skipped {path}: {reason}")

    def _prepare(self, paths: list[str]) -> CorpusInfo:
        """Create or update the corpus row; on ``reindex`` start from scratch.

        The row keeps the previous chunk size until the run ends, so a killed run that changed it
        still re-chunks the remaining documents next time.
        """
        info = new_info(self.app, self.name, paths, self.embedder, self.chunk_tokens)
        if self.info is not None and self.reindex:
            self.store.drop(self.info.collection)
            self.reg.clear_documents(self.name)
            info = info.model_copy(update={"created": self.info.created})
        elif self.info is not None:
            self.old_chunk_tokens = self.info.chunk_tokens
            if self.old_chunk_tokens != self.chunk_tokens:
                notice(self.emit, f"index chunk size changed ({self.old_chunk_tokens} → {self.chunk_tokens} tokens): "
                                  f"re-chunking every document of {self.name}", "info")
            info = info.model_copy(update={"created": self.info.created, "chunk_tokens": self.old_chunk_tokens})
        self.reg.save_corpus(info)
        return info

    def _store_lost(self, info: CorpusInfo, states: dict[str, DocState]) -> bool:
        """True when the store no longer holds what the registry says (wiped, or another store)."""
        if any(s.pending for s in states.values()):
            return False  # pending documents are redone anyway; counts are not comparable mid-run
        expected = sum(s.chunks for s in states.values())
        stored = self.store.count(info.collection)
        if stored == expected:
            return False
        notice(self.emit, f"{self.store.name} holds {stored} chunks of corpus {self.name}, the registry {expected}: "
                          "re-embedding all its documents")
        return True

    def _changed(self, doc: Document, state: DocState | None) -> bool:
        return (state is None or state.pending or state.sha256 != doc.sha256
                or self.old_chunk_tokens != self.chunk_tokens)

    def _remove(self, gone: list[DocState]) -> None:
        if not gone:
            return
        ids = [s.id for s in gone]
        self.reg.mark_pending(self.name, ids)
        self._delete_chunks(ids)
        self.reg.remove_documents(self.name, ids)
        self.report.removed = [s.source or s.id for s in gone]

    def _delete_chunks(self, doc_ids: list[str]) -> None:
        collection = self._collection()
        for start in range(0, len(doc_ids), _DELETE_SLICE):
            self.store.delete(collection, where={"doc_id": {"$in": doc_ids[start:start + _DELETE_SLICE]}})

    def _stored(self, doc_ids: list[str]) -> dict[str, StoreHit]:
        """What the store holds for these documents, by chunk id."""
        out: dict[str, StoreHit] = {}
        for start in range(0, len(doc_ids), _DELETE_SLICE):
            out.update((hit.id, hit) for hit in self.store.get(
                self._collection(), where={"doc_id": {"$in": doc_ids[start:start + _DELETE_SLICE]}}))
        return out

    def _collection(self) -> str:
        return collection_for(self.name)

    # -- chunk, embed, store ---------------------------------------------------------------
    def _chunk_all(self, docs: list[Document]) -> list[tuple[Document, list[Chunk]]]:
        from ..documents import chunk_document

        out: list[tuple[Document, list[Chunk]]] = []
        made = 0
        for doc in docs:
            try:
                chunks = chunk_document(doc, self.chunk_tokens, self.embedder.count_tokens)
            except Exception as exc:  # one odd file must not stop the others; say why it was left out
                debug_traceback()
                self._skip(doc.source, f"could not chunk: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
                continue
            if not chunks:
                self._skip(doc.source, "no text to index")
                continue
            out.append((doc, chunks))
            made += len(chunks)
            progress(self.emit, "chunks", made, None, Path(doc.source).name)
        progress(self.emit, "chunks", made, made)
        self.to_embed = made
        return out

    def _plan(self, work: list[tuple[Document, list[Chunk]]]) -> None:
        if not self.to_embed:
            return
        rate = embed_rate(self.app.settings, self.embedder.name)
        files = f"{len(work):,} file" + ("s" if len(work) != 1 else "")
        go_ahead(self.app.settings, self.emit,
                 f"embed {self.to_embed:,} chunks of {files} into corpus {self.name} ({rate:.3g} chunks/s, local: $0)",
                 self.to_embed / rate / 60, self.app.confirm)

    def _embed_all(self, work: list[tuple[Document, list[Chunk]]], states: dict[str, DocState],
                   positions: dict[str, int]) -> None:
        progress(self.emit, "embeddings", 0, self.to_embed)
        if work:
            _ = self.embedder.model  # load it first (seconds, once per process) so embed_seconds is embedding only
        group: list[tuple[Document, list[Chunk]]] = []
        size = 0
        for doc, chunks in work:
            group.append((doc, chunks))
            size += len(chunks)
            if size >= GROUP_CHUNKS:
                self._flush(group, states, positions)
                group, size = [], 0
        if group:
            self._flush(group, states, positions)

    def _flush(self, group: list[tuple[Document, list[Chunk]]], states: dict[str, DocState],
               positions: dict[str, int]) -> None:
        """Embed and store one group, slice by slice (a kill keeps every stored slice), then commit it.

        A chunk already stored with the same text and metadata (a run cut short, or the unchanged
        part of an edited file) keeps its vector; every other stored chunk of these documents goes.
        """
        collection = self._collection()
        self.reg.mark_pending(self.name, [doc.id for doc, _ in group])
        chunks = [c for _, cs in group for c in cs]
        stored = self._stored([doc.id for doc, _ in group if doc.id in states])
        keep = {c.id for c in chunks if (hit := stored.get(c.id)) is not None
                and hit.text == c.text and hit.metadata == chunk_metadata(c)}
        stale = [i for i in stored if i not in keep]
        for start in range(0, len(stale), _DELETE_SLICE):
            self.store.delete(collection, ids=stale[start:start + _DELETE_SLICE])
        if keep:
            self.report.reused += len(keep)
            notice(self.emit, f"kept {len(keep):,} chunks embedded by an earlier run", "info")
        todo = [c for c in chunks if c.id not in keep]
        for start in range(0, len(todo), GROUP_CHUNKS):
            part = todo[start:start + GROUP_CHUNKS]
            texts = [c.text for c in part]
            base = self.embedded + self.report.reused
            started = time.perf_counter()
            vectors = self.embedder.embed(
                texts, on_batch=lambda done, _total: progress(self.emit, "embeddings", base + done, self.to_embed))
            self.report.embed_seconds = round(self.report.embed_seconds + time.perf_counter() - started, 3)
            self.embedded += len(part)
            self.store.upsert(collection, [c.id for c in part], vectors, texts, [chunk_metadata(c) for c in part])
        progress(self.emit, "embeddings", self.embedded + self.report.reused, self.to_embed)
        self.reg.commit_documents(self.name, [(doc, cs, positions[doc.id]) for doc, cs in group])
        self.report.indexed += [doc.source for doc, _ in group]
        self.report.chunks += len(chunks)
        self.files_done += len(group)
        progress(self.emit, "files", self.files_done, self.files_total, Path(group[-1][0].source).name)
