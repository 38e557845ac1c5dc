"""Check that a quote really is in the source, and snap it to the exact span.

Exact first, then whitespace/case-insensitive, then a tight fuzzy match (rapidfuzz).

>>> locate("quick  brown Fox", "The quick brown fox jumps.")
(4, 19, 'exact')
>>> locate("a purple elephant", "The quick brown fox jumps.") is None
True
"""

from __future__ import annotations

import re

__all__ = ["locate", "line_of"]

MIN_QUOTE_CHARS = 8


def _flexible_pattern(quote: str) -> re.Pattern[str] | None:
    words = re.findall(r"\w+|[^\w\s]", quote)
    if not words:
        return None
    return re.compile(r"\W*".join(re.escape(w) for w in words), re.IGNORECASE)


def locate(quote: str, text: str, *, fuzzy_threshold: float = 92.0) -> tuple[int, int, str] | None:
    """(start, end, 'exact'|'fuzzy') of ``quote`` in ``text``, or None when it is not there."""
    q = quote.strip().strip('"“”\'').strip()
    if len(q) < MIN_QUOTE_CHARS:
        return None
    i = text.find(q)
    if i >= 0:
        return i, i + len(q), "exact"
    pattern = _flexible_pattern(q)
    if pattern is not None:
        m = pattern.search(text)
        if m:
            return m.start(), m.end(), "exact"
    return _fuzzy(q, text, fuzzy_threshold)


def _fuzzy(q: str, text: str, threshold: float) -> tuple[int, int, str] | None:
    try:
        from rapidfuzz import fuzz
    except ImportError:  # pragma: no cover - rapidfuzz is a core dependency
        return None
    if len(q) > 2000 or len(q) > len(text):
        return None
    hit = fuzz.partial_ratio_alignment(q, text, score_cutoff=threshold)
    if hit is None:
        return None
    start, end = hit.dest_start, hit.dest_end
    # snap to word boundaries of the real text
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    if end - start < 0.8 * len(q):
        return None
    return start, end, "fuzzy"


def line_of(text: str, offset: int) -> int:
    """1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1
