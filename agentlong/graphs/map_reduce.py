"""Map-reduce over documents longer than the model's context.

Map: one ``Send`` per chunk (run in parallel up to ``backend.max_concurrency``); each map call
returns schema-constrained JSON — verbatim quotes (checked with ``verify.locate``; the rest are
dropped), short findings and a 0-10 relevance score, shown to the reducer with the findings. For a
question, a part counts only when at least one of its quotes verified. Reduce: while the findings
do not fit the answer prompt, pack them in document order into groups that fit the collapse prompt
and collapse each group with a model call (rewritten findings + the quotes it keeps), in parallel;
repeat. Each round at least halves the number of findings, so the recursion limit is computed from
``log2(chunks)``. Then one call answers, citing quote numbers.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.graphs.common import RunContext
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Document
>>> s = Settings(model="fake")
>>> reply = {"quotes": ["Grass is blue."], "answer": "Blue [1].", "found": True}
>>> fake = FakeBackend(mode="keyed", responses={"Question": reply})
>>> doc = Document(id="d1", source="grass.txt", text="The sky is green. Grass is blue.", sha256="y")
>>> run(RunContext(llm=LLM(fake, s), settings=s), [doc], "What colour is grass?", checkpoint=False).text
'Blue [1].'
"""

from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from pydantic import BaseModel, Field

from ..llm import LLM
from ..packing import prompt_budget
from ..types import Answer, Chunk, Document
from .common import RunContext, run_graph, thread_id_for
from .notes import (MAX_FACTS, MAX_QUOTES, Fact, FinalAnswer, Quote, answer_direct, answer_from_notes,
                    answer_tokens, check_answer_room, check_chunk, check_inputs, clean_facts, finish,
                    fit_quotes, fits_direct, forget_ticker, make_chunks, merge_evidence, not_found, numbered,
                    output_reserve, probe_chunk, repair_tokens, step, ticker, trace, verify_quotes,
                    warn_chunk_cap, whole_chunks)

__all__ = ["run", "build_graph", "State", "MapNote", "Collapsed", "plan_budget", "merge_items"]

STRATEGY = "map-reduce"
MAX_KEEP = 10


class MapNote(BaseModel):
    """What a map call returns for one chunk."""

    quotes: list[Quote] = Field(default_factory=list, max_length=MAX_QUOTES,
                                description="sentences copied word for word from this part that help")
    facts: list[Fact] = Field(default_factory=list, max_length=MAX_FACTS, description="short findings from this part")
    score: int = Field(0, description="0-10: how much this part helps")


class Collapsed(BaseModel):
    """One collapse call's output: merged findings and the numbers of the quotes to keep."""

    facts: list[Fact] = Field(default_factory=list, max_length=6, description="the merged findings")
    keep: list[int] = Field(default_factory=list, max_length=MAX_KEEP, description="numbers of quotes to keep")


def merge_items(left: list[dict] | None, right: list[dict] | dict) -> list[dict]:
    """Reducer for findings: lists append (map/collapse fan-in); ``{"reset": [...]}`` replaces.

    >>> merge_items([{"order": 1}], {"reset": []}), merge_items([{"order": 1}], [{"order": 2}])
    ([], [{'order': 1}, {'order': 2}])
    """
    if isinstance(right, dict):
        return list(right["reset"])
    return list(left or []) + list(right)


class State(TypedDict, total=False):
    question: str
    task: str
    words: int
    chunks: list[dict]
    direct: bool
    budget: dict
    findings: Annotated[list[dict], merge_items]  # items: order, label, facts, quotes, score
    groups: list[list[dict]]
    round: int
    answer: dict
    trace: Annotated[list[dict], operator.add]


class MapInput(TypedDict):
    part: int
    parts: int
    chunk: dict
    question: str
    task: str
    budget: dict


class CollapseInput(TypedDict):
    group: list[dict]
    gid: int
    groups: int
    round: int
    question: str
    task: str
    words: int
    budget: dict


# -- budgets and rendering --------------------------------------------------------------------------
def _map_vars(task: str, question: str, chunk: Chunk, part: int, parts: int) -> dict:
    return dict(task=task, question=question, part=part, parts=parts, source=chunk.source,
                lines=f"{chunk.line_start}-{chunk.line_end}", document=chunk.text,
                max_quotes=MAX_QUOTES, max_facts=MAX_FACTS)


def plan_budget(llm: LLM, documents: list[Document], question: str, task: str, words: int | None,
                chunk_tokens: int | None = None) -> dict:
    """Token budgets of every call from the model's real window.

    >>> from agentlong.backends.fake import FakeBackend
    >>> from agentlong.settings import Settings
    >>> b = plan_budget(LLM(FakeBackend(context_window=2048), Settings(model="fake")),
    ...                 [Document(id="d", source="a.txt", text="x", sha256="x")], "Why?", "qa", None)
    >>> 2 * b["item"] <= min(b["answer_in"], b["collapse_in"])
    True
    """
    out = output_reserve(llm)
    fixed_map = llm.fixed_tokens("mr_map", **_map_vars(task, question, probe_chunk(documents), 9999, 9999))
    fixed_map += repair_tokens(llm, MapNote)
    common = dict(question=question, task=task, words=words or 0, note=" ")
    fixed_answer = llm.fixed_tokens("mr_answer", **common)
    fixed_answer += repair_tokens(llm, FinalAnswer) if task == "qa" else 0
    answer_in = check_answer_room(llm, fixed_answer, answer_tokens(llm, task, words), words)
    fixed_collapse = llm.fixed_tokens("mr_collapse", **common, max_facts=6, max_keep=MAX_KEEP)
    collapse_in = prompt_budget(llm.window, fixed_collapse + repair_tokens(llm, Collapsed), out)
    chunk = check_chunk(llm, prompt_budget(llm.window, fixed_map, out))
    return {"chunk": min(chunk, chunk_tokens) if chunk_tokens else chunk, "map_out": out, "collapse_out": out,
            "answer_in": answer_in, "collapse_in": collapse_in, "item": min(answer_in, collapse_in) // 2}


def render_items(llm: LLM, items: list[dict]) -> tuple[str, list[dict]]:
    """Findings as the prompts show them, with quotes numbered 1..n across items; and those quotes."""
    rows, quotes = [], []
    for item in items:
        rows.append({"label": item["label"], "score": item["score"], "facts": item["facts"],
                     "quotes": numbered(item["quotes"], len(quotes) + 1)})
        quotes.extend(item["quotes"])
    if not rows:
        return "", []
    return llm.render("mr_findings", items=rows), quotes


def _cost(llm: LLM, item: dict) -> int:
    return llm.tokens(render_items(llm, [item])[0])


def cap_item(llm: LLM, item: dict, budget: int) -> dict:
    """Keep an item within ``budget`` tokens: drop its last quotes, then its last facts."""
    while _cost(llm, item) > budget and (item["quotes"] or len(item["facts"]) > 1):
        key = "quotes" if item["quotes"] else "facts"
        item = {**item, key: item[key][:-1]}
    return item


def pack(llm: LLM, items: list[dict], budget: int) -> list[list[dict]]:
    """Consecutive groups of items whose rendered size fits ``budget`` (document order kept)."""
    groups: list[list[dict]] = []
    used = budget + 1
    for item in items:
        cost = _cost(llm, item)
        if used + cost > budget:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += cost
    return groups


# -- nodes ------------------------------------------------------------------------------------------
def map_chunk(state: MapInput, runtime: Runtime[RunContext]) -> dict:
    """One chunk → one scored item of verified quotes and findings."""
    ctx, part, parts = runtime.context, state["part"], state["parts"]
    llm, chunk, name = ctx.llm, Chunk(**state["chunk"]), f"map {part}/{parts}"
    with step(name) as meter:
        reply = llm.call_json("mr_map", MapNote, max_tokens=state["budget"]["map_out"],
                              **_map_vars(state["task"], state["question"], chunk, part, parts))
    found = verify_quotes(reply.quotes, chunk)
    grounded = found or state["task"] == "summary"  # a question's facts need a verified quote behind them
    item = {"order": part, "label": str(part), "facts": clean_facts(reply.facts) if grounded else [],
            "quotes": merge_evidence([], found), "score": max(0, min(10, reply.score))}
    item = cap_item(llm, item, state["budget"]["item"])
    detail = f"{len(found)}/{len(reply.quotes)} quotes verified, score {item['score']}"
    ticker(ctx, "map", parts, detail)
    return {"findings": [item], "trace": [trace(ctx, name, detail, meter.usage)]}


def plan(state: State, runtime: Runtime[RunContext]) -> dict:
    """Answer now if the findings fit; otherwise group them for another collapse round."""
    llm, budget = runtime.context.llm, state["budget"]
    items = sorted(state["findings"], key=lambda it: it["order"])
    if state["task"] == "qa":
        items = [it for it in items if it["quotes"]]
    if llm.tokens(render_items(llm, items)[0]) <= budget["answer_in"]:
        return {"findings": {"reset": items}, "groups": []}
    groups = pack(llm, items, budget["collapse_in"])
    singles = [g[0] for g in groups if len(g) == 1]  # nothing to merge: carried over as is
    return {"findings": {"reset": singles}, "groups": [g for g in groups if len(g) > 1],
            "round": state.get("round", 0) + 1}


def collapse(state: CollapseInput, runtime: Runtime[RunContext]) -> dict:
    """Merge a group of items into one with a model call (rewritten findings, kept quotes)."""
    ctx, group = runtime.context, state["group"]
    llm, name = ctx.llm, f"collapse round {state['round']} group {state['gid']}/{state['groups']}"
    rendered, quotes = render_items(llm, group)
    with step(name) as meter:
        reply = llm.call_json("mr_collapse", Collapsed, max_tokens=state["budget"]["collapse_out"], note=rendered,
                              question=state["question"], task=state["task"], words=state["words"],
                              max_facts=6, max_keep=MAX_KEEP)
    chosen = [quotes[k - 1] for k in dict.fromkeys(reply.keep) if 1 <= k <= len(quotes)]
    label = f"{group[0]['label'].split('-')[0]}-{group[-1]['label'].split('-')[-1]}"
    base = {"order": group[0]["order"], "label": label, "facts": clean_facts(reply.facts), "quotes": [],
            "score": max(g["score"] for g in group)}
    room = state["budget"]["item"] - _cost(llm, base)
    kept = fit_quotes(chosen, room, lambda q: _cost(llm, {"label": "", "score": 0, "facts": [], "quotes": [q]}))
    item = cap_item(llm, {**base, "quotes": kept}, state["budget"]["item"])
    detail = f"{len(group)} items -> 1; kept {len(item['quotes'])}/{len(quotes)} quotes"
    ticker(ctx, f"collapse {state['round']}", state["groups"], detail)
    return {"findings": [item], "trace": [trace(ctx, name, detail, meter.usage)]}


def answer(state: State, runtime: Runtime[RunContext]) -> dict:
    """The final call over the (collapsed) findings."""
    ctx, items = runtime.context, state["findings"]
    if state["task"] == "qa" and not items:
        result = not_found(ctx, "reduce")
    else:
        note, quotes = render_items(ctx.llm, items)
        result = answer_from_notes(ctx, "mr_answer", note, quotes, state["question"], state["task"],
                                   state["words"] or None, "reduce")
    return {"answer": {k: v for k, v in result.items() if k != "trace"}, "trace": [result["trace"]]}


def direct(state: State, runtime: Runtime[RunContext]) -> dict:
    """The whole input fits one call: answer it directly."""
    chunks = [Chunk(**c) for c in state["chunks"]]
    result = answer_direct(runtime.context, chunks, state["question"], state["task"], state["words"] or None)
    return {"answer": {k: v for k, v in result.items() if k != "trace"}, "trace": [result["trace"]]}


# -- routing and graph ------------------------------------------------------------------------------
def route_start(state: State) -> Any:
    """``direct``, or one ``Send("map")`` per chunk."""
    if state["direct"]:
        return "direct"
    n = len(state["chunks"])
    return [Send("map", MapInput(part=i + 1, parts=n, chunk=c, question=state["question"], task=state["task"],
                                 budget=state["budget"])) for i, c in enumerate(state["chunks"])]


def route_plan(state: State) -> Any:
    """``answer`` when the findings fit, else one ``Send("collapse")`` per group."""
    groups = state.get("groups") or []
    if not groups:
        return "answer"
    return [Send("collapse", CollapseInput(group=g, gid=i + 1, groups=len(groups), round=state["round"],
                                           question=state["question"], task=state["task"], words=state["words"],
                                           budget=state["budget"])) for i, g in enumerate(groups)]


def build_graph() -> StateGraph:
    """The uncompiled graph: START → direct | map×n → plan ⟲ collapse×k → answer → END."""
    graph = StateGraph(State, context_schema=RunContext)
    graph.add_node("direct", direct)
    graph.add_node("map", map_chunk)
    graph.add_node("plan", plan)
    graph.add_node("collapse", collapse)
    graph.add_node("answer", answer)
    graph.add_conditional_edges(START, route_start, ["direct", "map"])
    graph.add_edge("map", "plan")
    graph.add_conditional_edges("plan", route_plan, ["answer", "collapse"])
    graph.add_edge("collapse", "plan")
    graph.add_edge("direct", END)
    graph.add_edge("answer", END)
    return graph


def recursion_limit(chunks: int) -> int:
    """Supersteps: map, plan, (collapse, plan) per round, answer; rounds ≤ ceil(log2 n) + 1."""
    rounds = math.ceil(math.log2(max(chunks, 2))) + 1
    return 2 * rounds + 6


def run(ctx: RunContext, documents: list[Document], question: str, *, task: Literal["qa", "summary"] = "qa",
        words: int | None = None, chunk_tokens: int | None = None, checkpoint: bool | Path = True) -> Answer:
    """Answer ``question`` (or summarize in about ``words`` words) by map-reduce over chunks.

    Resumable: maps and collapses already finished are not run again. See the module docstring.
    """
    llm = ctx.llm
    words = check_inputs(llm, documents, question, task, words)
    question = (question or "").strip()
    budget: dict = {}
    if fits_direct(llm, documents, question, task, words, chunk_tokens):
        chunks, is_direct = whole_chunks(documents), True
    else:
        budget = plan_budget(llm, documents, question, task, words, chunk_tokens)
        warn_chunk_cap(ctx, chunk_tokens, budget["chunk"])
        chunks, is_direct = make_chunks(documents, budget["chunk"], llm.tokens), False
    inputs = State(question=question, task=task, words=words or 0, chunks=[c.model_dump() for c in chunks],
                   direct=is_direct, budget=budget, findings=[], groups=[], round=0, trace=[])
    thread = thread_id_for("map-reduce", [d.sha256 for d in documents], [d.source for d in documents], question,
                           task, words, chunk_tokens, ctx.settings.fingerprint(), llm.backend.name, llm.window)
    try:
        result = run_graph(build_graph(), inputs, ctx, thread_id=thread, recursion_limit=recursion_limit(len(chunks)),
                           checkpoint=checkpoint, max_concurrency=max(1, llm.backend.max_concurrency))
    finally:
        forget_ticker(ctx)
    return finish(ctx, question, STRATEGY, result["answer"], result["trace"])
