"""Plan-write-review writer for long outputs (10,000+ words from a small model), as a LangGraph graph.

plan (outline with word budgets that sum to the target) → for each section: draft, extend while
short (continue from the tail), trim at a boundary when long → review (model + code checks) →
revise (capped) → commit (checkpointed; the section's shortfall or surplus is carried into the
budgets of the sections left) → top-up (a text that still ends short gets more sections, planned
by the model, capped rounds) → assemble Markdown (optional continuity pass).

What the writer guarantees: planned budgets sum to the target; no section is longer than its budget
plus the tolerance (drafting calls are capped at that length and trimmed at a paragraph or
sentence end); a short section is extended up to ``max_calls`` calls, and every section's
``attempts`` and ``within_tolerance`` say what happened. A killed run resumes at the next section.

>>> from agentlong import Agentlong
>>> from agentlong.backends.fake import FakeBackend
>>> fake = FakeBackend(mode="keyed", default="Tea is grown on hills. " * 40,
...                    responses={"Review the section": {"summary": "About tea.", "problems": [], "passes": True}})
>>> res = write(Agentlong(model="fake", backend=fake), "Write about tea.", words=200,
...             outline=["Growing tea", "Drinking tea"], checkpoint=False)
>>> [s.budget for s in res.plan], res.text.count("\\n## ")
([100, 100], 2)
>>> res.sections[0].words, res.outline[1].budget  # the repeats were dropped: section 2 makes up the rest
(5, 195)
"""

from __future__ import annotations

import operator
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from ..errors import InputError
from ..events import Emit, EventBus
from ..llm import LLM
from ..types import Citation, RunRecord, Usage
from .common import reasoner_for, run_graph, thread_id_for
from .writer_nodes import (WriterContext, after_commit, after_draft, after_review, after_top_up, assemble, commit, draft, plan,
                           review, revise, top_up, top_up_rounds)
from .writer_plan import PLAN_BATCH, Outline, SectionPlan, WriterOptions, check_target, normalize_outline, plan_outline, unit_for
from .writer_sources import Sources, citation_for

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["write", "plan_only", "build_graph", "WriteResult", "SectionResult", "WriterOptions", "Outline",
           "SectionPlan", "WriterState", "check_writable"]


class Attempt(BaseModel):
    """One model call (or code step) that shaped a section."""

    action: Literal["draft", "continue", "revise", "continuity"]
    words: int = Field(description="section length after this step")
    tokens: int = 0
    note: str = ""


class Verdict(BaseModel):
    passed: bool
    problems: list[str] = Field(default_factory=list)
    by: Literal["model", "code"] = "model"
    round: int = Field(0, description="0 for the first review, n after the n-th revision")


class SectionResult(BaseModel):
    """A written section with its length record and review verdicts."""

    index: int
    title: str
    points: list[str] = Field(default_factory=list)
    text: str
    words: int
    budget: int
    within_tolerance: bool
    length: Literal["on_target", "stalled", "call_cap", "over"] = Field(
        "on_target", description="on_target, or why not: the extension stalled or hit the call cap")
    attempts: list[Attempt] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    revisions: int = 0
    summary: str = ""
    citations: list[int] = Field(default_factory=list)


class WriteResult(BaseModel):
    """The finished text (Markdown) with its outline, per-section records, usage and provenance."""

    title: str
    text: str
    outline: list[SectionPlan] = Field(description="what was written: the plan with budgets carried forward, plus top-up sections")
    plan: list[SectionPlan] = Field(default_factory=list, description="the outline as planned (or given): budgets sum to the target")
    sections: list[SectionResult]
    words: int = Field(description="LongBench-Write count of the whole text")
    target: int
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    record: RunRecord | None = None
    path: str | None = None
    resumed: bool = False


class WriterState(TypedDict, total=False):
    instruction: str
    target: int
    unit: str
    options: dict  # WriterOptions.model_dump(); routing reads it from state
    title: str
    outline: list[dict]  # SectionPlan dumps: the live plan (budgets carried forward, top-up sections)
    plan: list[dict]  # the outline as first planned or given
    user_outline: bool  # the user gave the outline: no top-up sections
    closing: int | None  # outline index of the planned last section while it is held back (top-ups go before it)
    top_ups: int  # top-up rounds so far
    stale: int  # top-up rounds that gained less than half of what they planned
    top_up_mark: dict  # at the last top-up: {"words": written so far, "planned": words that round planned}
    top_up_size: int  # words a top-up section is planned for, fixed at the first top-up
    ratio: float  # tokens per word, measured with the model's tokenizer
    index: int  # the section being written
    draft: str
    calls: int  # drafting calls in the current phase (first draft, or after a revision)
    weak: int  # continuation calls in a row that added (almost) nothing
    stalled: bool  # two weak calls in a row: stop extending
    attempts: list[dict]
    verdicts: list[dict]
    revisions: int
    summary: str
    cites: list[dict]  # numbered source passages: {"n", "chunk"}
    shown: list[int]  # passage numbers shown to the current section
    sections: Annotated[list[dict], operator.add]  # finished sections, one per commit
    final: list[dict]
    text: str


def build_graph() -> StateGraph:
    """The uncompiled writer graph."""
    g = StateGraph(WriterState, context_schema=WriterContext)
    for name, fn in [("plan", plan), ("draft", draft), ("review", review), ("revise", revise),
                     ("commit", commit), ("top_up", top_up), ("assemble", assemble)]:
        g.add_node(name, fn)
    g.add_edge(START, "plan")
    g.add_edge("plan", "draft")
    g.add_conditional_edges("draft", after_draft, ["draft", "review", "commit"])
    g.add_conditional_edges("revise", after_draft, ["draft", "review", "commit"])
    g.add_conditional_edges("review", after_review, ["revise", "commit"])
    g.add_conditional_edges("commit", after_commit, ["draft", "top_up", "assemble"])
    g.add_conditional_edges("top_up", after_top_up, ["draft", "assemble"])
    g.add_edge("assemble", END)
    return g


# -- inputs ---------------------------------------------------------------------------------------
def check_instruction(instruction: Any) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError("the writing instruction is empty", hint='say what to write, e.g. agentlong write "A guide to..."')
    return instruction.strip()


def check_writable(path: str | Path) -> Path:
    """The output path, after proving a file can be created beside it (before any model call)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"output path {p} is a folder", hint="give a file path, e.g. -o out.md")
    parent = p.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {p}: folder {parent} does not exist", hint="create the folder or choose another -o path")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".agentlong-", delete=True):
            pass
        if p.exists():
            with p.open("a"):
                pass
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror}", hint="choose a writable -o path") from exc
    return p


def _context(app: "Agentlong", emit: Emit | None, opts: WriterOptions) -> WriterContext:
    """The run context; the writer's LLM samples at ``opts.temperature`` (greedy decoding loops)."""
    bus = emit or EventBus()
    settings = app.settings if opts.temperature is None else app.settings.model_copy(update={"temperature": opts.temperature})
    llm = LLM(app.backend, settings, bus)
    return WriterContext(llm=llm, settings=app.settings, emit=bus, app=app, reasoner=reasoner_for(app, llm))


def _source_list(sources: Any) -> list[str]:
    if sources is None:
        return []
    return [str(sources)] if isinstance(sources, (str, Path)) else [str(s) for s in sources]


def _save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.agentlong-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- entry points ---------------------------------------------------------------------------------
def plan_only(app: "Agentlong", instruction: str, *, words: int, outline: Any = None, emit: Emit | None = None,
              options: WriterOptions | None = None) -> Outline:
    """The outline the writer would use (the user's, rescaled, or the model's), for editing.

    >>> from agentlong import Agentlong
    >>> plan_only(Agentlong(model="fake"), "Write about tea.", words=300, outline=["A", "B (200 words)"]).total
    300
    """
    instruction, target = check_instruction(instruction), check_target(words)
    if outline is not None:
        return normalize_outline(outline, target)
    opts = options or WriterOptions()
    return plan_outline(_context(app, emit, opts).llm, instruction, target, opts)


def _plan(app: "Agentlong", ctx: Any, target: int, sections: int) -> None:
    """The plan line (and the confirm rule) before writing: calls, tokens, minutes, dollars."""
    from ..estimate import go_ahead_calls

    calls = 3 * sections + 1  # outline, then per section a draft, a continuation or revision, a review
    completion = int(target * 1.4 * 1.6)  # ~1.4 tokens a word, plus continuations and revisions
    prompt = calls * min(ctx.llm.window // 2, 2500)
    go_ahead_calls(app.settings, ctx.emit, ctx.llm.backend, f"write about {target:,} words in {sections} sections,",
                   calls, prompt, completion, app.confirm)


def write(app: "Agentlong", instruction: str, *, words: int, sources: Any = None, outline: Any = None,
          emit: Emit | None = None, options: WriterOptions | None = None, path: str | Path | None = None,
          checkpoint: bool | Path = True) -> WriteResult:
    """Plan, write, review and assemble a text of about ``words`` words; resumable after a kill.

    ``outline``: a list of titles or {title, points, budget} dicts, or an Outline; ``sources``: paths or
    corpus names whose passages ground (and are cited in) the text; ``path``: also save the Markdown there.
    """
    instruction, target = check_instruction(instruction), check_target(words)
    out_path = check_writable(path) if path is not None else None
    opts = options or WriterOptions()
    user = normalize_outline(outline, target) if outline is not None else None
    source_list = _source_list(sources)
    ctx = _context(app, emit, opts)
    ctx.sources = Sources.open(app, ctx.llm, source_list) if source_list else None
    started, started_at = time.perf_counter(), _now()
    thread = thread_id_for("writer", instruction, target, user.model_dump() if user else None, source_list,
                           opts.model_dump(), app.settings.fingerprint(), app.backend.name)
    inputs: WriterState = {"instruction": instruction, "target": target, "unit": unit_for(instruction),
                           "options": opts.model_dump(), "title": user.title if user else "",
                           "outline": [s.model_dump() for s in user.sections] if user else [], "sections": [], "cites": []}
    n = len(user.sections) if user else max(1, round(target / opts.section_words)) if not opts.sections else opts.sections
    per_section = opts.max_calls * (1 + opts.max_revisions) + 2 * (opts.max_revisions + 1) + 2
    rounds = top_up_rounds(opts, target)
    n += rounds * PLAN_BATCH  # the most sections top-up rounds can add
    _plan(app, ctx, target, len(user.sections) if user else n - rounds * PLAN_BATCH)
    state = run_graph(build_graph(), inputs, ctx, thread_id=thread, recursion_limit=10 + rounds + n * per_section,
                      checkpoint=checkpoint)
    result = _result(app, ctx, state, started, started_at)
    if out_path is not None:
        _save(out_path, result.text)
        result.path = str(out_path)
    return result


def _result(app: "Agentlong", ctx: WriterContext, state: dict, started: float, started_at: str) -> WriteResult:
    from ..wordcount import count_words

    sections = [SectionResult.model_validate(s) for s in state["final"]]
    cited = {n for s in sections for n in s.citations}
    citations = [citation_for(c["n"], c["chunk"]) for c in state.get("cites", []) if c["n"] in cited]
    return WriteResult(
        title=state["title"], text=state["text"], outline=[SectionPlan.model_validate(s) for s in state["outline"]],
        plan=[SectionPlan.model_validate(s) for s in state.get("plan", state["outline"])],
        sections=sections, words=count_words(state["text"]), target=state["target"], citations=citations,
        usage=ctx.llm.usage, record=app.record(ctx.llm, started, started_at), resumed=bool(state.get("_resumed")),
    )


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
