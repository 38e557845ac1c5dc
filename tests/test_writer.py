"""Writer control flow on the fake backend: budgets, rescale, extend/trim caps, review/revise caps,
resume after a crash, events, sources and citations, bad input, CLI. Real-model runs are in
test_writer_real.py."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from agentlong import Agentlong
from agentlong.backends.fake import FakeBackend
from agentlong.errors import ContextWindowExceeded, InputError, ParseError
from agentlong.events import CitationFound, Notice, Progress, StepDone, TextDelta
from agentlong.graphs.writer import WriterOptions, check_writable, plan_only, write
from agentlong.graphs.writer_plan import (MAX_WORDS, MIN_WORDS, normalize_outline, parse_outline_text,
                                          plan_more, rescale, section_count)
from agentlong.graphs.writer_text import clean_section, dedupe, tail, trim_to
from agentlong.wordcount import count_words, length_score, within

def sentence(k: int) -> str:
    """The k-th scripted sentence: 10 counted words, 8 of them unique to k (so no two are near-repeats)."""
    def word(n: int) -> str:
        letters = ""
        n += 1
        while n:
            n, r = divmod(n - 1, 26)
            letters = chr(97 + r) + letters
        return "q" + letters
    return f"Note {k} on plants " + " ".join(word(8 * k + j) for j in range(7)) + "."


class Model:
    """A scripted writer model: plans, reviews and writes unique sentences; records what it was asked."""

    def __init__(self, words_per_call: int = 60, plan_budgets: list[int] | None = None, passes: bool = True,
                 fail_on: str | None = None) -> None:
        self.words_per_call = words_per_call
        self.plan_budgets = plan_budgets or [500, 500, 500]
        self.passes = passes
        self.fail_on = fail_on
        self.counter = itertools.count()
        self.prompts: list[str] = []

    def __call__(self, messages):
        prompt = messages[-1].content
        self.prompts.append(prompt)
        if self.fail_on and self.fail_on in prompt:
            raise RuntimeError("simulated crash")
        if "Plan it as" in prompt:
            start = int(re.search(r"and sections (\d+) to", prompt).group(1)) - 1  # a later batch names new topics
            return {"document_title": "Plants", "sections": [
                {"title": f"Topic {chr(65 + start + i) if start + i < 26 else start + i} plants", "points": [f"point {i}"], "words": b}
                for i, b in enumerate(self.plan_budgets)]}
        if "Review the section" in prompt:
            return {"summary": "It covers plants.", "problems": [] if self.passes else ["misses a point"],
                    "passes": self.passes}
        if "Rewrite the first paragraph" in prompt:
            return "Following on from that, " + " ".join(sentence(next(self.counter))
                                                          for _ in range(max(1, self.words_per_call // 10)))
        return " ".join(sentence(next(self.counter)) for _ in range(max(1, self.words_per_call // 10)))

    def count(self, marker: str) -> int:
        return sum(marker in p for p in self.prompts)


def app_for(model: Model, window: int = 8192) -> tuple[Agentlong, FakeBackend]:
    fake = FakeBackend(mode="keyed", responses={}, default=model, context_window=window)
    return Agentlong(model="fake", backend=fake), fake


OUTLINE3 = ["Topic A plants", "Topic B plants", "Topic C plants"]


# -- word counting and length score ------------------------------------------------------------
def test_count_words_matches_longbench_write():
    assert count_words("Hello, world! 你好") == 4
    assert count_words("It's 2024: don't panic.") == 5  # It, s, don, t, panic -> digits excluded
    assert count_words("") == 0


def test_length_score_formula():
    assert length_score(10000, 5000) == 50.0
    assert length_score(10000, 20000) == pytest.approx(66.667, abs=0.01)
    assert length_score(1000, 1000) == 100.0
    assert length_score(1000, 4000) == 0.0
    assert length_score(1000, 0) == 0.0
    assert within(115, 100) and within(85, 100) and not within(116, 100) and not within(84, 100)


# -- budgets ----------------------------------------------------------------------------------------
@given(st.lists(st.integers(min_value=-5, max_value=100_000), min_size=1, max_size=60),
       st.integers(min_value=MIN_WORDS, max_value=MAX_WORDS))
@hsettings(max_examples=200, deadline=None)
def test_rescale_sums_to_target(weights, target):
    out = rescale(weights, target)
    assert sum(out) == target and len(out) == len(weights) and min(out) >= 0
    assert max(out) <= 4 * (min(out) + 1)  # spread 2 around the median -> at most 4x apart (+ rounding)


def test_rescale_fixes_a_plan_that_sums_to_five_times_the_target():
    assert rescale([2000, 1500, 1500], 1000) == [400, 300, 300]


def test_section_count_derives_from_target():
    assert section_count(10_000, 450) == 22
    assert section_count(60, 450) == 1
    assert section_count(100, 10, override=50) == 5  # never under 20 words a section


# -- outlines ---------------------------------------------------------------------------------------
def test_markdown_outline_round_trip():
    text = "# Guide\n\n## Light (300 words)\n- sun\n- shade\n\n## Water [200]\n1. not too much\n"
    o = parse_outline_text(text)
    assert o.title == "Guide"
    assert [(s.title, s.budget, s.points) for s in o.sections] == [("Light", 300, ["sun", "shade"]), ("Water", 200, ["not too much"])]
    assert parse_outline_text(o.markdown()) == o


def test_outline_forms_and_rescaling():
    assert [s.title for s in parse_outline_text("Intro\nBody (100 words)\nEnd").sections] == ["Intro", "Body", "End"]
    j = parse_outline_text(json.dumps({"title": "T", "sections": [{"title": "A", "points": "x", "budget": 100}, "B"]}))
    assert j.title == "T" and j.sections[0].points == ["x"]
    o = normalize_outline([{"title": "A", "budget": 100}, {"title": "B", "budget": 300}], 200)
    assert [s.budget for s in o.sections] == [50, 150]  # user proportions kept, sum = target
    assert normalize_outline(["A", "B", "C"], 301).total == 301


@pytest.mark.parametrize("raw, message", [
    ("", "empty"), ("{not json", "not valid JSON"),
])
def test_bad_outline_text(raw, message):
    with pytest.raises(InputError, match=message):
        parse_outline_text(raw)


@pytest.mark.parametrize("raw, message", [
    ([], "no sections"), (["A", "  "], "without a title"), (["x"] * 20, "20 sections"), (42, "list or a dict"),
    ([{"title": "A", "budget": "lots"}], "malformed"),
])
def test_bad_outline_values(raw, message):
    with pytest.raises(InputError, match=message):
        normalize_outline(raw, 300)


# -- bad input is refused before any model call ---------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"instruction": "Write.", "words": 0}, "out of range"),
    ({"instruction": "Write.", "words": 10_000_000}, "out of range"),
    ({"instruction": "Write.", "words": "many"}, "not a whole number"),
    ({"instruction": "   ", "words": 300}, "instruction is empty"),
    ({"instruction": "Write.", "words": 300, "sources": ["/no/such/file.txt"]}, "neither a file"),
])
def test_bad_input_fails_before_any_call(kwargs, message):
    model = Model()
    app, fake = app_for(model)
    with pytest.raises(InputError, match=message):
        write(app, kwargs.pop("instruction"), checkpoint=False, **kwargs)
    assert fake.calls == []


def test_unwritable_output_checked_before_any_call(tmp_path):
    model = Model()
    app, fake = app_for(model)
    (tmp_path / "file").write_text("x")
    for bad in [tmp_path / "missing" / "out.md", tmp_path, tmp_path / "file" / "out.md"]:
        with pytest.raises(InputError, match="cannot write|is a folder"):
            write(app, "Write.", words=300, path=bad, checkpoint=False)
    assert fake.calls == []
    assert check_writable(tmp_path / "ok.md") == tmp_path / "ok.md"
    assert not (tmp_path / "ok.md").exists()  # checking leaves nothing behind


# -- plan ---------------------------------------------------------------------------------------------
def test_model_plan_budgets_are_rescaled_to_the_target():
    model = Model(plan_budgets=[1000, 2000, 2000])  # sums to 10x the target, like the small model
    app, fake = app_for(model)
    outline = plan_only(app, "Write about plants.", words=500, options=WriterOptions(sections=3))
    assert [s.budget for s in outline.sections] == [125, 188, 187] or sum(s.budget for s in outline.sections) == 500
    assert outline.total == 500 and len(outline.sections) == 3
    plan_call = fake.calls[0]
    assert plan_call.schema["properties"]["sections"]["minItems"] == 3  # the count is schema-constrained


def test_long_plans_are_made_in_batches():
    model = Model(plan_budgets=[450] * 10)
    app, fake = app_for(model)
    outline = plan_only(app, "Write a long book about plants.", words=6000)  # 13 sections
    plan_calls = [c for c in fake.calls if "Plan it as" in c.prompt]
    assert len(plan_calls) == 2 and "Sections 1 to 10 are already planned" in plan_calls[1].prompt
    assert outline.total == 6000 and len(outline.sections) == 13
    assert len({s.title for s in outline.sections}) == 13


def test_a_batch_that_only_copies_earlier_titles_ends_the_plan_and_long_texts_are_planned_in_parts():
    def copying(messages):  # every batch names the same ten sections, as a small model does
        return {"document_title": "Rome", "sections": [{"title": f"Roman topic {chr(65 + i)}", "points": ["p"], "words": 450}
                                                       for i in range(10)]}

    app = Agentlong(model="fake", backend=FakeBackend(mode="keyed", responses={}, default=copying))
    flat = plan_only(app, "Write about Rome.", words=6000)  # 13 sections asked: batch 2 has nothing new
    assert [s.title for s in flat.sections] == [f"Roman topic {chr(65 + i)}" for i in range(10)] and flat.total == 6000

    prompts = []

    def parts(messages):
        prompt = messages[-1].content
        prompts.append(prompt)
        scope = re.search(r'Plan only part (\d+) of (\d+), "([^"]+)"', prompt)
        k = int(re.search(r"and sections (\d+) to (\d+)", prompt).group(2)) - int(re.search(r"and sections (\d+)", prompt).group(1)) + 1
        if not scope:  # the parts
            return {"document_title": "Rome", "sections": [{"title": f"Era {e}", "points": [f"events of era {e}"], "words": 100}
                                                           for e in ("kings", "republic", "empire", "fall")][:k]}
        if scope.group(3) == "Era fall":  # a part whose sections only copy another part's
            return {"document_title": "Rome", "sections": [{"title": "Era kings detail 0", "points": ["p"], "words": 1}]}
        start = int(re.search(r"and sections (\d+)", prompt).group(1)) - 1
        return {"document_title": "Rome", "sections": [{"title": f"{scope.group(3)} detail {start + j}", "points": ["p"], "words": 1}
                                                       for j in range(k)]}

    app2 = Agentlong(model="fake", backend=FakeBackend(mode="keyed", responses={}, default=parts))
    outline = plan_only(app2, "Write about Rome.", words=20000)  # 44 sections: 9 parts asked, the model gives 4
    titles = [s.title for s in outline.sections]
    assert outline.total == 20000 and len(titles) == len(set(titles))
    assert titles[:11] == [f"Era kings detail {j}" for j in range(11)] and titles[-1] == "Era fall"  # 44 x 1/4 = 11 each
    assert [sum(s.budget for s in outline.sections if s.title.startswith(f"Era {e}")) for e in ("kings", "republic", "empire", "fall")] == [5000] * 4
    first = next(p for p in prompts if 'Plan only part 2 of 4, "Era republic": events of era republic' in p)
    assert "are already planned" not in first  # a part is planned without the list of the other parts' sections


def test_malformed_plan_is_repaired_then_reported():
    replies = iter(["not json", {"document_title": "T", "sections": [{"title": "A", "points": ["p"], "words": 9}]}])
    fake = FakeBackend(mode="keyed", responses={}, default=lambda m: next(replies))
    outline = plan_only(Agentlong(model="fake", backend=fake), "Write.", words=100, options=WriterOptions(sections=1))
    assert outline.sections[0].title == "A" and len(fake.calls) == 2
    broken = FakeBackend(mode="keyed", responses={}, default="still not json")
    with pytest.raises(ParseError, match="writer_plan"):
        plan_only(Agentlong(model="fake", backend=broken), "Write.", words=100)


def test_titles_that_read_the_plan_prompt_back_are_dropped_from_plans_and_top_ups():
    echo = [{"title": "Sections 3 to 4", "points": [], "words": 50}, {"title": "document_title", "points": ["document_title"], "words": 50},
            {"title": "Plan it as 4 sections, about 400 words in all", "points": ["Plan only part 3 of 8"], "words": 50}]
    debris = (["3", "Read the text between <document> and </document> tags and quote it, but never", "roots grow"],
              ["The text to write (the request):", "roots grow"])  # a bare number, the system prompt; the plan prompt
    real = [{"title": f"Roots of plant {i}", "points": debris[i % 2], "words": 100} for i in range(4)]

    def reply(messages):
        asked = re.search(r"and sections (\d+) to (\d+)", messages[-1].content)
        want = int(asked.group(2)) - int(asked.group(1)) + 1
        return {"document_title": "Plants", "sections": (echo + real)[:want]}

    app = Agentlong(model="fake", backend=FakeBackend(mode="keyed", responses={}, default=reply))
    outline = plan_only(app, "Write about plants.", words=400, options=WriterOptions(sections=4))
    assert [s.title for s in outline.sections][:1] == ["Roots of plant 0"]  # the echoes are gone; the real title stays
    assert not any("ection" in s.title or "document" in s.title for s in outline.sections)
    assert all(s.points == ["roots grow"] for s in outline.sections if s.title.startswith("Roots"))  # echoed points go too
    bare = FakeBackend(mode="keyed", responses={}, default={"document_title": "Plants", "sections": [
        {"title": f"Section {i}", "points": [f"Water plant type {i} weekly.", "p"], "words": 100} for i in (1, 2)]})
    labelled = plan_only(Agentlong(model="fake", backend=bare), "Write about plants.", words=200, options=WriterOptions(sections=2))
    assert [(s.title, s.budget) for s in labelled.sections] == [("Water plant type 1 weekly", 100), ("Water plant type 2 weekly", 100)]
    empty = FakeBackend(mode="keyed", responses={}, default={"document_title": "Plants", "sections": [
        {"title": "Section 1", "points": ["document_title"], "words": 100}]})
    assert plan_only(Agentlong(model="fake", backend=empty), "Write about plants.", words=200,
                     options=WriterOptions(sections=1)).sections[0].budget == 200  # nothing usable: one section, the whole target
    more = plan_more(app.llm(), "Write about plants.", 400, ["Leaves"], 200, 4)
    assert [s.title for s in more] == ["Roots of plant 0", "Roots of plant 1"] and sum(s.budget for s in more) == 200
    assert all(s.points == ["roots grow"] for s in more)
    part = plan_more(app.llm(), "Write about plants.", 400, ["Leaves"], 200, 3)  # the echo's point as its title
    assert [s.title for s in part] == ["Roots of plant 0"]


def test_a_batch_of_the_plan_that_stays_malformed_is_retried_smaller_then_kept_partial():
    calls: list[int] = []

    def reply(messages):
        asked = re.search(r"and sections (\d+) to (\d+)", next(m.content for m in messages if "Plan it as" in m.content))
        want = int(asked.group(2)) - int(asked.group(1)) + 1
        calls.append(want)
        if want > 2:
            return '{"document_title": "Plants", "sections": [{"title": "Roo'  # cut off, like a runaway reply
        return {"document_title": "Plants", "sections": [
            {"title": f"Part about leaves {len(calls)}-{i}", "points": ["p"], "words": 100} for i in range(want)]}

    fake = FakeBackend(mode="keyed", responses={}, default=reply)
    outline = plan_only(Agentlong(model="fake", backend=fake), "Write about plants.", words=1000,
                        options=WriterOptions(sections=4))
    assert calls[:2] == [4, 4] and 2 in calls  # a malformed batch of 4 (and its repair), then batches of 2
    assert len(outline.sections) == 4 and outline.total == 1000
    schema = fake.calls[0].schema["properties"]["sections"]
    assert schema["minItems"] == 4  # and each point is bounded in the grammar:
    assert "maxLength" in json.dumps(fake.calls[0].schema)


# -- writing: extend, trim, caps ----------------------------------------------------------------
def test_short_sections_are_extended_up_to_the_call_cap():
    model = Model(words_per_call=20)  # far below the 200-word budgets
    app, fake = app_for(model)
    res = write(app, "Write about plants.", words=600, outline=OUTLINE3, options=WriterOptions(review=False, max_calls=4, rebalance=False),
                checkpoint=False)
    for s in res.sections:
        assert [a.action for a in s.attempts] == ["draft", "continue", "continue", "continue"]
        assert s.words == 80 and not s.within_tolerance
    assert model.count("This is how it currently ends") == 9


def test_long_drafts_are_trimmed_at_a_sentence_end():
    model = Model(words_per_call=400)
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False),
                checkpoint=False)
    for s in res.sections:
        assert s.within_tolerance and s.words <= 115 and s.text.endswith(".")
        assert "trimmed" in s.attempts[0].note


def test_extension_stops_when_target_reached():
    model = Model(words_per_call=60)
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False),
                checkpoint=False)
    assert [len(s.attempts) for s in res.sections] == [2, 2, 2]  # 60 -> 100 (trimmed from 120): in range
    assert all(s.within_tolerance for s in res.sections)


def test_a_repeating_model_stalls_instead_of_looping():
    app, fake = app_for(Model())
    fake.default = "The same sentence about plants again and again. " * 5
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False),
                checkpoint=False)
    assert all(len(s.attempts) == 3 for s in res.sections)  # two calls in a row added nothing: stop (cap is 4)
    assert all(s.length == "stalled" and "stalled" in s.attempts[-1].note for s in res.sections)
    assert res.sections[0].text.count("The same sentence") == 1


def test_a_short_section_is_made_up_by_the_sections_left():
    model = Model(words_per_call=20)  # every section ends at 80 words (4 calls of 20)
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=600, outline=OUTLINE3, options=WriterOptions(review=False, max_calls=4),
                checkpoint=False)
    assert [s.budget for s in res.plan] == [200, 200, 200]
    assert [s.budget for s in res.outline] == [200, 260, 400]  # 600 - 80 over the two left; then 440, capped at 2x the plan
    assert [s.budget for s in res.sections] == [200, 260, 400] and res.sections[1].words == 80
    assert [s.title for s in res.outline] == OUTLINE3  # the user's outline: no sections added


def test_a_long_section_shrinks_the_sections_left():
    model = Model(words_per_call=110)  # 110 of 100: within tolerance, 10 over
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False), checkpoint=False)
    assert [s.words for s in res.sections][0] == 110 and res.outline[1].budget == 95
    assert abs(res.words - 300) < abs(3 * 110 - 300)  # closer to the target than three sections at +10%
    off = write(app, "Write about plants.", words=300, outline=OUTLINE3,
                options=WriterOptions(review=False, rebalance=False), checkpoint=False)
    assert [s.budget for s in off.outline] == [100, 100, 100]


def _topping_model(words_per_call: int, extra_titles: list[str] | None = None, fail_on: str | None = None) -> tuple[Model, callable]:
    """A scripted model whose top-up plans (prompts that list planned sections) name new sections."""
    model = Model(words_per_call=words_per_call, plan_budgets=[100, 100], fail_on=fail_on)
    extras = iter(extra_titles or [f"Extra {k} plants" for k in range(1, 50)])

    def respond(messages):
        prompt = messages[-1].content
        if "are already planned" in prompt:
            model.prompts.append(prompt)
            k = int(re.search(r"and sections (\d+) to (\d+)", prompt).group(2)) - int(re.search(r"and sections (\d+)", prompt).group(1)) + 1
            return {"document_title": "Plants", "sections": [{"title": next(extras), "points": ["more"], "words": 100}
                                                             for _ in range(k)]}
        return model(messages)
    return model, respond


def test_a_text_that_ends_short_gets_top_up_sections_planned_by_the_model():
    model, respond = _topping_model(words_per_call=60)
    app, fake = app_for(model)
    fake.default = respond
    events = []
    res = write(app, "Write about plants.", words=450, emit=events.append,
                options=WriterOptions(sections=2, review=False, max_calls=1, section_words=100), checkpoint=False)
    assert [s.budget for s in res.plan] == [225, 225] and len(res.plan) == 2
    titles = [s.title for s in res.outline]
    # the planned last section is written last: the extra sections go before it (a conclusion stays the end)
    assert titles[0] == "Topic A plants" and titles[-1] == "Topic B plants" and titles[1].startswith("Extra")
    assert [s.title for s in res.sections] == titles and res.text.count("\n## ") == len(titles)
    assert res.text.rstrip().endswith(res.sections[-1].text.rstrip()) and "## Topic B plants" in res.text
    rounds = [e for e in events if isinstance(e, StepDone) and e.step == "top-up"]
    assert 1 <= len(rounds) <= 2 and "words short of 450" in rounds[0].detail  # capped at top_up=2 rounds
    assert res.words > 120  # two single 60-word calls without the top-up
    plan_prompts = [p for p in model.prompts if "Plan it as" in p]
    assert "are already planned" in plan_prompts[-1] and "- Topic A plants" in plan_prompts[-1]
    assert "- Topic B plants" not in plan_prompts[-1]  # the model plans what comes before the last section


def test_long_targets_get_more_top_up_rounds_while_the_rounds_pay():
    """A 20,000-word text that ends 6,000 words short needs more than `top_up` rounds of ~10 sections: past
    the first `top_up` rounds, one more per further 5,000 words of target, until a round gains less than half
    of what its sections should hold."""
    def rounds_for(words: int, write_extras: bool) -> tuple[list[StepDone], list[Notice]]:
        model, respond = _topping_model(words_per_call=60)
        app, fake = app_for(model)

        def scripted(messages):
            prompt = messages[-1].content
            if not write_extras and "are already planned" not in prompt and "Extra" in prompt:
                return sentence(0)  # a top-up section that stalls at one sentence
            return respond(messages)
        fake.default = scripted
        events = []
        write(app, "Write about plants.", words=words, emit=events.append, checkpoint=False,
              options=WriterOptions(sections=2, review=False, max_calls=1, section_words=100, top_up=1))
        return ([e for e in events if isinstance(e, StepDone) and e.step == "top-up"],
                [e for e in events if isinstance(e, Notice) and "stopped adding sections" in e.message])

    assert len(rounds_for(4000, True)[0]) == 1  # under 5,000 words: `top_up` rounds, as before
    paying, notices = rounds_for(12000, True)
    assert len(paying) == 3 and not notices  # 1 + 12,000 // 5,000 rounds; each gained 600 of the 600 it could
    stalling, notices = rounds_for(12000, False)
    assert len(stalling) == 1 and len(notices) == 1 and "after 1 rounds" in notices[0].message


def test_top_up_sections_keep_the_size_the_plan_showed_and_do_not_spiral_down():
    """A model writes ~80% of what a section asks for. Sizing each top-up round by the median of *all* sections
    asked for less every round (at 20,000 words it fell from 157 to 105 words a section); the size is fixed
    at the first top-up, from the sections of the plan."""
    model, respond = _topping_model(words_per_call=60)
    app, fake = app_for(model)

    def scripted(messages):
        prompt = messages[-1].content
        asked = re.search(r"Write about (\d+) words of flowing prose", prompt)
        if asked and "are already planned" not in prompt:
            return " ".join(sentence(next(model.counter)) for _ in range(max(1, int(asked.group(1)) * 8 // 100)))
        return respond(messages)
    fake.default = scripted
    res = write(app, "Write about plants.", words=3000, checkpoint=False,
                options=WriterOptions(sections=2, review=False, max_calls=1, section_words=100, top_up=4))
    sizes = [s.budget for s in res.outline[1:-1]]  # the top-up sections, before the planned last one
    assert len(sizes) > 10 and sizes.count(100) >= len(sizes) - 2 and min(sizes) >= 90  # the last round: what is left
    assert all(s.words == 80 for s in res.sections[1:-3])  # (without the fix: 80, then 60-word sections)


def test_a_run_killed_in_a_top_up_section_resumes_there_without_replanning(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTLONG_HOME", str(tmp_path))
    opts = WriterOptions(sections=2, review=False, max_calls=1, section_words=100)
    crashing, respond = _topping_model(words_per_call=60, fail_on="Write section 3 of")
    app, fake = app_for(crashing)
    fake.default = respond
    with pytest.raises(RuntimeError):
        write(app, "Write about plants.", words=450, options=opts)
    assert crashing.count("are already planned") == 1
    fresh, respond2 = _topping_model(words_per_call=60)
    fresh.counter = itertools.count(1000)
    app2, fake2 = app_for(fresh)
    fake2.default = respond2
    res = write(app2, "Write about plants.", words=450, options=opts)
    assert res.resumed and fresh.count("Plan it as") == fresh.count("are already planned")  # the first plan is kept
    assert [s.title for s in res.outline][:3] == ["Topic A plants", "Extra 1 plants", "Extra 2 plants"]
    assert res.outline[-1].title == "Topic B plants" and res.sections[-1].title == "Topic B plants"
    assert "Note 1000 " in res.sections[2].text and "Note 0 " in res.sections[0].text  # section 3 written after the resume


def test_top_up_is_capped_skips_user_outlines_and_survives_bad_plans():
    model, respond = _topping_model(words_per_call=20)
    app, fake = app_for(model)
    fake.default = respond
    res = write(app, "Write about plants.", words=400, options=WriterOptions(sections=2, review=False, max_calls=1, top_up=1),
                checkpoint=False)
    assert len(res.sections) == len(res.outline)
    # one round before the last section, sized to what the model writes per section (20 words -> 40-word
    # sections): 400 - 20 written - 40 expected of the last section = 340 short, 9 sections of ~38
    assert len(res.outline) == 2 + 9 and [s.budget for s in res.sections[1:10]] == [38] * 7 + [37] * 2
    assert res.sections[-1].title == "Topic B plants" and res.sections[-1].budget == 400 - 10 * 20  # the words left
    user = write(app, "Write about plants.", words=400, outline=["Topic A plants", "Topic B plants"],
                 options=WriterOptions(review=False, max_calls=1), checkpoint=False)
    assert len(user.outline) == 2  # never adds to the user's outline
    repeat, respond2 = _topping_model(words_per_call=20, extra_titles=["Topic A plants"] * 500)
    app2, fake2 = app_for(repeat)
    fake2.default = respond2
    res2 = write(app2, "Write about plants.", words=400, options=WriterOptions(sections=2, review=False, max_calls=1),
                 checkpoint=False)
    assert sum(p.count("are already planned") for p in repeat.prompts) == 6  # 3 rounds, a retry each; the 3rd adds nothing
    added = [(s.title, s.points) for s in res2.outline][1:-1]  # before the planned last section
    # round 1: the points of the sections written so far, each a section that covers it, then the sections that
    # fell short, continued; round 2: the point section, continued (never "continued (continued)"); round 3:
    # nothing new, so no more rounds. The last section's own point is left to it.
    assert added == [("point 0", ["point 0"]), ("Topic A plants (continued)", ["point 0"]), ("point 0 (continued)", ["point 0"])]
    assert [s.title for s in res2.sections][-1] == "Topic B plants" and len(res2.sections) == 5
    assert all(s.budget > 0 for s in res2.sections) and all(s.words == 20 for s in res2.sections[:4])
    broken = Model(words_per_call=20, plan_budgets=[100, 100])
    app3, fake3 = app_for(broken)
    fake3.default = lambda m: "{not json" if "are already planned" in m[-1].content else broken(m)
    events = []
    res3 = write(app3, "Write about plants.", words=400, emit=events.append,
                 options=WriterOptions(sections=2, review=False, max_calls=1), checkpoint=False)
    assert any(isinstance(e, Notice) and "planning more sections failed" in e.message for e in events)
    assert [s.title for s in res3.sections] == ["Topic A plants", "point 0", "Topic A plants (continued)",
                                                "point 0 (continued)", "Topic B plants"]  # the run goes on


def test_headings_drop_list_numbers_and_section_openers_of_model_titles_but_not_of_the_users():
    model, respond = _topping_model(words_per_call=60, extra_titles=["3. Roots and water plants",
                                                                     "This section discusses watering plants"] * 20)
    app, fake = app_for(model)
    fake.default = respond
    res = write(app, "Write about plants.", words=450,
                options=WriterOptions(sections=2, review=False, max_calls=1, section_words=100, top_up=1), checkpoint=False)
    heads = re.findall(r"^## (.*)$", res.text, re.MULTILINE)
    assert heads[:3] == ["Topic A plants", "Roots and water plants", "Watering plants"] and heads[-1] == "Topic B plants"
    assert [s.title for s in res.sections][:3] == heads[:3]
    assert [s.title for s in res.outline][1:3] == ["3. Roots and water plants", "This section discusses watering plants"]
    user = write(app, "Write about plants.", words=300, outline=["1. Soil for plants", "2. Light for plants"],
                 options=WriterOptions(review=False, max_calls=1), checkpoint=False)
    assert re.findall(r"^## (.*)$", user.text, re.MULTILINE) == ["1. Soil for plants", "2. Light for plants"]


def test_a_looping_draft_is_stopped_while_it_is_generated():
    app, fake = app_for(Model())
    loop = "Roses want sun for six hours a day. " + "The same sentence about plants again and again. " * 300
    fake.default = loop
    res = write(app, "Write about plants.", words=100, outline=["Roses and plants"],
                options=WriterOptions(review=False, max_calls=1), checkpoint=False)
    first = res.sections[0].attempts[0]
    assert "stopped a loop" in first.note and first.tokens < 80  # the whole reply is ~2,700 tokens
    assert res.sections[0].text == "Roses want sun for six hours a day. The same sentence about plants again and again."
    assert res.usage.completion_tokens == first.tokens


def test_retries_after_an_empty_call_sample_warmer():
    app, fake = app_for(Model())
    fake.default = "The same sentence about plants again and again. " * 5
    write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False, temperature=0.7),
          checkpoint=False)
    # section 1: draft, continue (added nothing), a warmer continue; sections 2-3: every first draft is a repeat
    assert [c.temperature for c in fake.calls] == [0.7, 0.7, 0.95] + [0.7, 0.95, 1.2] * 2


def test_a_review_reply_that_is_never_valid_json_leaves_the_section_unreviewed_not_the_run_dead():
    model = Model(words_per_call=100)
    app, fake = app_for(model)
    fake.default = lambda m: "{\"summary\": \"loops" if "Review the section" in m[-1].content else model(m)
    events = []
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, emit=events.append, checkpoint=False)
    assert len(res.sections) == 3 and all(s.words > 0 for s in res.sections)
    assert all(v.by == "code" and "not reviewed" in v.problems[0] for s in res.sections for v in s.verdicts)
    assert sum(isinstance(e, Notice) and "no review" in e.message for e in events) == 3
    schema = next(c.schema for c in fake.calls if c.schema and "passes" in json.dumps(c.schema))
    assert schema["properties"]["problems"]["items"]["maxLength"] == 200  # bounded: the reply fits its max_tokens


def test_max_tokens_follow_the_section_budget():
    model = Model(words_per_call=10)
    app, fake = app_for(model)
    write(app, "Write about plants.", words=400, outline=[{"title": "Small", "budget": 100}, {"title": "Big", "budget": 300}],
          options=WriterOptions(review=False, max_calls=1, tokens_per_word=1.5, rebalance=False), checkpoint=False)
    small, big = [c.max_tokens for c in fake.calls]
    assert small == math.ceil(115 * 1.5 * 1.1) + 16 and big == math.ceil(345 * 1.5 * 1.1) + 16


# -- review and revise ----------------------------------------------------------------------------
def test_failed_reviews_are_revised_once():
    model = Model(words_per_call=60, passes=False)
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(max_revisions=1),
                checkpoint=False)
    for s in res.sections:
        assert s.revisions == 1 and [v.passed for v in s.verdicts] == [False, False]
        assert "revise" in [a.action for a in s.attempts]
    assert model.count("A reviewer found these problems") == 3
    assert model.count("Review the section") == 6


def test_review_can_be_switched_off_and_revisions_capped_at_zero():
    model = Model(words_per_call=100, passes=False)
    app, _ = app_for(model)
    write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(max_revisions=0), checkpoint=False)
    assert model.count("A reviewer found") == 0 and model.count("Review the section") == 3
    model2 = Model(words_per_call=100)
    app2, _ = app_for(model2)
    write(app2, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False), checkpoint=False)
    assert model2.count("Review the section") == 0


def test_code_check_fails_an_off_topic_section():
    app, fake = app_for(Model())
    fake.default = lambda m: ("Completely unrelated words about engines and cars here. " * 3
                              if "Write section" in m[-1].content else Model()(m))
    res = write(app, "Write.", words=100, outline=["Garden roses"], options=WriterOptions(max_revisions=0), checkpoint=False)
    assert any(v.by == "code" and not v.passed for v in res.sections[0].verdicts)


# -- memory: what each section sees ---------------------------------------------------------------
def test_sections_see_summary_tail_and_earlier_passages_not_the_whole_text():
    model = Model(words_per_call=100)
    app, fake = app_for(model)
    res = write(app, "Write about plants.", words=600, outline=["Topic A plants", "Topic B plants", "Topic C plants", "Topic D plants"],
                options=WriterOptions(max_revisions=0, tail_tokens=40), checkpoint=False)
    last = [c.prompt for c in fake.calls if 'Write section 4 of 4' in c.prompt][0]
    assert "What the earlier sections said" in last and "The previous section ended with" in last
    assert "Passages from earlier sections" in last
    assert res.sections[0].text not in last  # never the whole previous text


def test_prompts_fit_a_small_window_and_a_tiny_one_fails_clearly():
    model = Model(words_per_call=150)
    app, fake = app_for(model, window=1024)
    res = write(app, "Write about plants.", words=600, outline=["Topic A plants", "Topic B plants", "Topic C plants", "Topic D plants"],
                checkpoint=False)
    assert len(res.sections) == 4 and all(c.max_tokens <= 512 for c in fake.calls)
    tiny, _ = app_for(Model(), window=300)
    with pytest.raises(ContextWindowExceeded):
        write(tiny, "Write about plants.", words=300, outline=OUTLINE3, checkpoint=False)


# -- events, assembly, continuity -----------------------------------------------------------------
def test_events_stream_outline_sections_and_word_progress():
    events = []
    model = Model(words_per_call=100)
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, emit=events.append, options=WriterOptions(sections=3),
                checkpoint=False)
    steps = [e for e in events if isinstance(e, StepDone)]
    assert steps[0].step == "outline" and "## Topic A plants (" in steps[0].detail
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 3 and deltas[0].startswith("## Topic A plants")
    words = [e for e in events if isinstance(e, Progress) and e.task == "words"]
    assert words[-1].total == 300 and words[-1].done == sum(s.words for s in res.sections)
    assert res.text.startswith("# Plants\n") and res.text.count("\n## ") == 3
    assert sum(s.budget for s in res.outline) == 300 and res.record is not None and res.usage.calls > 0


def test_continuity_pass_rewrites_first_paragraphs():
    model = Model(words_per_call=60)  # two calls a section: two paragraphs
    app, _ = app_for(model)
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, options=WriterOptions(review=False, continuity=True),
                checkpoint=False)
    assert model.count("Rewrite the first paragraph") == 2
    assert res.sections[1].text.startswith("Following on from that") and not res.sections[0].text.startswith("Following")


def test_output_file_is_written(tmp_path):
    app, _ = app_for(Model(words_per_call=100))
    out = tmp_path / "out.md"
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, path=out, checkpoint=False)
    assert res.path == str(out) and out.read_text() == res.text


# -- resume after a crash -------------------------------------------------------------------------
def test_killed_run_resumes_at_the_next_section():
    crashing = Model(words_per_call=100, fail_on='Write section 3 of 3')
    app, _ = app_for(crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write(app, "Write about plants.", words=300, options=WriterOptions(sections=3))
    assert crashing.count("Plan it as") == 1 and crashing.count("Write section 2 of 3") == 1

    events = []
    fresh = Model(words_per_call=100)
    fresh.counter = itertools.count(1000)  # new sentences (repeats of earlier sections would be dropped)
    app2, _ = app_for(fresh)
    res = write(app2, "Write about plants.", words=300, options=WriterOptions(sections=3), emit=events.append)
    assert res.resumed and len(res.sections) == 3
    assert fresh.count("Plan it as") == 0
    assert fresh.count("Write section 1 of 3") == 0 and fresh.count("Write section 2 of 3") == 0
    assert fresh.count("Write section 3 of 3") == 1
    assert any(isinstance(e, Notice) and "2 of 3 sections restored" in e.message for e in events)
    assert sum(isinstance(e, TextDelta) for e in events) == 3  # restored sections are replayed
    again = write(app2, "Write about plants.", words=300, options=WriterOptions(sections=3))
    assert not again.resumed  # a finished run starts clean


# -- sources and citations --------------------------------------------------------------------------
def test_sources_ground_the_text_with_citations(tmp_path):
    doc = tmp_path / "facts.txt"
    doc.write_text("Intro line.\n\nThe Monstera deliciosa plant needs bright indirect light and weekly watering.\n"
                   "\nCacti store water in their thick stems and need little watering.\n")
    events = []
    app, fake = app_for(Model())

    def respond(messages):
        prompt = messages[-1].content
        if "Review the section" in prompt:
            return {"summary": "s", "problems": [], "passes": True}
        return ("The Monstera deliciosa plant needs bright indirect light and weekly watering. "
                "Cacti store water in their thick stems [2]. Unrelated words about something else entirely here [9].")
    fake.default = respond
    res = write(app, "Write about plants.", words=100, outline=["Monstera and cacti watering"], sources=[str(doc)],
                emit=events.append, options=WriterOptions(max_calls=1), checkpoint=False)
    section_prompt = [c.prompt for c in fake.calls if "Write section" in c.prompt][0]
    assert "<document>" in section_prompt and "[1] " in section_prompt
    text = res.sections[0].text
    assert "watering [1]." in text or "watering [2]." in text  # code attribution added a marker
    assert "[9]" not in text  # a marker to a passage never shown is dropped
    assert "## Sources" in res.text and f"{doc}:" in res.text
    assert res.citations and all(c.evidence.source == str(doc) for c in res.citations)
    assert any(isinstance(e, CitationFound) for e in events)


# -- text helpers -----------------------------------------------------------------------------------
def test_clean_section_strips_preamble_and_demotes_headings():
    raw = "Sure! Here is the section:\n## Light needs\nPlants like light.\n# Big heading\nMore."
    assert clean_section(raw, "Light needs") == "Plants like light.\n### Big heading\nMore."


def test_finished_sections_drop_debris_headings():
    """Headings the model makes of the writer's prompts, number-only headings (a cut at "2.") and a heading
    that ends a section go; a real subheading stays."""
    model = Model(words_per_call=40)
    app, fake = app_for(model)

    def messy(messages):  # 40 + 20 words and the headings: within the 100-word budgets, so nothing is trimmed
        text = model(messages)
        if "Write section" in messages[-1].content:
            k = next(model.counter)
            return (f"{text}\n\n### Practical Steps and Details Involved\n\n{sentence(900 + k)}\n\n"
                    f"**New Facts and New Sentences:**\n\n### Watering in Summer\n\n{sentence(950 + k)}\n\n#### 2.\n\n### Next Steps")
        return text
    fake.default = messy
    res = write(app, "Write about plants.", words=300, outline=OUTLINE3, checkpoint=False,
                options=WriterOptions(review=False, max_calls=1))
    assert "### Watering in Summer" in res.sections[0].text  # later sections drop it as a repeat
    for sec in res.sections:
        assert sec.text.endswith(".")
        assert not any(h in sec.text for h in ("Practical Steps", "New Facts", "#### 2.", "Next Steps"))
        assert sec.words == count_words(sec.text)


def test_trim_prefers_paragraph_then_sentence_then_word():
    text = "One two three four.\n\nFive six seven eight. Nine ten eleven."
    assert trim_to(text, 6, min_words=3) == "One two three four."
    assert trim_to(text, 9, min_words=9) == "One two three four.\n\nFive six seven eight."
    assert trim_to("alpha beta gamma delta", 2) == "alpha beta."


def test_dedupe_and_tail():
    text, dropped = dedupe("Water the plant every week. Light matters a lot.\n\nWater the plant every week.")
    assert dropped == 1 and text == "Water the plant every week. Light matters a lot."
    assert tail("one two three four five six", 2, lambda s: len(s.split())) == "five six"


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def cli_model(monkeypatch):
    model = Model(words_per_call=100)
    fake = FakeBackend(mode="keyed", responses={}, default=model)
    monkeypatch.setattr("agentlong.cli.render.make_agentlong", lambda args: Agentlong(model="fake", backend=fake))
    return model


def test_cli_writes_file_and_streams_sections(tmp_path, capsys, cli_model):
    from agentlong.cli.main import main

    out = tmp_path / "out.md"
    assert main(["-q", "write", "Write about plants.", "--words", "300", "--sections", "3", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert out.read_text().count("\n## ") == 3
    assert "## Topic A plants" in captured.out and "Traceback" not in captured.err


def test_cli_plan_only_then_outline_file(tmp_path, capsys, cli_model):
    from agentlong.cli.main import main

    plan = tmp_path / "plan.md"
    assert main(["-q", "write", "Write about plants.", "--words", "300", "--sections", "3", "--plan-only", "-o", str(plan)]) == 0
    assert cli_model.count("Write section") == 0 and plan.read_text().startswith("# Plants")
    plan.write_text(plan.read_text().replace("Topic B plants", "Edited plants"))
    assert main(["-q", "write", "Write about plants.", "--outline", str(plan), "--json"]) == 0  # words from the budgets
    data = json.loads(capsys.readouterr().out)
    assert [s["title"] for s in data["sections"]][1] == "Edited plants" and data["target"] == 300


@pytest.mark.parametrize("argv, message", [
    (["write", "Write.", "--words", "0"], "out of range"),
    (["write", "", "--words", "300"], "instruction is empty"),
    (["write", "Write.", "--words", "300", "-o", "/no/such/dir/out.md"], "does not exist"),
    (["write", "Write.", "--outline", "/no/such/outline.md"], "outline"),
    (["write", "Write."], "--words"),
    (["write", "Write.", "--words", "300", "--top-up", "-1"], "--top-up"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys, cli_model):
    from agentlong.cli.main import main

    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli_model.prompts == []


def test_prompt_echo_and_repeats_of_earlier_sections_are_dropped():
    app, fake = app_for(Model())

    def respond(messages):
        prompt = messages[-1].content
        if "Review the section" in prompt:
            return {"summary": "s", "problems": [], "passes": True}
        if "Write section 1 of 2" in prompt:
            return "Roses need six hours of sun every day. Prune them in late winter."
        return "<document>\nWrite about plants.\n**1.\nRoses need six hours of sun every day. Tulips bloom early in spring each year."
    fake.default = respond
    res = write(app, "Write about plants.", words=50, outline=["Roses", "Tulips"], checkpoint=False,
                options=WriterOptions(max_calls=1))
    assert res.sections[1].text == "Tulips bloom early in spring each year."


def test_sdk_facade_writes_with_a_checkpoint(agentlong_home):
    app, _ = app_for(Model(words_per_call=100))
    res = app.write("Write about plants.", words=200, outline=["Topic A plants", "Topic B plants"])
    assert [s.words for s in res.sections] == [100, 100] and not res.resumed
    assert (agentlong_home / "checkpoints.sqlite").exists()


def test_crash_in_review_resumes_at_the_review():
    crashing = Model(words_per_call=100, fail_on="Section 2 of 3 is")
    app, _ = app_for(crashing)
    with pytest.raises(RuntimeError):
        write(app, "Write about plants.", words=300, outline=OUTLINE3)
    events = []
    fresh = Model(words_per_call=100)
    fresh.counter = itertools.count(1000)
    app2, _ = app_for(fresh)
    res = write(app2, "Write about plants.", words=300, outline=OUTLINE3, emit=events.append)
    assert res.resumed and fresh.count("Write section 2 of 3") == 0 and fresh.count("Section 2 of 3 is") == 1
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert [t.split("\n")[0] for t in texts] == ["## Topic A plants", "## Topic B plants", "## Topic C plants"]


def test_each_continuation_asks_for_something_new():
    """With a fixed seed the same prompt gives the same output: consecutive continuations must differ."""
    model = Model(words_per_call=20)
    app, fake = app_for(model)
    write(app, "Write about plants.", words=200, outline=[{"title": "Light", "points": ["sun", "shade"]}],
          options=WriterOptions(review=False, max_calls=4), checkpoint=False)
    asks = [c.prompt.split("Write the next paragraphs")[1] for c in fake.calls if "Write the next paragraphs" in c.prompt]
    assert len(asks) == 3 and len(set(asks)) == 3


def test_an_all_repeat_first_draft_is_retried_with_a_new_prompt():
    app, fake = app_for(Model())
    fresh = Model(words_per_call=50)
    fresh.counter = itertools.count(500)

    def respond(messages):
        prompt = messages[-1].content
        if "Review the section" in prompt:
            return {"summary": "s", "problems": [], "passes": True}
        if "Write section 1 of 2" in prompt:
            return "Roses need six hours of sun every day. Prune them in late winter before buds swell."
        if "An earlier attempt only repeated" in prompt:
            return fresh(messages)
        return "Roses need six hours of sun every day."  # section 2 first tries: only a repeat of section 1
    fake.default = respond
    res = write(app, "Write about plants.", words=100, outline=["Roses", "Tulips"], checkpoint=False,
                options=WriterOptions(max_calls=3, rebalance=False))
    second = res.sections[1]
    assert [a.words for a in second.attempts][:2] == [0, 50] and second.within_tolerance
    assert sum("Section 2 of 2 is" in c.prompt for c in fake.calls) == 1  # reviewed once, when it had text


def test_a_long_write_reports_its_plan_and_needs_a_yes_above_confirm_minutes():
    from agentlong import Agentlong
    from agentlong.backends.fake import FakeBackend
    from agentlong.errors import InputError
    from agentlong.graphs.writer import write

    fake = FakeBackend(mode="keyed", responses={})
    app = Agentlong(backend=fake, model="fake", confirm_minutes=0.001)
    with pytest.raises(InputError, match=r"^plan: write about 12,000 words in \d+ sections, ~\d+ model calls .*"
                                         r"above confirm_minutes \(0.001\)"):
        write(app, "Write a history of lighthouses.", words=12000, checkpoint=False)
    assert fake.calls == []  # refused before the outline call
