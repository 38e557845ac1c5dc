"""Numbered units with exact spans: the things a model selects instead of copying.

A chunk's text is cut into units — sentences for prose, lines for code — each with its exact
character span in the document and its line numbers. A unit never crosses its chunk, so what a
model sees in one call is always whole units. The model answers with unit ids; code maps the ids
back to spans, so every citation is verbatim by construction.

>>> from agentlong.types import Chunk
>>> text = "Intro line.\\nThe key is under the mat. Mr. Bell hid it.\\n\\nNext part."
>>> chunk = Chunk(doc_id="d", source="a.txt", index=0, text=text, char_start=100, char_end=100 + len(text),
...               line_start=5, line_end=8)
>>> [(u.text, u.line_start) for u in split_units(chunk)]
[('Intro line.', 5), ('The key is under the mat.', 6), ('Mr. Bell hid it.', 6), ('Next part.', 8)]
>>> u = split_units(chunk)[1]
>>> (u.char_start, u.char_end, u.evidence().where())
(112, 137, 'a.txt:6')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import PurePath

from pydantic import BaseModel

from ..types import Chunk, Evidence

__all__ = ["Unit", "split_units", "units_of", "is_code", "MAX_UNIT_CHARS"]

MAX_UNIT_CHARS = 400  # a longer sentence is cut at line breaks (then hard) so one unit stays quotable
_ABBREV = r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bNo)(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)(?<!\b[A-Z])"
_SENTENCE_END = re.compile(_ABBREV + r"[.!?…][\"'”’)\]]*(?=\s)|\n[ \t]*\n")


class Unit(BaseModel):
    """One sentence (prose) or line (code) of a chunk, at its exact span of the document."""

    doc_id: str
    source: str
    chunk_index: int
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    text: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.doc_id, self.char_start)

    def evidence(self) -> Evidence:
        return Evidence(quote=self.text, doc_id=self.doc_id, source=self.source, char_start=self.char_start,
                        char_end=self.char_end, line_start=self.line_start, line_end=self.line_end,
                        chunk_index=self.chunk_index, match="exact", score=1.0)


def is_code(chunk: Chunk) -> bool:
    """Code is cut into lines: a chunk of a known source-code file, or one with a symbol."""
    from ..documents.loaders import CODE_NAMES, LANGUAGES

    path = PurePath(chunk.source)
    return chunk.symbol is not None or path.suffix.lower() in LANGUAGES or path.name in CODE_NAMES


def _line_spans(text: str) -> Iterable[tuple[int, int]]:
    pos = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            start = pos + line.index(stripped)
            yield start, start + len(stripped)
        pos += len(line) + 1


def _sentence_spans(text: str) -> Iterable[tuple[int, int]]:
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    for a, b in zip(cuts, cuts[1:]):
        piece = text[a:b]
        if piece.strip():
            start = a + len(piece) - len(piece.lstrip())
            yield from _cap(text, start, a + len(piece.rstrip()))


def _cap(text: str, start: int, end: int) -> Iterable[tuple[int, int]]:
    """Cut a span longer than MAX_UNIT_CHARS at its last line break (else space) before the cap."""
    while end - start > MAX_UNIT_CHARS:
        window = text[start:start + MAX_UNIT_CHARS]
        cut = max(window.rfind("\n"), window.rfind(" "))
        cut = cut if cut > MAX_UNIT_CHARS // 3 else MAX_UNIT_CHARS
        piece_end = start + len(text[start:start + cut].rstrip())
        yield start, piece_end
        start += cut
        start += len(text[start:end]) - len(text[start:end].lstrip())
    if end > start:
        yield start, end


def split_units(chunk: Chunk, *, code: bool | None = None) -> list[Unit]:
    """The chunk's units in reading order (``code`` None: decided by :func:`is_code`)."""
    text = chunk.text
    spans = _line_spans(text) if (is_code(chunk) if code is None else code) else _sentence_spans(text)
    units = []
    for s, e in spans:
        line = chunk.line_start + text.count("\n", 0, s)
        units.append(Unit(doc_id=chunk.doc_id, source=chunk.source, chunk_index=chunk.index,
                          char_start=chunk.char_start + s, char_end=chunk.char_start + e, line_start=line,
                          line_end=line + text.count("\n", s, e), text=text[s:e]))
    return units


def units_of(chunks: Sequence[Chunk]) -> list[Unit]:
    """Units of several chunks, in order."""
    return [u for c in chunks for u in split_units(c)]
