"""Multi-hop: names in the selected units that the question does not have become the next query.

"How many barrels did Captain Hale's ship carry?" selects "Captain Hale commanded the brig Sea
Lantern."; the bridge "Sea Lantern" is not in the question, so the next retrieval searches for it
and finds "The Sea Lantern carried 300 barrels.". Computed in code, no model call.

>>> from agentlong.evidence.units import Unit
>>> u = Unit(doc_id="d", source="s", chunk_index=0, char_start=0, char_end=44, line_start=1, line_end=1,
...          text="Captain Hale commanded the brig Sea Lantern.")
>>> bridge_terms("How many barrels did Captain Hale's ship carry?", [u])
['Sea Lantern']
>>> hop_query("How many barrels did Captain Hale's ship carry?", ['Sea Lantern'])
"Sea Lantern How many barrels did Captain Hale's ship carry?"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..lexical import content_words
from .units import Unit

__all__ = ["bridge_terms", "hop_query", "MAX_HOPS", "MAX_TERMS"]

MAX_HOPS = 3
MAX_TERMS = 4
_NAME = re.compile(r"[A-Z][\w'’-]*(?:\s+(?:of|the|de|la|van|von|du)?\s*[A-Z][\w'’-]*)*")
_QUOTED = re.compile(r"[\"“‘']([^\"“”‘’']{3,40})[\"”’']")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)$")


def _candidates(text: str) -> Iterable[tuple[int, str]]:
    """(rank, phrase): quoted phrases and capitalised names; a single capitalised word that starts a
    sentence ranks last (it is usually an ordinary word)."""
    for m in _QUOTED.finditer(text):
        yield 0, m.group(1).strip()
    for m in _NAME.finditer(text):
        phrase = m.group(0).strip(" '’-")
        words = phrase.split()
        if len(words) == 1 and _SENTENCE_START.search(text[:m.start()]):
            yield 2, phrase
        else:
            yield 1, re.sub(r"^(?:The|A|An)\s+", "", phrase)


def bridge_terms(question: str, units: Sequence[Unit], tried: Iterable[str] = ()) -> list[str]:
    """Up to MAX_TERMS names or quoted phrases of ``units`` whose words are not all in the question
    (nor tried before), best first."""
    known = content_words(question) | {w for t in tried for w in content_words(t)}
    found: dict[str, int] = {}
    for unit in units:
        for rank, phrase in _candidates(unit.text):
            words = content_words(phrase)
            if words and not words <= known and phrase not in found:
                found[phrase] = rank
    ranked = sorted(found, key=lambda p: found[p])
    return [p for p in ranked if found[p] < 2][:MAX_TERMS]


def hop_query(question: str, terms: Sequence[str]) -> str:
    """The next retrieval query: the bridge terms, then the question (whose other words still count)."""
    return " ".join([*terms, question])
