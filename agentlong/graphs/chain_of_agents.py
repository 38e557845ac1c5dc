"""Chain-of-agents (Zhang et al. 2024) over documents longer than the model's context.

Worker *i* reads chunk *i*, the question and the running note, and answers in schema-constrained
JSON: sentences copied word for word from its chunk (each checked with ``verify.locate``; quotes
not found in the chunk are dropped) and a few short new facts. The note is those facts plus the
verified quotes with their exact spans. A note that grows past its budget is compressed by a model
call (it rewrites the facts and picks the quotes to keep). The manager answers from the last note,
citing quote numbers. Inputs that fit one call are answered directly.

What a worker sees of the note (``worker_note``): ``"full"`` (facts and quotes, as in the paper),
``"facts"``, or ``"none"``. ``"auto"`` shows the facts for summaries and nothing for questions: the
default 0.5B model, shown any note, copies from the note instead of its chunk and misses the fact it
finds without one (see docs/chain_of_agents.md); the note still carries every verified quote to the
manager. Stronger models can take ``"full"``.

Chunk size = window − (instructions + question) − note budget (when workers see the note) − output
reserve − repair room, measured by rendering the prompt with empty text, so no call can overflow.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Document
>>> s = Settings(model="fake")
>>> reply = {"quotes": ["The sky is green."], "answer": "Green [1].", "found": True}
>>> fake = FakeBackend(mode="keyed", responses={"Question": reply})
>>> doc = Document(id="d1", source="sky.txt", text="The sky is green. Grass is blue.", sha256="x")
>>> answer = run(RunContext(llm=LLM(fake, s), settings=s), [doc], "What colour is the sky?", checkpoint=False)
>>> answer.text, answer.citations[0].evidence.where()
('Green [1].', 'sky.txt:1')
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from ..events import Progress
from ..llm import LLM
from ..packing import SAFETY, fit, prompt_budget
from ..types import Answer, Chunk, Document
from .common import RunContext, run_graph, thread_id_for
from .notes import (MAX_FACTS, MAX_QUOTES, Fact, FinalAnswer, Quote, answer_direct, answer_from_notes,
                    answer_tokens, check_answer_room, check_chunk, check_inputs, clean_facts, finish,
                    fit_quotes, fits_direct, forget_ticker, make_chunks, merge_evidence, not_found, numbered,
                    output_reserve, probe_chunk, repair_tokens, step, trace, verify_quotes, warn_chunk_cap,
                    whole_chunks)

__all__ = ["run", "build_graph", "State", "WorkerNote", "CompressedNote", "plan_budget", "WorkerNoteView"]

STRATEGY = "chain-of-agents"
MAX_KEEP = 12
WorkerNoteView = Literal["auto", "full", "facts", "none"]


class WorkerNote(BaseModel):
    """What a worker returns: verbatim quotes from its chunk first, then short new facts."""

    quotes: list[Quote] = Field(default_factory=list, max_length=MAX_QUOTES,
                                description="sentences copied word for word from this part that help")
    facts: list[Fact] = Field(default_factory=list, max_length=MAX_FACTS,
                              description="short new facts from this part that help; empty if none")


class CompressedNote(BaseModel):
    """A shorter note: rewritten facts and the numbers of the quotes to keep."""

    facts: list[Fact] = Field(default_factory=list, max_length=6, description="the findings, shorter")
    keep: list[int] = Field(default_factory=list, max_length=MAX_KEEP, description="numbers of quotes to keep")


class State(TypedDict, total=False):
    question: str
    task: str
    words: int  # summary word target; 0 for questions
    chunks: list[dict]  # Chunk.model_dump(), in reading order
    direct: bool
    budget: dict  # token budgets (chunk, note, worker_out, compress_out) and worker_note
    i: int  # next chunk to read
    facts: list[str]
    quotes: list[dict]  # Evidence.model_dump(), in reading order
    note_tokens: int
    answer: dict
    trace: Annotated[list[dict], operator.add]


# -- budgets ----------------------------------------------------------------------------------------
def _worker_vars(state: State, chunk: Chunk, part: int, note: str) -> dict:
    return dict(task=state["task"], question=state["question"], part=part, parts=len(state["chunks"]),
                source=chunk.source, lines=f"{chunk.line_start}-{chunk.line_end}", document=chunk.text,
                note=note, max_quotes=MAX_QUOTES, max_facts=MAX_FACTS)


def plan_budget(llm: LLM, documents: list[Document], question: str, task: str, words: int | None,
                chunk_tokens: int | None = None, worker_note: WorkerNoteView = "auto") -> dict:
    """Token budgets of every call, from the model's real window (the note placeholder is one space,
    so the note block's own wrapper text is counted as fixed cost).

    >>> from agentlong.backends.fake import FakeBackend
    >>> from agentlong.settings import Settings
    >>> llm, docs = LLM(FakeBackend(context_window=2048), Settings(model="fake")), [Document(id="d",
    ...     source="a.txt", text="x", sha256="x")]
    >>> b = plan_budget(llm, docs, "Why?", "qa", None, worker_note="full")
    >>> b["chunk"] + b["fixed_worker"] + b["note"] + b["worker_out"] <= 2048 * 0.95
    True
    >>> plan_budget(llm, docs, "Why?", "qa", None)["chunk"] - b["chunk"] >= b["note"]  # workers see no note
    True
    """
    window, out = llm.window, output_reserve(llm)
    probe = probe_chunk(documents)
    state = State(task=task, question=question, chunks=[{}] * 9999)
    view = resolve_view(worker_note, task)
    fixed_worker = llm.fixed_tokens("coa_worker", **_worker_vars(state, probe, 9999, "" if view == "none" else " "))
    fixed_worker += repair_tokens(llm, WorkerNote)
    common = dict(question=question, task=task, words=words or 0, note=" ")
    fixed_answer = llm.fixed_tokens("coa_answer", **common)
    fixed_answer += repair_tokens(llm, FinalAnswer) if task == "qa" else 0
    fixed_compress = llm.fixed_tokens("coa_compress", **common, max_facts=6, max_keep=MAX_KEEP)
    fixed_compress += repair_tokens(llm, CompressedNote)
    room_answer = check_answer_room(llm, fixed_answer, answer_tokens(llm, task, words), words)
    # the compress call reads the note plus one worker's additions and writes about half a note
    room_compress = int((window * SAFETY - fixed_compress - 1.5 * out) / 1.5)
    note = min(llm.settings.chunking.note_tokens, window // 5, room_answer, room_compress)
    chunk = check_chunk(llm, prompt_budget(window, fixed_worker + (0 if view == "none" else note), out))
    if chunk_tokens:
        chunk = min(chunk, chunk_tokens)
    return {"chunk": chunk, "note": note, "worker_out": out, "compress_out": max(64, note // 2),
            "fixed_worker": fixed_worker, "worker_note": view}


def resolve_view(worker_note: WorkerNoteView, task: str) -> str:
    """``auto`` → the facts for summaries, nothing for questions (see the module docstring)."""
    if worker_note == "auto":
        return "facts" if task == "summary" else "none"
    return worker_note


# -- nodes ------------------------------------------------------------------------------------------
def render_note(llm: LLM, facts: list[str], quotes: list[dict]) -> str:
    """The running note as the prompts show it: findings, then numbered quotes with locations."""
    if not facts and not quotes:
        return ""
    return llm.render("coa_note", facts=facts, quotes=numbered(quotes))


def worker(state: State, runtime: Runtime[RunContext]) -> dict:
    """Read chunk ``i`` with the running note; add its verified quotes and new facts to the note."""
    ctx, i, n = runtime.context, state["i"], len(state["chunks"])
    llm, chunk, name = ctx.llm, Chunk(**state["chunks"][i]), f"worker {i + 1}/{n}"
    view = state["budget"]["worker_note"]
    note = "" if view == "none" else render_note(llm, state["facts"], state["quotes"] if view == "full" else [])
    with step(name) as meter:
        reply = llm.call_json("coa_worker", WorkerNote, max_tokens=state["budget"]["worker_out"],
                              **_worker_vars(state, chunk, i + 1, note))
    found = verify_quotes(reply.quotes, chunk)
    quotes = merge_evidence(state["quotes"], found)
    grounded = found or state["task"] == "summary"  # a question's facts need a verified quote behind them
    facts = clean_facts(state["facts"] + (reply.facts if grounded else []))
    size = llm.tokens(render_note(llm, facts, quotes))
    detail = f"{len(found)}/{len(reply.quotes)} quotes verified; note {size} tokens"
    ctx.emit(Progress(task="workers", done=i + 1, total=n, detail=f"note {size} tok"))
    return {"i": i + 1, "facts": facts, "quotes": quotes, "note_tokens": size,
            "trace": [trace(ctx, name, detail, meter.usage)]}


def compress(state: State, runtime: Runtime[RunContext]) -> dict:
    """Shrink an over-budget note with a model call: rewritten facts, the quotes it chose to keep."""
    ctx, budget = runtime.context, state["budget"]
    llm, quotes, name = ctx.llm, state["quotes"], f"compress note after part {state['i']}"
    with step(name) as meter:
        reply = llm.call_json("coa_compress", CompressedNote, max_tokens=budget["compress_out"],
                              note=render_note(llm, state["facts"], quotes), question=state["question"],
                              task=state["task"], words=state["words"], max_facts=6, max_keep=MAX_KEEP)
    facts = fit(clean_facts(reply.facts), budget["note"] // 2, llm.tokens)
    chosen = [quotes[k - 1] for k in dict.fromkeys(reply.keep) if 1 <= k <= len(quotes)]
    room = budget["note"] - llm.tokens(render_note(llm, facts, []))
    kept = fit_quotes(chosen, room, lambda q: llm.tokens(render_note(llm, [], [q])))
    while kept and llm.tokens(render_note(llm, facts, kept)) > budget["note"]:
        kept = kept[:-1]  # per-quote costs are estimates; the rendered note is the truth
    size = llm.tokens(render_note(llm, facts, kept))
    detail = f"note {state['note_tokens']} -> {size} tokens; kept {len(kept)}/{len(quotes)} quotes"
    return {"facts": facts, "quotes": kept, "note_tokens": size, "trace": [trace(ctx, name, detail, meter.usage)]}


def manager(state: State, runtime: Runtime[RunContext]) -> dict:
    """Answer (or summarize) from the last note."""
    ctx = runtime.context
    if state["task"] == "qa" and not state["quotes"] and not state["facts"]:
        answer = not_found(ctx, "manager")
    else:
        note = render_note(ctx.llm, state["facts"], state["quotes"])
        answer = answer_from_notes(ctx, "coa_answer", note, state["quotes"], state["question"], state["task"],
                                   state["words"] or None, "manager")
    return {"answer": {k: v for k, v in answer.items() if k != "trace"}, "trace": [answer["trace"]]}


def direct(state: State, runtime: Runtime[RunContext]) -> dict:
    """The whole input fits one call: answer it directly."""
    chunks = [Chunk(**c) for c in state["chunks"]]
    answer = answer_direct(runtime.context, chunks, state["question"], state["task"], state["words"] or None)
    return {"answer": {k: v for k, v in answer.items() if k != "trace"}, "trace": [answer["trace"]]}


# -- routing and graph ------------------------------------------------------------------------------
def route_start(state: State) -> Literal["direct", "worker"]:
    return "direct" if state["direct"] else "worker"


def route_next(state: State) -> Literal["compress", "worker", "manager"]:
    if state["note_tokens"] > state["budget"]["note"]:
        return "compress"
    return "worker" if state["i"] < len(state["chunks"]) else "manager"


def build_graph() -> StateGraph:
    """The uncompiled graph: START → direct | worker ⟲ (compress) → manager → END."""
    graph = StateGraph(State, context_schema=RunContext)
    for name, node in (("direct", direct), ("worker", worker), ("compress", compress), ("manager", manager)):
        graph.add_node(name, node)
    graph.add_conditional_edges(START, route_start)
    graph.add_conditional_edges("worker", route_next)
    graph.add_conditional_edges("compress", route_next)
    graph.add_edge("direct", END)
    graph.add_edge("manager", END)
    return graph


def run(ctx: RunContext, documents: list[Document], question: str, *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, chunk_tokens: int | None = None, checkpoint: bool | Path = True,
        worker_note: WorkerNoteView = "auto") -> Answer:
    """Answer ``question`` (or summarize in about ``words`` words) with a chain of agents.

    Resumable: the same call after a crash continues from the last finished worker.
    See the module docstring for an example.
    """
    llm = ctx.llm
    words = check_inputs(llm, documents, question, task, words)
    question = (question or "").strip()
    budget: dict = {}
    if fits_direct(llm, documents, question, task, words, chunk_tokens):
        chunks, is_direct = whole_chunks(documents), True
    else:
        budget = plan_budget(llm, documents, question, task, words, chunk_tokens, worker_note)
        warn_chunk_cap(ctx, chunk_tokens, budget["chunk"])
        chunks, is_direct = make_chunks(documents, budget["chunk"], llm.tokens), False
    inputs = State(question=question, task=task, words=words or 0, chunks=[c.model_dump() for c in chunks],
                   direct=is_direct, budget=budget, i=0, facts=[], quotes=[], note_tokens=0, trace=[])
    thread = thread_id_for("chain-of-agents", [d.sha256 for d in documents], [d.source for d in documents],
                           question, task, words, chunk_tokens, worker_note, ctx.settings.fingerprint(),
                           llm.backend.name, llm.window)
    try:
        result = run_graph(build_graph(), inputs, ctx, thread_id=thread, recursion_limit=2 * len(chunks) + 6,
                           checkpoint=checkpoint)
    finally:
        forget_ticker(ctx)
    return finish(ctx, question, STRATEGY, result["answer"], result["trace"])
