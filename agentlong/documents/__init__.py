"""Documents: loaders, structure, exact-offset chunking, code splitting and a repo map.

>>> from agentlong.documents import load_text, chunk_document
>>> doc = load_text("First sentence here. Second one follows.")
>>> [c.text for c in chunk_document(doc, max_tokens=4, count=lambda t: len(t.split()))]
['First sentence here. ', 'Second one follows.']
"""

from __future__ import annotations

from .chunking import chunk_document
from .loaders import load_file, load_text
from .repomap import repo_map
from .structure import Section, sections
from .walk import LoadResult, Skipped, load_path

__all__ = [
    "LoadResult",
    "Section",
    "Skipped",
    "chunk_document",
    "load_file",
    "load_path",
    "load_text",
    "repo_map",
    "sections",
]
