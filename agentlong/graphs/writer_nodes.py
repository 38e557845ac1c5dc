"""Node functions of the writer graph: plan, draft (write/extend), review, revise, commit, assemble.

Each node takes ``(state, runtime)`` and returns a partial state update; they are plain functions
that tests call without a graph. Prompt sizes come from the model's window (``packing``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, field_validator

from ..errors import ParseError
from ..events import CitationFound, Notice, Progress, StepDone, TextDelta
from ..packing import fit, prompt_budget, truncate_to_tokens
from ..types import Chunk
from ..wordcount import bounds, count_words
from .common import RunContext
from .writer_plan import (MIN_SECTION_WORDS, PLAN_BATCH, TOP_UP_SPAN, Outline, SectionPlan, WriterOptions, plan_more, plan_outline, rescale,
                          point_title, same_title, usable_title)
from .writer_sources import Sources, attribute, citation_for
from .writer_text import (BM25, RepeatWatch, clean_section, complete_sentences, dedupe, heading, join_draft, passages, tail, tidy,
                          trim_to)

__all__ = ["WriterContext", "plan", "draft", "review", "revise", "commit", "top_up", "assemble", "Review", "options_of",
           "rebalanced", "shortfall", "after_top_up"]

SYSTEM = "writer_system"
HEADROOM = 1.1  # output tokens over the measured words->tokens estimate
OUTLINE_WINDOW = 6  # outline titles shown on each side of the current section
REPEAT_STREAK = 4  # repeated sentences in a row that stop a drafting call (the model is looping)
SHARES = {"sources": 0.45, "summary": 0.2, "tail": 0.15, "earlier": 0.2}  # of the room left for context


@dataclass
class WriterContext(RunContext):
    """Run context plus the writer's source passages (loaded per process, never checkpointed)."""

    sources: Sources | None = None
    announced: bool = field(default=False)


class Review(BaseModel):
    """The reviewer's schema-constrained verdict on one section."""

    summary: str = Field(max_length=400)
    problems: list[str] = Field(json_schema_extra={"maxItems": 3, "items": {"type": "string", "maxLength": 200}})
    passes: bool

    @field_validator("summary", mode="before")
    @classmethod
    def _clip(cls, v: Any) -> Any:
        return v[:400] if isinstance(v, str) else v

    @field_validator("problems", mode="before")
    @classmethod
    def _clip_problems(cls, v: Any) -> Any:
        return [str(p)[:200] for p in v][:3] if isinstance(v, list) else v


def options_of(state: dict) -> WriterOptions:
    return WriterOptions.model_validate(state["options"])


def _section(state: dict) -> SectionPlan:
    return SectionPlan.model_validate(state["outline"][state["index"]])


def _titles(state: dict) -> tuple[str, ...]:
    return tuple(s["title"] for s in state["outline"])


def _done_words(state: dict) -> int:
    return sum(s["words"] for s in state.get("sections", []))


def _bounds(budget: int, tol: float) -> tuple[int, int]:
    return bounds(budget, tol)


def _base_vars(state: dict) -> dict[str, Any]:
    i = state["index"]
    return {"instruction": state["instruction"], "title": state["title"], "n": len(state["outline"]),
            "number": i + 1, "section": state["outline"][i], "unit": state["unit"], "target": state["target"]}


# -- plan -----------------------------------------------------------------------------------------
def plan(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """Use the user's outline or ask the model for one; measure the tokens-per-word ratio."""
    ctx, opts = runtime.context, options_of(state)
    ctx.announced = True
    if state.get("outline"):
        outline = Outline(title=state.get("title") or "", sections=state["outline"])
    else:
        outline = plan_outline(ctx.decider, state["instruction"], state["target"], opts)
    sample = " ".join([outline.title, *(s.title + " " + " ".join(s.points) for s in outline.sections)])
    words = count_words(sample)
    ratio = opts.tokens_per_word or (min(3.0, max(0.5, ctx.llm.tokens(sample) / words)) if words >= 5 else 1.4)
    ctx.emit(StepDone(step="outline", detail=outline.markdown()))
    ctx.emit(Progress(task="words", done=0, total=state["target"], detail=outline.sections[0].title))
    sections = [s.model_dump() for s in outline.sections]
    live = [{**s, "planned": s["budget"]} for s in sections]  # "planned" anchors the carried budgets
    user = bool(state.get("outline"))
    closing = len(live) - 1 if not user and len(live) > 1 else None  # written last: top-up sections go before it
    return {"title": outline.title or state["instruction"][:80], "outline": live, "plan": sections,
            "user_outline": user, "closing": closing, "top_ups": 0, "index": 0, "ratio": round(ratio, 4), **_fresh()}


def _fresh() -> dict[str, Any]:
    return {"draft": "", "calls": 0, "attempts": [], "verdicts": [], "revisions": 0, "summary": "",
            "stalled": False, "weak": 0, "shown": []}


# -- context for section prompts ----------------------------------------------------------------
def _room(ctx: WriterContext, prompt: str, max_tokens: int, variables: dict[str, Any]) -> int:
    fixed = ctx.llm.fixed_tokens(prompt, system=SYSTEM, **variables)
    return prompt_budget(ctx.llm.window, fixed, max_tokens)


def _outline_window(state: dict) -> list[dict]:
    i = state["index"]
    lo, hi = max(0, i - OUTLINE_WINDOW), min(len(state["outline"]), i + OUTLINE_WINDOW + 1)
    return [{"n": k + 1, "title": state["outline"][k]["title"]} for k in range(lo, hi)]


def _summary(state: dict, budget: int, count) -> str:
    lines = [f"{s['index'] + 1}. {s['title']}: {s['summary']}" for s in state.get("sections", []) if s.get("summary")]
    kept = fit(reversed(lines), budget, lambda x: count(x) + 1)  # the most recent sections first
    return "\n".join(reversed(kept))


def _earlier(state: dict, query: str, k: int, budget: int, count) -> list[str]:
    sections = state.get("sections", [])[:-1]  # the previous section is represented by its tail
    paras = [p for s in sections for p in passages(s["text"])]
    if not paras or k <= 0:
        return []
    picked = [paras[i] for i in BM25(paras).top(query, k)]
    return fit(picked, budget, lambda x: count(x) + 4)


def _sources(state: dict, ctx: WriterContext, query: str, k: int, budget: int) -> tuple[list[dict], list[dict]]:
    """Passages shown to this section (numbered) and the updated global numbering ``cites``."""
    cites = list(state.get("cites", []))
    if ctx.sources is None or k <= 0:
        return [], cites
    number = {c["chunk"]["doc_id"] + ":" + str(c["chunk"]["index"]): c["n"] for c in cites}
    shown: list[dict] = []
    for chunk in fit(ctx.sources.retrieve(query, k), budget, lambda c: ctx.llm.tokens(c.text) + 6):
        if chunk.id not in number:
            number[chunk.id] = len(cites) + 1
            cites.append({"n": number[chunk.id], "chunk": chunk.model_dump()})
        shown.append({"n": number[chunk.id], "text": chunk.text.strip()})
    return shown, cites


def _context(state: dict, ctx: WriterContext, room: int, *, with_memory: bool) -> dict[str, Any]:
    opts, count, sec = options_of(state), ctx.llm.tokens, _section(state)
    query = " ".join([sec.title, *sec.points])
    cap = lambda part, limit: max(0, min(limit, int(room * SHARES[part])))  # noqa: E731
    sources, cites = _sources(state, ctx, query, opts.source_passages, cap("sources", opts.source_tokens))
    out: dict[str, Any] = {"sources": sources, "_cites": cites}
    if with_memory:
        prev = state.get("sections", [])
        out["summary"] = _summary(state, cap("summary", opts.summary_tokens), count)
        out["earlier"] = _earlier(state, query, opts.earlier_passages, cap("earlier", opts.passage_tokens), count)
        out["previous_tail"] = tail(prev[-1]["text"], cap("tail", opts.tail_tokens), count) if prev else ""
    return out


def _max_tokens(state: dict, ctx: WriterContext, words_left: int) -> int:
    opts = options_of(state)
    want = math.ceil(max(words_left, 1) * state["ratio"] * HEADROOM) + 16
    return max(32, min(want, opts.max_call_tokens, ctx.llm.window // 2))


# -- draft: write, then extend while short ------------------------------------------------------
def draft(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """One drafting call: the first draft of a section, or a continuation from its tail."""
    ctx, opts, sec = runtime.context, options_of(state), _section(state)
    _announce_resume(state, ctx)
    lo, hi = _bounds(sec.budget, opts.tolerance)
    before = state.get("draft", "")
    words_before = count_words(before)
    max_tokens = _max_tokens(state, ctx, hi - words_before)
    prompt, variables = _draft_prompt(state, ctx, before, max_tokens)
    cites = variables.pop("_cites")
    messages = ctx.llm.messages(prompt, system=SYSTEM, **variables)
    seen = _seen_text(state, messages[-1].content) + "\n" + before
    stream = ctx.llm.stream(messages, step=prompt, max_tokens=max_tokens, temperature=_retry_temperature(state, ctx, before))
    completion = stream.collect(until=RepeatWatch(seen, streak=REPEAT_STREAK))  # a loop is stopped, not paid for
    raw = complete_sentences(completion.text) if completion.finish_reason == "stopped" else completion.text
    new, dropped = dedupe(clean_section(raw, sec.title, _titles(state)), seen_text=seen)
    text, note = _fit_length(join_draft(before, new), completion.finish_reason, lo, hi, dropped)
    words = count_words(text)
    weak = state.get("weak", 0) + 1 if state.get("calls", 0) > 0 and words - words_before < max(10, sec.budget // 20) else 0
    stalled = weak >= 2  # two retries in a row that added ~nothing (repeats are dropped before counting)
    if weak:
        note = "; ".join(filter(None, [note, f"added only {words - words_before} words", "stalled" if stalled else ""]))
    attempt = {"action": "continue" if before else "draft", "words": words,
               "tokens": completion.usage.completion_tokens, "note": note}
    ctx.emit(Progress(task="words", done=_done_words(state) + words, total=state["target"], detail=sec.title))
    return {"draft": text, "calls": state.get("calls", 0) + 1, "attempts": [*state.get("attempts", []), attempt],
            "stalled": stalled, "weak": weak, "cites": cites, "shown": [s["n"] for s in variables["sources"]],
            "ratio": _measure(ctx, text, state["ratio"])}


def _retry_temperature(state: dict, ctx: WriterContext, before: str) -> float | None:
    """Warmer sampling for a call that follows one that added (almost) nothing: +0.25 a time, at most 1.2.

    A small model that has run out of new things to say repeats itself at the same temperature.
    """
    base = ctx.llm.settings.temperature
    tries = state.get("weak", 0) if before else state.get("calls", 0)  # first-draft retries: every earlier call was empty
    return min(max(base, 1.2), base + 0.25 * tries) if tries else None


def _draft_prompt(state: dict, ctx: WriterContext, before: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    """The section prompt (with memory) for a first draft, else the continuation prompt (with the tail)."""
    opts, sec, base = options_of(state), _section(state), _base_vars(state)
    if not before:
        empty = {**base, "outline": _outline_window(state), "budget": sec.budget, "summary": "", "earlier": [],
                 "sources": [], "previous_tail": "", "attempt": state.get("calls", 0)}  # > 0: earlier drafts were all repeats
        extra = _context(state, ctx, _room(ctx, "writer_section", max_tokens, empty), with_memory=True)
        return "writer_section", {**empty, **extra}
    words = count_words(before)
    focus = sec.points[state.get("calls", 0) % len(sec.points)] if sec.points else ""  # rotate: new material
    empty = {**base, "words": words, "need": max(sec.budget - words, 10), "draft_tail": "", "sources": [],
             "focus": focus, "attempt": state.get("calls", 0) - 1}  # a new angle each call: same prompt, same output
    room = _room(ctx, "writer_continue", max_tokens, empty)
    extra = _context(state, ctx, int(room * (1 - SHARES["tail"])), with_memory=False)
    return "writer_continue", {**empty, **extra,
                               "draft_tail": tail(before, min(room // 3, opts.tail_tokens * 2), ctx.llm.tokens)}


def _seen_text(state: dict, prompt: str) -> str:
    """Text a new draft must not repeat: the prompt without its source passages, and earlier sections."""
    scaffold = re.sub(r"<document>.*?</document>", "", prompt, flags=re.DOTALL)
    return "\n".join([scaffold, *(s["text"] for s in state.get("sections", []))])


def _fit_length(text: str, finish: str | None, lo: int, hi: int, dropped: int) -> tuple[str, str]:
    notes = [f"dropped {dropped} repeated sentences"] if dropped else []
    if finish == "stopped":
        notes.append("stopped a loop")
    if count_words(text) > hi:
        text = trim_to(text, hi, lo)
        notes.append("trimmed at a boundary")
    elif finish in ("length", "stopped"):
        text = complete_sentences(text)  # the call was cut mid-sentence
    return text, "; ".join(notes)


def _measure(ctx: WriterContext, text: str, ratio: float) -> float:
    """Tokens per word measured on what the model wrote (the plan-time estimate until 50 words)."""
    words = count_words(text)
    return round(min(3.0, max(0.5, ctx.llm.tokens(text) / words)), 4) if words >= 50 else ratio


def _announce_resume(state: dict, ctx: WriterContext) -> None:
    """On the first step after a resume, replay the finished sections to the listeners."""
    if ctx.announced:
        return
    ctx.announced = True
    done = state.get("sections", [])
    ctx.emit(Notice(message=f"resuming: {len(done)} of {len(state['outline'])} sections restored from the checkpoint"))
    for s in done:
        ctx.emit(TextDelta(text=f"## {_shown(state, s['title'])}\n\n{s['text']}\n\n"))
    ctx.emit(Progress(task="words", done=_done_words(state), total=state["target"]))


def _shown(state: dict, title: str) -> str:
    """A section's heading in the text: a model-planned title without list numbers or a "This section
    discusses" opener (``heading``); a title from the user's outline as given."""
    return title if state.get("user_outline") else heading(title)


def after_draft(state: dict) -> str:
    """Extend while short (capped), then review (or commit when review is off)."""
    opts, sec = options_of(state), _section(state)
    lo, _ = _bounds(sec.budget, opts.tolerance)
    if count_words(state["draft"]) < lo and state["calls"] < opts.max_calls and not state.get("stalled"):
        return "draft"
    return "review" if opts.review else "commit"


# -- review and revise --------------------------------------------------------------------------
def review(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """A reviewer call (schema-constrained) plus checks in code; records the verdicts."""
    ctx, sec = runtime.context, _section(state)
    _announce_resume(state, ctx)
    rnd = state.get("revisions", 0)
    verdicts = list(state.get("verdicts", []))
    problems = _code_problems(state["draft"], sec)
    if problems:
        verdicts.append({"passed": False, "problems": problems, "by": "code", "round": rnd})
    if count_words(state["draft"]) == 0:  # nothing for the reviewer to read
        return {"verdicts": verdicts}
    try:
        verdict = _model_review(state, ctx)
    except ParseError as exc:  # the section stands as written; the record says it was not reviewed
        ctx.emit(Notice(message=f"section {state['index'] + 1}: no review ({exc})", level="warning"))
        verdicts.append({"passed": True, "problems": ["not reviewed: the reviewer's reply was not valid JSON"], "by": "code",
                         "round": rnd})
        return {"verdicts": verdicts}
    verdicts.append({"passed": verdict.passes, "problems": verdict.problems, "by": "model", "round": rnd})
    return {"verdicts": verdicts, "summary": verdict.summary.strip()}


def _model_review(state: dict, ctx: WriterContext) -> Review:
    variables = {**_base_vars(state), "text": "", "truncated": False}
    max_tokens = 480  # the longest reply the schema allows: 400 + 3 x 200 characters, with room for the JSON
    room = _room(ctx, "writer_review", max_tokens, variables)
    text = truncate_to_tokens(state["draft"], room, ctx.llm.tokens)
    return ctx.decider.call_json("writer_review", Review, max_tokens=max_tokens, system=SYSTEM,
                             **{**variables, "text": text, "truncated": text != state["draft"]})


def _code_problems(text: str, sec: SectionPlan) -> list[str]:
    if count_words(text) == 0:
        return ["the section is empty"]
    if BM25([text]).top(sec.title, 1) == [] and count_words(sec.title) >= 2:
        return [f"the section never mentions its topic ({sec.title})"]
    return []


def after_review(state: dict) -> str:
    failed = any(not v["passed"] for v in _latest_round(state))
    return "revise" if failed and state.get("revisions", 0) < options_of(state).max_revisions else "commit"


def _latest_round(state: dict) -> list[dict]:
    """Verdicts of the latest review (model and code), i.e. since the last revision."""
    verdicts = state.get("verdicts", [])
    last = max((v.get("round", 0) for v in verdicts), default=0)
    return [v for v in verdicts if v.get("round", 0) == last]


def revise(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """Rewrite a failed section with the reviewer's problems; the draft loop then fixes its length."""
    ctx, opts, sec = runtime.context, options_of(state), _section(state)
    _announce_resume(state, ctx)
    lo, hi = _bounds(sec.budget, opts.tolerance)
    problems = [p for v in _latest_round(state) if not v["passed"] for p in v["problems"]] or ["it does not cover its points"]
    max_tokens = _max_tokens(state, ctx, hi)
    empty = {**_base_vars(state), "budget": sec.budget, "problems": problems, "text": "", "sources": []}
    room = _room(ctx, "writer_revise", max_tokens, empty)
    extra = _context(state, ctx, room // 2, with_memory=False)
    extra.pop("_cites")
    current = truncate_to_tokens(state["draft"], room // 2, ctx.llm.tokens)
    messages = ctx.llm.messages("writer_revise", system=SYSTEM, **{**empty, **extra, "text": current})
    completion = ctx.llm.send(messages, step="writer_revise", max_tokens=max_tokens)
    scaffold = messages[-1].content.replace(current, "")  # the draft under revision may be kept
    text, dropped = dedupe(clean_section(completion.text, sec.title, _titles(state)), seen_text=_seen_text(state, scaffold))
    text, note = _fit_length(text, completion.finish_reason, lo, hi, dropped)
    if count_words(text) < 0.3 * count_words(state["draft"]):  # a collapsed rewrite would lose work
        text, note = state["draft"], "rewrite too short; kept the previous version"
    attempt = {"action": "revise", "words": count_words(text), "tokens": completion.usage.completion_tokens, "note": note}
    return {"draft": text, "calls": 1, "revisions": state.get("revisions", 0) + 1, "stalled": False, "weak": 0,
            "attempts": [*state.get("attempts", []), attempt]}


# -- commit and assemble --------------------------------------------------------------------------
def commit(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """Finish the section: citations, record, events; move to the next section."""
    ctx, opts, sec, i = runtime.context, options_of(state), _section(state), state["index"]
    _announce_resume(state, ctx)
    shown = {c["n"]: c["chunk"]["text"] for c in state.get("cites", []) if c["n"] in set(state.get("shown", []))}
    draft = tidy(state["draft"]) or state["draft"]  # debris headings out ("#### 2.", the prompt read back)
    text, cited = attribute(draft, shown) if shown else (draft, [])
    words = count_words(text)
    lo, hi = _bounds(sec.budget, opts.tolerance)
    record = {"index": i, "title": sec.title, "points": sec.points, "budget": sec.budget, "text": text, "words": words,
              "within_tolerance": lo <= words <= hi, "length": _length_status(state, words, lo, hi),
              "attempts": state.get("attempts", []),
              "verdicts": state.get("verdicts", []), "revisions": state.get("revisions", 0),
              "summary": state.get("summary") or _first_last(text), "citations": cited}
    ctx.emit(TextDelta(text=f"## {_shown(state, sec.title)}\n\n{text}\n\n"))
    earlier = {n for s in state.get("sections", []) for n in s["citations"]}
    for c in state.get("cites", []):
        if c["n"] in cited and c["n"] not in earlier:
            ctx.emit(CitationFound(citation=citation_for(c["n"], c["chunk"])))
    done = _done_words(state) + words
    ctx.emit(Progress(task="words", done=done, total=state["target"], detail=sec.title))
    detail = f"{words}/{sec.budget} words, {state.get('calls', 0)} calls, {state.get('revisions', 0)} revisions"
    update: dict[str, Any] = {"sections": [record], "index": i + 1, **_fresh()}
    # top-up sections keep their size (what the model writes; the next round takes the rest), and only the
    # held-back last section is rebalanced after them
    carry = not state.get("top_ups") or i + 1 == state.get("closing")
    if opts.rebalance and i + 1 < len(state["outline"]) and carry:
        outline = rebalanced(state["outline"], i + 1, state["target"] - done)
        if outline != state["outline"]:
            update["outline"] = outline
            left = sum(s["budget"] for s in state["outline"][i + 1:])
            detail += f"; the {len(outline) - i - 1} sections left now aim at {sum(s['budget'] for s in outline[i + 1:]):,} words (was {left:,})"
    ctx.emit(StepDone(step=f"section {i + 1}/{len(state['outline'])}", detail=detail))
    return update


def rebalanced(outline: list[dict], start: int, left: int) -> list[dict]:
    """The outline with the budgets of sections ``start``.. rescaled to sum to ``left`` words.

    Carries a finished section's shortfall (or surplus) forward so the whole text keeps to the
    target. Budgets are shares of the *planned* budgets (``planned``, else ``budget``), at most 2x
    up or down from the plan, never compounding, and >= MIN_SECTION_WORDS; what cannot be absorbed
    that way is left to the top-up at the end.

    >>> o = [{"title": t, "budget": 500} for t in "ABC"]
    >>> [s["budget"] for s in rebalanced(o, 1, 1266)]  # A wrote 234 of 500: B and C share the 266 short
    [500, 633, 633]
    >>> [s["budget"] for s in rebalanced(o, 1, 3000)]  # at most twice the plan
    [500, 1000, 1000]
    >>> o = [{"title": t, "budget": 900, "planned": 300} for t in "ABC"]
    >>> [s["budget"] for s in rebalanced(o, 2, 5000)]  # twice the plan, not twice the carried budget
    [900, 900, 600]
    """
    rest = [s.get("planned") or s["budget"] for s in outline[start:]]  # shares of the plan, so budgets never compound
    now = sum(rest)
    if not rest or now <= 0:
        return outline
    total = min(max(left, now // 2, MIN_SECTION_WORDS * len(rest)), now * 2)
    budgets = [max(MIN_SECTION_WORDS, b) for b in rescale(rest, total, spread=None)]
    return [*outline[:start], *({**s, "budget": b} for s, b in zip(outline[start:], budgets))]


def shortfall(state: dict, reserve: int = 0) -> int:
    """Words the finished sections (plus ``reserve`` words still to come) are short of the target, when worth a
    top-up (else 0): >= 50 words and >= a third of the tolerance (5% at ±15%)."""
    short = state["target"] - _done_words(state) - reserve
    return short if short >= max(50, state["target"] * options_of(state).tolerance / 3) else 0


def _before_closing(state: dict) -> bool:
    """The next section is the planned last one (held back: top-up sections go before it)."""
    return state.get("closing") is not None and state["closing"] == state["index"] < len(state["outline"])


def _reserve(state: dict) -> int:
    """Words expected of the planned last section when it is still to come: its plan, at most what this model
    writes per section."""
    if not _before_closing(state):
        return 0
    sec = state["outline"][state["closing"]]
    return min(sec.get("planned") or sec["budget"], _section_size(state, options_of(state)))


def _length_status(state: dict, words: int, lo: int, hi: int) -> str:
    """Why the section has the length it has: on_target, stalled, call_cap, over (never expected)."""
    if lo <= words <= hi:
        return "on_target"
    if words > hi:
        return "over"
    return "stalled" if state.get("stalled") else "call_cap"


def _first_last(text: str) -> str:
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if s.strip()]
    picked = sentences[:1] + sentences[-1:] if len(sentences) > 1 else sentences
    return ". ".join(picked)[:400]


def after_commit(state: dict) -> str:
    """Next section, or a top-up when a model-planned text runs short (capped rounds): before its planned last
    section (a conclusion stays last), else at the end; then assemble."""
    wants = not state.get("user_outline") and state.get("top_ups", 0) < top_up_rounds(options_of(state), state["target"])
    if _before_closing(state) and wants and shortfall(state, _reserve(state)):
        return "top_up"
    if state["index"] < len(state["outline"]):
        return "draft"
    return "top_up" if wants and shortfall(state) else "assemble"


def top_up_rounds(opts: WriterOptions, target: int) -> int:
    """The most top-up rounds: ``top_up``, and as many again for every further TOP_UP_SPAN words of target
    (a 20,000-word text that ends 6,000 short needs more rounds of ~10 sections than a 2,000-word one).

    >>> [top_up_rounds(WriterOptions(), t) for t in (450, 4999, 5000, 12000, 20000)]
    [4, 4, 8, 12, 20]
    >>> top_up_rounds(WriterOptions(top_up=0), 20000)
    0
    """
    return opts.top_up * (1 + target // TOP_UP_SPAN)


def top_up(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """The text runs short: the model plans more sections, each sized to what it writes per section (up to the
    shortfall), placed before the planned last section when that is still to come, else after the others."""
    ctx, opts = runtime.context, options_of(state)
    _announce_resume(state, ctx)
    short, stale, mark = shortfall(state, _reserve(state)), state.get("stale", 0), state.get("top_up_mark")
    if mark:  # the last round gained less than half of what its sections should hold (at what the model writes per
        # section; their budgets share the whole shortfall, so a long text's are larger): it did not pay
        stale += _done_words(state) - mark["words"] < mark["planned"] / 2
    if stale >= opts.top_up:  # only reached past the first `top_up` rounds (long targets): stop when rounds stop paying
        ctx.emit(Notice(message=f"the text is {short:,} words short; stopped adding sections after {stale} rounds "
                                f"that gained less than half of what they planned", level="warning"))
        return {"top_ups": top_up_rounds(opts, state["target"]), "stale": stale}
    titles = [s["title"] for s in state["outline"]]
    at = state["index"] if _before_closing(state) else len(titles)  # where the new sections go
    size = _section_size(state, opts)  # fixed from here on (top_up_size)
    k = max(1, min(PLAN_BATCH, math.ceil(short / size)))
    more: list[SectionPlan] = []
    for ask in (k, k + 2):  # a second try asks for more: a small model often re-proposes earlier sections
        try:
            more = plan_more(ctx.decider, state["instruction"], state["target"], titles[:at], short, ask, later=titles[at:])[:k]
        except ParseError as exc:
            ctx.emit(Notice(message=f"the text is {short:,} words short; planning more sections failed ({exc})", level="warning"))
            break
        if more:
            break
    if not more:  # the model only re-proposed earlier sections: points the shortest sections left are the topics
        more = _from_points(state, short, k)
    if not more:
        return {"top_ups": top_up_rounds(opts, state["target"])}  # nothing usable: no further rounds
    planned = min(short, len(more) * size)  # a budget the model can fill; later rounds take the rest
    more = [s.model_copy(update={"budget": b}) for s, b in zip(more, rescale([max(s.budget, 1) for s in more], planned))]
    ctx.emit(StepDone(step="top-up", detail=f"{short:,} words short of {state['target']:,}: "
                      + ", ".join(f"{s.title} ({s.budget} words)" for s in more)))
    added = [{**s.model_dump(), "planned": s.budget} for s in more]
    outline = state["outline"]
    rest = [{**s, "budget": s.get("planned") or s["budget"]} for s in outline[at:]]  # the held-back last section: its plan
    update = {"outline": [*outline[:at], *added, *rest], "top_ups": state.get("top_ups", 0) + 1, "stale": stale,
              "top_up_mark": {"words": _done_words(state), "planned": planned},
              "top_up_size": size, **_fresh()}
    if rest:
        update["closing"] = at + len(added)
    return update


def _section_size(state: dict, opts: WriterOptions) -> int:
    """Words a top-up section is planned for: what this model wrote per section of the plan (the median), at
    most ``section_words`` — a model that stalls at 150 words a section gets more, smaller sections.

    Fixed at the first top-up: measured on top-up sections too, it would spiral down (a model asked for
    157 words writes ~130, so the next round asks for 130 ...; at 20,000 words it fell to 105)."""
    if state.get("top_up_size"):
        return state["top_up_size"]
    words = sorted(s["words"] for s in state.get("sections", []))
    median = words[len(words) // 2] if words else opts.section_words
    return max(2 * MIN_SECTION_WORDS, min(opts.section_words, median))


def _from_points(state: dict, short: int, k: int) -> list[SectionPlan]:
    """Top-up sections without a model call, for when the model only re-proposes earlier sections.

    First the outline points of the sections that fell furthest short, each a section of its own (titled by
    the point, which it covers); then, when no point is left, those sections again, "(continued)"."""
    titles = [s["title"] for s in state["outline"]]
    done = sorted(state.get("sections", []), key=lambda s: s["words"] / max(s["budget"], 1))
    picked: list[tuple[str, list[str]]] = []
    for point in (p.strip() for s in done for p in s.get("points", [])):
        title = point_title(point)
        if usable_title(title, []) and not any(same_title(title, t) for t in [*titles, *(t for t, _ in picked)]):
            picked.append((title, [point]))
        if len(picked) == k:
            break
    for s in done:  # no new point left: go on with the sections that fell short, after the rest
        title = s["title"] if s["title"].endswith(" (continued)") else f"{s['title']} (continued)"
        if len(picked) < k and title not in titles and all(title != t for t, _ in picked):
            picked.append((title, list(s.get("points", []))))
    budgets = rescale([1] * len(picked), short) if picked else []
    return [SectionPlan(title=t, points=ps, budget=b) for (t, ps), b in zip(picked, budgets)]


def after_top_up(state: dict) -> str:
    return "draft" if state["index"] < len(state["outline"]) else "assemble"


def assemble(state: dict, runtime: Runtime[WriterContext]) -> dict:
    """Optional continuity pass, then Markdown with headings and a Sources list."""
    ctx = runtime.context
    _announce_resume(state, ctx)
    sections = sorted({s["index"]: s for s in state.get("sections", [])}.values(), key=lambda s: s["index"])
    if options_of(state).continuity:
        sections = _continuity(state, ctx, sections)
    sections = [{**s, "title": _shown(state, s["title"])} for s in sections]
    parts = [f"# {state['title']}"] + [f"## {s['title']}\n\n{s['text']}" for s in sections]
    cited = sorted({n for s in sections for n in s["citations"]})
    if cited:
        by_n = {c["n"]: Chunk.model_validate(c["chunk"]) for c in state.get("cites", [])}
        parts.append("## Sources\n\n" + "\n".join(f"[{n}] {by_n[n].where()}" for n in cited))
    return {"final": sections, "text": "\n\n".join(parts) + "\n"}


def _continuity(state: dict, ctx: WriterContext, sections: list[dict]) -> list[dict]:
    out = [sections[0]]
    for prev, sec in zip(sections, sections[1:]):
        first, _, rest = sec["text"].partition("\n\n")
        words = count_words(first)
        variables = {"instruction": state["instruction"], "number": sec["index"] + 1, "previous_title": prev["title"],
                     "previous_tail": tail(prev["text"], 120, ctx.llm.tokens), "section_title": sec["title"],
                     "paragraph": first, "words": words, "unit": state["unit"]}
        completion = ctx.llm.call("writer_continuity", max_tokens=_max_tokens(state, ctx, int(words * 1.3)),
                                  system=SYSTEM, **variables)
        new = complete_sentences(clean_section(completion.text, sec["title"], _titles(state)).split("\n\n")[0])
        if words and 0.6 * words <= count_words(new) <= 1.5 * words:
            text = f"{new}\n\n{rest}" if rest else new
            attempt = {"action": "continuity", "words": count_words(text), "tokens": completion.usage.completion_tokens, "note": ""}
            lo, hi = _bounds(sec["budget"], options_of(state).tolerance)
            sec = {**sec, "text": text, "words": count_words(text), "within_tolerance": lo <= count_words(text) <= hi,
                   "attempts": [*sec["attempts"], attempt]}
        out.append(sec)
    return out
