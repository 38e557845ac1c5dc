"""Chain-of-agents on the fake backend: note passing, verification, compression, 2K window, resume,
bad input, progress events, code citations. Real-model runs are in test_graphs_real.py."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from agentlong.backends.fake import FakeBackend
from agentlong.errors import BackendError, ContextWindowExceeded, InputError, ParseError
from agentlong.events import EventBus, Progress, StepDone
from agentlong.graphs import chain_of_agents as coa
from agentlong.graphs.common import RunContext
from agentlong.llm import LLM
from agentlong.settings import Settings
from agentlong.types import Document

QUESTION = "What is the secret code?"
NEEDLE = "The secret code is 7421."


# -- test doubles -------------------------------------------------------------------------------------
def document(paragraphs: int = 60, needles: dict[int, str] | None = None, source: str = "book.txt") -> Document:
    """Filler paragraphs (~40 tokens each) with needle sentences planted at given paragraph numbers."""
    needles = needles if needles is not None else {paragraphs * 2 // 3: NEEDLE}
    paras = []
    for i in range(paragraphs):
        text = (f"Paragraph {i} tells of the grey sea. The sailors mended nets number {i} all day long. "
                f"Nothing else happened on day {i}.")
        if i in needles:
            text += " " + needles[i]
        paras.append(text)
    text = "\n\n".join(paras) + "\n"
    return Document(id=f"doc-{source}", source=source, text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


def last_document(prompt: str) -> str:
    """The chunk text: the last <document source=... lines=...> block of a prompt."""
    return re.findall(r'<document source="[^"]*" lines="[^"]*">\n(.*?)\n</document>', prompt, re.S)[-1]


def numbered_quotes(prompt: str) -> list[tuple[int, str]]:
    return [(int(n), q) for n, q in re.findall(r'^\[(\d+)\] "(.*)" \(', prompt, re.M)]


class Reader:
    """A scripted model: copies the sentences of its part that contain ``keyword``; answers from notes.

    ``invent`` adds a quote that is not in the text; ``extra`` copies that many filler sentences
    too (to grow notes); ``fail_at`` raises on that worker/map call once; ``bad_json_at`` returns
    broken JSON on every try at that call.
    """

    def __init__(self, keyword: str = "secret code", *, invent: bool = False, extra: int = 0,
                 fail_at: int | None = None, bad_json_at: int | None = None) -> None:
        self.keyword, self.invent, self.extra = keyword, invent, extra
        self.fail_at, self.bad_json_at = fail_at, bad_json_at
        self.counts: Counter = Counter()
        self.attempts = 0

    def __call__(self, messages):
        prompt = messages[-1].content
        if "Your previous reply was not valid JSON" in prompt:
            self.counts["repair"] += 1
            return "still { not json"
        if "are too long" in prompt:
            return self.compress(prompt)
        if "Merge these findings" in prompt:
            return self.collapse(prompt)
        if "took these notes" in prompt or "Findings from every part" in prompt:
            return self.answer(prompt)
        if "You are reading part" in prompt or "of a long text:\n<document" in prompt:
            return self.read(prompt)
        return self.direct(prompt)

    def _sentences(self, text: str) -> list[str]:
        return [s.strip() for s in re.findall(r"[^.\n]+\.?", text) if len(s.strip()) > 8]

    def read(self, prompt: str) -> dict | str:
        self.attempts += 1
        if self.attempts == self.fail_at:
            self.fail_at = None
            raise BackendError("simulated crash")
        if self.attempts == self.bad_json_at:
            self.bad_json_at = None  # this call and its repair retry fail; later calls are fine
            return "{ broken"
        self.counts["read"] += 1
        sentences = self._sentences(last_document(prompt))
        quotes = [s for s in sentences if self.keyword in s]
        quotes += [s for s in sentences if self.keyword not in s][: self.extra]
        if self.invent:
            quotes.append("The captain announced that the code had been changed to 9999.")
        facts = [f"The text says: {q}" for q in quotes if self.keyword in q][:3]
        return {"quotes": quotes[:4], "facts": facts, "score": 9 if facts else 0}

    def compress(self, prompt: str) -> dict:
        self.counts["compress"] += 1
        keep = [n for n, q in numbered_quotes(prompt) if self.keyword in q]
        return {"facts": ["Compressed: the code was found." if keep else "Nothing yet."], "keep": keep[:12]}

    def collapse(self, prompt: str) -> dict:
        self.counts["collapse"] += 1
        numbers = numbered_quotes(prompt)
        keep = [n for n, q in numbers if self.keyword in q] or [n for n, _ in numbers[:1]]
        return {"facts": [f"Merged {len(numbers)} quotes."], "keep": keep[:10]}

    def answer(self, prompt: str) -> dict | str:
        self.counts["answer"] += 1
        hits = [(n, q) for n, q in numbered_quotes(prompt) if self.keyword in q]
        if '"citations"' not in prompt:  # summary: plain text
            return "A summary of the sea. " + " ".join(f"[{n}]" for n, _ in hits)
        if not hits:
            return {"answer": "The notes do not say.", "citations": [], "found": False}
        n, quote = hits[0]
        return {"answer": f"{quote} [{n}]", "citations": [n], "found": True}

    def direct(self, prompt: str) -> dict | str:
        self.counts["direct"] += 1
        quotes = [s for s in self._sentences(prompt) if self.keyword in s]
        if '"quotes"' not in prompt:
            return "A short summary."
        return {"quotes": quotes, "answer": quotes[0] if quotes else "unknown", "found": bool(quotes)}


def make_ctx(reader: Reader, window: int = 2048, events: list | None = None, **chunking) -> tuple[RunContext, FakeBackend]:
    settings = Settings(model="fake", chunking=chunking) if chunking else Settings(model="fake")
    fake = FakeBackend(mode="keyed", responses={"": reader}, context_window=window)
    bus = EventBus([events.append] if events is not None else [])
    return RunContext(llm=LLM(fake, settings, bus), settings=settings, emit=bus), fake


def assert_calls_fit(fake: FakeBackend) -> None:
    for call in fake.calls:
        prompt = sum(fake.count_tokens(m.content) + 8 for m in call.messages)
        assert prompt + call.max_tokens <= fake.context_window(), (prompt, call.max_tokens)


def assert_citations_verify(answer, docs: list[Document]) -> None:
    texts = {d.id: d.text for d in docs}
    for c in answer.citations:
        ev = c.evidence
        assert texts[ev.doc_id][ev.char_start:ev.char_end] == ev.quote
        assert answer.evidence[c.n - 1] == ev


def worker_prompts(fake: FakeBackend) -> list[str]:
    return [c.messages[-1].content for c in fake.calls if "You are reading part" in c.messages[-1].content]


# -- behaviour ----------------------------------------------------------------------------------------
def test_note_passes_verified_quotes_to_later_workers_and_the_manager():
    doc = document(150, {20: NEEDLE, 120: "The secret code was later painted on the mast."})
    reader = Reader(invent=True)
    ctx, fake = make_ctx(reader)
    answer = coa.run(ctx, [doc], QUESTION, checkpoint=False, worker_note="full")
    prompts = worker_prompts(fake)
    n = len(prompts)
    assert n >= 4 and reader.counts["read"] == n
    first_hit = next(i for i, p in enumerate(prompts) if NEEDLE in last_document(p))
    for later in prompts[first_hit + 1:]:
        assert f'"{NEEDLE}"' in later.split("<document source=\"notes")[1]  # carried in the note
    assert all("9999" not in p.split("Part ")[0] for p in prompts)  # the invented quote never reached a note
    assert answer.text.startswith(NEEDLE) and answer.found
    assert answer.strategy == "chain-of-agents"
    assert [c.evidence.quote for c in answer.citations] == [NEEDLE]
    assert len(answer.evidence) == 2  # both planted sentences, in reading order
    assert answer.evidence[0].line_start == doc.text[: doc.text.index(NEEDLE)].count("\n") + 1
    assert_citations_verify(answer, [doc])
    assert_calls_fit(fake)
    assert [t.step for t in answer.trace] == [f"worker {i}/{n}" for i in range(1, n + 1)] + ["manager"]
    assert answer.usage.calls == n + 1 and answer.trace[0].usage.calls == 1


def test_unverifiable_quotes_are_dropped_and_reported_in_the_trace():
    doc = document(150, {})
    reader = Reader(invent=True)
    ctx, fake = make_ctx(reader)
    answer = coa.run(ctx, [doc], QUESTION, checkpoint=False)
    assert answer.evidence == [] and answer.citations == []
    assert all(t.detail.startswith("0/1 quotes verified") for t in answer.trace if t.step.startswith("worker"))
    assert not answer.found and answer.text.startswith("Not found")
    assert reader.counts["answer"] == 0  # nothing relevant: no manager call is paid for


@pytest.mark.parametrize("window,paragraphs,note", [(2048, 400, 200), (4096, 400, 200), (32768, 1500, 64)])
def test_every_call_fits_the_window_and_notes_are_compressed_by_a_model_call(window, paragraphs, note):
    doc = document(paragraphs, {40: NEEDLE, paragraphs - 50: "The secret code was painted red."})
    reader = Reader(extra=4)  # four filler quotes per part make the note grow past its budget
    ctx, fake = make_ctx(reader, window=window, note_tokens=note)
    answer = coa.run(ctx, [doc], QUESTION, checkpoint=False, worker_note="full")
    assert_calls_fit(fake)
    assert reader.counts["compress"] >= 1
    budget = coa.plan_budget(ctx.llm, [doc], QUESTION, "qa", None, worker_note="full")
    assert budget["note"] == note
    for prompt in worker_prompts(fake):
        if "<document source=\"notes" in prompt:
            note = prompt.split('<document source="notes')[1].split("</document>")[0]
            assert ctx.llm.tokens(note) <= budget["note"] + 16
    assert NEEDLE in [e.quote for e in answer.evidence]  # the compressor chose to keep it
    assert answer.found and any(t.step.startswith("compress note") for t in answer.trace)
    assert_citations_verify(answer, [doc])


def test_chunk_size_comes_from_the_window_minus_prompt_note_and_output():
    llm = LLM(FakeBackend(context_window=2048), Settings(model="fake"))
    doc = document(5)
    budget = coa.plan_budget(llm, [doc], QUESTION, "qa", None, worker_note="full")
    assert budget["chunk"] + budget["fixed_worker"] + budget["note"] + budget["worker_out"] <= 2048 * 0.95
    blind = coa.plan_budget(llm, [doc], QUESTION, "qa", None)  # auto: question workers do not see the note
    assert blind["worker_note"] == "none" and blind["chunk"] > budget["chunk"] + budget["note"] // 2
    longer = coa.plan_budget(llm, [doc], QUESTION + " Also " * 60, "qa", None, worker_note="full")
    assert longer["chunk"] < budget["chunk"]  # a longer question leaves less room for text
    assert coa.plan_budget(llm, [doc], QUESTION, "qa", None, chunk_tokens=100)["chunk"] == 100


def test_resume_after_a_crash_continues_at_the_next_worker_and_gives_the_same_answer(tmp_path):
    doc = document(150, {90: NEEDLE})
    ref_ctx, _ = make_ctx(Reader())
    reference = coa.run(ref_ctx, [doc], QUESTION, checkpoint=tmp_path / "ref.sqlite")
    n = sum(1 for t in reference.trace if t.step.startswith("worker"))
    assert n >= 4

    reader = Reader(fail_at=3)
    ctx, _ = make_ctx(reader)
    with pytest.raises(BackendError, match="simulated crash"):
        coa.run(ctx, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    assert reader.counts["read"] == 2
    ctx2, fake2 = make_ctx(reader)
    resumed = coa.run(ctx2, [doc], QUESTION, checkpoint=tmp_path / "cp.sqlite")
    assert reader.counts["read"] == n  # workers 1-2 were not paid for again
    assert len(worker_prompts(fake2)) == n - 2
    assert resumed.text == reference.text and resumed.citations == reference.citations
    assert resumed.evidence == reference.evidence
    assert [t.step for t in resumed.trace] == [t.step for t in reference.trace]
    assert resumed.usage.calls == n - 2 + 1  # this run's spend only


def test_malformed_worker_json_is_repaired_once_then_raises_a_parse_error_naming_the_worker():
    reader = Reader(bad_json_at=2)
    ctx, fake = make_ctx(reader)
    with pytest.raises(ParseError, match=r"worker 2/\d+"):
        coa.run(ctx, [document(150)], QUESTION, checkpoint=False)
    assert reader.counts["repair"] == 1


def test_short_document_is_answered_directly_in_one_call():
    doc = Document(id="s", source="short.txt", text=f"Intro line.\nWe met at noon. {NEEDLE}\n", sha256="s1")
    reader = Reader()
    ctx, fake = make_ctx(reader)
    answer = coa.run(ctx, [doc], QUESTION, checkpoint=False)
    assert len(fake.calls) == 1 and reader.counts["direct"] == 1
    assert answer.text == NEEDLE and answer.citations[0].evidence.where() == "short.txt:2"
    assert [t.step for t in answer.trace] == ["direct answer"]


@pytest.mark.parametrize("docs,question,message", [
    ([], QUESTION, "empty"),
    ([Document(id="e", source="e.txt", text=" \n\t ", sha256="e")], QUESTION, "empty"),
    (None, "", "question is empty"),
    (None, "   ", "question is empty"),
    (None, "why " * 10_000, "exceeds its budget"),
])
def test_bad_input_gives_a_clear_error_before_any_call(docs, question, message):
    reader = Reader()
    ctx, fake = make_ctx(reader)
    with pytest.raises(InputError, match=message) as info:
        coa.run(ctx, [document(30)] if docs is None else docs, question, checkpoint=False)
    assert info.value.hint and "\n" not in info.value.one_line()
    assert fake.calls == []


def test_a_window_too_small_for_the_instructions_is_a_clear_error():
    ctx, fake = make_ctx(Reader(), window=600)
    with pytest.raises(ContextWindowExceeded, match="600-token context"):
        coa.run(ctx, [document(150)], QUESTION, checkpoint=False)
    assert fake.calls == []


def test_a_summary_longer_than_the_window_allows_is_refused_up_front():
    ctx, fake = make_ctx(Reader(), window=2048)
    with pytest.raises(InputError, match="2000-word summary") as info:
        coa.run(ctx, [document(200)], "", task="summary", words=2000, checkpoint=False)
    assert "at most ~" in info.value.hint and fake.calls == []


def test_summary_task_writes_the_summary_from_the_last_note():
    reader = Reader(keyword="sea", extra=0)
    ctx, fake = make_ctx(reader)
    answer = coa.run(ctx, [document(150, {})], "", task="summary", words=120, checkpoint=False)
    final = fake.calls[-1]
    assert "about 120 words" in final.messages[-1].content and final.schema is None
    assert final.max_tokens == int(120 * 1.5) + 48
    assert answer.text.startswith("A summary of the sea.") and answer.citations
    assert_citations_verify(answer, [document(150, {})])


def test_progress_and_step_events_for_the_cli():
    events: list = []
    ctx, _ = make_ctx(Reader(), events=events)
    answer = coa.run(ctx, [document(150)], QUESTION, checkpoint=False)
    n = sum(1 for t in answer.trace if t.step.startswith("worker"))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(e.task, e.done, e.total) for e in progress] == [("workers", i, n) for i in range(1, n + 1)]
    assert all(e.detail.startswith("note ") for e in progress)
    assert [e.step for e in events if isinstance(e, StepDone)][-1] == "manager"


def test_code_documents_cite_file_and_line():
    lines = [f"def helper_{i}(x):\n    return x + {i}\n\n" for i in range(80)]
    lines.insert(50, "def secret():\n    # the secret code is read from the VAULT_KEY environment variable\n"
                     "    return os.environ['VAULT_KEY']\n\n")
    text = "import os\n\n" + "".join(lines)
    doc = Document(id="c", source="pkg/vault.py", text=text, sha256="c1", kind="code",
                   metadata={"language": "python"})
    ctx, fake = make_ctx(Reader())
    answer = coa.run(ctx, [doc], "Where does the secret code come from?", chunk_tokens=300, checkpoint=False)
    assert len(worker_prompts(fake)) >= 3
    line = text[: text.index("# the secret code")].count("\n") + 1
    assert answer.citations and answer.citations[0].evidence.where() == f"pkg/vault.py:{line}"
    assert_citations_verify(answer, [doc])


def test_several_documents_are_read_in_order_with_their_own_sources():
    a = document(40, {}, source="a.txt")
    b = document(40, {20: NEEDLE}, source="b.txt")
    ctx, fake = make_ctx(Reader())
    answer = coa.run(ctx, [a, b], QUESTION, checkpoint=False)
    assert answer.citations[0].evidence.source == "b.txt"
    assert_citations_verify(answer, [a, b])
    sources = [re.search(r'<document source="([^"]+)" lines', p).group(1) for p in worker_prompts(fake)]
    assert sources == sorted(sources) and set(sources) == {"a.txt", "b.txt"}


def test_reworded_quotes_snap_to_the_real_sentence_and_mixed_inventions_are_dropped():
    from agentlong.graphs.notes import verify_quotes
    from agentlong.types import Chunk

    text = ("It rained all week.\n\nMr. Bingley's favourite horse was a grey mare called Moonlight. "
            "He wore a blue coat and rode a black horse.\n")
    chunk = Chunk(doc_id="d", source="p.txt", index=0, text=text, char_start=100, char_end=100 + len(text),
                  line_start=10, line_end=12)
    found = verify_quotes(["Moonlight is a grey mare called Moonlight.",  # reworded: snapped
                           "The grey mare Moonlight had a blue coat and a black horse.",  # two sentences mixed
                           "It rained all week."], chunk)  # exact
    assert [(e.quote, e.match, e.line_start) for e in found] == [
        ("Mr. Bingley's favourite horse was a grey mare called Moonlight.", "fuzzy", 12),
        ("It rained all week.", "exact", 10)]
    assert found[0].char_start == 100 + text.index("Mr. Bingley")


@pytest.mark.parametrize("task,view,shows_facts,shows_quotes", [
    ("qa", "auto", False, False), ("summary", "auto", True, False), ("qa", "facts", True, False),
    ("qa", "none", False, False), ("summary", "full", True, True)])
def test_what_workers_see_of_the_note(task, view, shows_facts, shows_quotes):
    reader = Reader(keyword="secret code")
    ctx, fake = make_ctx(reader)
    doc = document(150, {10: NEEDLE})
    answer = coa.run(ctx, [doc], QUESTION if task == "qa" else "", task=task, words=100, checkpoint=False,
                     worker_note=view)
    later = worker_prompts(fake)[-1]
    assert ("Findings:" in later) == shows_facts
    assert (f'"{NEEDLE}"' in later) == shows_quotes
    assert NEEDLE in [e.quote for e in answer.evidence]  # the manager always gets the quotes


def test_question_facts_without_a_verified_quote_are_not_kept():
    class Chatty(Reader):
        def read(self, prompt):
            reply = super().read(prompt)
            reply["facts"].append(f"Part {self.counts['read']} hints the code might be 1234.")  # ungrounded
            return reply

    reader = Chatty()
    ctx, fake = make_ctx(reader)
    coa.run(ctx, [document(150, {90: NEEDLE})], QUESTION, checkpoint=False)
    manager = fake.calls[-1].messages[-1].content
    assert reader.counts["read"] >= 4 and manager.count("1234") == 1  # only the part whose quote verified


def test_an_answer_without_citations_cites_the_quotes_it_comes_from():
    class Uncited(Reader):
        def answer(self, prompt):
            reply = super().answer(prompt)
            return {**reply, "answer": "It is 7421.", "citations": []}

    ctx, fake = make_ctx(Uncited())
    doc = document(150, {20: "The weather was secret code grey.", 90: NEEDLE})
    answer = coa.run(ctx, [doc], QUESTION, checkpoint=False)
    assert [c.evidence.quote for c in answer.citations] == [NEEDLE] and answer.text == "It is 7421. [2]"
    assert answer.trace[-1].detail == "1 citations (inferred)"


def test_citation_markers_are_checked_against_the_quotes():
    from agentlong.graphs.notes import cite

    assert cite("Blue [1] and green [7].", [2], available=3) == ("Blue [1] and green. [2]", [1, 2])
    assert cite("Nothing cited.", [], available=0) == ("Nothing cited.", [])
