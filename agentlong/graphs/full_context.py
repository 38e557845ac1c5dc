"""Full-context strategy: when the documents fit the model's window, read them in one call.

Questions: one schema-constrained call returns supporting quotes and the answer; quotes are
verified against the documents (``verify.locate``) and the answer cites only those that verify.
Summaries: one streamed call (``TextDelta`` events), no citations.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.documents import load_text
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> doc = load_text("Ada moved to Turin in 1843. She kept bees.", source="ada.txt")
>>> fake = FakeBackend(mode="keyed", responses={"Question": {
...     "quotes": ["Ada moved to Turin in 1843."], "found": True, "answer": "In 1843 [1]."}})
>>> settings = Settings(model="fake")
>>> ctx = RunContext(llm=LLM(fake, settings), settings=settings)
>>> fits(ctx, [doc], "When did Ada move?").fits
True
>>> ans = run(ctx, [doc], "When did Ada move?")
>>> ans.text, ans.citations[0].evidence.quote
('In 1843 [1].', 'Ada moved to Turin in 1843.')
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from ..errors import InputError
from ..events import CitationFound, Notice, StepDone, TextDelta
from ..packing import SAFETY, truncate_to_tokens
from ..prompts import render
from ..types import Answer, Document, Evidence, TraceStep
from .common import RunContext
from .evidence import NOT_FOUND, add_unique, number_citations, says_not_found, verify_in

__all__ = ["Fit", "fits", "run", "summary_tokens"]

MAX_QUOTES = 5
CHARS_PER_TOKEN_MAX = 8  # no tokenizer packs more characters than this into a token of prose


class FullAnswer(BaseModel):
    # field order is generation order: quotes, then the answer built on them, then the verdict
    quotes: list[str] = Field(default_factory=list, max_length=MAX_QUOTES)
    answer: str
    found: bool


class Fit(NamedTuple):
    fits: bool
    needed: int  # prompt + output tokens the call needs (a lower bound when the text is huge)
    window: int
    text_budget: int  # tokens available for document text


def summary_tokens(words: int) -> int:
    """Output tokens to allow for a summary of ``words`` words (English ≈ 1.4 tokens/word, +15%)."""
    return int(words * 1.6) + 32


def _shown(documents: list[Document]) -> list[dict[str, str]]:
    return [{"source": d.source, "text": ""} for d in documents]


def _reserve(ctx: RunContext, task: str, words: int | None) -> int:
    if task == "summary":
        return summary_tokens(words or 300)
    return max(64, min(ctx.settings.chunking.output_reserve, ctx.llm.window // 4))


def fits(ctx: RunContext, documents: list[Document], question: str = "", *,
         task: Literal["qa", "summary"] = "qa", words: int | None = None) -> Fit:
    """Whether the documents, the instructions and the answer fit the model's window in one call."""
    llm = ctx.llm
    prompt, extra = _prompt(task)
    fixed = _fixed_tokens(ctx, prompt, documents=_shown(documents), **_vars(task, question, words), **extra)
    reserve = _reserve(ctx, task, words)
    budget = int(llm.window * SAFETY) - fixed - reserve
    chars = sum(len(d.text) for d in documents)
    if chars > CHARS_PER_TOKEN_MAX * max(llm.window, 1):  # clearly too big: do not tokenize a whole book
        return Fit(False, fixed + reserve + chars // CHARS_PER_TOKEN_MAX, llm.window, budget)
    text_tokens = sum(llm.tokens(d.text) for d in documents)
    return Fit(text_tokens <= budget, fixed + reserve + text_tokens, llm.window, budget)


def _fixed_tokens(ctx: RunContext, prompt: str, **variables: Any) -> int:
    """Like ``LLM.fixed_tokens`` but without listing the prompt as used: measuring is not calling."""
    texts = [render("system", ctx.settings.prompts_dir), render(prompt, ctx.settings.prompts_dir, **variables)]
    return sum(ctx.llm.tokens(t) + 8 for t in texts)


def _prompt(task: str) -> tuple[str, dict[str, Any]]:
    return ("full_summary", {}) if task == "summary" else ("full_answer", {"max_quotes": MAX_QUOTES})


def _vars(task: str, question: str, words: int | None) -> dict[str, Any]:
    return {"words": words or 300} if task == "summary" else {"question": question}


def truncate(ctx: RunContext, documents: list[Document], budget: int) -> list[Document]:
    """The longest prefix of the documents (whole documents, then a cut one) within ``budget`` tokens."""
    kept: list[Document] = []
    left = budget
    for doc in documents:
        if left < 32:
            break
        text = doc.text[: CHARS_PER_TOKEN_MAX * max(left, 1)]
        text = truncate_to_tokens(text, left, ctx.llm.tokens)
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
            from ..errors import ContextWindowExceeded

            raise ContextWindowExceeded(
                f"the documents need about {check.needed:,} tokens; the model's window is {check.window:,}",
                hint="use --strategy auto, rtr, coa or mapreduce for long inputs")
        documents = truncate(ctx, documents, max(check.text_budget, 0))
        if not documents:
            raise InputError("the window leaves no room for document text", hint="use a model with a larger context")
        notes.append(f"truncated to the first {sum(ctx.llm.tokens(d.text) for d in documents):,} tokens")
        ctx.emit(Notice(level="warning", message=f"full context: input {notes[-1]} (it does not fit the window)"))
    if task == "summary":
        return _summary(ctx, documents, words or 300, notes)
    return _qa(ctx, documents, question.strip(), notes)


def _summary(ctx: RunContext, documents: list[Document], words: int, notes: list[str]) -> Answer:
    llm = ctx.llm
    messages = llm.messages("full_summary", documents=documents, words=words)
    stream = llm.stream(messages, step="full_summary", max_tokens=summary_tokens(words))
    for delta in stream:
        ctx.emit(TextDelta(text=delta))
    text = (stream.completion.text if stream.completion else "").strip()
    ctx.emit(StepDone(step="full_summary", detail=f"{len(text.split())} words"))
    return Answer(question=f"Summarize in about {words} words.", text=text, strategy="full",
                  usage=llm.usage, trace=list(llm.trace) + [TraceStep(step="full", detail="; ".join(notes))])


def _qa(ctx: RunContext, documents: list[Document], question: str, notes: list[str]) -> Answer:
    llm = ctx.llm
    out = llm.call_json("full_answer", FullAnswer, max_tokens=_reserve(ctx, "qa", None), documents=documents,
                        question=question, max_quotes=MAX_QUOTES)
    evidence, refs = verify_quotes(out.quotes, documents)
    dropped = len(out.quotes) - len(refs)
    if dropped:
        ctx.emit(Notice(level="info", message=f"dropped {dropped} quote(s) not found verbatim in the source"))
    notes.append(f"{len(out.quotes)} quotes proposed, {dropped} dropped, {len(evidence)} verified")
    trace = list(llm.trace)
    if not out.found or says_not_found(out.answer):
        return Answer(question=question, text=NOT_FOUND, strategy="full", found=False, evidence=evidence,
                      usage=llm.usage, trace=trace + [TraceStep(step="full", detail="; ".join(notes))])
    text, citations = number_citations(out.answer, evidence, refs=refs, cite_all_if_none=True)
    if not citations:
        notes.append("no quote verified: the answer cites nothing")
        ctx.emit(Notice(level="warning", message="full context: no supporting quote verified; answer has no citations"))
    for citation in citations:
        ctx.emit(CitationFound(citation=citation))
    return Answer(question=question, text=text, strategy="full", citations=citations, evidence=evidence,
                  usage=llm.usage, trace=trace + [TraceStep(step="full", detail="; ".join(notes))])


def verify_quotes(quotes: list[str], documents: list[Document]) -> tuple[list[Evidence], dict[int, int]]:
    """Verified evidence for the model's quotes and the map quote number (1-based) → evidence index."""
    evidence: list[Evidence] = []
    refs: dict[int, int] = {}
    for n, quote in enumerate(quotes, start=1):
        for doc in documents:
            ev = verify_in(quote, doc.text, doc_id=doc.id, source=doc.source)
            if ev is not None:
                refs[n] = add_unique(evidence, ev)[0]
                break
    return evidence, refs
