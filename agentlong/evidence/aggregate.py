"""Aggregation computed in code: labelled units → de-duplicated items → a count with citations.

The model only labels what it selected ("Ashby", "the town of Carrow"); code normalises the labels,
merges repeats and counts. A label that only restates the question ("apple tree") says nothing, so
the unit's own words that are not in the question stand for it instead. "How many times" counts
occurrences (units); other count and list questions count distinct items.

>>> from agentlong.evidence.units import Unit
>>> def u(i, text):
...     return Unit(doc_id="d", source="s", chunk_index=0, char_start=i * 100, char_end=i * 100 + len(text),
...                 line_start=i, line_end=i, text=text)
>>> q = "In how many towns did Miss Wren plant an apple tree?"
>>> units = [u(1, "Miss Wren planted an apple tree in Ashby."), u(2, "Miss Wren planted an apple tree in Carrow."),
...          u(3, "In Ashby, Miss Wren planted an apple tree.")]
>>> [i.label for i in items(q, units, ["Ashby", "apple tree", "the town of Ashby"])]
['Ashby', 'Carrow']
>>> counts_occurrences("How many times was the owl seen?"), counts_occurrences(q)
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..lexical import stems
from .units import Unit

__all__ = ["Item", "items", "counts_occurrences", "is_aggregation"]

_OCCURRENCES = re.compile(r"\bhow (?:many times|often)\b|\bnumber of (?:times|occasions|occurrences)\b|"
                          r"\bhow many (?:occasions|occurrences|mentions)\b", re.IGNORECASE)
_AGGREGATE = re.compile(
    r"\bhow (?:many times|often)\b|\b(?:in|on|at|to|from|by) how many\b|\bhow many (?:different|distinct|separate)\b|"
    r"\bnumber of (?:times|occasions|occurrences|mentions|places|people)\b|\bname (?:them|all|each|every)\b|"
    r"\blist (?:all|every|each|them)\b|\b(?:every|each) (?:time|place|occasion|occurrence|mention|instance)\b|"
    r"\ball (?:the )?(?:times|places|occasions|occurrences|mentions|instances)\b|\bwhenever\b|\bcount (?:the|all|every)\b",
    re.IGNORECASE)
_SMALL = frozenset("town city villa place time times".split())  # stems of words that frame an item


@dataclass
class Item:
    """One distinct thing the question counts, and the units that mention it."""

    label: str
    key: frozenset[str]
    units: list[Unit] = field(default_factory=list)


def is_aggregation(question: str) -> bool:
    """A count or list over the whole text ("how many times", "in how many towns", "list every ...");
    "how many rooms did the inn have" asks one fact and is not one."""
    return bool(_AGGREGATE.search(question))


def counts_occurrences(question: str) -> bool:
    return bool(_OCCURRENCES.search(question))


def _key(label: str, unit: Unit, asked: set[str]) -> tuple[frozenset[str], str]:
    """Stems that name the item (those of the label, else of the unit, minus the question's)."""
    own = stems(label) - asked - _SMALL
    if own:
        return frozenset(own), label
    words = [w for w in re.findall(r"[^\W_]+", unit.text) if (stems(w) - asked - _SMALL)]
    return frozenset(stems(" ".join(words))), " ".join(words[:6])


def items(question: str, units: Sequence[Unit], labels: Sequence[str]) -> list[Item]:
    """Distinct items in reading order. The same unit never counts twice; for an occurrence count
    every other unit is its own item, else items whose keys contain one another are one item."""
    asked = stems(question)
    per_unit = counts_occurrences(question)
    out: list[Item] = []
    seen: set[tuple[str, int]] = set()
    for unit, label in sorted(zip(units, labels), key=lambda p: p[0].key):
        if unit.key in seen:
            continue
        seen.add(unit.key)
        key, shown = _key(label, unit, asked)
        same = None if per_unit else next((i for i in out if key and (key <= i.key or i.key <= key)), None)
        if same is None:
            out.append(Item(label=shown or unit.text[:40], key=key, units=[unit]))
        else:
            same.units.append(unit)
            if len(key) < len(same.key):  # the shorter label names it ("Ashby" over "the town of Ashby")
                same.label, same.key = shown, key
    return out
