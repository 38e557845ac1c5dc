"""The writer on the real default GGUF (``llama_backend`` fixture): ~600 words in 3 sections.

What the writer guarantees, and what this checks: the model's plan is rescaled so budgets sum to
the target; the Markdown has one heading per section; no section is longer than its budget +15%;
a section below -15% says why (the extension stalled, or hit the call cap) and its attempts
show it; every section was reviewed; no prompt scaffolding leaks into the text.
"""

from __future__ import annotations

import pytest

from agentlong import Agentlong
from agentlong.graphs.writer import WriterOptions, write
from agentlong.graphs.writer_nodes import rebalanced
from agentlong.wordcount import bounds, count_words

pytestmark = pytest.mark.slow


def test_real_model_writes_600_words_in_3_sections(llama_backend):
    app = Agentlong(model="llama:qwen2.5-coder-0.5b", backend=llama_backend)
    options = WriterOptions(sections=3, max_calls=3, max_revisions=1)
    res = write(app, "Write a short guide for beginners on keeping houseplants alive.", words=600,
                options=options, checkpoint=False)

    assert len(res.plan) == 3 and sum(s.budget for s in res.plan) == 600
    assert [s.title for s in res.outline[:3]] == [s.title for s in res.plan]  # top-up sections only come after
    assert len(res.outline) <= 3 + options.top_up * 10  # top-up rounds are capped
    assert res.text.startswith("# ") and res.text.count("\n## ") == len(res.outline)
    assert [s.title for s in res.sections] == [s.title for s in res.outline]
    carried = [{**p.model_dump(), "planned": p.budget} for p in res.plan]  # replay the carry with the words really written
    for i in range(len(res.plan) - 1):
        carried = rebalanced(carried, i + 1, 600 - sum(x.words for x in res.sections[:i + 1]))
    assert [s.budget for s in res.sections[:3]] == [c["budget"] for c in carried]
    for s in res.sections:
        lo, hi = bounds(s.budget)
        assert s.words == count_words(s.text) and s.words <= hi
        assert s.within_tolerance == (lo <= s.words <= hi)
        drafting = [a for a in s.attempts if a.action in ("draft", "continue")]
        if s.within_tolerance:
            assert s.length == "on_target"
        elif s.length == "stalled":
            assert "stalled" in s.attempts[-1].note
        else:
            assert s.length == "call_cap" and len(drafting) >= options.max_calls
        assert any(v.by == "model" for v in s.verdicts)
        assert s.revisions <= 1
        assert "<document>" not in s.text and "write this section now" not in s.text
    assert res.words >= 0.3 * 600  # the model writes something of substance
    assert res.usage.calls >= 1 + 3 * 2 and res.record is not None


def test_writing_from_an_indexed_corpus_cites_it(tmp_path):
    """Sources by corpus name: real embedder + embedded Chroma, a scripted model that copies a source fact."""
    from agentlong.backends.fake import FakeBackend
    from agentlong.events import EventBus
    from agentlong.store.corpus import index_paths

    notes = tmp_path / "notes.txt"
    notes.write_text("Ferns like humid air and indirect light.\n\nA snake plant survives weeks without water.\n")

    def respond(messages):
        prompt = messages[-1].content
        if "Review the section" in prompt:
            return {"summary": "About snake plants.", "problems": [], "passes": True}
        return "A snake plant survives weeks without water, so it suits busy owners."

    fake = FakeBackend(mode="keyed", responses={}, default=respond)
    app = Agentlong(model="fake", backend=fake)
    index_paths(app, [str(notes)], name="plant-notes", emit=EventBus())
    res = write(app, "Write about easy houseplants.", words=60, outline=["Snake plants need little water"],
                sources=["plant-notes"], options=WriterOptions(max_calls=1), checkpoint=False)
    prompt = next(c.prompt for c in fake.calls if "Write section" in c.prompt)
    assert "<document>" in prompt and "snake plant survives weeks" in prompt
    assert "[1]" in res.sections[0].text and res.citations[0].evidence.source.endswith("notes.txt")
    assert "## Sources" in res.text and "notes.txt:" in res.text
