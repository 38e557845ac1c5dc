"""One fold over a whole text: every chunk is read by a selection call, in order (chain-of-agents)
or in parallel (map-reduce); the selected units are the note; one answer step at the end.

- ``order="sequential"`` (chain-of-agents): worker *i* reads chunk *i*; the note it passes on is
  the units selected so far (never paraphrases), and the names in them that the question does not
  have are shown to the next workers, so a fact read in part 2 is available in part 7 (a ship named
  early, its cargo told late).
- ``order="tree"`` (map-reduce): every chunk is read in parallel (``Send``, up to the backend's
  ``max_concurrency``); the selected units are reduced by further selection calls when they do not
  fit the answer step.

The task decides what a chunk's call selects and how the answer is made: ``fact`` (ids and a
score, a brief answer), ``aggregate`` (ids with item labels, counted in code), ``summary`` (the
units that matter most, a summary of the asked length citing them).

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Document
>>> s = Settings(model="fake")
>>> fake = FakeBackend(mode="keyed", responses={"Answer the question": {"answer": "Green."}, "sky": {"answer": "green"}})
>>> doc = Document(id="d1", source="sky.txt", text="The sky is green. Grass is blue.", sha256="x")
>>> ans = run(RunContext(llm=LLM(fake, s), settings=s), [doc], "What colour is the sky?", checkpoint=False)
>>> ans.text, ans.citations[0].evidence.quote
('Green. [1]', 'The sky is green.')
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from ..errors import InputError
from ..estimate import go_ahead_calls
from ..events import CitationFound, Notice, Progress, StepDone
from ..evidence.aggregate import is_aggregation
from ..evidence.answer import (
    Result,
    answer_aggregate,
    answer_fact,
    fit_units,
    not_found,
    write_summary,
)
from ..evidence.budget import answer_reserve, read_tokens, select_fixed, select_reserve, summary_tokens
from ..evidence.cite import MARKER, on_topic
from ..evidence.hops import bridge_terms
from ..evidence.select import Mode, select
from ..evidence.units import Unit, split_units
from ..lexical import stems
from ..llm import LLM, metered
from ..packing import SAFETY, prompt_budget
from ..types import Answer, Chunk, Document, TraceStep
from .common import RunContext, run_graph, thread_id_for

__all__ = ["run", "build_graph", "State", "Order", "mode_for", "reduce_units", "picked_answer", "read_rows",
           "answer_update", "to_answer"]

Order = Literal["sequential", "tree"]
STRATEGY = {"sequential": "chain-of-agents", "tree": "map-reduce"}
MIN_KEEP = 5  # rows a reduction never goes below


class State(TypedDict, total=False):
    question: str
    mode: str  # fact | aggregate | summary
    words: int  # summary target; 0 for questions
    order: str
    chunks: list[dict]  # Chunk dumps, reading order
    i: int  # next chunk (sequential)
    picked: Annotated[list[dict], operator.add]  # {"unit", "label", "score", "part"}
    hints: list[str]
    answer: dict
    trace: Annotated[list[dict], operator.add]


class ReadInput(TypedDict):
    question: str
    mode: str
    chunk: dict
    part: int
    parts: int
    hints: list[str]


def mode_for(question: str, task: str) -> Mode:
    if task == "summary":
        return "summary"
    return "aggregate" if is_aggregation(question) else "fact"


def read_rows(ctx: RunContext, name: str, question: str, units: list[Unit], mode: Mode, hints: list[str],
              score: float) -> tuple[list[dict], TraceStep]:
    """One reading call over ``units``: the selected units as state rows (ranked by ``score``) and the
    trace step. Every strategy reads through here."""
    with metered() as meter:
        sel = select(ctx.llm, question, units, mode=mode, hints=hints)
    if sel.error:
        ctx.emit(Notice(level="warning", message=f"{name}: reading skipped ({sel.error})"))
    rows = [{"unit": u.model_dump(), "label": lab, "score": score, "exact": ex}
            for u, lab, ex in zip(sel.units, sel.labels, sel.exact)]
    shown = "; ".join(dict.fromkeys(sel.labels))[:80]
    detail = f"{len(units)} units, {len(rows)} selected" + (f": {shown}" if shown else "")
    ctx.emit(StepDone(step=name, detail=detail, usage=meter.usage))
    return rows, TraceStep(step=name, detail=detail, usage=meter.usage)


def _read(ctx: RunContext, item: ReadInput) -> tuple[list[dict], dict]:
    """Read one chunk; returns the picked rows and the trace step."""
    units = split_units(Chunk(**item["chunk"]))
    name = f"read {item['part']}/{item['parts']}"
    rows, step = read_rows(ctx, name, item["question"], units, item["mode"], item["hints"],  # type: ignore[arg-type]
                           score=-item["part"])
    ctx.emit(Progress(task="read", done=item["part"], total=item["parts"], detail=f"{len(rows)} selected"))
    return rows, step.model_dump()


def _input(state: State, i: int, hints: list[str]) -> ReadInput:
    return ReadInput(question=state["question"], mode=state["mode"], chunk=state["chunks"][i], part=i + 1,
                     parts=len(state["chunks"]), hints=hints)


def read_next(state: State, runtime: Runtime[RunContext]) -> dict:
    """Sequential: read chunk ``i`` with the names found so far as hints."""
    i = state["i"]
    rows, step = _read(runtime.context, _input(state, i, state.get("hints", [])))
    hints = state.get("hints", [])
    if state["mode"] == "fact" and rows:
        units = [Unit(**r["unit"]) for r in state.get("picked", []) + rows if r.get("exact")]
        hints = bridge_terms(state["question"], units)
    return {"i": i + 1, "picked": rows, "hints": hints, "trace": [step]}


def read_one(item: ReadInput, runtime: Runtime[RunContext]) -> dict:
    """Tree: read one chunk (run in parallel with the others)."""
    rows, step = _read(runtime.context, item)
    return {"picked": rows, "trace": [step]}


def reduce_units(llm: LLM, question: str, mode: Mode, rows: list[dict], budget: int) -> list[dict]:
    """Rows (best first) cut down to ``budget`` tokens: groups that fit a selection call are selected
    from again, round after round, while that shrinks them; then the best that fit are kept."""
    def size(rs: list[dict]) -> int:
        return sum(llm.tokens(r["unit"]["text"]) + 12 for r in rs)

    room = read_tokens(llm, question, mode)
    while size(rows) > budget and len(rows) > MIN_KEEP:
        groups, group = [], []  # type: ignore[var-annotated]
        for r in sorted(rows, key=lambda r: (r["unit"]["doc_id"], r["unit"]["char_start"])):
            if group and size(group + [r]) > room:
                groups.append(group)
                group = []
            group.append(r)
        groups.append(group)
        kept = []
        for g in groups:
            units = [Unit(**r["unit"]) for r in g]
            sel = select(llm, question, units, mode=mode)
            chosen = {u.key for u in sel.units}
            kept.extend(r for r in g if (r["unit"]["doc_id"], r["unit"]["char_start"]) in chosen)
        if not kept or len(kept) >= len(rows):
            break
        rows = kept
    best = sorted(rows, key=lambda r: -r["score"])
    units = fit_units(llm, [Unit(**r["unit"]) for r in best], budget)
    keys = {u.key for u in units}
    return [r for r in rows if (r["unit"]["doc_id"], r["unit"]["char_start"]) in keys]


def picked_answer(llm: LLM, question: str, mode: Mode, rows: list[dict], words: int,
                  read: Sequence[Unit] = ()) -> Result:
    """The answer step over picked rows, for any strategy.

    A fact question where no reading selected anything (the answer is no phrase of the text: "why…",
    a choice among options) is answered from ``read``, the units that were read (retrieved passages,
    or a whole short text), those sharing most words with the question first; the result's ``basis``
    is then "read", and ``auto`` goes on to a full read in order before settling for it."""
    if mode == "fact" and not rows and read:
        asked = stems(question)
        ranked = sorted(read, key=lambda u: -len(asked & stems(u.text)))
        rows = [{"unit": u.model_dump(), "label": "", "score": 0} for u in ranked]
        result = picked_answer(llm, question, mode, rows, words)
        if result.found and not on_topic(MARKER.sub(" ", result.text), question, [c.evidence for c in result.citations]):
            result = not_found("the answer from the units read echoes the question or rests on units not about it")
        result.basis = "read"
        result.detail = f"nothing was selected; answered from the {len(read)} units read: {result.detail}"
        return result
    if mode == "aggregate":
        units = [Unit(**r["unit"]) for r in rows]
        return answer_aggregate(question, units, [r["label"] for r in rows])
    reserve = summary_tokens(words) if mode == "summary" else answer_reserve(llm)
    prompt = "summary_units" if mode == "summary" else "answer_units"
    fixed = llm.fixed_tokens(prompt, question=question, evidence=[], words=words, focus="")
    budget = prompt_budget(llm.window, fixed, reserve)
    if mode == "summary":
        budget = int(budget * 0.6)  # room for the continuation calls, which resend the summary so far
    rows = reduce_units(llm, question, mode, rows, budget)
    units = sorted((Unit(**r["unit"]) for r in rows), key=lambda u: u.key)
    if mode == "summary":
        return write_summary(llm, units, words)
    return answer_fact(llm, question, units, max_tokens=reserve)


def answer_update(ctx: RunContext, question: str, mode: Mode, rows: list[dict], words: int,
                  read: Sequence[Unit] = ()) -> dict:
    """The state update of an answer node (fold and retrieval alike)."""
    with metered() as meter:
        result = picked_answer(ctx.decider, question, mode, rows, words, read)
    ctx.emit(StepDone(step="answer", detail=result.detail, usage=meter.usage))
    return {"answer": {"text": result.text, "found": result.found, "basis": result.basis,
                       "citations": [c.model_dump() for c in result.citations]},
            "trace": [TraceStep(step="answer", detail=result.detail, usage=meter.usage).model_dump()]}


def answer(state: State, runtime: Runtime[RunContext]) -> dict:
    return answer_update(runtime.context, state["question"], state["mode"], state.get("picked", []),  # type: ignore[arg-type]
                         state["words"])


def route_start(state: State) -> Any:
    if state["order"] == "sequential":
        return "read_next"
    return [Send("read_one", _input(state, i, [])) for i in range(len(state["chunks"]))]


def route_next(state: State) -> str:
    return "read_next" if state["i"] < len(state["chunks"]) else "answer"


def build_graph() -> StateGraph:
    """START → read_next ⟲ → answer (sequential) | read_one × n → answer (tree) → END."""
    graph = StateGraph(State, context_schema=RunContext)
    graph.add_node("read_next", read_next)
    graph.add_node("read_one", read_one)
    graph.add_node("answer", answer)
    graph.add_conditional_edges(START, route_start, ["read_next", "read_one"])
    graph.add_conditional_edges("read_next", route_next, ["read_next", "answer"])
    graph.add_edge("read_one", "answer")
    graph.add_edge("answer", END)
    return graph


def make_chunks(documents: list[Document], max_tokens: int, count: Any) -> list[Chunk]:
    """All documents' chunks in reading order (whitespace-only chunks skipped)."""
    from ..documents import chunk_document

    return [c for d in documents if d.text.strip() for c in chunk_document(d, max_tokens, count) if c.text.strip()]


def check_inputs(llm: LLM, documents: list[Document], question: str, task: str, words: int | None) -> None:
    if task not in ("qa", "summary"):
        raise InputError(f"unknown task {task!r}", hint="use task='qa' or task='summary'")
    if not documents or not any(d.text.strip() for d in documents):
        raise InputError("the documents are empty: there is no text to read", hint="give a file with text in it")
    if task == "qa" and not (question or "").strip():
        raise InputError("the question is empty", hint='ask a question, e.g. agentlong ask book.txt "Who is Ahab?"')
    if llm.tokens(question or "") > llm.window // 6:
        raise InputError(f"the question is too long for the model's {llm.window:,}-token context",
                         hint="ask a shorter question (put long material in a document instead)")
    if task == "summary" and words is not None and words < 10:
        raise InputError(f"a summary of {words} words is too short", hint="ask for at least 10 words")
    if task == "summary" and words and summary_tokens(words) > llm.window * SAFETY / 2:
        most = int(llm.window * SAFETY / 2 / 1.6) - 30
        raise InputError(f"a {words}-word summary does not fit the model's {llm.window:,}-token context",
                         hint=f"ask for at most ~{most} words, or use a model / n_ctx with a larger context")


def run(ctx: RunContext, documents: list[Document], question: str, *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, order: Order = "sequential", chunk_tokens: int | None = None,
        checkpoint: bool | Path = True) -> Answer:
    """Read every chunk of ``documents`` and answer ``question`` (or summarize in ``words`` words).

    Resumable: the same call after a crash continues after the last chunk read.
    """
    llm = ctx.llm
    words = (words or 300) if task == "summary" else None
    check_inputs(llm, documents, question, task, words)
    question = (question or "").strip() or f"Summarize in about {words} words."
    mode = mode_for(question, task)
    size = read_tokens(llm, question, mode)
    if chunk_tokens and chunk_tokens < size:
        size = chunk_tokens
    elif chunk_tokens and chunk_tokens > size:
        ctx.emit(Notice(level="warning", message=f"chunk size {chunk_tokens} does not fit a selection call in the "
                        f"{llm.window}-token context; using {size}"))
    fixed = select_fixed(llm, question, mode)  # a question that leaves no room fails here, before any call
    chunks = make_chunks(documents, size, llm.tokens)
    _plan(ctx, chunks, fixed, mode, order, words)
    inputs = State(question=question, mode=mode, words=words or 0, order=order, i=0, picked=[], hints=[],
                   chunks=[c.model_dump() for c in chunks], trace=[])
    thread = thread_id_for("fold", order, [d.sha256 for d in documents], [d.source for d in documents], question,
                           task, words, size, ctx.settings.fingerprint(), llm.backend.name, llm.window)
    state = run_graph(build_graph(), inputs, ctx, thread_id=thread, recursion_limit=len(chunks) + 10,
                      checkpoint=checkpoint, max_concurrency=max(1, llm.backend.max_concurrency))
    return to_answer(ctx, question, STRATEGY[order], state)


def _plan(ctx: RunContext, chunks: Sequence[Chunk], fixed: int, mode: Mode, order: Order, words: int | None) -> None:
    """The plan line (and the confirm rule) before reading every chunk: calls, tokens, minutes, dollars."""
    llm = ctx.llm
    calls = len(chunks) + 1
    prompt = sum(c.tokens or llm.tokens(c.text) for c in chunks) + calls * fixed
    completion = len(chunks) * select_reserve(mode) + (summary_tokens(words) if words else 256)
    go_ahead_calls(ctx.settings, ctx.emit, llm.backend, f"{STRATEGY[order]}: read {len(chunks):,} chunks in", calls,
                   prompt, completion, ctx.app.confirm if ctx.app else None, bound="≤")


def to_answer(ctx: RunContext, question: str, strategy: str, state: dict) -> Answer:
    """The ``Answer`` of a finished fold or retrieval state."""
    from ..types import Citation

    result = state["answer"]
    citations = [Citation(**c) for c in result["citations"]]
    for citation in citations:
        ctx.emit(CitationFound(citation=citation))
    evidence = [Unit(**r["unit"]).evidence() for r in state.get("picked", [])]
    return Answer(question=question, text=result["text"], strategy=strategy, found=result["found"],
                  basis=result.get("basis", "selected"), citations=citations, evidence=sorted(evidence, key=lambda e: (e.source, e.char_start)),
                  usage=ctx.llm.usage, trace=[TraceStep(**t) for t in state.get("trace", [])])
