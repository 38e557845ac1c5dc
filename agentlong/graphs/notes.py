"""Shared parts of the chain-of-agents and map-reduce graphs.

Input checks, token budgets, chunking, verified quotes (``Evidence``), the one-call direct
answer for short inputs, citations and the final ``Answer``. Everything here is a plain
function of its arguments, so both graphs' nodes stay short.

>>> from agentlong.types import Chunk
>>> chunk = Chunk(doc_id="d", source="a.txt", index=0, text="One.\\nThe key is under the mat.\\n",
...               char_start=10, char_end=40, line_start=3, line_end=4)
>>> [e.where() for e in verify_quotes(["the key is under the mat", "a purple elephant"], chunk)]
['a.txt:4']
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from ..errors import ContextWindowExceeded, InputError, ParseError
from ..events import CitationFound, Notice, Progress, StepDone
from ..llm import LLM, StepMeter, metered
from ..packing import SAFETY, fit
from ..types import Answer, Chunk, Citation, Document, Evidence, TraceStep, Usage
from ..verify import locate, line_of

__all__ = [
    "Task", "Quote", "Fact", "DirectAnswer", "FinalAnswer", "check_inputs", "output_reserve", "answer_tokens",
    "make_chunks", "whole_chunks", "fits_direct", "verify_quotes", "merge_evidence", "numbered",
    "step", "check_chunk", "repair_tokens", "answer_direct", "answer_from_notes", "finish", "ticker", "NOT_FOUND",
]

Task = Literal["qa", "summary"]
MAX_QUOTES = 4
MAX_FACTS = 3
DEFAULT_SUMMARY_WORDS = 300
MIN_TEXT = 128  # fewest tokens of text (chunk or notes) a call may be planned with
NOT_FOUND = "Not found: the document does not contain an answer to this question."


# Lengths go into the JSON schema (grammar-constrained backends obey them, so a small model cannot
# copy a whole page as one "sentence") but are not validated: a longer verbatim quote is still evidence.
Quote = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 300})]
Fact = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 200})]


class DirectAnswer(BaseModel):
    """One-call answer for inputs that fit the window: verbatim quotes first, then the answer."""

    quotes: list[Quote] = Field(default_factory=list, max_length=MAX_QUOTES,
                                description="sentences copied word for word from the document that answer the question")
    answer: str = Field(description="the answer, based on the quotes")
    found: bool = Field(description="false when the document does not contain the answer")


class FinalAnswer(BaseModel):
    """The answer written from notes/findings, citing quote numbers."""

    answer: str = Field(description="the answer, citing quote numbers like [1]")
    citations: list[int] = Field(default_factory=list, max_length=8, description="numbers of the supporting quotes")
    found: bool = Field(description="false when the notes do not contain the answer")


# -- inputs and budgets ---------------------------------------------------------------------------
def check_inputs(llm: LLM, documents: list[Document], question: str, task: str, words: int | None) -> int | None:
    """Raise InputError for unusable input; return the word target (summaries) or None."""
    if task not in ("qa", "summary"):
        raise InputError(f"unknown task {task!r}", hint="use task='qa' or task='summary'")
    if not documents or not any(d.text.strip() for d in documents):
        raise InputError("the documents are empty: there is no text to read", hint="give a file with text in it")
    question = question or ""
    if task == "qa" and not question.strip():
        raise InputError("the question is empty", hint='ask a question, e.g. agentlong ask book.txt "Who is Ahab?"')
    limit = max(32, llm.window // 6)
    size = llm.tokens(question)
    if size > limit:
        raise InputError(
            f"the question is {size:,} tokens, which exceeds its budget of {limit:,} tokens "
            f"in the model's {llm.window:,}-token context",
            hint="ask a shorter question (put long material in a document instead)",
        )
    if task == "summary":
        words = words or DEFAULT_SUMMARY_WORDS
        if words < 10:
            raise InputError(f"a summary of {words} words is too short", hint="ask for at least 10 words")
        return words
    return None


def output_reserve(llm: LLM) -> int:
    """max_tokens of a worker/map/collapse reply: the configured reserve, scaled down for small windows."""
    return min(llm.settings.chunking.output_reserve, max(128, llm.window // 8))


def answer_tokens(llm: LLM, task: str, words: int | None) -> int:
    """max_tokens of the final answer: a summary's word target (~1.5 tokens/word) or the reserve."""
    if task == "summary" and words:
        return int(words * 1.5) + 48
    return output_reserve(llm)


def repair_tokens(llm: LLM, model: type[BaseModel]) -> int:
    """Room a JSON call must keep for its repair retry: the repair instruction with the schema
    (``LLM.call_json`` shortens the echoed bad reply to whatever room is left)."""
    from ..prompts import render

    text = render("json_repair", llm.settings.prompts_dir, error="validation error " * 12,
                  schema=model.model_json_schema())
    return llm.tokens(text) + 16


def check_answer_room(llm: LLM, fixed: int, out: int, words: int | None) -> int:
    """Tokens left for notes in the final call; a clear error when a summary asks too many words."""
    room = int(llm.window * SAFETY) - fixed - out
    if room >= MIN_TEXT:
        return room
    if not words:
        raise ContextWindowExceeded(
            f"the answer prompt leaves only {room} tokens for notes in the model's {llm.window:,}-token context",
            hint="use a model or n_ctx with a larger context window, or a shorter question",
        )
    most = max(0, int((llm.window * SAFETY - fixed - MIN_TEXT - 48) / 1.5))
    raise InputError(
        f"a {words}-word summary does not fit the model's {llm.window:,}-token context with room for notes",
        hint=f"ask for at most ~{most} words, or use a model / n_ctx with a larger context",
    )


def check_chunk(llm: LLM, chunk: int) -> int:
    """A chunk budget too small to read anything useful is a clear error, not hundreds of tiny calls."""
    if chunk < MIN_TEXT:
        raise ContextWindowExceeded(
            f"only {chunk} tokens of text per call fit the model's {llm.window:,}-token context "
            "after the instructions, notes and answer",
            hint="use a model or n_ctx with a larger context window, or a shorter question",
        )
    return chunk


# -- chunks and quotes ----------------------------------------------------------------------------
def make_chunks(documents: list[Document], max_tokens: int, count: Callable[[str], int]) -> list[Chunk]:
    """All documents' chunks in reading order (whitespace-only chunks skipped)."""
    from ..documents import chunk_document

    chunks: list[Chunk] = []
    for doc in documents:
        if doc.text.strip():
            chunks.extend(c for c in chunk_document(doc, max_tokens, count) if c.text.strip())
    return chunks


def whole_chunks(documents: list[Document]) -> list[Chunk]:
    """One chunk per non-empty document (the direct path reads documents whole)."""
    return [
        Chunk(doc_id=d.id, source=d.source, index=0, text=d.text, char_start=0, char_end=len(d.text),
              line_start=1, line_end=line_of(d.text, max(0, len(d.text) - 1)))
        for d in documents if d.text.strip()
    ]


def fits_direct(llm: LLM, documents: list[Document], question: str, task: str, words: int | None,
                chunk_tokens: int | None = None) -> bool:
    """True when all documents fit one direct call (prompt + answer within the window) and no
    smaller ``chunk_tokens`` was asked for."""
    total = sum(llm.tokens(d.text) for d in documents)
    if total >= llm.window or (chunk_tokens and total > chunk_tokens):
        return False
    docs = [{"source": c.source, "text": c.text} for c in whole_chunks(documents)]
    prompt = llm.fixed_tokens("coa_direct", docs=docs, question=question, task=task, words=words or 0,
                              max_quotes=MAX_QUOTES)
    if task == "qa":
        prompt += repair_tokens(llm, DirectAnswer)
    return prompt + answer_tokens(llm, task, words) + 64 <= int(llm.window * SAFETY)


def warn_chunk_cap(ctx: Any, asked: int | None, used: int) -> None:
    """A Notice when the caller's chunk size had to be lowered to fit the window."""
    if asked and asked > used:
        ctx.emit(Notice(level="warning", message=f"chunk size {asked} does not fit the "
                        f"{ctx.llm.window}-token context with the prompt and notes; using {used}"))


def probe_chunk(documents: list[Document]) -> Chunk:
    """An empty chunk with the longest source name and line numbers: measures a prompt's fixed cost."""
    longest = max((d.source for d in documents), key=len)
    return Chunk(doc_id="", source=longest, index=0, text="", char_start=0, char_end=0,
                 line_start=99999, line_end=99999)


def clean_facts(facts: list[str]) -> list[str]:
    """Facts with whitespace folded, empties and repeats removed."""
    return list(dict.fromkeys(" ".join(f.split()) for f in facts if isinstance(f, str) and f.strip()))


_WORD = re.compile(r"[a-z0-9]{3,}")
_SENTENCE_END = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)[.!?][\"'”’)\]]*\s+|\n\s*\n")
_STOP = frozenset("the and for that with was were this from had have has his her its are but not you all "
                  "they their them she him one out who what when which there been into than then".split())


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def snap_to_sentence(quote: str, text: str, *, coverage: float = 0.8) -> tuple[int, int, float] | None:
    """The sentence of ``text`` that a lightly reworded quote came from: at least ``coverage`` of
    the quote's content words (and at least 3 of them) appear in it. Small models often reword the
    sentence they were asked to copy; the evidence kept is the real sentence, never the rewording.

    >>> text = "It rained. Mr. Bingley's horse was a grey mare called Moonlight. We left."
    >>> s, e, score = snap_to_sentence("Moonlight is a grey mare called Moonlight.", text)
    >>> text[s:e], score
    ("Mr. Bingley's horse was a grey mare called Moonlight.", 1.0)
    >>> snap_to_sentence("The grey mare had a blue coat and a black saddle.", text) is None
    True
    """
    words = _content_words(quote)
    if len(words) < 3:
        return None
    best: tuple[int, int, float] | None = None
    for start, end in _sentence_spans(text):
        shared = len(words & _content_words(text[start:end]))
        score = shared / len(words)
        if shared >= 3 and score >= coverage and (best is None or score > best[2]):
            best = (start, end, round(score, 3))
    return best


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed."""
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    pieces = ((a, text[a:b]) for a, b in zip(cuts, cuts[1:]))
    return [(a + len(p) - len(p.lstrip()), a + len(p.rstrip())) for a, p in pieces if p.strip()]


def verify_quotes(quotes: list[str], chunk: Chunk) -> list[Evidence]:
    """Evidence for each quote found in ``chunk``: exact, tight fuzzy (``verify.locate``), or the one
    sentence a lightly reworded quote came from (``snap_to_sentence``); the rest are dropped."""
    found: list[Evidence] = []
    for quote in quotes:
        if not isinstance(quote, str):
            continue
        hit = locate(quote, chunk.text)
        if hit is None:
            snapped = snap_to_sentence(quote, chunk.text)
            if snapped is None:
                continue
            hit = (snapped[0], snapped[1], "fuzzy")
        s, e, how = hit
        found.append(Evidence(
            quote=chunk.text[s:e], doc_id=chunk.doc_id, source=chunk.source,
            char_start=chunk.char_start + s, char_end=chunk.char_start + e,
            line_start=chunk.line_start + chunk.text.count("\n", 0, s),
            line_end=chunk.line_start + chunk.text.count("\n", 0, max(s, e - 1)),
            chunk_index=chunk.index, match=how,
        ))
    return found


def merge_evidence(old: list[dict], new: list[Evidence]) -> list[dict]:
    """``old`` plus those of ``new`` (one chunk's, sorted by position) not already covered by an
    existing span; a new span that covers old ones replaces them. State keeps dicts."""
    merged = list(old)
    for ev in sorted(new, key=lambda e: (e.doc_id, e.char_start)):
        covered = any(o["doc_id"] == ev.doc_id and o["char_start"] <= ev.char_start and ev.char_end <= o["char_end"]
                      for o in merged)
        if not covered:
            merged = [o for o in merged if not (o["doc_id"] == ev.doc_id and ev.char_start <= o["char_start"]
                                                and o["char_end"] <= ev.char_end)]
            merged.append(ev.model_dump())
    return merged


def numbered(quotes: list[dict], start: int = 1) -> list[dict]:
    """Quotes as template rows: ``{n, quote, where}``."""
    return [{"n": start + i, "quote": " ".join(q["quote"].split()), "where": Evidence(**q).where()}
            for i, q in enumerate(quotes)]


def fit_quotes(quotes: list[dict], budget: int, count: Callable[[dict], int]) -> list[dict]:
    """The quotes (in the given priority order) that fit ``budget``, returned in reading order."""
    kept = fit(quotes, budget, count)
    return [q for q in quotes if q in kept]


# -- steps ----------------------------------------------------------------------------------------
@contextmanager
def step(name: str) -> Iterator[StepMeter]:
    """Meter one graph step's calls and name the step in a ParseError (``worker 3/8: ...``)."""
    with metered() as meter:
        try:
            yield meter
        except ParseError as exc:
            raise ParseError(f"{name}: {exc.message}", hint=exc.hint) from exc


def trace(ctx: Any, name: str, detail: str, usage: Usage) -> dict:
    """Emit StepDone and return the TraceStep as a JSON-able dict for graph state."""
    ctx.emit(StepDone(step=name, detail=detail, usage=usage))
    return TraceStep(step=name, detail=detail, usage=usage).model_dump()


_tickers: dict[int, dict[str, int]] = {}
_tickers_lock = threading.Lock()


def ticker(ctx: Any, task: str, total: int, detail: str = "") -> None:
    """Emit Progress for one more finished unit of ``task`` (thread-safe for parallel nodes)."""
    with _tickers_lock:
        counts = _tickers.setdefault(id(ctx), {})
        counts[task] = done = counts.get(task, 0) + 1
    ctx.emit(Progress(task=task, done=min(done, total), total=total, detail=detail))


def forget_ticker(ctx: Any) -> None:
    with _tickers_lock:
        _tickers.pop(id(ctx), None)


# -- answers --------------------------------------------------------------------------------------
def answer_direct(ctx: Any, chunks: list[Chunk], question: str, task: str, words: int | None) -> dict:
    """One call over the whole (short) input. Returns the ``answer`` state value."""
    llm: LLM = ctx.llm
    docs = [{"source": c.source, "text": c.text} for c in chunks]
    out = answer_tokens(llm, task, words)
    variables = dict(docs=docs, question=question, task=task, words=words or 0, max_quotes=MAX_QUOTES)
    with step("direct answer") as meter:
        if task == "summary":
            text, quotes, found = llm.call("coa_direct", max_tokens=out, **variables).text.strip(), [], True
        else:
            reply = llm.call_json("coa_direct", DirectAnswer, max_tokens=out, **variables)
            text, quotes, found = reply.answer.strip(), reply.quotes, reply.found
    evidence: list[dict] = []
    for chunk in chunks:
        evidence = merge_evidence(evidence, verify_quotes(quotes, chunk))
    cited = list(range(1, len(evidence) + 1)) if found else []
    detail = f"{len(evidence)} of {len(quotes)} quotes verified"
    return {"text": text, "evidence": evidence, "cited": cited, "found": found and bool(text),
            "trace": trace(ctx, "direct answer", detail, meter.usage)}


def answer_from_notes(ctx: Any, prompt: str, note: str, quotes: list[dict], question: str, task: str,
                      words: int | None, name: str) -> dict:
    """The final call (manager / reduce): answer from rendered notes whose quotes are numbered 1..n."""
    llm: LLM = ctx.llm
    out = answer_tokens(llm, task, words)
    variables = dict(note=note, question=question, task=task, words=words or 0)
    with step(name) as meter:
        if task == "summary":
            text, numbers, found = llm.call(prompt, max_tokens=out, **variables).text.strip(), [], True
        else:
            reply = llm.call_json(prompt, FinalAnswer, max_tokens=out, **variables)
            text, numbers, found = reply.answer.strip(), reply.citations, reply.found
    text, cited = cite(text, numbers if found else [], len(quotes))
    inferred = found and not cited and task == "qa"
    if inferred:  # small models often answer right but cite nothing: cite the quotes the answer comes from
        text, cited = cite(text, infer_citations(text, question, quotes), len(quotes))
    detail = f"{len(cited)} citations" + (" (inferred)" if inferred and cited else "") + \
        ("" if found else ", answer not found")
    return {"text": text, "evidence": quotes, "cited": cited, "found": found and bool(text),
            "trace": trace(ctx, name, detail, meter.usage)}


def cite(text: str, numbers: list[int], available: int) -> tuple[str, list[int]]:
    """Valid citation numbers (from the list and ``[n]`` markers); invalid markers are removed and
    cited numbers missing from the text are appended as markers."""
    marked = [int(m) for m in re.findall(r"\[(\d{1,3})\]", text)]
    text = re.sub(r"\s?\[(\d{1,3})\]", lambda m: m.group(0) if 1 <= int(m.group(1)) <= available else "", text)
    cited = sorted({n for n in [*numbers, *marked] if 1 <= n <= available})
    missing = [n for n in cited if f"[{n}]" not in text]
    if missing:
        text = text.rstrip() + " " + "".join(f"[{n}]" for n in missing)
    return text, cited


def infer_citations(answer: str, question: str, quotes: list[dict], most: int = 3) -> list[int]:
    """Numbers of the quotes sharing the most content words with the answer — words of the question
    do not count, so "Moonlight" points at the quote about Moonlight, not every quote naming Bingley.

    >>> quotes = [{"quote": "Mr. Bingley came to town."}, {"quote": "His horse was a grey mare called Moonlight."}]
    >>> infer_citations("Moonlight.", "What was Mr. Bingley's horse called?", quotes)
    [2]
    """
    words = _content_words(answer) - _content_words(question)
    overlaps = [len(words & _content_words(q["quote"])) for q in quotes]
    best = max(overlaps, default=0)
    return [i + 1 for i, n in enumerate(overlaps) if best and n == best][:most]


def finish(ctx: Any, question: str, strategy: str, answer: dict, steps: list[dict]) -> Answer:
    """The ``Answer`` from the final state: numbered citations, usage of this run, per-step trace."""
    evidence = [Evidence(**e) for e in answer["evidence"]]
    citations = [Citation(n=n, evidence=evidence[n - 1]) for n in answer["cited"]]
    for citation in citations:
        ctx.emit(CitationFound(citation=citation))
    return Answer(
        question=question, text=answer["text"], strategy=strategy, citations=citations, evidence=evidence,
        usage=ctx.llm.usage, trace=[TraceStep(**t) for t in steps], found=answer["found"],
    )


def not_found(ctx: Any, name: str) -> dict:
    """The answer when no step found anything relevant: no model call, found=False."""
    return {"text": NOT_FOUND, "evidence": [], "cited": [], "found": False,
            "trace": trace(ctx, name, "nothing relevant was found; no answer call made", Usage())}
