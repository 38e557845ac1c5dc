"""The answer step over selected units: a brief answer, a computed count, or a summary.

Citations are selected units, so they are verbatim at their spans by construction. A found answer
always carries at least one citation; one that says it is not there, or brings in words none of the
evidence has, is :data:`~agentlong.evidence.cite.NOT_FOUND`.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> from agentlong.evidence.units import Unit
>>> u = Unit(doc_id="d", source="n.txt", chunk_index=0, char_start=10, char_end=33, line_start=2, line_end=2,
...          text="The vault code is 4721.")
>>> llm = LLM(FakeBackend(mode="keyed", responses={"vault": {"answer": "4721."}}), Settings(model="fake"))
>>> r = answer_fact(llm, "What is the vault code?", [u], max_tokens=64)
>>> r.text, r.found, [c.evidence.where() for c in r.citations]
('4721. [1]', True, ['n.txt:2'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, WithJsonSchema

from ..errors import ParseError
from ..llm import LLM
from ..packing import fit
from ..types import Citation, Evidence, Message
from ..wordcount import bounds, count_words, trim_to
from .aggregate import items
from .cite import MARKER, NOT_FOUND, attribute, grounded, number_citations, says_not_found
from .units import Unit

__all__ = ["Result", "answer_fact", "answer_aggregate", "write_summary", "fit_units", "cite_sentences"]

MAX_CONTINUE = 3
ANSWER_CHARS = 400  # "briefly": a phrase or a sentence or two


@dataclass
class Result:
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    detail: str = ""
    basis: str = "selected"  # "read": nothing was selected; written from the units read


def not_found(detail: str) -> Result:
    return Result(text=NOT_FOUND, found=False, detail=detail)


def _shown(evidence: Sequence[Evidence]) -> list[dict]:
    return [{"n": n, "where": e.where(), "text": " ".join(e.quote.split())} for n, e in enumerate(evidence, 1)]


def fit_units(llm: LLM, units: Sequence[Unit], budget: int) -> list[Unit]:
    """The units (given best first) that fit ``budget`` tokens, back in reading order."""
    kept = fit(units, budget, lambda u: llm.tokens(u.text) + llm.tokens(u.source) + 8)
    return sorted(kept, key=lambda u: u.key)


class AnswerReply(BaseModel):
    """The answer step's reply: words only. Which units it rests on is computed (the units holding
    its words), never asked: asked for ``[n]`` markers, small models reply with markers alone."""

    answer: Annotated[str, WithJsonSchema({"type": "string", "maxLength": ANSWER_CHARS})] = ""


def answer_fact(llm: LLM, question: str, units: Sequence[Unit], *, max_tokens: int) -> Result:
    """A brief answer (JSON) from the numbered units; cited by the units sharing its words, else by
    those sharing most of the question's words, else by all of them."""
    if not units:
        return not_found("nothing was selected")
    evidence = [u.evidence() for u in units]
    try:
        out = llm.call_json("answer_units", AnswerReply, max_tokens=max_tokens, question=question,
                            evidence=_shown(evidence)).answer.strip()
    except ParseError as exc:  # no usable reply after the repair: nothing is answered, and the trace says why
        return not_found(f"the answer call gave no usable reply ({exc})")
    if says_not_found(out):
        return not_found(f"the answer call found no answer in {len(units)} selected units")
    if not grounded(out, question, evidence):
        return not_found("the answer's new words are in none of the selected units")
    # cite the units that hold the answer's own words; an answer that is no phrase of the units (a
    # choice letter, "yes") rests on the units about the question, those sharing most of its words;
    # only when none does is every unit cited. Markers naming other units are dropped.
    cited = attribute(out, question, evidence) or attribute(question, "", evidence)
    out = re.sub(r"^(?:\s*\[\d+(?:\s*,\s*\d+)*\])+\s*", "", out) if cited else out  # "[1] Biscuit": cited at the end
    if cited:  # markers naming a unit without the answer's words are dropped
        out = MARKER.sub(lambda m: m.group(0) if all(int(n) in cited for n in re.findall(r"\d+", m.group(1)))
                         else "", out).strip()
    text, citations = number_citations(out, evidence, cited=cited)
    return Result(text=text, found=True, citations=citations, detail=f"{len(citations)} of {len(units)} units cited")


def answer_aggregate(question: str, units: Sequence[Unit], labels: Sequence[str]) -> Result:
    """The count and the list of items, computed in code; every item cites its units."""
    found = items(question, units, labels)
    if not found:
        return not_found("no occurrence was selected")
    stated = _stated_count(question, found)
    if stated is not None:
        text, citations = number_citations(f"{stated} [1]", [found[0].units[0].evidence()])
        return Result(text=text, found=True, citations=citations, detail="the text states the count itself")
    evidence: list[Evidence] = []
    parts = []
    for item in found:
        refs = []
        for unit in item.units:
            evidence.append(unit.evidence())
            refs.append(len(evidence))
        parts.append(f"{item.label} {''.join(f'[{n}]' for n in refs)}")
    text = f"{len(found)} — " + "; ".join(parts) + "."
    text, citations = number_citations(text, evidence)
    return Result(text=text, found=True, citations=citations,
                  detail=f"{len(found)} items from {len(units)} selected units (counted in code)")


def _stated_count(question: str, found: list) -> str | None:
    """"How many times had the spectacles been mended?" over one sentence saying "mended fourteen
    times": the count is stated, not counted. The number of that one item's sentence, or None."""
    from ..lexical import stems

    if len(found) != 1 or len(found[0].units) != 1:
        return None
    numbers = sorted(w for w in stems(found[0].units[0].text) - stems(question) if w.isdigit() and 1 < int(w) < 1000)  # not a year
    return numbers[0] if len(numbers) == 1 else None


def write_summary(llm: LLM, units: Sequence[Unit], words: int, *, focus: str = "") -> Result:
    """A summary of about ``words`` words from the selected units, continued while short and cut at
    a sentence end while long; each sentence cites the units it rests on."""
    evidence = [u.evidence() for u in units]
    low, high = bounds(words)
    messages = llm.messages("summary_units", evidence=_shown(evidence), words=words, focus=focus)
    text = llm.send(messages, step="summary_units", max_tokens=int(words * 1.6) + 48).text.strip()
    for _ in range(MAX_CONTINUE):
        short = words - count_words(text)
        if count_words(text) >= low:
            break
        follow = [*messages, Message(role="assistant", content=text),
                  Message(role="user", content=llm.render("summary_continue", words=short))]
        more = llm.send(follow, step="summary_continue", max_tokens=int(short * 1.6) + 48).text.strip()
        if not more:
            break
        text = f"{text}\n\n{more}"
    text = trim_to(MARKER.sub("", text), high, min_words=low)
    text, citations = cite_sentences(text, evidence)
    detail = f"{count_words(text)} words for {words} asked; {len(citations)} units cited"
    return Result(text=text, found=bool(text.strip()), citations=citations, detail=detail)


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*[\"”’')\]]*")


def cite_sentences(text: str, evidence: Sequence[Evidence]) -> tuple[str, list[Citation]]:
    """Each sentence of ``text`` gets ``[n]`` for the units sharing the most of its words (at least 2)."""
    from ..lexical import content_words

    out = []
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0)
        words = content_words(sentence)
        scored = [(len(words & content_words(e.quote)), n) for n, e in enumerate(evidence, 1)]
        best = max((s for s, _ in scored), default=0)
        refs = [n for s, n in scored if best >= 2 and s == best][:2]
        out.append((m.start(), m.end(), refs))
    pieces, pos = [], 0
    for start, end, refs in out:
        pieces.append(text[pos:end].rstrip() + "".join(f" [{n}]" for n in refs))
        pos = end
    pieces.append(text[pos:])
    return number_citations("".join(pieces), evidence, cite_all_if_none=False)
