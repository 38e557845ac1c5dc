"""An in-memory vector store with the same behaviour as the Chroma one (brute-force cosine).

For tests, the contract suite and small throwaway corpora; nothing is persisted.

>>> store = MemoryStore()
>>> store.upsert("notes", ["a", "b"], [[1.0, 0.0], [0.0, 1.0]], ["apples", "bees"], [{"n": 1}, {"n": 2}])
>>> [(h.id, round(h.score, 2)) for h in store.query("notes", [1.0, 0.1], k=1)]
[('a', 1.0)]
>>> [h.text for h in store.get("notes", where={"n": {"$gt": 1}})]
['bees']
"""

from __future__ import annotations

import math
import threading
from typing import Any

from ..errors import StoreError
from .base import Metadata, StoreHit, clean_metadata, normalize_where, safe_collection_name

__all__ = ["MemoryStore", "matches"]

_Row = tuple[list[float], str, Metadata]


class MemoryStore:
    """Collections of rows kept in dicts; insertion-ordered, thread-safe."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, dict[str, _Row]] = {}
        self._dims: dict[str, int] = {}
        self._lock = threading.Lock()

    def upsert(self, collection: str, ids: list[str], embeddings: list[list[float]], documents: list[str],
               metadatas: list[Metadata]) -> None:
        if not (len(ids) == len(embeddings) == len(documents) == len(metadatas)):
            raise StoreError("upsert needs as many embeddings, documents and metadatas as ids",
                             hint="this is a bug in the caller; report it")
        if not ids:
            return
        name = safe_collection_name(collection)
        with self._lock:
            rows = self._data.setdefault(name, {})
            dim = self._dims.setdefault(name, len(embeddings[0]))
            for id_, emb, text, meta in zip(ids, embeddings, documents, metadatas):
                if len(emb) != dim:
                    raise StoreError(f"collection {name} holds {dim}-dimensional embeddings, got {len(emb)}",
                                     hint="re-index with the embedder the collection was built with")
                rows[id_] = (_unit([float(x) for x in emb]), text, clean_metadata(dict(meta)))

    def query(self, collection: str, embedding: list[float], k: int, where: Metadata | None = None) -> list[StoreHit]:
        q = _unit([float(x) for x in embedding])
        scored = [
            StoreHit(id_, text, dict(meta), sum(a * b for a, b in zip(q, emb)))
            for id_, (emb, text, meta) in self._rows(collection, where)
        ]
        scored.sort(key=lambda hit: -(hit.score or 0.0))
        return scored[: max(k, 0)]

    def get(self, collection: str, where: Metadata | None = None, ids: list[str] | None = None) -> list[StoreHit]:
        wanted = set(ids) if ids is not None else None
        return [StoreHit(id_, text, dict(meta)) for id_, (_, text, meta) in self._rows(collection, where)
                if wanted is None or id_ in wanted]

    def delete(self, collection: str, ids: list[str] | None = None, where: Metadata | None = None) -> None:
        doomed = [hit.id for hit in self.get(collection, where=where, ids=ids)] if (ids is not None or where) else []
        with self._lock:
            rows = self._data.get(safe_collection_name(collection), {})
            for id_ in doomed:
                rows.pop(id_, None)

    def count(self, collection: str) -> int:
        return len(self._data.get(safe_collection_name(collection), {}))

    def drop(self, collection: str) -> None:
        with self._lock:
            self._data.pop(safe_collection_name(collection), None)
            self._dims.pop(safe_collection_name(collection), None)

    def collections(self) -> list[str]:
        return sorted(self._data)

    def _rows(self, collection: str, where: Metadata | None) -> list[tuple[str, _Row]]:
        with self._lock:
            rows = list(self._data.get(safe_collection_name(collection), {}).items())
        flt = normalize_where(where)
        return [(id_, row) for id_, row in rows if flt is None or matches(row[2], flt)]


def _unit(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


_OPS = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b,
    "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
    "$in": lambda a, b: a in b,
    "$nin": lambda a, b: a not in b,
}


def matches(metadata: Metadata, where: dict[str, Any]) -> bool:
    """Evaluate a Chroma-style ``where`` filter against one metadata dict.

    >>> matches({"a": 2, "b": "x"}, {"$and": [{"a": {"$gte": 2}}, {"b": {"$in": ["x", "y"]}}]})
    True
    """
    for key, cond in where.items():
        if key == "$and":
            ok = all(matches(metadata, sub) for sub in cond)
        elif key == "$or":
            ok = any(matches(metadata, sub) for sub in cond)
        elif isinstance(cond, dict):
            ok = all(_compare(metadata.get(key), op, arg) for op, arg in cond.items())
        else:
            ok = metadata.get(key) == cond
        if not ok:
            return False
    return True


def _compare(value: Any, op: str, arg: Any) -> bool:
    if op not in _OPS:
        raise StoreError(f"unsupported filter operator {op!r}", hint=f"use one of {', '.join(_OPS)}, $and, $or")
    try:
        return bool(_OPS[op](value, arg))
    except TypeError:  # comparing a str with a number: Chroma treats it as no match
        return False
