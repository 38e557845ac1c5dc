"""Read a passage, then select its units in code: the model writes a few words, code finds the units.

Each reading call shows one passage as numbered units and asks for a short reply — the answer in a
few words copied from the text (questions), the items it mentions (count and list questions), or
its main points (summaries). Code maps every phrase to the unit that holds it (``verify.locate``,
else the unit sharing most of its words that the question does not have), so the evidence is always
whole units at their exact spans and never the model's copy.

Why not ask for unit ids: measured with the default 0.5B model, an ``enum`` of the ids shown
(grammar-constrained) gave ``[1, 2, 3, 4, 5]`` or ``[]`` whatever the text, while the same call
asked for the answer in words copied the planted answer exactly (docs/evidence.md).

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.types import Chunk
>>> from agentlong.evidence.units import split_units
>>> text = "Rain fell all day. The vault code is 4721. Nobody else knew it."
>>> units = split_units(Chunk(doc_id="d", source="n.txt", index=0, text=text, char_start=0,
...                           char_end=len(text), line_start=1, line_end=1))
>>> llm = LLM(FakeBackend(mode="keyed", responses={"vault": {"answer": "4721"}}), Settings(model="fake"))
>>> sel = select(llm, "What is the vault code?", units)
>>> [u.text for u in sel.units], sel.labels
(['The vault code is 4721.'], ['4721'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from ..errors import ParseError
from ..lexical import stems
from ..llm import LLM
from ..verify import locate
from .cite import says_not_found
from .units import Unit

__all__ = ["Selection", "select", "locate_units", "shown_blocks", "Mode", "reply_model", "MAX_ITEMS"]

Mode = Literal["fact", "aggregate", "summary"]
MAX_ITEMS = 8  # items (or points) one reading may name
PHRASE_CHARS = 120


def _phrase(chars: int = PHRASE_CHARS) -> Any:
    return Annotated[str, WithJsonSchema({"type": "string", "maxLength": chars})]


def _phrases(most: int) -> Any:
    return Annotated[list[str], WithJsonSchema({"type": "array", "items": {"type": "string", "maxLength": 80},
                                                 "maxItems": most})]


class FactReply(BaseModel):
    answer: _phrase() = Field("", description="the answer in a few words copied from the text; empty if none")  # type: ignore[valid-type]


class ItemsReply(BaseModel):
    items: _phrases(MAX_ITEMS) = Field(default_factory=list, description="each occurrence, named in a few words")  # type: ignore[valid-type]


class PointsReply(BaseModel):
    points: _phrases(4) = Field(default_factory=list, description="the main points, one short sentence each")  # type: ignore[valid-type]


def reply_model(mode: Mode) -> type[BaseModel]:
    return {"fact": FactReply, "aggregate": ItemsReply, "summary": PointsReply}[mode]


@dataclass
class Selection:
    """The units a reading selected (reading order), the phrase each stands for, any error."""

    units: list[Unit] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)  # the phrase is in the unit word for word
    error: str | None = None

    @property
    def relevant(self) -> bool:
        return bool(self.units)


def shown_blocks(units: Sequence[Unit]) -> list[dict]:
    """Units as the prompt shows them: blocks of consecutive units of one chunk, numbered 1..n."""
    blocks: list[dict] = []
    for n, unit in enumerate(units, start=1):
        row = {"n": n, "text": " ".join(unit.text.split())}
        last = blocks[-1] if blocks else None
        if last and last["source"] == unit.source and last["chunk"] == unit.chunk_index:
            last["units"].append(row)
            last["line_end"] = unit.line_end
            continue
        blocks.append({"source": unit.source, "chunk": unit.chunk_index, "line_start": unit.line_start,
                       "line_end": unit.line_end, "units": [row]})
    for b in blocks:
        b["lines"] = f"{b['line_start']}-{b['line_end']}"
    return blocks


def _holds(phrase: str, text: str) -> bool:
    """``phrase`` is in ``text`` word for word (case and spacing aside), at word boundaries."""
    words = re.findall(r"\w+|[^\w\s]", phrase)
    pattern = r"\W*".join(re.escape(w) for w in words)
    return bool(words) and re.search(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE) is not None


def locate_units(phrase: str, units: Sequence[Unit], question: str, *, every: bool = False) -> tuple[list[Unit], bool]:
    """The unit that holds ``phrase`` (``every``: all units that hold it word for word), and whether
    it was copied. Else the unit found by a tight fuzzy match (``verify.locate``), else
    the one sharing most of the phrase's words that the question lacks (at least half); ([], False)
    when none does.

    >>> from agentlong.evidence.units import Unit
    >>> us = [Unit(doc_id="d", source="s", chunk_index=0, char_start=i, char_end=i + 1, line_start=1, line_end=1,
    ...            text=t) for i, t in enumerate(["Ships came.", "The Sea Lantern carried 300 barrels of oil."])]
    >>> found, exact = locate_units("300 barrels", us, "How many barrels did it carry?")
    >>> [u.text for u in found], exact
    (['The Sea Lantern carried 300 barrels of oil.'], True)
    """
    text = " ".join(phrase.split())
    if not text:
        return [], False
    held = [u for u in units if _holds(text, u.text)]
    if held:
        return (held if every else held[:1]), True
    for unit in units:
        if locate(text, " ".join(unit.text.split()), fuzzy_threshold=95.0):
            return [unit], True  # copied with a slip ("carryed"): still a copy
    # not a copy: the unit must hold most of what the phrase adds to the question, and a word of the
    # question too ("the keeper's cat is Tom" must not select "old Tom tied the boats", nor a bare "1"
    # any sentence with "one" in it)
    asked = stems(question)
    new = stems(text) - asked or stems(text)
    scored = [(len(new & stems(u.text)), i) for i, u in enumerate(units) if not asked or asked & stems(u.text)]
    best = max((s for s, _ in scored), default=0)
    if not best or 2 * best < len(new):
        return [], False
    return [units[next(i for s, i in scored if s == best)]], False


def select(llm: LLM, question: str, units: Sequence[Unit], *, mode: Mode = "fact", hints: Sequence[str] = (),
           max_tokens: int = 160) -> Selection:
    """One reading call over ``units``; a reply that cannot be read twice is an empty selection with
    ``error`` set (one unreadable passage never sinks a question)."""
    if not units:
        return Selection()
    try:
        reply = llm.call_json("select_units", reply_model(mode), max_tokens=max_tokens, question=question, mode=mode,
                              hints=list(hints), blocks=shown_blocks(units), most=MAX_ITEMS)
    except ParseError as exc:
        return Selection(error=exc.message)
    data = reply.model_dump()
    phrases = [data["answer"]] if mode == "fact" else data["items" if mode == "aggregate" else "points"]
    chosen: dict[tuple[str, int], tuple[Unit, str, bool]] = {}
    for phrase in phrases:
        phrase = " ".join(str(phrase).split())
        if not phrase or says_not_found(phrase):
            continue
        asked = "" if mode == "summary" else question  # a summary's points answer no question
        found, exact = locate_units(phrase, units, asked, every=mode == "aggregate")
        for unit in found:
            chosen.setdefault(unit.key, (unit, phrase, exact))
    picked = sorted(chosen.values(), key=lambda p: p[0].key)
    return Selection(units=[p[0] for p in picked], labels=[p[1] for p in picked], exact=[p[2] for p in picked])
