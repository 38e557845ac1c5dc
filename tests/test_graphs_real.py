"""Chain-of-agents and map-reduce end to end on the default local GGUF (llama-cpp-python, n_ctx 4096).

A ~1.5K-token story with one planted fact, read in 3-4 forced chunks of 450 tokens; the answer must contain the
fact and every citation must be a verbatim span of the source. A few minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from agentlong.graphs import chain_of_agents as coa
from agentlong.graphs import map_reduce as mr
from agentlong.graphs.common import RunContext
from agentlong.llm import LLM
from agentlong.settings import Settings
from agentlong.types import Document

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # ~1 min each when the machine is idle

FACT = "The lighthouse keeper's cat was named Biscuit."
QUESTION = "What was the name of the lighthouse keeper's cat?"
CHUNK_TOKENS = 450

_PEOPLE = ["The baker", "Old Tom", "The schoolmistress", "The ferryman", "A fisherman", "The mayor's clerk"]
_DEEDS = ["mended the torn nets by the harbour wall", "carried bread up the steep lane", "counted the crates of herring",
          "painted the blue shutters of the inn", "watched the grey clouds roll in from the west",
          "swept the sand from the chapel steps", "tied the boats tighter before the storm",
          "sold apples at the Tuesday market", "read the shipping news aloud at the tavern"]
_TIMES = ["On Monday", "Early one morning", "Late in the afternoon", "After the tide turned", "Before supper",
          "During the long winter", "In the spring"]


def story(paragraphs: int = 30, fact_at: int = 19) -> Document:
    """Deterministic filler prose about a fishing village, with ``FACT`` planted in one paragraph."""
    rng = random.Random(7)
    paras = []
    for i in range(paragraphs):
        sentences = [f"{rng.choice(_TIMES)}, {rng.choice(_PEOPLE).lower()} {rng.choice(_DEEDS)}." for _ in range(3)]
        if i == fact_at:
            sentences.insert(1, FACT)
        paras.append(" ".join(sentences))
    text = "\n\n".join(paras) + "\n"
    return Document(id="story", source="village.txt", text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


@pytest.fixture(scope="module")
def doc(llama_backend) -> Document:
    document = story()
    tokens = llama_backend.count_tokens(document.text)
    assert 2 * CHUNK_TOKENS < tokens <= 4 * CHUNK_TOKENS  # 3-4 chunks
    return document


def make_ctx(backend) -> RunContext:
    settings = Settings(model="llama:qwen2.5-coder-0.5b")
    return RunContext(llm=LLM(backend, settings), settings=settings)


def check(answer, document: Document, strategy: str) -> None:
    assert answer.strategy == strategy
    assert "biscuit" in answer.text.lower(), answer.text
    assert answer.found and answer.citations
    for citation in answer.citations:
        ev = citation.evidence
        assert document.text[ev.char_start:ev.char_end] == ev.quote
        assert ev.source == "village.txt" and ev.line_start is not None
    assert any("Biscuit" in c.evidence.quote for c in answer.citations)
    assert answer.usage.calls >= 4 and answer.usage.prompt_tokens > 0


def test_chain_of_agents_finds_and_cites_the_planted_fact(llama_backend, doc):
    answer = coa.run(make_ctx(llama_backend), [doc], QUESTION, chunk_tokens=CHUNK_TOKENS, checkpoint=False)
    check(answer, doc, "chain-of-agents")
    assert [t.step for t in answer.trace][-1] == "manager"


def test_map_reduce_finds_and_cites_the_planted_fact(llama_backend, doc):
    answer = mr.run(make_ctx(llama_backend), [doc], QUESTION, chunk_tokens=CHUNK_TOKENS, checkpoint=False)
    check(answer, doc, "map-reduce")
    assert [t.step for t in answer.trace][-1] == "reduce"
