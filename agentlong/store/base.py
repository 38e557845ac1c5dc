"""The vector-store interface every store implements, and helpers they share.

Stores hold pre-computed embeddings (the embedder lives in ``embeddings.py``); a collection is
created on first upsert, and reading a collection that does not exist gives nothing, not an error.
Collection names are passed through :func:`safe_collection_name` so any string works.

>>> safe_collection_name("War and Peace!")
'war-and-peace'
>>> safe_collection_name("a")
'a-ca9781'
>>> normalize_where({"doc_id": "x", "index": 3})
{'$and': [{'doc_id': 'x'}, {'index': 3}]}
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["VectorStore", "StoreHit", "safe_collection_name", "normalize_where", "clean_metadata"]

Metadata = dict[str, Any]


@dataclass(slots=True)
class StoreHit:
    """One stored item. ``score`` is cosine similarity for ``query`` results, None for ``get``."""

    id: str
    text: str
    metadata: Metadata = field(default_factory=dict)
    score: float | None = None


@runtime_checkable
class VectorStore(Protocol):
    """A store of (id, embedding, text, metadata) rows in named collections (cosine similarity)."""

    name: str

    def upsert(self, collection: str, ids: list[str], embeddings: list[list[float]], documents: list[str],
               metadatas: list[Metadata]) -> None: ...

    def query(self, collection: str, embedding: list[float], k: int, where: Metadata | None = None) -> list[StoreHit]: ...

    def get(self, collection: str, where: Metadata | None = None, ids: list[str] | None = None) -> list[StoreHit]: ...

    def delete(self, collection: str, ids: list[str] | None = None, where: Metadata | None = None) -> None: ...

    def count(self, collection: str) -> int: ...

    def drop(self, collection: str) -> None: ...

    def collections(self) -> list[str]: ...


_BAD = re.compile(r"[^a-z0-9._-]+")


def safe_collection_name(name: str) -> str:
    """A valid Chroma collection name for ``name``: 3–512 chars of ``[a-z0-9._-]``, alphanumeric ends.

    Deterministic; names that had to be shortened get a hash suffix so they stay distinct.
    """
    safe = _BAD.sub("-", name.lower())
    safe = re.sub(r"\.{2,}", ".", safe).strip("._-")
    if len(safe) > 512:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        safe = f"{safe[:499].rstrip('._-')}-{digest}"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", safe):  # Chroma rejects names that look like IPv4 addresses
        safe = f"c-{safe}"
    if len(safe) < 3:  # too short (or empty): pad with a hash so distinct names stay distinct
        safe = f"{safe or 'c'}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return safe


def normalize_where(where: Metadata | None) -> Metadata | None:
    """Chroma wants one operator per filter: ``{"a": 1, "b": 2}`` becomes ``{"$and": [...]}``."""
    if not where:
        return None
    if len(where) == 1:
        return dict(where)
    return {"$and": [{key: value} for key, value in where.items()]}


def clean_metadata(metadata: Metadata) -> Metadata:
    """Drop None values (Chroma metadata values cannot be None)."""
    return {key: value for key, value in metadata.items() if value is not None}
