"""Writing from sources: passages per section (files via BM25, or an indexed corpus) and citations.

Passages get global numbers the first time a section is shown them; the model cites them as
``[n]``; ``attribute`` drops markers to passages the section never saw and adds a marker to an
uncited sentence whose content words come mostly from one shown passage.

>>> shown = {1: "The Nile is about 6,650 km long and flows north into the Mediterranean."}
>>> attribute("The Nile flows north into the Mediterranean sea. It is old [7].", shown)
('The Nile flows north into the Mediterranean sea [1]. It is old.', [1])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..types import Chunk, Citation, Evidence
from .writer_text import BM25

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong
    from ..llm import LLM

__all__ = ["Sources", "attribute", "citation_for", "SOURCE_CHUNK_TOKENS"]

SOURCE_CHUNK_TOKENS = 160  # passage size: four of them fit the default source budget
_MARK = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")
_STOP = frozenset("this that with from have were which their there about would could should these those them they been "
                  "into also such than then when what where will your more most some very over only other".split())


class Sources:
    """Source passages for one run: BM25 over chunks of loaded files, and/or indexed corpora."""

    def __init__(self, chunks: list[Chunk], corpora: list[Any] | None = None) -> None:
        self.chunks = chunks
        self.corpora = list(corpora or [])
        self._bm25 = BM25([c.text for c in chunks]) if chunks else None

    @classmethod
    def open(cls, app: "Agentlong", llm: "LLM", sources: list[str]) -> "Sources":
        """Load every source now (before any model call), so a bad path fails fast."""
        chunks: list[Chunk] = []
        corpora: list[Any] = []
        for item in sources:
            if Path(item).expanduser().exists():
                chunks.extend(_load_chunks(app, llm, Path(item).expanduser()))
            else:
                corpora.append(_open_corpus(app, item))
        return cls(chunks, corpora)

    def retrieve(self, query: str, k: int) -> list[Chunk]:
        """Up to ``k`` passages for ``query``: BM25 hits first, then corpus hits, in rank order, no repeats."""
        if k <= 0:
            return []
        found: list[Chunk] = [self.chunks[i] for i in self._bm25.top(query, k)] if self._bm25 else []
        for corpus in self.corpora:
            found.extend(hit.chunk for hit in corpus.search(query, k))
        seen: set[str] = set()
        unique = [c for c in found if not (c.id in seen or seen.add(c.id))]
        return unique[:k]


def _load_chunks(app: "Agentlong", llm: "LLM", path: Path) -> list[Chunk]:
    from ..documents import chunk_document, load_path

    loaded = load_path(path, app.settings)
    if not loaded.documents:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped[:3])
        raise InputError(f"source {path} has no readable documents" + (f" ({reasons})" if reasons else ""),
                         hint="give text, Markdown, HTML, PDF, EPUB or code files")
    out: list[Chunk] = []
    for doc in loaded.documents:
        out.extend(chunk_document(doc, SOURCE_CHUNK_TOKENS, llm.tokens))
    return [c for c in out if c.text.strip()]


def _open_corpus(app: "Agentlong", name: str) -> Any:
    try:
        from ..store.corpus import corpus_exists, open_corpus
    except ImportError:  # pragma: no cover - the store is part of the package
        corpus_exists = None
    if corpus_exists is None or not corpus_exists(app, name):
        raise InputError(f"source {name!r} is neither a file, a folder nor an indexed corpus",
                         hint="give an existing path, or index it first: agentlong index PATH --name NAME")
    return open_corpus(app, name)


def _content(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOP} | set(re.findall(r"[\u4e00-\u9fff]", text))


def attribute(text: str, shown: dict[int, str], *, min_overlap: float = 0.6, min_terms: int = 4) -> tuple[str, list[int]]:
    """Keep valid ``[n]`` markers, add one to uncited sentences drawn from a shown passage; (text, cited)."""
    def keep_valid(m: re.Match) -> str:
        ns = [n for n in (int(x) for x in re.split(r"\s*,\s*", m.group(1))) if n in shown]
        return f" [{', '.join(map(str, ns))}]" if ns else ""

    text = _MARK.sub(keep_valid, text)
    terms = {n: _content(p) for n, p in shown.items()}

    def add_marker(m: re.Match) -> str:
        sentence, end = m.group(1), m.group(2)
        words = _content(sentence)
        if _MARK.search(sentence) or len(words) < min_terms or not terms:
            return m.group(0)
        n, share = max(((n, len(words & t) / len(words)) for n, t in terms.items()), key=lambda x: x[1])
        return f"{sentence} [{n}]{end}" if share >= min_overlap else m.group(0)

    text = re.sub(r"([^.!?。！？\n]+?)([.!?。！？])(?=\s|$)", add_marker, text)
    cited = sorted({int(x) for m in _MARK.finditer(text) for x in re.split(r"\s*,\s*", m.group(1))})
    return text, cited


def citation_for(n: int, chunk: dict[str, Any]) -> Citation:
    """A Citation for passage ``n`` (a Chunk stored as a dict in graph state)."""
    c = Chunk.model_validate(chunk)
    return Citation(n=n, evidence=Evidence(quote=c.text, doc_id=c.doc_id, source=c.source, char_start=c.char_start,
                                           char_end=c.char_end, line_start=c.line_start, line_end=c.line_end,
                                           chunk_index=c.index))
