"""Retrieve-then-reason with verified evidence (ALR² style), as a LangGraph graph.

retrieve (dense + BM25, RRF, document order, merged into passages, packed into the window)
→ extract (the model copies supporting sentences, schema-constrained; each quote is checked with
``verify.locate`` against the passage it came from, and dropped when it is not there)
→ answer (reasoning over verified evidence only, numbered citations [n])
— or, when no quote of a round verifies: ground (a free answer over the best passages, kept only
when source lines carry its new words: those lines become its evidence), else one query-rewrite
round, then "not found" instead of a guess.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.graphs.retrieval import InMemorySource
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Chunk
>>> text = "The vault code is 4721. Nobody else knows it.\\n"
>>> src = InMemorySource([Chunk(doc_id="d", source="notes.txt", index=0, text=text, char_start=0,
...                             char_end=len(text), line_start=1, line_end=1)])
>>> fake = FakeBackend(mode="keyed", responses={
...     "copy, word for word": {"quotes": [{"passage": 1, "text": "The vault code is 4721."}]},
...     "Numbered evidence": "It is 4721 [1]."})
>>> settings = Settings(model="fake")
>>> ans = run(RunContext(llm=LLM(fake, settings), settings=settings), src, "What is the vault code?",
...           checkpoint=False)
>>> ans.text, ans.citations[0].evidence.where()
('It is 4721 [1].', 'notes.txt:1')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from ..errors import InputError, ParseError
from ..events import CitationFound, Notice, Progress, StepDone
from ..packing import fit, prompt_budget, truncate_to_tokens
from ..types import Answer, Evidence, TraceStep
from .common import RunContext, run_graph, thread_id_for
from .evidence import (NOT_FOUND, add_unique, attribute, grounded, number_citations, says_not_found, supporting_lines,
                       verify_in)
from .retrieval import HybridSearch, Source, merge_passages

__all__ = ["RtrContext", "RtrState", "build_graph", "run", "DEFAULT_K"]

DEFAULT_K = 8  # candidate chunks per retrieval round
MAX_QUOTES = 6
MAX_QUERIES = 3


@dataclass
class RtrContext(RunContext):
    """The run context plus the hybrid search over the corpus."""

    search: HybridSearch | None = None


class RtrState(TypedDict, total=False):
    question: str
    k: int
    max_rounds: int
    round: int
    queries: list[str]
    tried: list[str]
    seen: list[str]  # chunk ids already read
    passages: list[dict[str, Any]]  # merged candidate chunks, document order
    batches: list[list[int]]  # passage indexes per extraction call
    batch: int  # next batch to read
    evidence: list[dict[str, Any]]  # {"evidence": Evidence dump, "rank": fused score}
    proposed: int
    dropped: int
    result: dict[str, Any]


class Quote(BaseModel):
    passage: int = Field(description="number of the passage the sentence was copied from")
    text: str = Field(description="the sentence, copied word for word")


class Extraction(BaseModel):
    quotes: list[Quote] = Field(default_factory=list, max_length=MAX_QUOTES)


class Rewrite(BaseModel):
    queries: list[str] = Field(default_factory=list, max_length=MAX_QUERIES)


# -- sizes ---------------------------------------------------------------------------------------
def _reserve(ctx: RunContext) -> int:
    return max(64, min(ctx.settings.chunking.output_reserve, ctx.llm.window // 4))


def _where(p: dict[str, Any]) -> str:
    lines = f"{p['line_start']}" if p["line_start"] == p["line_end"] else f"{p['line_start']}-{p['line_end']}"
    return f"{p['source']}:{lines}"


def plan_batches(passages: list[dict[str, Any]], question: str, ctx: RunContext) -> list[list[int]]:
    """Group passages (best first) into extraction calls that each fit the window; every passage
    is read once, in document order within a call. A passage too big for one call is truncated."""
    llm = ctx.llm
    fixed = llm.fixed_tokens("rtr_extract", question=question, passages=[], max_quotes=MAX_QUOTES)
    budget = prompt_budget(llm.window, fixed, _reserve(ctx))
    for p in passages:
        p["tokens"] = llm.tokens(p["text"]) + llm.tokens(_where(p)) + 12
        if p["tokens"] > budget:
            p["text"] = truncate_to_tokens(p["text"], budget - 40, llm.tokens)
            p["char_end"] = p["char_start"] + len(p["text"])
            p["line_end"] = p["line_start"] + p["text"].count("\n", 0, max(len(p["text"]) - 1, 0))
            p["tokens"] = llm.tokens(p["text"]) + llm.tokens(_where(p)) + 12
    todo = sorted(range(len(passages)), key=lambda i: -passages[i]["score"])
    batches: list[list[int]] = []
    while todo:
        batch = fit(todo, budget, lambda i: passages[i]["tokens"])
        batches.append(sorted(batch))
        todo = todo[len(batch):]
    return batches


# -- nodes ---------------------------------------------------------------------------------------
def retrieve(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """Fused dense + BM25 retrieval of unseen chunks, merged into passages and planned into calls."""
    ctx = runtime.context
    assert ctx.search is not None, "RtrContext.search is required"
    queries = state.get("queries") or [state["question"]]
    hits = ctx.search.search(queries, state["k"], exclude=state.get("seen", []))
    passages = merge_passages(hits)
    ctx.emit(Progress(task="retrieve", done=state.get("round", 0) + 1, total=state["max_rounds"],
                      detail=f"{len(hits)} chunks, {len(passages)} passages"))
    return {
        "passages": passages, "batches": plan_batches(passages, state["question"], ctx) if passages else [],
        "batch": 0, "seen": state.get("seen", []) + [c.id for c, _ in hits],
        "tried": state.get("tried", []) + list(queries), "round": state.get("round", 0) + 1,
    }


def extract(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """One extraction call over the next batch of passages; keep only quotes that verify."""
    ctx = runtime.context
    index = state["batch"]
    chosen = [state["passages"][i] for i in state["batches"][index]]
    shown = [{"n": n, "where": _where(p), "text": p["text"]} for n, p in enumerate(chosen, start=1)]
    try:
        out = ctx.llm.call_json("rtr_extract", Extraction, max_tokens=_reserve(ctx), question=state["question"],
                                passages=shown, max_quotes=MAX_QUOTES)
        quotes = out.quotes
    except ParseError as exc:  # one unreadable batch must not sink the question
        ctx.emit(Notice(level="warning", message=f"extraction call {index + 1} skipped: {exc.message}"))
        quotes = []
    found = [Evidence.model_validate(e["evidence"]) for e in state.get("evidence", [])]
    ranks = [e["rank"] for e in state.get("evidence", [])]
    dropped = 0
    for quote in quotes:
        ev, passage = _verify(quote, chosen)
        if ev is None:
            dropped += 1
        elif add_unique(found, ev)[1]:
            ranks.append(passage["score"])
    if dropped:
        ctx.emit(Notice(level="info", message=f"dropped {dropped} quote(s) not found verbatim in the source"))
    ctx.emit(Progress(task="extract", done=index + 1, total=len(state["batches"]), detail=f"{len(found)} verified"))
    return {"evidence": [{"evidence": e.model_dump(), "rank": r} for e, r in zip(found, ranks)],
            "batch": index + 1, "proposed": state.get("proposed", 0) + len(quotes),
            "dropped": state.get("dropped", 0) + dropped}


def _verify(quote: Quote, chosen: list[dict[str, Any]]) -> tuple[Evidence | None, dict[str, Any]]:
    """Look for the quote in the passage it names first, then in the other passages of the call."""
    n = quote.passage
    order = ([chosen[n - 1]] if 1 <= n <= len(chosen) else []) + [p for i, p in enumerate(chosen) if i != n - 1]
    for p in order:
        ev = verify_in(quote.text, p["text"], doc_id=p["doc_id"], source=p["source"], char_start=p["char_start"],
                       line_start=p["line_start"], chunk_index=p["chunks"][0])
        if ev is not None:
            return ev, p
    return None, chosen[0]


def rewrite(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """Nothing verified: ask for other search queries (falls back to the question's keywords)."""
    ctx = runtime.context
    try:
        out = ctx.llm.call_json("rtr_rewrite", Rewrite, max_tokens=128, question=state["question"],
                                tried=state.get("tried", []), max_queries=MAX_QUERIES)
        queries = [q.strip() for q in out.queries if q.strip()]
    except ParseError:
        queries = []
    queries = [q for q in queries if q not in state.get("tried", [])] or [state["question"]]
    ctx.emit(StepDone(step="rewrite", detail="searching again: " + " | ".join(queries)[:120]))
    return {"queries": [state["question"], *queries]}


def answer(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """Reason over verified evidence only; the answer cites it as [1], [2], ..."""
    ctx, llm = runtime.context, runtime.context.llm
    items = state["evidence"]
    fixed = llm.fixed_tokens("rtr_answer", question=state["question"], evidence=[])
    budget = prompt_budget(llm.window, fixed, _reserve(ctx))
    best = sorted(range(len(items)), key=lambda i: -items[i]["rank"])
    cost = lambda i: llm.tokens(items[i]["evidence"]["quote"]) + 24  # noqa: E731 - quote + label + fence
    kept = sorted(fit(best, budget, cost))
    evidence = [Evidence.model_validate(items[i]["evidence"]) for i in kept]
    shown = [{"n": n, "where": e.where(), "quote": e.quote} for n, e in enumerate(evidence, start=1)]
    # free text: with a 0.5B model a JSON verdict or a "reply NOT FOUND" escape hatch made it deny
    # evidence it had; "not found" is decided by extraction (nothing verified) and by says_not_found
    out = llm.call("rtr_answer", max_tokens=_reserve(ctx), question=state["question"], evidence=shown).text.strip()
    refused = says_not_found(out)
    if refused or not grounded(out, state["question"], evidence):
        if not refused:
            ctx.emit(Notice(level="info", message="the answer's new words are in none of the evidence: "
                                                  "reported as not found"))
        return {"result": {"found": False, "text": NOT_FOUND, "citations": []}}
    cited = [] if re.search(r"\[\d+", out) else attribute(out, evidence)
    return {"result": _answered(ctx, state, *number_citations(out, evidence, cited=cited))}


def _answered(ctx: RtrContext, state: RtrState, text: str, citations: list) -> dict[str, Any]:
    """The found result of a round; completes the retrieval bar and announces the citations."""
    ctx.emit(Progress(task="retrieve", done=state["max_rounds"], total=state["max_rounds"], detail="answered"))
    for citation in citations:
        ctx.emit(CitationFound(citation=citation))
    return {"found": True, "text": text, "citations": [c.model_dump() for c in citations]}


def ground(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """No quote of this round verified (a small model often cannot copy code or long sentences):
    answer from the best passages in free text, and keep that answer only when source lines carry its
    new words; those lines, at their exact spans, are its evidence and citations."""
    ctx, llm = runtime.context, runtime.context.llm
    chosen = [state["passages"][i] for i in state["batches"][0]]
    shown = [{"n": n, "where": _where(p), "text": p["text"]} for n, p in enumerate(chosen, start=1)]
    out = llm.call("rtr_ground", max_tokens=_reserve(ctx), question=state["question"], passages=shown).text.strip()
    out = re.sub(r"\s*\[P\d+(?:\s*,\s*P?\d+)*\]", "", out).strip()
    evidence = [] if says_not_found(out) else supporting_lines(out, state["question"], chosen)
    if not evidence:
        ctx.emit(StepDone(step="ground", detail="the free answer over the passages is not supported by their lines"))
        return {}
    ctx.emit(StepDone(step="ground", detail=f"free answer supported by {len(evidence)} source line(s)"))
    return {"evidence": [{"evidence": e.model_dump(), "rank": 0.0} for e in evidence],
            "result": _answered(ctx, state, *number_citations(out, evidence))}


def not_found(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """No verified evidence after every round: say so instead of guessing."""
    runtime.context.emit(StepDone(step="not-found", detail=f"{state.get('proposed', 0)} quotes proposed, "
                                                           f"{state.get('dropped', 0)} dropped, none verified"))
    return {"result": {"found": False, "text": NOT_FOUND, "citations": []}}


# -- routing -------------------------------------------------------------------------------------
def after_retrieve(state: RtrState) -> str:
    if state.get("batches"):
        return "extract"
    return "rewrite" if state["round"] < state["max_rounds"] else "not_found"


def after_extract(state: RtrState) -> str:
    if state["batch"] < len(state["batches"]):
        return "extract"
    if state.get("evidence"):
        return "answer"
    return "ground" if state.get("batches") else after_ground(state)


def after_ground(state: RtrState) -> str:
    if state.get("result"):
        return END
    return "rewrite" if state["round"] < state["max_rounds"] else "not_found"


def build_graph() -> StateGraph:
    """The uncompiled retrieve-then-reason graph."""
    graph = StateGraph(RtrState, context_schema=RtrContext)
    for name, node in (("retrieve", retrieve), ("extract", extract), ("rewrite", rewrite),
                       ("answer", answer), ("ground", ground), ("not_found", not_found)):
        graph.add_node(name, node)
    graph.add_edge(START, "retrieve")
    graph.add_conditional_edges("retrieve", after_retrieve, ["extract", "rewrite", "not_found"])
    graph.add_conditional_edges("extract", after_extract, ["extract", "answer", "ground", "rewrite", "not_found"])
    graph.add_conditional_edges("ground", after_ground, [END, "rewrite", "not_found"])
    graph.add_edge("rewrite", "retrieve")
    graph.add_edge("answer", END)
    graph.add_edge("not_found", END)
    return graph


def run(
    ctx: RunContext, source: Source | HybridSearch, question: str, *, k: int = DEFAULT_K, rounds: int = 2,
    checkpoint: bool | Path = True,
) -> Answer:
    """Answer ``question`` from ``source`` (a corpus or any retrieval source) with verified citations."""
    question = (question or "").strip()
    if not question:
        raise InputError("empty question", hint="ask a question in words")
    search = source if isinstance(source, HybridSearch) else HybridSearch(source)
    if not search.chunks:
        raise InputError(f"corpus {search.source.name!r} has no indexed text",
                         hint=f"index files into it: agentlong index PATH --name {search.source.name}")
    rctx = RtrContext(llm=ctx.llm, settings=ctx.settings, emit=ctx.emit, app=ctx.app, search=search)
    thread = thread_id_for("rtr", search.source.name, len(search.chunks), question, k, rounds,
                           ctx.settings.fingerprint(), ctx.llm.backend.model)
    inputs = {"question": question, "k": k, "max_rounds": max(1, rounds), "round": 0}
    state = run_graph(build_graph(), inputs, rctx, thread_id=thread, checkpoint=checkpoint,
                      recursion_limit=8 + 4 * rounds * (k + 2))
    return _answer(question, state, ctx)


def _answer(question: str, state: dict[str, Any], ctx: RunContext) -> Answer:
    result = state["result"]
    evidence = [Evidence.model_validate(e["evidence"]) for e in state.get("evidence", [])]
    proposed, dropped = state.get("proposed", 0), state.get("dropped", 0)
    summary = (f"{state.get('round', 1)} retrieval round(s), {proposed} quotes proposed, {dropped} dropped, "
               f"{len(evidence)} verified")
    return Answer(
        question=question, text=result["text"], strategy="rtr", found=result["found"],
        citations=result["citations"], evidence=sorted(evidence, key=lambda e: (e.source, e.char_start)),
        usage=ctx.llm.usage, trace=list(ctx.llm.trace) + [TraceStep(step="rtr", detail=summary)],
    )
