"""Embedder (the packaged all-MiniLM-L6-v2, real vectors), corpora, incremental indexing, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentlong import Agentlong
from agentlong.cli.main import main
from agentlong.errors import ConfigError, InputError, StoreError
from agentlong.events import Notice, Progress
from agentlong.settings import Settings
from agentlong.store import get_embedder, open_store
from agentlong.store import corpus as corpus_mod
from agentlong.store.corpus import (corpus_exists, drop_corpus, index_paths, list_corpora, open_corpus, registry,
                                    search)
from agentlong.store.embeddings import Embedder, resolve_embedder

from conftest import free_port

FILES = {
    "cats.txt": "Cats sleep for sixteen hours a day.\n\nThey groom themselves with rough tongues.\n",
    "guide.md": "# Bread\n\nKnead the dough for ten minutes, then let it rise for an hour.\n",
    "calc.py": "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\nclass Meter:\n    def read(self):\n"
               "        return 42\n",
}


def make_folder(root: Path, files: dict[str, str] = FILES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


class Events(list):
    def __call__(self, event) -> None:
        self.append(event)

    def notices(self) -> list[str]:
        return [e.message for e in self if isinstance(e, Notice)]


@pytest.fixture
def app(tmp_path) -> Agentlong:
    return Agentlong(model="fake", store={"path": tmp_path / "chroma"})


# -- embedder --------------------------------------------------------------------------------
def test_packaged_embedder_gives_real_normalized_vectors():
    emb = get_embedder(Settings())
    assert (emb.name, emb.dimension, emb.max_tokens) == ("all-MiniLM-L6-v2", 384, 254)
    texts = ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates rose by half a percent."]
    vecs = emb.embed(texts)
    assert [len(v) for v in vecs] == [384, 384, 384]
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vecs)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.3
    # batching and length-sorting keep the input order
    single = emb.embed([texts[2]])[0]
    assert cos(single, vecs[2]) > 0.9999


def test_embedder_counts_tokens_without_loading_torch():
    code = ("import sys; from agentlong.store import get_embedder; from agentlong.settings import Settings; "
            "e = get_embedder(Settings()); n = e.count_tokens('hello world ' * 300); "
            "print(n, e.dimension, 'torch' in sys.modules, 'chromadb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["600", "384", "False", "False"]


def test_embedder_by_path_and_aliases(tmp_path):
    name, folder = resolve_embedder("sentence-transformers/all-MiniLM-L6-v2")
    assert name == "all-MiniLM-L6-v2" and (folder / "model.safetensors").exists()
    assert resolve_embedder(str(folder)) == ("all-MiniLM-L6-v2", folder)
    with pytest.raises(ConfigError, match="not found"):
        resolve_embedder(str(tmp_path / "no-such-model"))


def test_unknown_embedder_name_fails_offline_with_a_hint():
    emb = get_embedder(Settings(store={"embedder": "someone/not-a-cached-model"}))
    with pytest.raises(ConfigError) as err:
        emb.embed(["x"])
    assert "AGENTLONG_STORE__EMBEDDER" in err.value.hint


# -- indexing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["chroma", "chroma-server"])
def test_incremental_index(where, tmp_path, request, monkeypatch):
    if where == "chroma-server":
        host, port = request.getfixturevalue("chroma_server")
        app = Agentlong(model="fake", store={"chroma_host": host, "chroma_port": port})
    else:
        app = Agentlong(model="fake", store={"path": tmp_path / "chroma"})
    folder = make_folder(tmp_path / "My Notes")
    name = f"notes-{where}-{os.getpid()}-{tmp_path.name}"
    calls = []
    real_embed = Embedder.embed
    monkeypatch.setattr(Embedder, "embed", lambda self, texts, **kw: calls.append(len(texts)) or real_embed(self, texts, **kw))

    first = index_paths(app, [str(folder)], name=name, emit=Events())
    assert (len(first.indexed), len(first.unchanged), len(first.removed), first.skipped) == (3, 0, 0, [])
    assert first.chunks == first.total_chunks >= 3
    assert app.store.count(open_corpus(app, name).info.collection) == first.total_chunks

    calls.clear()
    (folder / "cats.txt").touch()  # a new mtime, same content
    again = index_paths(app, [], name=name, emit=Events())  # no paths: refresh the corpus's own
    assert (len(again.indexed), len(again.unchanged), again.chunks) == (0, 3, 0)
    assert calls == []  # nothing embedded

    (folder / "guide.md").write_text("# Bread\n\nBake the loaf at 230 degrees for thirty-five minutes.\n")
    (folder / "calc.py").unlink()
    (folder / "owls.txt").write_text("Owls can turn their heads through 270 degrees.\n")
    third = index_paths(app, [str(folder)], name=name, emit=Events())
    assert sorted(Path(s).name for s in third.indexed) == ["guide.md", "owls.txt"]
    assert [Path(s).name for s in third.unchanged] == ["cats.txt"]
    assert [Path(s).name for s in third.removed] == ["calc.py"]
    corpus = open_corpus(app, name)
    assert app.store.count(corpus.info.collection) == third.total_chunks == corpus.info.chunks
    assert {Path(d.source).name for d in corpus.documents()} == {"cats.txt", "guide.md", "owls.txt"}
    hits = corpus.search("what temperature should bread be baked at", k=2)
    assert Path(hits[0].chunk.source).name == "guide.md" and "230 degrees" in hits[0].chunk.text
    assert not any("ten minutes" in h.chunk.text for h in corpus.search("knead dough", k=5))
    if where == "chroma-server":
        drop_corpus(app, name)


def test_chunks_documents_and_hits_carry_exact_spans(app, tmp_path):
    folder = make_folder(tmp_path / "docs")
    index_paths(app, [str(folder)], name=None, emit=Events())
    corpus = open_corpus(app, "docs")
    docs = {d.id: d for d in corpus.documents()}
    chunks = corpus.chunks()
    assert len(chunks) == corpus.info.chunks
    for doc_id, doc in docs.items():
        mine = [c for c in chunks if c.doc_id == doc_id]
        assert [c.index for c in mine] == list(range(len(mine)))  # document order
        assert "".join(c.text for c in mine) == doc.text
        assert all(doc.text[c.char_start:c.char_end] == c.text for c in mine)
    hit = search(app, "docs", "which function adds two numbers", k=1)[0]
    assert hit.chunk.source.endswith("calc.py") and 0 < hit.score <= 1
    assert docs[hit.chunk.doc_id].text[hit.chunk.char_start:hit.chunk.char_end] == hit.chunk.text
    assert hit.chunk.line_start >= 1


def test_progress_events_and_default_name(app, tmp_path):
    book = tmp_path / "Great Book.txt"
    book.write_text("\n\n".join(f"Paragraph {i} tells about the river and the mill." for i in range(300)))
    events = Events()
    report = index_paths(app, [str(book)], name=None, emit=events)
    assert report.corpus == "great-book" and corpus_exists(app, "Great Book")
    tasks = {e.task for e in events if isinstance(e, Progress)}
    assert {"files", "chunks", "embeddings"} <= tasks
    last = [e for e in events if isinstance(e, Progress) and e.task == "embeddings"][-1]
    assert last.done == last.total == report.chunks > 1


def test_bad_files_are_skipped_and_the_rest_indexed(app, tmp_path):
    folder = make_folder(tmp_path / "mixed", {"good.txt": "Good text about owls and their silent flight.\n"})
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    events = Events()
    report = index_paths(app, [str(folder)], name="mixed", emit=events)
    assert [Path(s).name for s in report.indexed] == ["good.txt"]
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert {"empty.txt", "binary.txt"} <= set(skipped)
    assert "empty" in skipped["empty.txt"] and "binary" in skipped["binary.txt"]
    assert any("empty.txt" in n for n in events.notices())


def test_nothing_indexable_and_missing_paths_are_input_errors(app, tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="nothing to index"):
        index_paths(app, [str(tmp_path / "nul.txt")], name="x", emit=Events())
    assert not corpus_exists(app, "x")
    with pytest.raises(InputError, match="no such file"):
        index_paths(app, [str(tmp_path / "missing")], name="x", emit=Events())


def test_unknown_corpus_offers_the_known_ones(app, tmp_path):
    index_paths(app, [str(make_folder(tmp_path / "alpha"))], name=None, emit=Events())
    with pytest.raises(InputError) as err:
        open_corpus(app, "beta")
    assert str(err.value).startswith("no corpus named beta — run agentlong index PATH --name beta")
    assert "alpha" in err.value.hint


def test_embedder_mismatch_needs_reindex(app, tmp_path):
    folder = make_folder(tmp_path / "mm")
    index_paths(app, [str(folder)], name="mm", emit=Events())
    other = tmp_path / "other-model"  # the same weights under another name (a folder of links)
    packaged = resolve_embedder("all-MiniLM-L6-v2")[1]
    for item in packaged.iterdir():
        (other / item.name).parent.mkdir(parents=True, exist_ok=True)
        (other / item.name).symlink_to(item)
    app2 = Agentlong(model="fake", store={"path": tmp_path / "chroma", "embedder": str(other)})
    with pytest.raises(StoreError) as err:
        open_corpus(app2, "mm")
    assert str(err.value).startswith(f"corpus mm was indexed with all-MiniLM-L6-v2, current embedder is {other}")
    assert "--name mm --reindex" in err.value.hint
    with pytest.raises(StoreError, match="current embedder"):
        index_paths(app2, [str(folder)], name="mm", emit=Events())
    report = index_paths(app2, [str(folder)], name="mm", emit=Events(), reindex=True)
    assert len(report.indexed) == 3 and report.embedder == str(other)
    assert open_corpus(app2, "mm").info.embedder == str(other)


def test_kill_mid_index_leaves_nothing_half_written(app, tmp_path, monkeypatch):
    files = {f"f{i}.txt": f"File number {i} is about topic {i}.\n" for i in range(6)}
    folder = make_folder(tmp_path / "kill", files)
    monkeypatch.setattr(corpus_mod, "GROUP_CHUNKS", 2)
    monkeypatch.setattr("agentlong.store.indexer.GROUP_CHUNKS", 2)
    real_upsert = type(app.store).upsert
    seen = []

    def dying_upsert(self, *args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt  # the process is killed while storing the second group
        return real_upsert(self, *args, **kwargs)

    monkeypatch.setattr(type(app.store), "upsert", dying_upsert)
    with pytest.raises(KeyboardInterrupt):
        index_paths(app, [str(folder)], name="kill", emit=Events())
    states = registry(app).doc_states("kill")
    committed = [s for s in states.values() if not s.pending]
    assert len(committed) == 2 and sum(s.pending for s in states.values()) == 2
    monkeypatch.setattr(type(app.store), "upsert", real_upsert)
    report = index_paths(app, [str(folder)], name="kill", emit=Events())
    assert len(report.unchanged) == 2 and len(report.indexed) == 4
    info = open_corpus(app, "kill").info
    assert (info.documents, app.store.count(info.collection)) == (6, info.chunks)


def test_lost_store_is_detected_and_repaired(app, tmp_path):
    index_paths(app, [str(make_folder(tmp_path / "lost"))], name=None, emit=Events())
    info = open_corpus(app, "lost").info
    app.store.drop(info.collection)  # e.g. the chroma folder was wiped
    with pytest.raises(StoreError, match="agentlong index --name lost"):
        open_corpus(app, "lost")
    events = Events()
    report = index_paths(app, [], name="lost", emit=events)
    assert len(report.indexed) == 3 and any("re-embedding" in n for n in events.notices())
    assert app.store.count(info.collection) == open_corpus(app, "lost").info.chunks


def test_drop_and_list(app, tmp_path):
    index_paths(app, [str(make_folder(tmp_path / "one"))], name=None, emit=Events())
    assert [c.name for c in list_corpora(app)] == ["one"]
    drop_corpus(app, "one")
    assert list_corpora(app) == [] and not corpus_exists(app, "one")
    with pytest.raises(InputError):
        drop_corpus(app, "one")


def test_unreachable_chroma_server_is_one_clear_error(tmp_path, monkeypatch, capsys):
    port = free_port()
    with pytest.raises(StoreError) as err:
        open_store(Settings(store={"chroma_host": "127.0.0.1", "chroma_port": port}))
    assert str(err.value).startswith(f"cannot reach Chroma at 127.0.0.1:{port} — start it with `chroma run")
    assert "unset AGENTLONG_STORE__CHROMA_HOST" in err.value.hint
    monkeypatch.setenv("AGENTLONG_STORE__CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("AGENTLONG_STORE__CHROMA_PORT", str(port))
    code = main(["-q", "index", str(make_folder(tmp_path / "down")), "--name", "down"])
    err_text = capsys.readouterr().err
    assert code == 2
    assert err_text.strip().splitlines() == [f"agentlong: error: {err.value.one_line()}"]


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_index_and_corpora(tmp_path, capsys):
    folder = make_folder(tmp_path / "cli")
    assert main(["-q", "index", str(folder), "--name", "Cli Docs"]) == 0
    out = capsys.readouterr().out
    assert "corpus cli-docs" in out and "3 files" in out
    assert main(["-q", "index", str(folder), "--name", "cli-docs", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (len(report["unchanged"]), report["chunks"]) == (3, 0)
    assert main(["corpora", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["documents"]) for c in listed] == [("cli-docs", 3)]
    assert main(["corpora", "show", "cli-docs"]) == 0
    assert "calc.py" in capsys.readouterr().out
    assert main(["corpora", "drop", "cli-docs"]) == 0
    assert main(["corpora", "show", "cli-docs"]) == 2
    assert "no corpus named cli-docs" in capsys.readouterr().err
    assert main(["index"]) == 2
    assert "nothing to index" in capsys.readouterr().err


def test_interrupted_index_of_one_big_file_keeps_what_was_embedded(app, tmp_path, monkeypatch):
    """One file's chunks are stored slice by slice: a kill keeps every stored slice, the re-run embeds
    only the rest, and the unchanged chunks of an edited file keep their vectors."""
    app = Agentlong(model="fake", store={"path": tmp_path / "chroma"}, chunking={"index_chunk_tokens": 48})
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} tells how the river town number {i} traded salt and amber."
                               for i in range(120)))
    monkeypatch.setattr("agentlong.store.indexer.GROUP_CHUNKS", 4)
    embedder = get_embedder(app.settings)
    real_embed, calls = type(embedder).embed, []

    def dying_embed(self, texts, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while embedding the third slice of the one file
        return real_embed(self, texts, **kwargs)

    monkeypatch.setattr(type(embedder), "embed", dying_embed)
    with pytest.raises(KeyboardInterrupt):
        index_paths(app, [str(big)], name="big", emit=Events())
    collection = corpus_mod.collection_for("big")
    assert app.store.count(collection) == 8  # two slices of 4 were stored before the kill
    assert all(s.pending for s in registry(app).doc_states("big").values())

    monkeypatch.setattr(type(embedder), "embed", real_embed)
    events = Events()
    report = index_paths(app, [str(big)], name="big", emit=events)
    assert report.reused == 8 and report.chunks > 8
    assert any("kept 8 chunks embedded by an earlier run" in n for n in events.notices())
    info = open_corpus(app, "big").info
    assert app.store.count(collection) == info.chunks == report.chunks
    stored = {h.id: h.text for h in app.store.get(collection)}
    for chunk_id in sorted(stored)[:2] + sorted(stored)[-2:]:  # kept and newly embedded vectors both find their text
        assert chunk_id in {hit.chunk.id for hit in search(app, "big", stored[chunk_id], k=2)}

    # an edit near the end: the chunks before it keep their vectors, the changed ones are re-embedded
    big.write_text(big.read_text().replace("Paragraph 118 tells", "Paragraph 118 now tells"))
    again = index_paths(app, [str(big)], name="big", emit=Events())
    assert 0 < again.chunks - again.reused <= 3 and again.reused > again.chunks // 2
    assert app.store.count(collection) == open_corpus(app, "big").info.chunks
    stored = {h.id: h.text for h in app.store.get(collection)}
    assert any("Paragraph 118 now tells" in t for t in stored.values())
    assert not any("Paragraph 118 tells" in t for t in stored.values())


def slow_embedder() -> None:
    home = Path(os.environ["AGENTLONG_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "rates.json").write_text(json.dumps({"embed:all-MiniLM-L6-v2": 0.001}))


def test_long_indexing_reports_a_plan_and_asks_first(app, tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "plan")
    # this machine "measured" a very slow embedder: the three small files would take long
    slow_embedder()
    with pytest.raises(InputError) as err:
        index_paths(app, [str(folder)], name="plan", emit=Events())
    assert err.value.one_line().startswith("plan: embed 3 chunks of 3 files into corpus plan")
    assert "above confirm_minutes (15)" in str(err.value) and "--yes" in err.value.hint
    assert app.store.count(corpus_mod.collection_for("plan")) == 0  # nothing was embedded before asking

    asked: list[str] = []
    app.confirm = lambda line: asked.append(line) or True
    events = Events()
    report = index_paths(app, [str(folder)], name="plan", emit=events)
    assert len(report.indexed) == 3 and asked and asked[0] in events.notices()
    assert "(0.001 chunks/s, local: $0) — about 50 min on this machine" in asked[0]

    allowed = Agentlong(model="fake", store={"path": tmp_path / "chroma"}, confirm_minutes=None)
    (folder / "more.txt").write_text("Owls hunt at night.\n")
    assert len(index_paths(allowed, [str(folder)], name="plan", emit=Events()).indexed) == 1
    measured = json.loads((Path(os.environ["AGENTLONG_HOME"]) / "rates.json").read_text())
    assert measured == {"embed:all-MiniLM-L6-v2": 0.001}  # under 64 chunks nothing is measured


def test_cli_long_work_without_a_terminal_needs_yes(tmp_path, capsys):
    folder = make_folder(tmp_path / "cli-plan")
    slow_embedder()
    store = f"{tmp_path / 'chroma'}"
    os.environ["AGENTLONG_STORE__PATH"] = store
    try:
        assert main(["-q", "index", str(folder), "--name", "cp"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "above confirm_minutes" in err and "--yes" in err
        assert main(["-q", "index", str(folder), "--name", "cp", "--yes"]) == 0
    finally:
        del os.environ["AGENTLONG_STORE__PATH"]
