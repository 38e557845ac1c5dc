"""Map-reduce (the tree fold) on the fake backend: Send fan-out over every part, independent readings
(no hints), counts computed in code from distinct items, reduction of picked sentences that do not fit
the answer step, concurrency cap, resume, unreadable replies, summaries, bad input.
Real-model runs are in test_graphs_real.py."""

from __future__ import annotations

import threading

import pytest
from test_chain_of_agents import (
    NEEDLE,
    QUESTION,
    SUMMARY,
    Reader,
    all_sentences,
    assert_calls_fit,
    assert_citations_verify,
    document,
    evidence_of,
    hints_of,
    make_ctx,
    mode_of,
    read_prompts,
    shown_units,
    words_of,
)

from agentlong.errors import BackendError, InputError
from agentlong.events import Notice, Progress
from agentlong.evidence.budget import read_tokens
from agentlong.evidence.cite import NOT_FOUND
from agentlong.evidence.units import Unit
from agentlong.graphs import fold
from agentlong.graphs import map_reduce as mr
from agentlong.types import Document
from agentlong.wordcount import bounds, count_words

TOWNS_Q = "In how many towns did Miss Wren plant an apple tree? Name them."


def test_every_part_is_read_by_its_own_call_and_the_answer_cites_the_exact_span():
    later = "The code was later painted on the mast."
    doc = document(150, {20: NEEDLE, 120: later})
    reader = Reader({"secret code is": "7421", "painted on the mast": "painted on the mast"})
    events: list = []
    ctx, fake = make_ctx(reader, events=events)
    answer = mr.run(ctx, [doc], QUESTION, checkpoint=False)
    prompts = read_prompts(fake)
    n = len(prompts)
    assert n >= 4 and reader.counts["read"] == n
    assert sorted(s for p in prompts for s in shown_units(p)) == sorted(all_sentences([doc]))
    assert answer.strategy == "map-reduce" and answer.found
    assert [e.quote for e in answer.evidence] == [NEEDLE, later]
    answer_prompt = fake.calls[-1].messages[-1].content
    assert [t for _, t in evidence_of(answer_prompt)] == [NEEDLE, later]
    assert "grey sea" not in answer_prompt  # only the selected sentences reach the answer step
    assert answer.text == "painted on the mast [1]."
    assert [c.evidence.quote for c in answer.citations] == [later]
    assert_citations_verify(answer, [doc])
    assert_calls_fit(fake)
    progress = [e for e in events if isinstance(e, Progress) and e.task == "read"]
    assert sorted(e.done for e in progress) == list(range(1, n + 1)) and {e.total for e in progress} == {n}
    steps = [t.step for t in answer.trace]
    assert sorted(steps[:-1]) == sorted(f"read {i}/{n}" for i in range(1, n + 1)) and steps[-1] == "answer"


def test_parts_are_read_independently_so_no_reading_sees_another_parts_names():
    bridge, fact = "Captain Hale commanded the brig Sea Lantern.", "The Sea Lantern carried 300 barrels of oil."
    doc = document(150, {10: bridge, 140: fact})

    def answer(evidence):
        return next((f"300 barrels [{n}]." for n, t in evidence if "300" in t), "The sentences do not say.")

    reader = Reader({"Captain Hale commanded": "the brig Sea Lantern", "Sea Lantern carried": "300 barrels"},
                    needs={"Sea Lantern carried": "Sea Lantern"}, answer=answer)
    ctx, fake = make_ctx(reader)
    result = mr.run(ctx, [doc], "How many barrels of oil did Captain Hale's ship carry?", checkpoint=False)
    assert all(hints_of(p) == [] for p in read_prompts(fake))
    assert [e.quote for e in result.evidence] == [bridge]  # the cargo needed the ship's name: not selected
    assert not result.found and result.text == NOT_FOUND


def test_a_count_is_computed_in_code_from_distinct_items_across_parallel_parts():
    plants = {10: "Miss Wren planted an apple tree in Ashby.", 60: "Miss Wren planted an apple tree in Carrow.",
              100: "In Ashby, Miss Wren planted an apple tree.", 140: "Miss Wren planted an apple tree in Dunmore."}
    doc = document(150, plants)
    # each reading names its town twice over ("Ashby" and "the town of Ashby"): still one unit, one item
    reader = Reader({"in Ashby": "Ashby", "Ashby,": "the town of Ashby", "Wren planted an apple tree in A": "Ashby",
                     "in Carrow": "Carrow", "in Dunmore": "Dunmore"})
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [doc], TOWNS_Q, checkpoint=False)
    assert answer.found and answer.text == "3 — Ashby [1][2]; Carrow [3]; Dunmore [4]."
    quotes = [c.evidence.quote for c in answer.citations]
    assert quotes == [plants[10], plants[100], plants[60], plants[140]] and len(set(quotes)) == len(quotes)
    assert reader.counts["answer"] == 0 and answer.usage.calls == reader.counts["read"]
    assert all(mode_of(p) == "aggregate" for p in read_prompts(fake))
    assert answer.trace[-1].detail == "3 items from 4 selected units (counted in code)"
    assert_citations_verify(answer, [doc])


def test_how_many_times_counts_every_occurrence():
    sightings = {5: "The white owl was seen at the mill.", 70: "The white owl was seen at the mill again.",
                 110: "The white owl was seen on the church roof."}
    reader = Reader({"owl was seen at the mill": "the mill", "owl was seen on": "the church roof"})
    ctx, _ = make_ctx(reader)
    answer = mr.run(ctx, [document(150, sightings)], "How many times was the white owl seen?", checkpoint=False)
    assert answer.text.startswith("3 — ") and len(answer.citations) == 3
    ctx, _ = make_ctx(reader)
    places = mr.run(ctx, [document(150, sightings)], "At how many places was the white owl seen?", checkpoint=False)
    assert places.text.startswith("2 — ") and len(places.citations) == 3


def rows(texts: list[str], score: float = 0.0) -> list[dict]:
    out, pos = [], 0
    for i, t in enumerate(texts):
        u = Unit(doc_id="d", source="s.txt", chunk_index=i // 5, char_start=pos, char_end=pos + len(t),
                 line_start=i + 1, line_end=i + 1, text=t)
        out.append({"unit": u.model_dump(), "label": "", "score": score - i, "exact": True})
        pos += len(t) + 1
    return out


LONG = " ".join(["and then the long grey boats came slowly back into the harbour under rain"] * 4)


def test_picked_sentences_too_big_for_the_answer_are_reduced_by_further_readings():
    texts = [f"Sentence {i} {LONG}." for i in range(40)]
    texts[7] = f"KEY the secret code is 7421, {LONG}."
    texts[33] = f"KEY the code was changed in May, {LONG}."
    reader = Reader({"KEY": None})
    ctx, fake = make_ctx(reader, window=8192)
    picked = rows(texts)
    kept = fold.reduce_units(ctx.llm, QUESTION, "summary", picked, budget=600)
    assert [r["unit"]["text"] for r in kept] == [texts[7], texts[33]]
    room = read_tokens(ctx.llm, QUESTION, "summary")
    assert reader.counts["read"] >= 4  # the 40 sentences (~3,000 tokens) were read again in groups
    assert all(ctx.llm.tokens("\n".join(shown_units(p))) <= room for p in read_prompts(fake))
    assert sorted(s for p in read_prompts(fake) for s in shown_units(p)) == sorted(texts)


def test_a_reduction_that_selects_nothing_keeps_the_best_scored_that_fit():
    texts = [f"Sentence {i} {LONG}." for i in range(40)]
    ctx, _ = make_ctx(Reader({}), window=8192)
    kept = fold.reduce_units(ctx.llm, QUESTION, "summary", rows(texts), budget=600)
    assert kept and sum(ctx.llm.tokens(r["unit"]["text"]) + 8 for r in kept) <= 600
    assert [r["unit"]["text"] for r in kept] == texts[: len(kept)]  # the highest scores are the first rows


ADJ = "red blue green amber black white silver golden copper crimson violet scarlet ochre ivory olive".split()
NOUN = ("apple anchor barrel candle drum feather goblet harp kettle lantern mirror needle oar parrot quill ribbon "
        "saddle trumpet urn violin wagon yoke bell comb flute glove hammer ink jug kite").split()


def test_a_summary_whose_picked_sentences_overflow_is_reduced_then_written_to_length():
    points = {i: f"The {a} {n} was counted." for i, (a, n) in enumerate((a, n) for a in ADJ for n in NOUN)}
    doc = document(len(points), points)  # 450 paragraphs, each with one point worth picking
    reader = Reader({"was counted": None},
                    summary=words_of(100, "The sailors counted the red apple by the grey sea every day."))
    ctx, fake = make_ctx(reader, window=2048)
    answer = mr.run(ctx, [doc], "", task="summary", words=100, checkpoint=False)
    parts = sum(1 for t in answer.trace if t.step.startswith("read"))
    assert parts >= 12 and reader.counts["read"] > parts  # the reduction read the picked sentences again
    summary_call = next(c for c in fake.calls if SUMMARY in c.messages[-1].content)
    shown = [t for _, t in evidence_of(summary_call.messages[-1].content)]
    assert 0 < len(shown) < 4 * parts and all(t.endswith("was counted.") for t in shown)
    assert_calls_fit(fake)
    assert bounds(100)[0] <= count_words(answer.text) <= bounds(100)[1]
    assert answer.citations and {c.evidence.quote for c in answer.citations} <= set(shown)
    assert_citations_verify(answer, [doc])


def test_parallel_reads_never_exceed_the_backend_concurrency():
    in_flight, peak, lock = [0], [0], threading.Lock()
    reader = Reader()

    def tracked(messages):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            return reader(messages)
        finally:
            with lock:
                in_flight[0] -= 1

    ctx, fake = make_ctx(reader)
    fake.responses = {"": tracked}
    fake.max_concurrency = 2
    fake.delay_s = 0.01  # widen each call so overlaps would show; the assertion does not depend on timing
    answer = mr.run(ctx, [document(300)], QUESTION, checkpoint=False)
    assert answer.found and 1 <= peak[0] <= 2


def test_resume_after_a_crash_rereads_only_the_unfinished_parts(tmp_path):
    doc = document(150, {90: NEEDLE})
    ref_ctx, _ = make_ctx(Reader())
    reference = mr.run(ref_ctx, [doc], QUESTION, checkpoint=tmp_path / "ref.sqlite")
    n = sum(1 for t in reference.trace if t.step.startswith("read"))

    reader = Reader(fail_at=3)
    ctx, fake = make_ctx(reader)
    fake.max_concurrency = 1  # deterministic order: parts 1-2 finish, part 3 crashes
    with pytest.raises(BackendError, match="simulated crash"):
        mr.run(ctx, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    done_before = reader.counts["read"]
    ctx2, fake2 = make_ctx(reader)
    resumed = mr.run(ctx2, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    assert reader.counts["read"] == n  # finished parts were not paid for again
    assert len(read_prompts(fake2)) == n - done_before and done_before >= 2
    assert resumed.text == reference.text and resumed.evidence == reference.evidence
    assert sorted(t.step for t in resumed.trace) == sorted(t.step for t in reference.trace)


def test_nothing_relevant_anywhere_is_not_found_without_an_answer_call():
    reader = Reader()
    ctx, _ = make_ctx(reader)
    answer = mr.run(ctx, [document(150, {})], QUESTION, checkpoint=False)
    assert not answer.found and answer.text == NOT_FOUND and answer.citations == []
    assert reader.counts["answer"] == 0
    ctx, _ = make_ctx(Reader({}))
    counted = mr.run(ctx, [document(150, {})], TOWNS_Q, checkpoint=False)
    assert not counted.found and counted.text == NOT_FOUND


def test_an_unreadable_reply_skips_one_part_and_the_others_still_answer():
    reader = Reader(bad_json_at=2)
    events: list = []
    ctx, fake = make_ctx(reader, events=events)
    fake.max_concurrency = 1
    answer = mr.run(ctx, [document(150, {120: NEEDLE})], QUESTION, checkpoint=False)
    assert reader.counts["repair"] == 1
    assert [e.message.split(":")[0] for e in events if isinstance(e, Notice) and e.level == "warning"] == [
        f"read 2/{reader.counts['read'] + 1}"]
    assert answer.found and [c.evidence.quote for c in answer.citations] == [NEEDLE]


def test_summary_reads_every_part_and_writes_the_requested_length():
    doc = document(150, {20: "A storm sank the old ferry."})
    reader = Reader({"storm sank": "A storm sank the old ferry."},
                    summary=words_of(80, "The storm sank the old ferry that winter."),
                    more=words_of(80, "The storm sank the old ferry that winter."))
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [doc], "", task="summary", words=150, checkpoint=False)
    final = next(c for c in fake.calls if SUMMARY in c.messages[-1].content)
    assert "about 150 words" in final.messages[-1].content and final.max_tokens == int(150 * 1.6) + 48
    assert bounds(150)[0] <= count_words(answer.text) <= bounds(150)[1] and reader.counts["continue"] == 1
    assert [c.evidence.quote for c in answer.citations] == ["A storm sank the old ferry."]
    assert_citations_verify(answer, [doc])


@pytest.mark.parametrize("docs,question,message", [
    ([], QUESTION, "empty"),
    (None, "", "question is empty"),
    (None, "why " * 2_000, "too long"),
])
def test_bad_input_gives_a_clear_error_before_any_call(docs, question, message):
    ctx, fake = make_ctx(Reader())
    with pytest.raises(InputError, match=message):
        mr.run(ctx, [document(30)] if docs is None else docs, question, checkpoint=False)
    assert fake.calls == []


def test_short_document_is_one_reading_and_one_answer():
    doc = Document(id="s", source="short.txt", text=f"Intro line.\n{NEEDLE}\n", sha256="s2")
    reader = Reader()
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [doc], QUESTION, checkpoint=False)
    assert len(fake.calls) == 2 and answer.citations[0].evidence.where() == "short.txt:2"
    assert shown_units(read_prompts(fake)[0]) == ["Intro line.", NEEDLE]
