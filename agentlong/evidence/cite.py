"""The one "not found", the one answer check and numbered citations, for every strategy.

>>> from agentlong.types import Evidence
>>> ev = Evidence(quote="The key is under the blue mat.", doc_id="d", source="a.txt", char_start=0, char_end=30)
>>> number_citations("Under the mat [2].", [ev, ev])[0]
'Under the mat [1].'
>>> says_not_found("The documents do not mention a key."), says_not_found("Under the blue mat.")
(True, False)
>>> says_not_found("[1] None."), says_not_found("None of the guests, except Ada.")
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..lexical import content_words, stems
from ..types import Citation, Evidence

__all__ = ["NOT_FOUND", "says_not_found", "grounded", "on_topic", "attribute", "number_citations", "MARKER"]

NOT_FOUND = "The documents do not contain an answer to this question."
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_NEGATIVE = re.compile(
    r"\b(?:not found|no (?:information|mention|evidence)|(?:does|do|did) not (?:contain|mention|say|state|specify|"
    r"provide|answer|include)|(?:is|are) not (?:mentioned|stated|specified|provided|given)|cannot be (?:found|"
    r"determined|answered)|(?:there is|there's) no\b|unable to (?:find|determine|answer))"
    r"|^(?:none|nothing|unknown|n/?a|no answer)$",  # the whole answer says there is none
    re.IGNORECASE)
# words that frame an answer rather than carry its content
_FRAMING = frozenset("answer answers correct option options evidence document documents text passage passages "
                     "according state states stated mention mentions mentioned say says said based because "
                     "therefore question given provided information yes also both only sentence sentences".split())


def says_not_found(answer: str) -> bool:
    """True for answers that say nothing ("[1]", "") or say the text does not hold the answer."""
    bare = MARKER.sub("", answer).strip(" .!\n\t\"'")
    return not bare or bool(_NEGATIVE.search(bare))


def _stems(text: str) -> set[str]:
    return {s for s in stems(MARKER.sub(" ", text)) if s not in _FRAMING}


def grounded(answer: str, question: str, evidence: Sequence[Evidence]) -> bool:
    """False when the answer brings in content words and none of them is in the evidence: the model
    answered from its own head. An answer that only restates the question, adds only numbers (a count
    is computed, not copied), or shares any new word with the evidence, passes.

    >>> ev = [Evidence(quote="The call sign was Blue Heron Seven.", doc_id="d", source="s", char_start=0, char_end=35)]
    >>> grounded("It was Blue Heron Seven [1].", "What was the call sign?", ev)
    True
    >>> grounded("The call sign was John Smith [1].", "What was the call sign?", ev)
    False
    """
    new = {w for w in _stems(answer) - _stems(question) if not w.isdigit()}
    if not new:
        return True
    seen = set().union(*(_stems(e.quote) for e in evidence)) if evidence else set()
    return bool(new & seen)


def on_topic(answer: str, question: str, evidence: Sequence[Evidence]) -> bool:
    """For an answer written from passages nobody selected: it must say something the question does
    not, and the passages holding its own words must be about the question (share a content word
    with it). An option letter or a bare number passes; an answer that only echoes the question, or
    copies a sentence about something else, does not.

    >>> ev = [Evidence(quote="The parrot was called Biscuit.", doc_id="d", source="s", char_start=0, char_end=30),
    ...       Evidence(quote="The party made camp by the forest.", doc_id="d", source="s", char_start=31, char_end=65)]
    >>> q = "What was the parrot's name in Lisbon harbour?"
    >>> on_topic("Biscuit [1].", q, ev), on_topic("B", q, ev)
    (True, True)
    >>> on_topic("Lisbon harbour.", q, ev), on_topic("The party made camp by the forest.", q, ev)
    (False, False)
    """
    said, asked = _stems(answer), _stems(question)
    new = said - asked
    if said and not new:
        return False
    holders = attribute(answer, question, evidence)
    return not holders or any(_stems(evidence[n - 1].quote) & asked for n in holders)


def attribute(answer: str, question: str, evidence: Sequence[Evidence]) -> list[int]:
    """The evidence numbers (1-based) sharing the most of the answer's own content words (those not in
    the question), best first; empty when none shares any.

    >>> ev = [Evidence(quote="Mr. Bingley came to town.", doc_id="d", source="s", char_start=0, char_end=25),
    ...       Evidence(quote="His horse was a grey mare called Moonlight.", doc_id="d", source="s", char_start=30,
    ...                char_end=73)]
    >>> attribute("Moonlight.", "What was Mr. Bingley's horse called?", ev)
    [2]
    """
    words = content_words(MARKER.sub(" ", answer)) - content_words(question) - _FRAMING
    overlap = [(len(words & content_words(ev.quote)), n) for n, ev in enumerate(evidence, start=1)]
    best = max((o for o, _ in overlap), default=0)
    return [n for o, n in overlap if best and o == best]


def number_citations(
    text: str, evidence: Sequence[Evidence], *, cited: Sequence[int] = (), cite_all_if_none: bool = True,
) -> tuple[str, list[Citation]]:
    """Renumber ``[n]`` markers (1-based indexes into ``evidence``) as 1..m in order of first use and
    build the citations. Markers that point at nothing are removed. Numbers in ``cited`` without a
    marker are appended; when nothing is cited at all and ``cite_all_if_none``, every piece is cited.
    """
    order: list[int] = []

    def number(model_n: int) -> int | None:
        idx = model_n - 1
        if not 0 <= idx < len(evidence):
            return None
        if idx not in order:
            order.append(idx)
        return order.index(idx) + 1

    def replace(match: re.Match[str]) -> str:
        nums = [number(int(n)) for n in re.split(r"\s*,\s*", match.group(1))]
        return "".join(f"[{n}]" for n in dict.fromkeys(n for n in nums if n is not None))

    out = MARKER.sub(replace, text).strip()
    out = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", out))
    wanted = list(cited) or ([] if order or not cite_all_if_none else range(1, len(evidence) + 1))
    extra = [n for n in (number(c) for c in wanted) if n is not None and f"[{n}]" not in out]
    if extra:
        out = f"{out} {''.join(f'[{n}]' for n in dict.fromkeys(extra))}".strip()
    return out, [Citation(n=i + 1, evidence=evidence[idx]) for i, idx in enumerate(order)]
