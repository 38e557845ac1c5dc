"""Budget-aware packing as pure functions (aider repomap style).

>>> fit(["aaaa", "bb", "cccccc"], budget=6, count=len)
['aaaa', 'bb']
>>> prompt_budget(window=4096, fixed=300, reserve=512)
3079
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from .errors import ContextWindowExceeded

__all__ = ["fit", "prompt_budget", "truncate_to_tokens", "SAFETY"]

T = TypeVar("T")
SAFETY = 0.95  # token counts of templated prompts vary slightly after chat templating


def fit(items: Iterable[T], budget: int, count: Callable[[T], int]) -> list[T]:
    """Longest prefix of ``items`` whose summed ``count`` stays within ``budget``."""
    kept: list[T] = []
    used = 0
    for item in items:
        cost = count(item)
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def prompt_budget(window: int, fixed: int, reserve: int, safety: float = SAFETY) -> int:
    """Tokens left for document text: window minus instructions, notes and output reserve."""
    left = int(window * safety) - fixed - reserve
    if left < 64:
        raise ContextWindowExceeded(
            f"only {left} tokens left for text in a {window}-token window "
            f"({fixed} for instructions/notes, {reserve} for the answer)",
            hint="use a model or n_ctx with a larger context window, or a shorter question",
        )
    return left


def truncate_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Longest prefix of ``text`` (cut at a word boundary) within ``budget`` tokens."""
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    return cut[:space] if space > lo // 2 else cut
