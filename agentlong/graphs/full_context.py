"""Full context: when the documents fit the model's window, read them in one selection call.

Questions: every sentence (or code line) is shown numbered; the model selects the ids that answer
and scores the text; a brief answer is written from the selected units, which are its citations.
Aggregation questions count the labelled units in code. Summaries: every unit numbered, a summary
of the asked length that cites the units its sentences rest on.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.documents import load_text
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> doc = load_text("Ada moved to Turin in 1843. She kept bees.", source="ada.txt")
>>> fake = FakeBackend(mode="keyed", responses={"Answer the question": {"answer": "In 1843 [1]."},
...                                             "Ada": {"answer": "1843"}})
>>> settings = Settings(model="fake")
>>> ctx = RunContext(llm=LLM(fake, settings), settings=settings)
>>> fits(ctx, [doc], "When did Ada move?").fits
True
>>> ans = run(ctx, [doc], "When did Ada move?")
>>> ans.text, ans.citations[0].evidence.quote
('In 1843 [1].', 'Ada moved to Turin in 1843.')
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ..errors import ContextWindowExceeded, InputError
from ..events import CitationFound, Notice, StepDone
from ..evidence.budget import rendered_tokens, select_fixed, summary_tokens
from ..evidence.units import Unit, units_of
from ..llm import metered
from ..packing import SAFETY, truncate_to_tokens
from ..types import Answer, Chunk, Document, TraceStep
from ..verify import line_of
from .common import RunContext
from .fold import mode_for, picked_answer, read_rows

__all__ = ["Fit", "fits", "run", "summary_tokens", "whole_chunks", "truncate"]

CHARS_PER_TOKEN_MAX = 8  # no tokenizer packs more characters than this into a token of prose


class Fit(NamedTuple):
    fits: bool
    needed: int  # prompt + output tokens the call needs (a lower bound when the text is huge)
    window: int
    text_budget: int  # tokens available for document text


def whole_chunks(documents: list[Document]) -> list[Chunk]:
    """One chunk per non-empty document."""
    return [Chunk(doc_id=d.id, source=d.source, index=0, text=d.text, char_start=0, char_end=len(d.text),
                  line_start=1, line_end=line_of(d.text, max(0, len(d.text) - 1)))
            for d in documents if d.text.strip()]


def _fixed(ctx: RunContext, question: str, task: str, words: int | None) -> int:
    llm = ctx.llm
    if task == "summary":
        fixed = llm.fixed_tokens("summary_units", evidence=[], words=words or 300, focus="")
        return fixed + summary_tokens(words or 300)
    return select_fixed(llm, question, mode_for(question, "qa"))


def fits(ctx: RunContext, documents: list[Document], question: str = "", *,
         task: Literal["qa", "summary"] = "qa", words: int | None = None) -> Fit:
    """The one "fits in one call" rule: the documents as numbered units, the instructions and the
    reply within the model's window."""
    llm = ctx.llm
    fixed = _fixed(ctx, question, task, words)
    budget = int(llm.window * SAFETY) - fixed
    chars = sum(len(d.text) for d in documents)
    if chars > CHARS_PER_TOKEN_MAX * max(llm.window, 1):  # clearly too big: do not tokenize a whole book
        return Fit(False, fixed + chars // CHARS_PER_TOKEN_MAX, llm.window, budget)
    text_tokens = rendered_tokens(llm, units_of(whole_chunks(documents)))
    return Fit(text_tokens <= budget, fixed + text_tokens, llm.window, budget)


def truncate(ctx: RunContext, documents: list[Document], budget: int) -> list[Document]:
    """The longest prefix of the documents (whole documents, then a cut one) within ``budget`` tokens."""
    kept: list[Document] = []
    left = int(budget / 1.15)  # numbering adds a few tokens a unit
    for doc in documents:
        if left < 32:
            break
        text = truncate_to_tokens(doc.text[: CHARS_PER_TOKEN_MAX * max(left, 1)], left, ctx.llm.tokens)
        kept.append(doc if text == doc.text else doc.model_copy(update={"text": text}))
        left -= ctx.llm.tokens(text) + 16
    return kept


def run(ctx: RunContext, documents: list[Document], question: str = "", *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, truncate_to_fit: bool = False) -> Answer:
    """Answer ``question`` (or summarize in about ``words`` words) reading every document at once.

    When they do not fit: ``truncate_to_fit`` reads the longest prefix that fits (with a warning),
    otherwise ContextWindowExceeded is raised before any call.
    """
    if not documents or not any(d.text.strip() for d in documents):
        raise InputError("no text to read", hint="give a file or corpus with text in it")
    if task == "qa" and not question.strip():
        raise InputError("empty question", hint="ask a question in words")
    check = fits(ctx, documents, question, task=task, words=words)
    notes: list[str] = []
    if not check.fits:
        if not truncate_to_fit:
            raise ContextWindowExceeded(
                f"the documents need about {check.needed:,} tokens; the model's window is {check.window:,}",
                hint="use --strategy auto, rtr, coa or mapreduce for long inputs")
        documents = truncate(ctx, documents, max(check.text_budget, 0))
        if not documents:
            raise InputError("the window leaves no room for document text", hint="use a model with a larger context")
        notes.append(f"truncated to the first {sum(ctx.llm.tokens(d.text) for d in documents):,} tokens")
        ctx.emit(Notice(level="warning", message=f"full context: input {notes[-1]} (it does not fit the window)"))
    units = units_of(whole_chunks(documents))
    if task == "summary":
        words = words or 300
        return _finish(ctx, f"Summarize in about {words} words.", "summary", units, words, notes, [])
    question = question.strip()
    mode = mode_for(question, "qa")
    rows, step = read_rows(ctx, "read", question, units, mode, [], score=0.0)
    steps = [step]
    return _finish(ctx, question, mode, units, 0, notes, rows, steps)


def _finish(ctx: RunContext, question: str, mode: str, units: list[Unit], words: int, notes: list[str],
            rows: list[dict], steps: list[TraceStep] | None = None) -> Answer:
    if mode == "summary":
        rows = [{"unit": u.model_dump(), "label": "", "score": 5} for u in units]
    with metered() as meter:
        result = picked_answer(ctx.decider, question, mode, rows, words, units)  # type: ignore[arg-type]
    for citation in result.citations:
        ctx.emit(CitationFound(citation=citation))
    detail = "; ".join([*notes, result.detail])
    ctx.emit(StepDone(step="answer", detail=detail, usage=meter.usage))
    evidence = [Unit(**r["unit"]).evidence() for r in rows] if mode != "summary" else \
        [c.evidence for c in result.citations]
    return Answer(question=question, text=result.text, strategy="full", found=result.found, basis=result.basis,  # type: ignore[arg-type]
                  citations=result.citations, evidence=evidence, usage=ctx.llm.usage,
                  trace=[*(steps or []), TraceStep(step="answer", detail=detail, usage=meter.usage)])
