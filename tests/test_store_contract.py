"""Contract suite for the VectorStore interface: memory store, Chroma embedded, Chroma server.

Every implementation must behave the same; each test uses fresh collection names because the Chroma
server is shared by the whole session.
"""

from __future__ import annotations

import uuid

import pytest

from agentlong.errors import StoreError
from agentlong.store import VectorStore, open_store, safe_collection_name
from agentlong.store.memory import MemoryStore
from agentlong.settings import Settings

E = {  # unit-ish vectors in 3-D: a and a2 point the same way, b and c elsewhere
    "a": [1.0, 0.0, 0.0],
    "a2": [0.9, 0.1, 0.0],
    "b": [0.0, 1.0, 0.0],
    "c": [0.0, 0.0, 1.0],
}


@pytest.fixture(params=["memory", "chroma", "chroma-server"])
def store(request, tmp_path) -> VectorStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "chroma":
        return open_store(Settings(store={"path": tmp_path / "chroma"}))
    host, port = request.getfixturevalue("chroma_server")
    return open_store(Settings(store={"chroma_host": host, "chroma_port": port}))


@pytest.fixture
def col() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def _fill(store: VectorStore, col: str) -> None:
    ids = list(E)
    store.upsert(col, ids, [E[i] for i in ids], [f"text {i}" for i in ids],
                 [{"doc_id": "d1" if i.startswith("a") else "d2", "index": n, "section": None}
                  for n, i in enumerate(ids)])


def test_store_names_itself(store):
    assert isinstance(store, VectorStore)
    assert store.name.split(":")[0] in {"memory", "chroma", "chroma-server"}


def test_upsert_count_and_collections(store, col):
    _fill(store, col)
    assert store.count(col) == 4
    assert safe_collection_name(col) in store.collections()


def test_query_nearest_first_with_cosine_scores(store, col):
    _fill(store, col)
    hits = store.query(col, [1.0, 0.0, 0.0], k=2)
    assert [h.id for h in hits] == ["a", "a2"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].score >= hits[1].score > 0.9
    assert hits[0].text == "text a"
    assert hits[0].metadata["doc_id"] == "d1"


def test_query_k_larger_than_collection(store, col):
    _fill(store, col)
    hits = store.query(col, E["b"], k=50)
    assert len(hits) == 4
    assert hits[0].id == "b"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_query_and_get_with_filters(store, col):
    _fill(store, col)
    assert {h.id for h in store.query(col, E["a"], k=10, where={"doc_id": "d2"})} == {"b", "c"}
    assert {h.id for h in store.get(col, where={"doc_id": {"$in": ["d1"]}})} == {"a", "a2"}
    assert [h.id for h in store.get(col, where={"doc_id": "d2", "index": 3})] == ["c"]  # two keys = AND
    assert {h.id for h in store.get(col, where={"index": {"$gte": 2}})} == {"b", "c"}
    assert {h.id for h in store.get(col, where={"$or": [{"index": 0}, {"index": 3}]})} == {"a", "c"}


def test_get_by_ids_and_all(store, col):
    _fill(store, col)
    got = store.get(col, ids=["c", "a"])
    assert {h.id for h in got} == {"a", "c"}
    assert all(h.score is None for h in got)
    assert {h.text for h in store.get(col)} == {"text a", "text a2", "text b", "text c"}
    assert store.get(col, ids=[]) == []


def test_none_metadata_values_are_omitted(store, col):
    _fill(store, col)
    meta = store.get(col, ids=["a"])[0].metadata
    assert "section" not in meta
    assert meta["index"] == 0
    store.upsert(col, ["bare"], [[0.5, 0.5, 0.0]], ["no metadata"], [{}])
    assert store.get(col, ids=["bare"])[0].metadata == {}


def test_upsert_replaces_same_id(store, col):
    _fill(store, col)
    store.upsert(col, ["a"], [E["c"]], ["new text"], [{"doc_id": "d9"}])
    assert store.count(col) == 4
    hit = store.get(col, ids=["a"])[0]
    assert (hit.text, hit.metadata) == ("new text", {"doc_id": "d9"})
    assert store.query(col, E["c"], k=2)[0].id in {"a", "c"}


def test_delete_by_ids_and_where(store, col):
    _fill(store, col)
    store.delete(col, ids=["a"])
    assert store.count(col) == 3
    store.delete(col, where={"doc_id": "d2"})
    assert [h.id for h in store.get(col)] == ["a2"]
    store.delete(col)  # neither ids nor where: deletes nothing
    assert store.count(col) == 1


def test_missing_collection_reads_empty(store, col):
    assert store.count(col) == 0
    assert store.query(col, E["a"], k=3) == []
    assert store.get(col) == []
    store.delete(col, ids=["x"])
    store.drop(col)
    assert safe_collection_name(col) not in store.collections()


def test_drop_removes_collection(store, col):
    _fill(store, col)
    store.drop(col)
    assert store.count(col) == 0
    assert safe_collection_name(col) not in store.collections()
    _fill(store, col)  # and it can be made again
    assert store.count(col) == 4


def test_any_name_is_usable(store, col):
    odd = f"My Corpus / {col} ✓"
    store.upsert(odd, ["x"], [E["a"]], ["hello"], [{"n": 1}])
    assert store.count(odd) == 1
    assert store.query(odd, E["a"], k=1)[0].text == "hello"
    store.drop(odd)
    assert store.count(odd) == 0


def test_dimension_mismatch_is_a_store_error(store, col):
    _fill(store, col)
    with pytest.raises(StoreError) as err:
        store.upsert(col, ["z"], [[1.0, 0.0, 0.0, 0.0]], ["four"], [{"n": 1}])
    assert "dimension" in str(err.value)


def test_length_mismatch_is_a_store_error(store, col):
    with pytest.raises(StoreError):
        store.upsert(col, ["a", "b"], [E["a"]], ["one"], [{}])


def test_large_upsert_and_paged_get(store, col):
    n = 1200
    vecs = [[1.0, i / n, 0.0] for i in range(n)]
    store.upsert(col, [f"id{i}" for i in range(n)], vecs, [f"t{i}" for i in range(n)], [{"i": i} for i in range(n)])
    assert store.count(col) == n
    assert len(store.get(col)) == n
    assert len(store.get(col, where={"i": {"$lt": 100}})) == 100
