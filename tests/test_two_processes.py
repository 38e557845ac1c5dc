"""Two real agentlong processes on one AGENTLONG_HOME (embedded Chroma, registry, checkpoints).

Each pair either both finish correctly or the second waits with a message; afterwards the corpus
holds what one process alone would have built (registry and store counts, search results), the
batch job recorded every document once, and a chat session kept every turn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentlong import Agentlong
from agentlong.locks import ProcessLock
from agentlong.store.corpus import index_paths, open_corpus, search

WORDS = "salt amber river town keeper lamp harbor ship cargo barrel wheat market bridge tower".split()


def make_docs(folder: Path, n: int, paragraphs: int = 12) -> Path:
    import random

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = random.Random(i)
        (folder / f"d{i:02d}.txt").write_text("\n\n".join(
            f"Record {i}.{p}: " + " ".join(rng.choice(WORDS) for _ in range(50)) + "." for p in range(paragraphs)))
    return folder


def start(home: Path, *args: str, stdin: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "AGENTLONG_HOME": str(home), "AGENTLONG_SHOW_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "agentlong.cli.main", *args], env=env, text=True,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, stdin: str | None = None, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(stdin, timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def wait_for_lock(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while ProcessLock.holder(path) != proc.pid:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.05)


def corpus_state(home: Path, name: str, query: str) -> tuple[int, int, int, list[str]]:
    os.environ["AGENTLONG_HOME"] = str(home)
    app = Agentlong(model="fake")
    info = open_corpus(app, name).info
    hits = [h.chunk.id for h in search(app, name, query, k=5)]
    return info.documents, info.chunks, app.store.count(info.collection), hits


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def test_two_indexers_on_one_corpus_the_second_waits_then_finds_the_work_done(home, tmp_path):
    docs = make_docs(tmp_path / "docs", 20)
    first = start(home, "-m", "fake", "index", str(docs), "--name", "shared")
    wait_for_lock(home / "locks" / "corpus-shared.lock", first)
    second = start(home, "-m", "fake", "index", str(docs), "--name", "shared")
    out1, _ = finish(first)
    out2, err2 = finish(second)
    assert f"waiting for another agentlong process (pid {first.pid}): indexing corpus shared" in err2
    assert "20 files, " in out1 and "unchanged  20 files" in out2  # nothing embedded twice

    alone = tmp_path / "alone-home"  # what one process alone builds
    os.environ["AGENTLONG_HOME"] = str(alone)
    index_paths(Agentlong(model="fake"), [str(docs)], name="shared", emit=lambda e: None)
    together = corpus_state(home, "shared", "amber harbor cargo")
    assert together[0] == 20 and together[1] == together[2] > 20
    assert together == corpus_state(alone, "shared", "amber harbor cargo")


def test_an_ask_during_a_batch_job_both_finish_and_the_job_records_each_document_once(home, tmp_path):
    docs = make_docs(tmp_path / "docs", 12, paragraphs=2)
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({
        "inputs": ["docs/*.txt"], "model": "fake", "output": "out/results.jsonl", "concurrency": 2,
        "fake": {"mode": "keyed", "default": {"title": "A record"}, "delay_s": 2},
        "tasks": [{"type": "extract", "schema": {"type": "object", "properties": {"title": {"type": "string"}},
                                                "required": ["title"]}}]}))
    job = start(home, "-q", "batch", "run", str(spec), "--json")
    wait_for_lock(tmp_path / "out" / "results.jsonl.lock", job)
    question = "Which records mention the lamp keeper?"
    asks = [start(home, "-q", "-m", "fake:echo", "ask", str(docs), question, "--strategy", s, "--json")
            for s in ("rtr", "coa")]
    answers = [json.loads(finish(p)[0]) for p in asks]
    summary = json.loads(finish(job)[0])
    assert (summary["ok"], summary["failed"]) == (12, 0)
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["document"] for r in records) == sorted(f"docs/{p.name}" for p in docs.iterdir())
    assert [a["strategy"] for a in answers] == ["rtr", "coa"] and all(a["usage"]["calls"] >= 1 for a in answers)
    # the same question again, alone: corpus and checkpoints written beside the job give the same answers
    again = [json.loads(finish(start(home, "-q", "-m", "fake:echo", "ask", str(docs), question, "--strategy", s,
                                     "--json"))[0]) for s in ("rtr", "coa")]
    assert [a["text"] for a in again] == [a["text"] for a in answers]


def test_chat_while_indexing_both_finish_and_keep_everything(home, tmp_path):
    docs = make_docs(tmp_path / "docs", 20)
    indexer = start(home, "-m", "fake", "index", str(docs), "--name", "books")
    wait_for_lock(home / "locks" / "corpus-books.lock", indexer)
    turns = [f"turn {i}: the harbor lamp was lit at {i} o'clock" for i in range(4)]
    chat = start(home, "chat", "--model", "fake", "--plain", "--session", "night", stdin="")
    out, _ = finish(chat, stdin="\n".join(turns) + "\n/quit\n")
    finish(indexer)
    assert all(t in out for t in turns)  # the echo model answered every turn
    env = {**os.environ, "AGENTLONG_HOME": str(home)}
    listed = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "chat", "--list"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.stdout.startswith("night") and "4 turns" in listed.stdout
    documents, chunks, stored, _ = corpus_state(home, "books", "harbor lamp")
    assert documents == 20 and chunks == stored > 20
