"""Map-reduce on the fake backend: Send fan-out, scored findings, collapse rounds, concurrency cap,
resume, 2K window, bad input. Real-model runs are in test_graphs_real.py."""

from __future__ import annotations

import threading

import pytest
from test_chain_of_agents import NEEDLE, QUESTION, Reader, assert_calls_fit, assert_citations_verify, document, make_ctx

from agentlong.errors import BackendError, InputError, ParseError
from agentlong.events import Progress
from agentlong.graphs import map_reduce as mr
from agentlong.types import Document


def map_prompts(fake) -> list[str]:
    return [c.messages[-1].content for c in fake.calls if "of a long text:\n<document" in c.messages[-1].content]


def test_maps_fan_out_over_every_chunk_and_the_reduce_cites_verified_quotes():
    doc = document(150, {20: NEEDLE, 120: "The secret code was later painted on the mast."})
    reader = Reader(invent=True)
    events: list = []
    ctx, fake = make_ctx(reader, events=events)
    answer = mr.run(ctx, [doc], QUESTION, checkpoint=False)
    n = len(map_prompts(fake))
    assert n >= 4 and reader.counts["read"] == n
    assert answer.strategy == "map-reduce" and answer.found
    assert answer.text.startswith(NEEDLE)
    assert [e.quote for e in answer.evidence] == [NEEDLE, "The secret code was later painted on the mast."]
    assert "9999" not in fake.calls[-1].messages[-1].content  # the invented quote was dropped
    assert_citations_verify(answer, [doc])
    assert_calls_fit(fake)
    reduce_prompt = fake.calls[-1].messages[-1].content
    assert "grey sea" not in reduce_prompt  # parts with nothing relevant (score 0, no quotes) were dropped
    progress = [e for e in events if isinstance(e, Progress) and e.task == "map"]
    assert sorted(e.done for e in progress) == list(range(1, n + 1)) and {e.total for e in progress} == {n}
    steps = [t.step for t in answer.trace]
    assert sorted(steps[:-1]) == sorted(f"map {i}/{n}" for i in range(1, n + 1)) and steps[-1] == "reduce"


@pytest.mark.parametrize("window,paragraphs,chunk", [(2048, 1500, None), (4096, 1500, 600)])
def test_findings_too_big_for_the_reduce_prompt_are_collapsed_in_rounds(window, paragraphs, chunk):
    doc = document(paragraphs, {30: NEEDLE, paragraphs - 30: "The secret code was painted red."})
    reader = Reader(extra=4)  # every part returns quotes, so findings pile up
    ctx, fake = make_ctx(reader, window=window)
    answer = mr.run(ctx, [doc], QUESTION, chunk_tokens=chunk, checkpoint=False)
    assert_calls_fit(fake)
    n = reader.counts["read"]
    rounds = {t.step.split(" group")[0] for t in answer.trace if t.step.startswith("collapse")}
    assert reader.counts["collapse"] >= 2 and len(rounds) >= 1
    assert len(rounds) <= mr.recursion_limit(n) // 2
    assert NEEDLE in [e.quote for e in answer.evidence]  # kept through every collapse
    budget = mr.plan_budget(ctx.llm, [doc], QUESTION, "qa", None)
    final = fake.calls[-1].messages[-1].content
    assert ctx.llm.tokens(final.split('<document source="findings">')[1]) <= budget["answer_in"] + 16
    assert_citations_verify(answer, [doc])


def test_recursion_limit_grows_with_log2_of_the_chunks():
    assert mr.recursion_limit(1) < mr.recursion_limit(16) < mr.recursion_limit(1000) <= 2 * 11 + 6


def test_parallel_maps_never_exceed_the_backend_concurrency():
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


def test_resume_after_a_crash_reruns_only_the_unfinished_maps(tmp_path):
    doc = document(150, {90: NEEDLE})
    ref_ctx, _ = make_ctx(Reader())
    reference = mr.run(ref_ctx, [doc], QUESTION, checkpoint=tmp_path / "ref.sqlite")
    n = sum(1 for t in reference.trace if t.step.startswith("map"))

    reader = Reader(fail_at=3)
    ctx, fake = make_ctx(reader)
    fake.max_concurrency = 1  # deterministic order: maps 1-2 finish, map 3 crashes
    with pytest.raises(BackendError, match="simulated crash"):
        mr.run(ctx, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    done_before = reader.counts["read"]
    ctx2, fake2 = make_ctx(reader)
    resumed = mr.run(ctx2, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    assert reader.counts["read"] == n  # finished maps were not paid for again
    assert len(map_prompts(fake2)) == n - done_before and done_before >= 2
    assert resumed.text == reference.text and resumed.evidence == reference.evidence
    assert sorted(t.step for t in resumed.trace) == sorted(t.step for t in reference.trace)


def test_nothing_relevant_anywhere_is_not_found_without_a_reduce_call():
    reader = Reader()
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [document(150, {})], QUESTION, checkpoint=False)
    assert not answer.found and answer.citations == [] and reader.counts["answer"] == 0


def test_summary_reads_every_part_and_writes_the_requested_length():
    reader = Reader(keyword="sea")
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [document(150, {})], "", task="summary", words=150, checkpoint=False)
    final = fake.calls[-1]
    assert "about 150 words" in final.messages[-1].content and final.max_tokens == int(150 * 1.5) + 48
    assert answer.text.startswith("A summary of the sea.") and answer.citations
    assert_citations_verify(answer, [document(150, {})])


def test_malformed_map_json_raises_a_parse_error_naming_the_map():
    reader = Reader(bad_json_at=2)
    ctx, fake = make_ctx(reader)
    fake.max_concurrency = 1
    with pytest.raises(ParseError, match=r"map 2/\d+"):
        mr.run(ctx, [document(150)], QUESTION, checkpoint=False)
    assert reader.counts["repair"] == 1


@pytest.mark.parametrize("docs,question,message", [
    ([], QUESTION, "empty"),
    (None, "", "question is empty"),
    (None, "why " * 10_000, "exceeds its budget"),
])
def test_bad_input_gives_a_clear_error_before_any_call(docs, question, message):
    ctx, fake = make_ctx(Reader())
    with pytest.raises(InputError, match=message):
        mr.run(ctx, [document(30)] if docs is None else docs, question, checkpoint=False)
    assert fake.calls == []


def test_short_document_is_answered_directly_in_one_call():
    doc = Document(id="s", source="short.txt", text=f"Intro line.\n{NEEDLE}\n", sha256="s2")
    reader = Reader()
    ctx, fake = make_ctx(reader)
    answer = mr.run(ctx, [doc], QUESTION, checkpoint=False)
    assert len(fake.calls) == 1 and answer.citations[0].evidence.where() == "short.txt:2"
