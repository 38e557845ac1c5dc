"""The memory controller (Self-Controlled Memory, Wang et al. 2023) for chat turns.

For each turn it:

1. sizes the prompt from the model's real window: system, question and answer reserve first,
   the rest split among flash memory, archived memory and source evidence (``Budget``);
2. keeps *flash memory* — the last few turns, raw, or their summary when large — always in context;
3. decides whether *archived memory* is needed (cheap rules; optionally a tiny JSON call; else a
   relevance gate) and retrieves archived turns by similarity plus a recency bonus, within budget,
   choosing per memory the raw turn or its summary;
4. after the turn, summarizes it when it is large.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> llm = LLM(FakeBackend(context_window=4096), Settings(model="fake"))
>>> decide_by_rules("What was my cat's name again?", has_archive=True).use_memory
True
>>> b = make_budget(llm, Settings(model="fake").memory, question="hi", has_sources=False)
>>> b.flash > b.archive > 0 and b.sources == 0
True
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import ContextWindowExceeded, InputError, ParseError
from ..llm import LLM
from ..packing import SAFETY, prompt_budget, truncate_to_tokens
from ..prompts import unfence
from ..settings import MemorySettings
from ..types import Message
from .archive import Archive
from .stream import SessionDB, Turn

# an optional model step (the memory decision, a turn summary, a follow-up rewrite) falls back on
# these: the reply was unusable or too big. A backend that is down or rate-limited is never hidden.
OPTIONAL_STEP_ERRORS = (ParseError, ContextWindowExceeded)

__all__ = ["MemoryController", "MemoryRef", "Budget", "Decision", "Plan", "decide_by_rules", "make_budget"]

# Rules: a question that points back at the conversation needs memory; small talk does not.
PAST_REF = re.compile(
    r"\b(earlier|before|previous(ly)?|remember|recall|forg[eo]t|again|last time|so far|"
    r"you (said|told|mentioned|suggested|wrote|gave|asked|recommended)|"
    r"i (said|told|mentioned|gave|asked|shared|wrote)|we (discussed|talked|said|agreed)|"
    r"my|mine|what (was|were|did|is my|are my)|who (was|is my)|which one)\b", re.IGNORECASE)
SMALL_TALK = re.compile(r"^\s*(hi|hello|hey|thanks|thank you|ok(ay)?|bye|good (morning|evening|night)|cool|great)\W*$",
                        re.IGNORECASE)
FOLLOW_UP = re.compile(r"\b(it|its|that|this|those|these|they|them|he|she|him|her|his|there|the same)\b", re.IGNORECASE)

Form = Literal["raw", "summary"]


class MemoryRef(BaseModel):
    """One memory injected into a turn's prompt."""

    n: int = Field(description="turn number in the session's stream")
    kind: Literal["flash", "archive"]
    form: Form
    score: float | None = Field(None, description="similarity to the question (archived memories)")
    tokens: int = 0
    preview: str = ""


class Budget(BaseModel):
    """How a chat prompt's window is split, in tokens."""

    window: int
    system: int
    question: int
    reserve: int = Field(description="tokens reserved for the answer (its max_tokens)")
    flash: int
    archive: int
    sources: int


class Decision(BaseModel):
    """Whether archived memory is used this turn, and why."""

    use_memory: bool | None = Field(description="None = unsure: a relevance gate decides")
    reason: str
    by: Literal["rule", "model", "gate"] = "rule"


class MemoryNeed(BaseModel):
    """Schema of the optional model decision."""

    needs_memory: bool


class Summary(BaseModel):
    """Schema of a turn summary."""

    summary: str


class Plan(BaseModel):
    """What the controller decided for one turn: the prompt and the memories in it."""

    messages: list[Message]
    budget: Budget
    decision: Decision
    memory: list[MemoryRef] = Field(default_factory=list)


def decide_by_rules(question: str, *, has_archive: bool) -> Decision:
    """Cheap first decision: yes for references to the past, no for small talk, else unsure."""
    if not has_archive:
        return Decision(use_memory=False, reason="nothing archived yet")
    if SMALL_TALK.match(question):
        return Decision(use_memory=False, reason="small talk")
    m = PAST_REF.search(question)
    if m:
        return Decision(use_memory=True, reason=f"refers to the conversation ({m.group(0)!r})")
    return Decision(use_memory=None, reason="no rule applies", by="gate")


def make_budget(llm: LLM, cfg: MemorySettings, *, question: str, has_sources: bool) -> Budget:
    """Split the real window: system + question + answer reserve first, then flash/archive/sources."""
    window = llm.window
    reserve = max(16, min(llm.settings.chunking.output_reserve, window // 4))
    system = llm.fixed_tokens("chat_user", system="chat_system", memories=[], evidence=[], question="")
    question_tokens = llm.tokens(question) + 8
    if question_tokens > int(window * SAFETY) - system - reserve - 64:
        raise InputError(f"the message has {question_tokens} tokens; it does not fit the {window}-token window",
                         hint="put long text in a file and load it with /load PATH (or pass it as a source)")
    free = prompt_budget(window, system + question_tokens, reserve)
    sources = int(free * max(0.0, 1 - cfg.flash_share - cfg.archive_share)) if has_sources else 0
    rest = free - sources
    share = cfg.flash_share + cfg.archive_share
    flash = int(rest * cfg.flash_share / share)
    return Budget(window=window, system=system, question=question_tokens, reserve=reserve,
                  flash=flash, archive=rest - flash, sources=sources)


class MemoryController:
    """Flash memory, archived memory and summaries for one chat session."""

    def __init__(self, db: SessionDB, session: str, archive: Archive, cfg: MemorySettings) -> None:
        self.db = db
        self.session = session
        self.archive = archive
        self.cfg = cfg
        self.last_retrieved: list[MemoryRef] = []

    # -- selection -------------------------------------------------------------
    def _form_text(self, turn: Turn, form: Form) -> str:
        return turn.raw_text() if form == "raw" else (turn.summary or "")

    def flash(self, llm: LLM, turns: list[Turn], budget: int) -> list[tuple[Turn, Form]]:
        """The most recent turns (oldest first) that fit ``budget``: raw when they fit, else their summary."""
        chosen: list[tuple[Turn, Form]] = []
        used = 0
        recent = [t for t in turns if t.kind == "turn"][-self.cfg.flash_turns:] if self.cfg.flash_turns else []
        for turn in reversed(recent):
            raw = llm.tokens(turn.raw_text()) + 8
            summ = llm.tokens(turn.summary) + 8 if turn.summary else None
            if used + raw <= budget and (summ is None or raw <= self.threshold(llm) * 2):
                chosen.append((turn, "raw"))
                used += raw
            elif summ is not None and used + summ <= budget:
                chosen.append((turn, "summary"))
                used += summ
            else:
                break  # flash stays contiguous; older turns are archived
        return list(reversed(chosen))

    def retrieve(self, llm: LLM, question: str, candidates: list[Turn], budget: int,
                 decision: Decision) -> list[tuple[Turn, Form, str, float]]:
        """Archived memories for ``question`` within ``budget``, oldest first: (turn, form, text, score)."""
        if not candidates or budget <= 0 or self.cfg.archive_k <= 0:
            return []
        hits = self.archive.search(question, candidates, k=self.cfg.archive_k * 3, db=self.db)
        latest = max(t.n for t in candidates)
        # the gate: without a rule asking for memory, only clearly related turns; with one, the best
        # hit always, and others only when at least loosely related (keeps the prompt lean)
        floor = self.cfg.min_relevance if decision.use_memory is None else self.cfg.min_relevance / 2
        best = max((r for _, r in hits), default=0.0)
        ranked = []
        for turn, relevance in hits:
            if relevance < floor and not (decision.use_memory and relevance == best):
                continue
            recency = 0.5 ** ((latest - turn.n) / self.cfg.recency_half_life)
            ranked.append((relevance + self.cfg.recency_weight * recency, relevance, turn))
        ranked.sort(key=lambda r: -r[0])
        picked: list[tuple[Turn, Form, str, float]] = []
        used = 0
        per_item = max(48, budget // 2)
        for _, relevance, turn in ranked[: self.cfg.archive_k * 2]:
            if len(picked) >= self.cfg.archive_k:
                break
            item = self._fit_item(llm, turn, min(per_item, budget - used))
            if item is None:
                continue
            form, text, cost = item
            picked.append((turn, form, text, relevance))
            used += cost
        return sorted(picked, key=lambda p: p[0].n)

    def _fit_item(self, llm: LLM, turn: Turn, room: int) -> tuple[Form, str, int] | None:
        """Raw text when it fits ``room``, else the summary, else a cut of the raw text."""
        if room < 24:
            return None
        raw = turn.raw_text()
        cost = llm.tokens(raw) + 8
        if cost <= room:
            return "raw", raw, cost
        if turn.summary and llm.tokens(turn.summary) + 8 <= room:
            return "summary", turn.summary, llm.tokens(turn.summary) + 8
        cut = truncate_to_tokens(raw, room - 8, llm.tokens)
        return "raw", cut + " …", llm.tokens(cut) + 10

    # -- decision --------------------------------------------------------------
    def decide(self, llm: LLM, question: str, has_archive: bool) -> Decision:
        decision = decide_by_rules(question, has_archive=has_archive)
        if decision.use_memory is not None or not self.cfg.decide_with_model:
            return decision
        try:
            need = llm.call_json("memory_decide", MemoryNeed, max_tokens=16, system=None, question=question)
        except OPTIONAL_STEP_ERRORS:  # an unusable reply; a backend that is down still says so
            return decision  # the gate decides
        return Decision(use_memory=need.needs_memory, reason="the model decided", by="model")

    # -- the prompt ------------------------------------------------------------
    def plan(self, llm: LLM, question: str, *, evidence: list[dict] | None = None) -> Plan:
        """Build this turn's messages: system, flash turns as messages, memories + question last."""
        budget = make_budget(llm, self.cfg, question=question, has_sources=evidence is not None)
        turns = self.db.turns(self.session, usable_only=True)
        flash = self.flash(llm, turns, budget.flash)
        flash_ids = {t.id for t, _ in flash}
        candidates = [t for t in turns if t.id not in flash_ids]
        decision = self.decide(llm, question, has_archive=bool(candidates))
        archived = []
        if decision.use_memory is not False:
            archived = self.retrieve(llm, question, candidates, budget.archive, decision)
            if decision.use_memory is None:
                decision = Decision(use_memory=bool(archived), by="gate",
                                    reason="related turns found" if archived else "no archived turn is related enough")
        return self._assemble(llm, question, budget, decision, flash, archived, evidence or [])

    def _assemble(self, llm: LLM, question: str, budget: Budget, decision: Decision,
                  flash: list[tuple[Turn, Form]], archived: list[tuple[Turn, Form, str, float]],
                  evidence: list[dict]) -> Plan:
        refs: list[MemoryRef] = []
        memories = []
        for turn, form, text, score in archived:
            memories.append({"n": turn.n, "form": form, "kind": turn.kind, "text": text})
            refs.append(MemoryRef(n=turn.n, kind="archive", form=form, score=round(score, 4),
                                  tokens=llm.tokens(text), preview=_preview(text)))
        messages = [Message(role="system", content=llm.render("chat_system"))]
        for turn, form in flash:
            if form == "raw":  # the conversation itself, as chat turns; defused like every value (no
                # control token or fence tag from a quoted document can open a turn of its own)
                messages += [Message(role="user", content=unfence(turn.user)),
                             Message(role="assistant", content=unfence(turn.assistant))]
            else:  # a large recent turn: its summary goes with the memories, marked recent
                memories.append({"n": turn.n, "form": form, "kind": "recent", "text": turn.summary or ""})
            refs.append(MemoryRef(n=turn.n, kind="flash", form=form, tokens=llm.tokens(self._form_text(turn, form)),
                                  preview=_preview(self._form_text(turn, form))))
        kept = _fit_evidence(llm, evidence, budget.sources)
        messages.append(Message(role="user", content=llm.render("chat_user", memories=memories, evidence=kept,
                                                                question=question)))
        self.last_retrieved = [r for r in refs if r.kind == "archive"]
        return Plan(messages=messages, budget=budget, decision=decision, memory=refs)

    # -- after the turn ----------------------------------------------------------
    def threshold(self, llm: LLM) -> int:
        """Turns above this many tokens get a summary."""
        return self.cfg.summary_threshold or max(96, llm.window // 16)

    def maybe_summarize(self, llm: LLM, turn: Turn) -> Turn:
        """Summarize ``turn`` when it is large; the summary is stored with it. Failures leave it raw."""
        if not turn.usable or turn.summary or llm.tokens(turn.raw_text()) <= self.threshold(llm):
            return turn
        max_tokens = max(32, int(self.cfg.summary_words * 2))
        fixed = llm.fixed_tokens("memory_summarize", words=self.cfg.summary_words, document="")
        room = prompt_budget(llm.window, fixed, max_tokens)
        document = truncate_to_tokens(turn.raw_text(), room, llm.tokens)
        try:
            result = llm.call_json("memory_summarize", Summary, max_tokens=max_tokens,
                                   words=self.cfg.summary_words, document=document)
        except OPTIONAL_STEP_ERRORS:
            return turn  # a turn without a summary still works: it is cut when it must be
        summary = " ".join(result.summary.split())
        if not summary:
            return turn
        self.db.set_summary(turn.id, summary)
        return turn.model_copy(update={"summary": summary, "embedded": None})


def _fit_evidence(llm: LLM, evidence: list[dict], budget: int) -> list[dict]:
    kept, used = [], 0
    for item in evidence:
        cost = llm.tokens(item["quote"]) + 12
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def _preview(text: str, chars: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"
