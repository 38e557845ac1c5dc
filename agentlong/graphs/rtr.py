"""Retrieve-then-reason with selected evidence and multi-hop retrieval, as a LangGraph graph.

retrieve (dense + BM25 fused with RRF, unseen chunks, in document order, touching chunks merged
into passages) → read (one selection call per passage: the model picks unit ids and scores the
passage) → hop (names in the units just selected that the question does not have form the next
query; up to ``MAX_HOPS`` rounds, stopping when a round adds nothing) → answer (a brief answer
citing the selected units, or a count computed in code). Nothing selected: a fact question is
answered from the passages read (``Answer.basis == "read"``), a count or list is "not found".

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.graphs.retrieval import InMemorySource
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Chunk
>>> text = "The vault code is 4721. Nobody else knows it.\\n"
>>> src = InMemorySource([Chunk(doc_id="d", source="notes.txt", index=0, text=text, char_start=0,
...                             char_end=len(text), line_start=1, line_end=1)])
>>> fake = FakeBackend(mode="keyed", responses={"Answer the question": {"answer": "It is 4721 [1]."},
...                                             "vault": {"answer": "4721"}})
>>> settings = Settings(model="fake")
>>> ans = run(RunContext(llm=LLM(fake, settings), settings=settings), src, "What is the vault code?",
...           checkpoint=False)
>>> ans.text, ans.citations[0].evidence.where()
('It is 4721 [1].', 'notes.txt:1')
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from ..errors import InputError
from ..events import Progress, StepDone
from ..evidence.budget import read_tokens
from ..evidence.hops import MAX_HOPS, bridge_terms, hop_query
from ..evidence.units import Unit, units_of
from ..types import Answer, Chunk, TraceStep
from .common import RunContext, run_graph, thread_id_for
from .fold import answer_update, mode_for, read_rows, to_answer
from .retrieval import HybridSearch, Source

__all__ = ["RtrContext", "RtrState", "build_graph", "run", "DEFAULT_K", "passages_of"]

DEFAULT_K = 8  # candidate chunks of the first retrieval round; later hops take half


@dataclass
class RtrContext(RunContext):
    """The run context plus the hybrid search over the corpus."""

    search: HybridSearch | None = None


class RtrState(TypedDict, total=False):
    question: str
    mode: str
    k: int
    max_hops: int
    hop: int
    query: str
    terms: list[str]  # bridge terms already searched
    seen: list[str]  # chunk ids already read
    passages: list[dict[str, Any]]  # {"chunks": [Chunk dumps], "score"}
    p: int  # next passage to read
    round_start: int  # len(picked) when this round began
    picked: Annotated[list[dict], operator.add]
    answer: dict
    trace: Annotated[list[dict], operator.add]


def passages_of(hits: list[tuple[Chunk, float]], limit: int | None = None, count: Any = None) -> list[dict[str, Any]]:
    """Hits (in document order) whose chunks touch, merged into passages of at most ``limit``
    tokens (one reading call each); best passages first."""
    passages: list[dict[str, Any]] = []
    size = 0
    for chunk, score in hits:
        last = passages[-1]["chunks"][-1] if passages else None
        cost = count(chunk.text) if count else 0
        touching = last and last["doc_id"] == chunk.doc_id and last["char_end"] == chunk.char_start
        if touching and (limit is None or size + cost <= limit):
            size += cost
            passages[-1]["chunks"].append(chunk.model_dump())
            passages[-1]["score"] = max(passages[-1]["score"], score)
        else:
            passages.append({"chunks": [chunk.model_dump()], "score": score})
            size = cost
    return sorted(passages, key=lambda p: -p["score"])


def retrieve(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """Fused dense + BM25 retrieval of unseen chunks for this round's query."""
    ctx = runtime.context
    assert ctx.search is not None, "RtrContext.search is required"
    hop = state.get("hop", 0)
    k = state["k"] if hop == 0 else max(2, state["k"] // 2)
    hits = ctx.search.search([state.get("query") or state["question"]], k, exclude=state.get("seen", []))
    passages = passages_of(hits, read_tokens(ctx.llm, state["question"], state["mode"]),  # type: ignore[arg-type]
                           ctx.llm.tokens)
    detail = f"hop {hop + 1}: {len(hits)} chunks, {len(passages)} passages" + (
        f" for {', '.join(state.get('terms', [])[-4:])}" if hop else "")
    ctx.emit(StepDone(step="retrieve", detail=detail))
    return {"passages": passages, "p": 0, "hop": hop + 1, "round_start": len(state.get("picked", [])),
            "seen": state.get("seen", []) + [c.id for c, _ in hits],
            "trace": [TraceStep(step="retrieve", detail=detail).model_dump()]}


def read(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """One selection call over the next passage."""
    ctx, p = runtime.context, state["p"]
    passage = state["passages"][p]
    units = units_of([Chunk(**c) for c in passage["chunks"]])
    name = f"read hop {state['hop']} passage {p + 1}/{len(state['passages'])}"
    rows, step = read_rows(ctx, name, state["question"], units, state["mode"], [],  # type: ignore[arg-type]
                           score=passage["score"])
    ctx.emit(Progress(task="read", done=p + 1, total=len(state["passages"]), detail=f"{len(rows)} selected"))
    return {"p": p + 1, "picked": rows, "trace": [step.model_dump()]}


def hop(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """The next query from the bridge terms of this round's units ('' when there is none)."""
    # a bridge is a name the model copied word for word; a reworded guess would send the search astray
    new = [Unit(**r["unit"]) for r in state["picked"][state["round_start"]:] if r.get("exact")]
    terms = bridge_terms(state["question"], new, tried=state.get("terms", [])) if new else []
    if not terms or state["hop"] >= state["max_hops"] or state["mode"] == "summary":
        return {"query": ""}
    runtime.context.emit(StepDone(step="hop", detail="searching for " + ", ".join(terms)))
    return {"query": hop_query(state["question"], terms), "terms": state.get("terms", []) + terms}


def answer(state: RtrState, runtime: Runtime[RtrContext]) -> dict[str, Any]:
    """The answer from the selected units; with none selected, from the passages read."""
    read = [u for p in state.get("passages", []) for u in units_of([Chunk(**c) for c in p["chunks"]])]
    return answer_update(runtime.context, state["question"], state["mode"], state.get("picked", []), 0,  # type: ignore[arg-type]
                         read)


def after_read(state: RtrState) -> str:
    return "read" if state["p"] < len(state["passages"]) else "hop"


def after_hop(state: RtrState) -> str:
    return "retrieve" if state.get("query") else "answer"


def build_graph() -> StateGraph:
    """retrieve → read ⟲ → hop → (retrieve | answer) → END."""
    graph = StateGraph(RtrState, context_schema=RtrContext)
    for name, node in (("retrieve", retrieve), ("read", read), ("hop", hop), ("answer", answer)):
        graph.add_node(name, node)
    graph.add_edge(START, "retrieve")
    graph.add_conditional_edges("retrieve", lambda s: "read" if s["passages"] else "hop", ["read", "hop"])
    graph.add_conditional_edges("read", after_read, ["read", "hop"])
    graph.add_conditional_edges("hop", after_hop, ["retrieve", "answer"])
    graph.add_edge("answer", END)
    return graph


def run(ctx: RunContext, source: Source | HybridSearch, question: str, *, k: int = DEFAULT_K,
        hops: int = MAX_HOPS, checkpoint: bool | Path = True) -> Answer:
    """Answer ``question`` from ``source`` (a corpus or any retrieval source) with cited units."""
    question = (question or "").strip()
    if not question:
        raise InputError("empty question", hint="ask a question in words")
    search = source if isinstance(source, HybridSearch) else HybridSearch(source)
    if not search.chunks:
        raise InputError(f"corpus {search.source.name!r} has no indexed text",
                         hint=f"index files into it: agentlong index PATH --name {search.source.name}")
    rctx = RtrContext(llm=ctx.llm, settings=ctx.settings, emit=ctx.emit, app=ctx.app, reasoner=ctx.reasoner,
                      search=search)
    mode = mode_for(question, "qa")
    thread = thread_id_for("rtr", search.source.name, len(search.chunks), question, k, hops,
                           ctx.settings.fingerprint(), ctx.llm.backend.model)
    inputs = RtrState(question=question, mode=mode, k=k, max_hops=max(1, hops), hop=0, query="", terms=[], seen=[],
                      picked=[], trace=[])
    state = run_graph(build_graph(), inputs, rctx, thread_id=thread, checkpoint=checkpoint,
                      recursion_limit=10 + 4 * max(1, hops) * (k + 2))
    return to_answer(ctx, question, "rtr", state)
