"""Map-reduce: the tree order of the one fold (:mod:`.fold`).

Every chunk is read in parallel (up to the backend's ``max_concurrency``) by a selection call;
the selected units are reduced by further selection calls while they do not fit the answer step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..types import Answer, Document
from . import fold
from .common import RunContext

__all__ = ["run", "STRATEGY"]

STRATEGY = "map-reduce"


def run(ctx: RunContext, documents: list[Document], question: str, *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, chunk_tokens: int | None = None, checkpoint: bool | Path = True) -> Answer:
    """Read every chunk in parallel and answer ``question`` (or summarize in about ``words`` words)."""
    return fold.run(ctx, documents, question, task=task, words=words, order="tree", chunk_tokens=chunk_tokens,
                    checkpoint=checkpoint)
