"""Chain-of-agents (Zhang et al. 2024): the sequential order of the one fold (:mod:`.fold`).

Worker *i* reads chunk *i* as numbered units and selects the ones that help by id; the note it
passes on is the selected units themselves, and the names in them that the question does not have
are shown to later workers (a bridge read in part 2 helps select in part 7). A manager step
answers from the note — a brief answer, a count computed in code, or a summary of the asked length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..types import Answer, Document
from . import fold
from .common import RunContext

__all__ = ["run", "STRATEGY"]

STRATEGY = "chain-of-agents"


def run(ctx: RunContext, documents: list[Document], question: str, *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, chunk_tokens: int | None = None, checkpoint: bool | Path = True) -> Answer:
    """Read the documents in order and answer ``question`` (or summarize in about ``words`` words)."""
    return fold.run(ctx, documents, question, task=task, words=words, order="sequential", chunk_tokens=chunk_tokens,
                    checkpoint=checkpoint)
