"""Chat on real parts: the default GGUF (llama.cpp), the packaged MiniLM embedder and embedded Chroma.

A scripted eight-turn session where turn 8 needs a fact from turn 1 that has left flash memory,
and a large turn summarized by the real model. Answers are kept short (small max_tokens).
"""

from __future__ import annotations

import pytest

from agentlong import Agentlong
from agentlong.memory import Chat
from agentlong.settings import ChunkSettings, MemorySettings, Settings

pytestmark = pytest.mark.slow

SCRIPT = [
    "Please remember this: my locker code is 4719.",
    "What is the capital of Italy? One word.",
    "Name a fruit that is yellow. One word.",
    "How many legs does a spider have? One number.",
    "Give one word that rhymes with sun.",
    "What colour is the sky on a clear day? One word.",
    "Is ice colder than steam? Yes or no.",
    "What is my locker code?",
]


def real_app(llama_backend, **memory) -> Agentlong:
    settings = Settings(model=llama_backend.name, chunking=ChunkSettings(output_reserve=48),
                        memory=MemorySettings(**memory))
    return Agentlong(backend=llama_backend, settings=settings)


def test_turn_8_recalls_a_fact_from_turn_1_through_the_archive(llama_backend, agentlong_home):
    app = real_app(llama_backend, flash_turns=3)
    chat = Chat(app, session="real-recall")
    replies = [chat.send(text) for text in SCRIPT]
    last = replies[-1]
    assert [r.turn for r in replies] == list(range(1, 9))
    assert all(r.status == "ok" and r.text.strip() for r in replies)
    flash = [m.n for m in last.memory_used if m.kind == "flash"]
    archived = [m.n for m in last.memory_used if m.kind == "archive"]
    assert 1 not in flash and flash == [5, 6, 7]
    assert 1 in archived, f"turn 1 was not retrieved: {last.memory_used}"
    assert last.strategy == "chat+memory"
    assert "4719" in last.text, last.text
    # the embeddings live in the real vector store (embedded Chroma under AGENTLONG_HOME)
    assert (agentlong_home / "chroma").is_dir()
    assert chat.archive.broken is None
    assert last.usage.prompt_tokens + 48 <= llama_backend.context_window()

    # a new Chat object on the same session (a later day) still has the memory
    chat.close()
    later = Chat(app, session="real-recall")
    assert later.resumed and len(later.history()) == 8
    again = later.send("What is my locker code?")
    assert 1 in [m.n for m in again.memory_used if m.kind == "archive"]
    assert "4719" in again.text, again.text


def test_a_large_turn_is_summarized_by_the_model(llama_backend):
    app = real_app(llama_backend, summary_threshold=120, summary_words=40)
    chat = Chat(app, session="real-summary")
    story = ("My grandmother Ottilie ran a bakery in Ghent for forty years. " * 3 +
             "She baked rye bread every morning at five, sold speculoos at Christmas, and in 1962 she won a "
             "regional prize for her sourdough. Her shop was on the Veldstraat, next to a bookshop. "
             "Please just acknowledge this in one short sentence.")
    reply = chat.send(story)
    turn = chat.history()[0]
    assert turn.summary, "a large turn must get a summary"
    assert len(turn.summary.split()) < len(turn.raw_text().split())
    assert "Ottilie" in turn.summary or "bakery" in turn.summary.lower(), turn.summary
    assert reply.usage.calls == 2  # the answer and the summary
