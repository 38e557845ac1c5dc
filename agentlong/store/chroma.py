"""The Chroma vector store: embedded (PersistentClient) or a server (HttpClient).

We always pass our own embeddings (Chroma's default embedding function would download a model),
turn telemetry off, use cosine space, and turn every chromadb/httpx exception into a
:class:`~agentlong.errors.StoreError` with a hint.

>>> import tempfile
>>> store = ChromaStore.persistent(tempfile.mkdtemp())
>>> store.upsert("demo", ["a"], [[1.0, 0.0]], ["apples"], [{"n": 1}])
>>> store.query("demo", [1.0, 0.0], k=1)[0].text
'apples'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError, missing_dependency
from .base import Metadata, StoreHit, clean_metadata, normalize_where, safe_collection_name

__all__ = ["ChromaStore"]

F = TypeVar("F", bound=Callable[..., Any])


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError as exc:
        raise missing_dependency("chromadb", "local") from exc
    return chromadb


def _client_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def _guarded(method: F) -> F:
    """Re-raise anything chromadb/httpx throws as a StoreError naming the store."""

    @functools.wraps(method)
    def wrapper(self: "ChromaStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    return wrapper  # type: ignore[return-value]


class ChromaStore:
    """A :class:`~agentlong.store.base.VectorStore` over a chromadb client."""

    def __init__(self, client: Any, name: str, *, host: str | None = None, port: int | None = None) -> None:
        self.client = client
        self.name = name
        self.host, self.port = host, port
        self._batch = int(client.get_max_batch_size()) if hasattr(client, "get_max_batch_size") else 5000

    @classmethod
    def persistent(cls, path: str | Path) -> "ChromaStore":
        """An embedded store in folder ``path`` (created when missing)."""
        chromadb = _chromadb()
        folder = Path(path).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(folder), settings=_client_settings())
        except Exception as exc:
            raise StoreError(f"cannot open the Chroma store at {folder}: {_short(exc)}",
                             hint="check the folder is writable, or set AGENTLONG_STORE__PATH to another one") from exc
        return cls(client, f"chroma:{folder}")

    @classmethod
    def server(cls, host: str, port: int) -> "ChromaStore":
        """A store on a Chroma server (``chroma run``); raises StoreError when it is not reachable."""
        chromadb = _chromadb()
        try:
            client = chromadb.HttpClient(host=host, port=port, settings=_client_settings())
            client.heartbeat()
        except Exception as exc:
            raise _unreachable(host, port) from exc
        return cls(client, f"chroma-server:{host}:{port}", host=host, port=port)

    # -- the VectorStore interface -------------------------------------------
    @_guarded
    def upsert(self, collection: str, ids: list[str], embeddings: list[list[float]], documents: list[str],
               metadatas: list[Metadata]) -> None:
        if not (len(ids) == len(embeddings) == len(documents) == len(metadatas)):
            raise StoreError("upsert needs as many embeddings, documents and metadatas as ids",
                             hint="this is a bug in the caller; report it")
        if not ids:
            return
        col = self._collection(collection, create=True)
        metas = [clean_metadata(m) or None for m in metadatas]  # Chroma rejects empty dicts; None is allowed
        for start in range(0, len(ids), self._batch):
            end = start + self._batch
            col.delete(ids=ids[start:end])  # replace, not merge: Chroma's upsert keeps old metadata keys
            col.upsert(ids=ids[start:end], embeddings=embeddings[start:end], documents=documents[start:end],
                       metadatas=metas[start:end])

    @_guarded
    def query(self, collection: str, embedding: list[float], k: int, where: Metadata | None = None) -> list[StoreHit]:
        col = self._collection(collection)
        if col is None or k <= 0:
            return []
        res = col.query(query_embeddings=[embedding], n_results=k, where=normalize_where(where),
                        include=["documents", "metadatas", "distances"])
        rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])
        return [StoreHit(id_, text or "", dict(meta or {}), 1.0 - float(dist)) for id_, text, meta, dist in rows]

    @_guarded
    def get(self, collection: str, where: Metadata | None = None, ids: list[str] | None = None) -> list[StoreHit]:
        col = self._collection(collection)
        if col is None or (ids is not None and not ids):
            return []
        hits: list[StoreHit] = []
        offset = 0
        while True:  # page through: a big corpus in one get() would hit the server's payload limit
            res = col.get(ids=ids, where=normalize_where(where), include=["documents", "metadatas"],
                          limit=self._batch, offset=offset)
            hits += [StoreHit(i, t or "", dict(m or {})) for i, t, m in zip(res["ids"], res["documents"], res["metadatas"])]
            if len(res["ids"]) < self._batch:
                return hits
            offset += self._batch

    @_guarded
    def delete(self, collection: str, ids: list[str] | None = None, where: Metadata | None = None) -> None:
        col = self._collection(collection)
        if col is None or (ids is None and not where) or (ids is not None and not ids):
            return
        col.delete(ids=ids, where=normalize_where(where))

    @_guarded
    def count(self, collection: str) -> int:
        col = self._collection(collection)
        return 0 if col is None else int(col.count())

    @_guarded
    def drop(self, collection: str) -> None:
        name = safe_collection_name(collection)
        if name in self.collections():
            self.client.delete_collection(name)

    @_guarded
    def collections(self) -> list[str]:
        return sorted(c if isinstance(c, str) else c.name for c in self.client.list_collections())

    # -- helpers ---------------------------------------------------------------
    def _collection(self, collection: str, *, create: bool = False) -> Any | None:
        # not cached: another process may drop or re-create the collection between calls
        name = safe_collection_name(collection)
        if create:
            return self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    def _error(self, exc: Exception) -> StoreError:
        if self.host is not None and _is_connection_error(exc):
            return _unreachable(self.host, self.port or 0)
        if "dimension" in str(exc):
            return StoreError(f"{self.name}: {_short(exc)}",
                              hint="the collection was built with another embedder; re-index with --reindex")
        return StoreError(f"{self.name}: {type(exc).__name__}: {_short(exc)}")


def _unreachable(host: str, port: int) -> StoreError:
    return StoreError(
        f"cannot reach Chroma at {host}:{port}",
        hint=f"start it with `chroma run --path DIR --host {host} --port {port}` or unset AGENTLONG_STORE__CHROMA_HOST",
    )


def _is_connection_error(exc: Exception) -> bool:
    import httpx

    text = str(exc).lower()
    return isinstance(exc, (httpx.TransportError, ConnectionError)) or "could not connect" in text


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
