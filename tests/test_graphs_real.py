"""Chain-of-agents and map-reduce end to end on the default local GGUF (llama-cpp-python, n_ctx 4096).

Small generated village stories (~400 words, read in 2-3 forced parts): a planted fact, a two-hop
question (the captain is named in part 1, his ship's cargo told in the last part) and a count over
the whole text. Answers must be right and every citation a verbatim span of the source.
5-10 s each on 2 idle cores; a minute or more each on a machine busy with other model runs.
"""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from agentlong.graphs import chain_of_agents as coa
from agentlong.graphs import map_reduce as mr
from agentlong.graphs.common import RunContext
from agentlong.llm import LLM
from agentlong.settings import Settings
from agentlong.types import Answer, Document

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

_PEOPLE = ["the baker", "the schoolmistress", "the ferryman", "a fisherman", "the mayor's clerk", "the innkeeper"]
_DEEDS = ["mended the torn nets", "carried bread up the steep lane", "counted the crates of herring",
          "painted the blue shutters", "watched the grey clouds roll in from the west", "swept the sand from the steps",
          "tied the boats tighter before the storm", "sold fish to the neighbours", "read the shipping news aloud"]
_TIMES = ["Early one morning", "Late in the afternoon", "After the tide turned", "Before supper", "At dawn", "At noon",
          "In the evening"]


def story(plants: dict[int, str], paragraphs: int = 12) -> Document:
    """Deterministic filler prose about a fishing village (no names, no places), with each planted
    sentence as the second sentence of its paragraph."""
    rng = random.Random(7)
    paras = []
    for i in range(paragraphs):
        sentences = [f"{rng.choice(_TIMES)}, {rng.choice(_PEOPLE)} {rng.choice(_DEEDS)}." for _ in range(3)]
        if i in plants:
            sentences.insert(1, plants[i])
        paras.append(" ".join(sentences))
    text = "\n\n".join(paras) + "\n"
    return Document(id="story", source="village.txt", text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


def make_ctx(backend) -> RunContext:
    settings = Settings(model="llama:qwen2.5-coder-0.5b")
    return RunContext(llm=LLM(backend, settings), settings=settings)


def check_verbatim(answer: Answer, document: Document) -> None:
    assert answer.found and answer.citations, answer.text
    for ev in [c.evidence for c in answer.citations] + list(answer.evidence):
        assert document.text[ev.char_start:ev.char_end] == ev.quote
        assert ev.source == "village.txt" and ev.line_start == document.text.count("\n", 0, ev.char_start) + 1


def parts(answer: Answer) -> int:
    return sum(1 for t in answer.trace if t.step.startswith("read"))


def test_chain_of_agents_finds_and_cites_the_planted_fact(llama_backend):
    fact = "The lighthouse keeper's cat was named Biscuit."
    doc = story({8: fact})
    assert 300 <= len(doc.text.split()) <= 500
    answer = coa.run(make_ctx(llama_backend), [doc], "What was the name of the lighthouse keeper's cat?",
                     chunk_tokens=300, checkpoint=False)
    assert answer.strategy == "chain-of-agents" and parts(answer) >= 2
    assert "biscuit" in answer.text.lower(), answer.text
    check_verbatim(answer, doc)
    assert fact in [c.evidence.quote for c in answer.citations]
    assert answer.trace[-1].step == "answer" and answer.usage.prompt_tokens > 0


def test_chain_of_agents_answers_a_two_hop_question(llama_backend):
    bridge = "Captain Obed Sturgis commanded a brig called the Morning Wren."
    fact = "The Morning Wren carried 340 barrels of sperm oil home from the Azores."
    doc = story({1: bridge, 10: fact})
    answer = coa.run(make_ctx(llama_backend), [doc],
                     "How many barrels of sperm oil did Captain Obed Sturgis's ship carry home?", chunk_tokens=200,
                     checkpoint=False)
    assert parts(answer) >= 3
    assert re.search(r"\b340\b", answer.text), answer.text
    check_verbatim(answer, doc)
    assert fact in [c.evidence.quote for c in answer.citations]


def test_map_reduce_counts_and_names_the_towns(llama_backend):
    plants = {1: "Miss Wren planted an apple tree in Ashby.", 5: "Miss Wren planted an apple tree in Carrow.",
              7: "In Ashby, Miss Wren planted a second apple tree.", 10: "Miss Wren planted an apple tree in Dunmore."}
    doc = story(plants)
    answer = mr.run(make_ctx(llama_backend), [doc], "In how many towns did Miss Wren plant an apple tree? Name them.",
                    chunk_tokens=200, checkpoint=False)
    assert answer.strategy == "map-reduce" and parts(answer) >= 3
    count, _, listed = answer.text.partition(" — ")
    assert count == "3", answer.text  # Ashby twice is one town
    assert {"Ashby", "Carrow", "Dunmore"} == set(re.findall(r"Ashby|Carrow|Dunmore", listed))
    check_verbatim(answer, doc)
    assert {c.evidence.quote for c in answer.citations} <= set(plants.values())
    assert {plants[1], plants[5], plants[10]} <= {c.evidence.quote for c in answer.citations}
    assert answer.trace[-1].detail.endswith("(counted in code)")
