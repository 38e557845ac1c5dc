"""Vector store and embeddings: Chroma (embedded or server) or in-memory, sentence-transformers.

Light to import: chromadb, torch and sentence-transformers load on first use.

>>> import tempfile
>>> from agentlong.settings import Settings
>>> store = open_store(Settings(store={"path": tempfile.mkdtemp()}))
>>> store.name.startswith("chroma:")
True
"""

from __future__ import annotations

from ..settings import Settings
from .base import StoreHit, VectorStore, safe_collection_name
from .embeddings import Embedder, get_embedder

__all__ = ["open_store", "get_embedder", "Embedder", "VectorStore", "StoreHit", "safe_collection_name"]


def open_store(settings: Settings) -> VectorStore:
    """Chroma ``HttpClient`` when ``settings.store.chroma_host`` is set, else ``PersistentClient`` at
    ``settings.chroma_path()``. Raises StoreError when the server cannot be reached."""
    from .chroma import ChromaStore

    if settings.store.chroma_host:
        return ChromaStore.server(settings.store.chroma_host, settings.store.chroma_port)
    return ChromaStore.persistent(settings.chroma_path())
