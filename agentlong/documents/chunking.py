"""Exact-offset chunking sized in the caller's token counter.

A chunk is a contiguous span: ``doc.text[c.char_start:c.char_end] == c.text``; the chunks of a
document are in order, touch each other, and their concatenation is ``doc.text``. Each one has
``count(c.text) <= max_tokens``, checked with the caller's counter on the exact text.

How a cut is chosen (estimate, then verify): from the current start, size a window from a running
chars-per-token ratio, cut at the strongest boundary in the second half of that window — section or
definition start, paragraph, sentence, line, word, and only then a raw character — and count that
exact text. If it is over budget (or the window was clearly too small) the window is resized from
the measured count and the cut chosen again; a bisection is the fallback for odd counters. ``count``
sees one or two chunk-sized strings per chunk, so the work is linear in the document length.

>>> from agentlong.documents import load_text
>>> doc = load_text("One two three. Four five six.\\n\\nSeven eight nine ten.")
>>> [c.text for c in chunk_document(doc, max_tokens=6, count=lambda t: len(t.split()))]
['One two three. Four five six.\\n\\n', 'Seven eight nine ten.']
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

from ..errors import InputError
from ..types import Chunk, Document
from .strength import BLANK_LINE, LINE, PARAGRAPH, SECTION, SENTENCE, WORD

__all__ = ["chunk_document", "split_spans", "Count"]

Count = Callable[[str], int]

MIN_FILL = 0.5  # a cut never leaves a chunk below half of what would fit...
SECTION_FILL = 0.3  # ...except at a section or top-level definition start, which may cut at 30 %
TOLERANCE = 32  # bisect the longest fitting prefix to within 1/32 of its length

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE = re.compile(  # lookbehinds only run at a full stop, so the scan stays fast
    r"[.!?…](?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bvs\.)(?<!\bJr\.)(?<!\bSr\.)"
    r"[\"'”’)\]]*\s+(?=[\"'“‘(\[]*[A-Z0-9À-Ý])|[。！？]+[」』”]?"
)


def chunk_document(doc: Document, max_tokens: int, count: Count) -> list[Chunk]:
    """Split ``doc`` into exact, contiguous chunks of at most ``max_tokens`` tokens each.

    Code documents are cut at definition boundaries (``ast`` for Python, tree-sitter for JS, TS, Go,
    Rust, Java; lines otherwise) and each chunk names its enclosing ``symbol``; prose is cut at
    sections, paragraphs, sentences, then words; a word longer than the budget is cut by characters.

    >>> from agentlong.documents import load_text
    >>> doc = load_text("# A\\n\\nalpha beta\\n\\n# B\\n\\ngamma delta\\n", kind="md")
    >>> [(c.section, c.line_start, c.line_end) for c in chunk_document(doc, 5, lambda t: len(t.split()))]
    [('A', 1, 4), ('B', 5, 7)]
    """
    from .structure import sections

    if doc.kind == "code":
        from .code import code_marks, definitions, symbol_finder

        defs = definitions(doc)
        marks, mode = code_marks(doc, defs), "code"
        symbol_of: Callable[[int, int], str | None] = symbol_finder(doc.text, defs)
    else:
        marks, mode = [], "prose"
        symbol_of = _no_symbol
    secs = sections(doc)
    if mode == "prose":
        marks = [(s.char_start, SECTION) for s in secs if s.char_start > 0]
    spans = split_spans(doc.text, max_tokens, count, marks=marks, mode=mode)
    return _to_chunks(doc, spans, [(s.char_start, s.char_end, s.title) for s in secs], symbol_of)


def _no_symbol(start: int, end: int) -> str | None:
    return None


def split_spans(
    text: str, max_tokens: int, count: Count, *, marks: Sequence[tuple[int, int]] = (), mode: str = "prose"
) -> list[tuple[int, int, int]]:
    """``(start, end, tokens)`` spans covering ``text``; ``marks`` are extra ``(offset, strength)`` cuts.

    >>> split_spans("aa bb cc dd", 2, lambda t: len(t.split()))
    [(0, 6, 2), (6, 11, 2)]
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, got {max_tokens}", hint="use a larger chunk size")
    cutter = _Cutter(text, sorted(marks), mode)
    spans: list[tuple[int, int, int]] = []
    ratio = _calibrate(text, count)
    start = 0
    while start < len(text):
        end, tokens = _next_cut(text, start, max_tokens, count, cutter, ratio)
        spans.append((start, end, tokens))
        if tokens > 0:
            ratio = 0.5 * ratio + 0.5 * min(64.0, max(0.25, (end - start) / tokens))
        start = end
    return spans


def _calibrate(text: str, count: Count) -> float:
    sample = text[:2048]
    if not sample:
        return 4.0
    return min(64.0, max(0.25, len(sample) / max(1, count(sample))))


def _next_cut(text: str, s: int, budget: int, count: Count, cutter: "_Cutter", ratio: float) -> tuple[int, int]:
    """End and token count of the chunk starting at ``s``.

    Size a window from the chars-per-token estimate, cut at its best boundary, count that exact
    text, and resize the window from the measured count when it was clearly too big or too small.
    Usually one or two ``count`` calls; a bisection is the fallback for odd counters.
    """
    n = len(text)
    best: tuple[int, int] | None = None
    floor, ceiling = s, n  # a window end must stay above the best fit found and below a known overflow
    end = s + max(1, int(budget * ratio))
    for _ in range(6):
        end = max(floor + 1, min(ceiling, end))
        low = s + max(1, int((end - s) * MIN_FILL))
        if best is not None:  # a grown window still sees the cut that fitted, so a weaker later one cannot win
            low = min(low, best[0])
        cut = n if end >= n else cutter.best(low, end, strong_from=s + max(1, int((end - s) * SECTION_FILL)))
        tokens = count(text[s:cut])
        if tokens > budget:
            ceiling = min(ceiling, cut - 1)
            end = s + int((cut - s) * budget / tokens * 0.97)
            if ceiling <= floor:
                break
            continue
        if best is None or cut > best[0]:
            best = (cut, tokens)
        if cut == n or tokens * (end - s) >= 0.9 * budget * (cut - s):
            return best  # the window was the right size: keep the boundary it found
        floor = max(floor, cut)
        end = max(end + max(1, (end - s) // 8), s + int((cut - s) * budget / max(tokens, 1) * 0.97))
        if floor >= ceiling:
            break
    if best is not None:
        return best
    fit, fit_tokens = _longest_fit(text, s, budget, count, ratio)
    if fit == n:
        return fit, fit_tokens
    cut = cutter.best(s + max(1, int((fit - s) * MIN_FILL)), fit, strong_from=s + max(1, int((fit - s) * SECTION_FILL)))
    if cut != fit:
        tokens = count(text[s:cut])
        if tokens <= budget:
            return cut, tokens
    return fit, fit_tokens


def _longest_fit(text: str, s: int, budget: int, count: Count, ratio: float) -> tuple[int, int]:
    """A verified end ``lo`` with ``count(text[s:lo]) <= budget``, within ~1/32 of the longest one."""
    n = len(text)
    lo, lo_tokens = s, 0
    hi = n + 1  # first end known to be over budget (n + 1: none known)
    pos = min(n, s + max(1, int(budget * ratio * 0.97)))
    step = max(1, (pos - s) // 16)
    while True:  # gallop from the estimate
        tokens = count(text[s:pos])
        if tokens <= budget:
            lo, lo_tokens = pos, tokens
            if pos == n:
                return lo, lo_tokens
            pos, step = min(n, pos + step), step * 2
        else:
            hi = pos
            break
    while hi - lo > max(1, (lo - s) // TOLERANCE):  # bisect
        mid = (lo + hi) // 2
        tokens = count(text[s:mid])
        if tokens <= budget:
            lo, lo_tokens = mid, tokens
        else:
            hi = mid
    if lo == s:
        raise InputError(
            f"max_tokens={budget} is too small: one character costs {count(text[s:s + 1])} tokens",
            hint="use a larger chunk size",
        )
    return lo, lo_tokens


class _Cutter:
    """Finds the strongest boundary in a window ``[a, b]`` of ``text``; ties go to the latest."""

    def __init__(self, text: str, marks: list[tuple[int, int]], mode: str) -> None:
        self.text = text
        self.offsets = [o for o, _ in marks]
        self.strengths = [st for _, st in marks]
        if mode == "code":
            self.finders = [(BLANK_LINE, self._paragraph), (LINE, self._line), (WORD, self._word)]
        else:
            self.finders = [(PARAGRAPH, self._paragraph), (SENTENCE, self._sentence), (LINE, self._line),
                            (WORD, self._word)]

    def best(self, a: int, b: int, strong_from: int | None = None) -> int:
        pos, strength = b, 0
        lo = a if strong_from is None else min(a, strong_from)
        i, j = bisect.bisect_left(self.offsets, lo), bisect.bisect_right(self.offsets, b)
        for k in range(i, j):
            if self.offsets[k] < a and self.strengths[k] < SECTION:
                continue
            if self.strengths[k] >= strength:
                pos, strength = self.offsets[k], self.strengths[k]
        for level, find in self.finders:
            if level <= strength:
                break
            found = find(a, b)
            if found is not None:
                return found
        return pos if strength else self._char(a, b)

    def _paragraph(self, a: int, b: int) -> int | None:
        last = None
        for m in _PARAGRAPH.finditer(self.text, max(0, a - 2), b):
            if m.end() >= a:
                last = m.end()
        return last

    def _sentence(self, a: int, b: int) -> int | None:
        last = None
        for m in _SENTENCE.finditer(self.text, max(0, a - 4), b):
            if m.end() >= a:
                last = m.end()
        return last

    def _line(self, a: int, b: int) -> int | None:
        p = self.text.rfind("\n", a - 1, b)
        return p + 1 if p >= 0 else None

    def _word(self, a: int, b: int) -> int | None:
        t = self.text
        p = max(t.rfind(" ", a - 1, b), t.rfind("\t", a - 1, b), t.rfind("\n", a - 1, b))
        return p + 1 if p >= 0 else None

    def _char(self, a: int, b: int) -> int:
        # do not split a "\r\n" pair, or a combining mark or zero-width joiner from what it joins
        t = self.text
        while b > a and (t[b - 1 : b + 1] == "\r\n" or (b < len(t) and _is_combining(t[b]))):
            b -= 1
        return b


def _is_combining(ch: str) -> bool:
    return "\u0300" <= ch <= "\u036f" or "\ufe20" <= ch <= "\ufe2f" or ch == "\u200d"


def _to_chunks(
    doc: Document,
    spans: list[tuple[int, int, int]],
    secs: list[tuple[int, int, str]],
    symbol_of: Callable[[int, int], str | None],
) -> list[Chunk]:
    text = doc.text
    starts = [s for s, _, _ in secs]
    chunks: list[Chunk] = []
    line, prev = 1, 0
    for index, (a, b, tokens) in enumerate(spans):
        line += text.count("\n", prev, a)
        prev = a
        chunks.append(Chunk(
            doc_id=doc.id, source=doc.source, index=index, text=text[a:b], char_start=a, char_end=b,
            line_start=line, line_end=line + text.count("\n", a, b - 1), tokens=tokens,
            section=_section_at(secs, starts, a), symbol=symbol_of(a, b),
        ))
    return chunks


def _section_at(secs: list[tuple[int, int, str]], starts: list[int], offset: int) -> str | None:
    """Title of the innermost section that contains ``offset``."""
    last = bisect.bisect_right(starts, offset) - 1
    for i in range(last, max(-1, last - 16), -1):  # sections nest; a few steps back find the container
        start, end, title = secs[i]
        if start <= offset < end:
            return title
    return None
