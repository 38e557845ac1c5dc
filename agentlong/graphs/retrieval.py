"""Hybrid retrieval: dense search (the corpus's embeddings in Chroma) + lexical BM25 (``bm25s``),
fused with reciprocal rank fusion, returned in document order and merged into passages.

Anything with ``name``, ``chunks()`` and ``search(query, k)`` (hits with ``.chunk`` and ``.score``)
is a source: an indexed :class:`agentlong.store.corpus.Corpus`, or an :class:`InMemorySource` over
chunks you made yourself (lexical only unless you give it a dense search function).

>>> from agentlong.types import Chunk
>>> def chunk(i, text, start):
...     return Chunk(doc_id="d", source="a.txt", index=i, text=text, char_start=start,
...                  char_end=start + len(text), line_start=i + 1, line_end=i + 1)
>>> src = InMemorySource([chunk(0, "Cats purr.\\n", 0), chunk(1, "Dogs bark at the mailman.\\n", 11),
...                       chunk(2, "Fish swim.\\n", 37)])
>>> hits = HybridSearch(src).search(["who barks at the mailman"], k=2)
>>> [c.index for c, _ in hits]
[1]
>>> rrf([["a", "b"], ["b", "c"]])[0][0]
'b'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ..types import Chunk, Document

__all__ = ["Source", "InMemorySource", "HybridSearch", "rrf", "merge_passages"]

RRF_K = 60


class Source(Protocol):
    """What retrieval needs from a corpus."""

    name: str

    def chunks(self) -> list[Chunk]: ...

    def search(self, query: str, k: int) -> list[Any]: ...


class InMemorySource:
    """A source over chunks held in memory; ``dense(query, k) -> [(chunk, score)]`` is optional."""

    def __init__(self, chunks: Sequence[Chunk], *, name: str = "memory", documents: Sequence[Document] = (),
                 dense: Callable[[str, int], list[tuple[Chunk, float]]] | None = None) -> None:
        self.name = name
        self._chunks = list(chunks)
        self._documents = list(documents)
        self._dense = dense

    def chunks(self) -> list[Chunk]:
        return list(self._chunks)

    def documents(self) -> list[Document]:
        return list(self._documents)

    def search(self, query: str, k: int) -> list[Any]:
        if self._dense is None:
            return []
        return [_Hit(chunk, score) for chunk, score in self._dense(query, k)]


class _Hit:
    def __init__(self, chunk: Chunk, score: float) -> None:
        self.chunk, self.score = chunk, score


def rrf(rankings: Iterable[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ``score(id) = sum(1 / (k + rank))`` over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridSearch:
    """Dense + BM25 over one source, fused with RRF. Build once per source and reuse it."""

    def __init__(self, source: Source, *, dense: bool = True, lexical: bool = True) -> None:
        self.source = source
        self.use_dense = dense
        self.use_lexical = lexical
        self.chunks = source.chunks()
        self.by_id = {c.id: c for c in self.chunks}
        self.order = {c.id: i for i, c in enumerate(self.chunks)}  # the source lists chunks in doc order
        self._bm25: Any = None

    def _lexical_index(self) -> Any:
        if self._bm25 is None:
            import bm25s

            tokens = bm25s.tokenize([c.text for c in self.chunks], stopwords="en", show_progress=False)
            index = bm25s.BM25()
            index.index(tokens, show_progress=False)
            self._bm25 = index
        return self._bm25

    def lexical(self, query: str, depth: int) -> list[str]:
        """Chunk ids ranked by BM25 (only chunks sharing a term with the query)."""
        if not self.chunks:
            return []
        import bm25s

        terms = bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)
        if not terms or not terms[0]:
            return []
        ids, scores = self._lexical_index().retrieve(terms, k=min(depth, len(self.chunks)), show_progress=False)
        return [self.chunks[int(i)].id for i, s in zip(ids[0], scores[0]) if s > 0]

    def dense(self, query: str, depth: int) -> list[str]:
        """Chunk ids ranked by the source's embedding search."""
        ranked = []
        for hit in self.source.search(query, depth):
            cid = hit.chunk.id
            if cid not in self.by_id:  # the store returned a chunk we do not list: keep it anyway
                self.by_id[cid] = hit.chunk
                self.order[cid] = len(self.order)
            ranked.append(cid)
        return ranked

    def search(self, queries: Sequence[str], k: int, *, exclude: Iterable[str] = ()) -> list[tuple[Chunk, float]]:
        """Top ``k`` chunks for ``queries`` by fused rank, returned in document order."""
        depth = max(3 * k, 20)
        rankings: list[list[str]] = []
        for query in queries:
            if self.use_dense:
                rankings.append(self.dense(query, depth))
            if self.use_lexical:
                rankings.append(self.lexical(query, depth))
        skip = set(exclude)
        fused = [(cid, s) for cid, s in rrf(rankings) if cid not in skip][:k]
        fused = self._fill_gaps(fused, skip, limit=max(1, k // 4))
        fused.sort(key=lambda item: self.order[item[0]])
        return [(self.by_id[cid], round(score, 6)) for cid, score in fused]

    def _fill_gaps(self, fused: list[tuple[str, float]], skip: set[str], limit: int) -> list[tuple[str, float]]:
        """Add the one chunk between two hits of the same document (the passage is then whole: a
        function's ``def`` line between two halves of its docstring, a sentence cut by chunking);
        at most ``limit`` chunks, best-ranked hits first."""
        chosen = {cid: s for cid, s in fused}
        for cid, score in list(fused):
            if len(chosen) >= len(fused) + limit:
                break
            i = self.order[cid]
            if i + 2 >= len(self.chunks) or self.chunks[i].id != cid:
                continue
            middle, after = self.chunks[i + 1], self.chunks[i + 2]
            if (after.id in chosen and middle.id not in chosen and middle.id not in skip
                    and middle.doc_id == self.chunks[i].doc_id == after.doc_id):
                chosen[middle.id] = min(score, chosen[after.id])
        return list(chosen.items())


def merge_passages(hits: Sequence[tuple[Chunk, float]]) -> list[dict[str, Any]]:
    """Merge hits (in document order) whose chunks touch into passages with exact offsets."""
    passages: list[dict[str, Any]] = []
    for chunk, score in hits:
        last = passages[-1] if passages else None
        if last and last["doc_id"] == chunk.doc_id and last["char_end"] == chunk.char_start:
            last.update(text=last["text"] + chunk.text, char_end=chunk.char_end, line_end=chunk.line_end,
                        score=max(last["score"], score))
            last["chunks"].append(chunk.index)
            continue
        passages.append({
            "doc_id": chunk.doc_id, "source": chunk.source, "text": chunk.text, "char_start": chunk.char_start,
            "char_end": chunk.char_end, "line_start": chunk.line_start, "line_end": chunk.line_end,
            "section": chunk.section, "chunks": [chunk.index], "score": score,
        })
    return passages
