"""LongBench-Write's length counter and length score (THUDM/LongWriter ``evaluation/``).

A "word" is one CJK character in ``[\\u4e00-\\u9fff]`` or one English word ``\\b[a-zA-Z]+\\b``;
digits and punctuation do not count. ``length_score`` is the benchmark's S_l for one response.

>>> count_words("Hello, world! 你好")
4
>>> length_score(10000, 5000), round(length_score(10000, 20000), 1)
(50.0, 66.7)
>>> within(430, 500), within(420, 500)
(True, False)
"""

from __future__ import annotations

import math
import re

__all__ = ["count_words", "length_score", "within", "bounds", "has_cjk", "trim_to", "TOLERANCE"]

TOLERANCE = 0.15  # a section within ±15% of its budget is on target
_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"\b[a-zA-Z]+\b")
_UNIT = re.compile(r"[\u4e00-\u9fff]|\b[a-zA-Z]+\b")
_SENT_END = re.compile(r"[.!?。！？][\"”’')\]]*(?=\s|$)")


def count_words(text: str) -> int:
    """CJK characters plus English words, exactly as LongBench-Write's ``count_words``."""
    return len(_CJK.findall(text)) + len(_WORD.findall(text))


def length_score(required: int, produced: int) -> float:
    """S_l for one response: 100 at the target; overshoot is penalised more gently than undershoot.

    An empty response (``produced == 0``) scores 0 (the reference code would divide by zero).
    """
    if required <= 0:
        raise ValueError("required length must be positive")
    if produced <= 0:
        return 0.0
    x, y = float(required), float(produced)
    if y > x:
        return 100.0 * max(0.0, 1.0 - (y / x - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (x / y - 1.0) / 2.0)


def bounds(budget: int, tolerance: float = TOLERANCE) -> tuple[int, int]:
    """The smallest and largest whole lengths within ``±tolerance`` of ``budget`` (100 -> 85, 115)."""
    return math.ceil(round(budget * (1 - tolerance), 6)), math.floor(round(budget * (1 + tolerance), 6))


def within(words: int, budget: int, tolerance: float = TOLERANCE) -> bool:
    """True when ``words`` lies within ``±tolerance`` of ``budget`` (bounds inclusive)."""
    lo, hi = bounds(budget, tolerance)
    return lo <= words <= hi


def has_cjk(text: str) -> bool:
    """True when ``text`` has CJK characters (the unit is then characters, not words)."""
    return _CJK.search(text) is not None


def trim_to(text: str, max_words: int, min_words: int = 0) -> str:
    """Longest prefix within ``max_words``, cut at a paragraph end, else a sentence end, else a word."""
    if count_words(text) <= max_words:
        return text
    cuts = [m.start() for m in re.finditer(r"\n\s*\n", text)]
    para = max((c for c in cuts if count_words(text[:c]) <= max_words), default=0)
    if para and count_words(text[:para]) >= min_words:
        return text[:para].rstrip()
    sent = max((m.end() for m in _SENT_END.finditer(text) if count_words(text[: m.end()]) <= max_words), default=0)
    if sent:
        return text[:sent].rstrip()
    units = list(_UNIT.finditer(text))
    return text[: units[max_words - 1].end()].rstrip() + "." if max_words > 0 and units else ""
