"""Verified evidence and numbered citations, shared by retrieve-then-reason and full context.

A quote proposed by the model becomes :class:`~agentlong.types.Evidence` only when
:func:`agentlong.verify.locate` finds it in the text the model was shown; the stored quote is the
real span of the source (so a fuzzy match is snapped to what the document actually says).

>>> ev = verify_in("the key is under the blue mat", "Line one.\\nThe key is under the blue mat.\\n",
...                doc_id="d1", source="a.txt", char_start=100, line_start=7)
>>> (ev.quote, ev.char_start, ev.line_start, ev.match)
('The key is under the blue mat', 110, 8, 'exact')
>>> text, cites = number_citations("Under the mat [2].", [ev, ev])
>>> (text, [c.n for c in cites])
('Under the mat [1].', [1])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..types import Citation, Evidence
from ..verify import locate

__all__ = ["verify_in", "add_unique", "number_citations", "attribute", "says_not_found", "grounded", "supporting_lines",
           "NOT_FOUND"]

NOT_FOUND = "The documents do not contain an answer to this question."
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_NEGATIVE = re.compile(
    r"\b(?:not found|no (?:information|mention|evidence)|(?:does|do|did) not (?:contain|mention|say|state|specify|"
    r"provide|answer)|(?:is|are) not (?:mentioned|stated|specified|provided|given)|cannot be (?:found|determined|answered))\b",
    re.IGNORECASE)
_STOP = frozenset("the a an and or of to in on at by for with from is are was were be been it its this that these "
                  "those as not no but if then than so do does did has have had which who whom what when where why "
                  "how their there they them he she his her we you your our i".split())


def verify_in(
    quote: str, text: str, *, doc_id: str, source: str, char_start: int = 0, line_start: int = 1,
    chunk_index: int | None = None,
) -> Evidence | None:
    """Evidence for ``quote`` if it is in ``text`` (a span of a document starting at ``char_start``
    and line ``line_start``); None when it is not there (the quote is dropped)."""
    hit = locate(quote, text)
    if hit is None:
        return None
    start, end, how = hit
    span = text[start:end]
    score = 1.0
    if how == "fuzzy":
        from rapidfuzz import fuzz

        score = round(fuzz.ratio(quote.strip().lower(), span.lower()) / 100, 3)
    first = line_start + text.count("\n", 0, start)
    last = first + span.count("\n", 0, max(len(span) - 1, 0))
    return Evidence(
        quote=span, doc_id=doc_id, source=source, char_start=char_start + start, char_end=char_start + end,
        line_start=first, line_end=last, chunk_index=chunk_index, match=how, score=score,
    )


def add_unique(found: list[Evidence], new: Evidence) -> tuple[int, bool]:
    """Append ``new`` unless it mostly overlaps evidence already found in the same document.
    Returns (index of the evidence that stands for it, whether it was appended)."""
    for i, old in enumerate(found):
        if old.doc_id != new.doc_id:
            continue
        overlap = min(old.char_end, new.char_end) - max(old.char_start, new.char_start)
        shorter = min(old.char_end - old.char_start, new.char_end - new.char_start)
        if overlap > 0 and overlap >= 0.5 * shorter:
            return i, False
    found.append(new)
    return len(found) - 1, True


def says_not_found(answer: str) -> bool:
    """True for answers that say nothing ("[1]", "") or say the text does not hold the answer."""
    bare = _MARKER.sub("", answer).strip(" .\n\t\"'")
    return not bare or bool(_NEGATIVE.search(bare))


_NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1 and w not in _STOP}


_DEFINITION = re.compile(r"(?:async\s+)?(?:def|class|function|func|fn|struct|interface|type|const|let|var)\s")
# words that frame an answer rather than carry its content
_FRAMING = frozenset("answer answers correct option options evidence document documents text passage passages "
                     "according state states stated mention mentions mentioned say says said based because "
                     "therefore question given provided information yes also both only".split())


def _stems(text: str) -> set[str]:
    """Content words cut to 5 letters (a crude stem), number words as digits."""
    out = set()
    for w in re.findall(r"[a-z0-9]+", _MARKER.sub(" ", text).lower()):
        if w in _STOP or w in _FRAMING or (len(w) < 2 and not w.isdigit()):
            continue
        out.add(_NUMBER_WORDS.get(w, w[:5]))
    return out


def _new_stems(answer: str, question: str) -> set[str]:
    """What the answer adds: its content stems that the question does not have."""
    return _stems(answer) - _stems(question)


def grounded(answer: str, question: str, evidence: Sequence[Evidence]) -> bool:
    """False when the answer brings in content words and none of them is in the evidence: the model
    answered from its own head (a 0.5B model, shown evidence that does not answer, invents a name).
    An answer that only restates the question, adds only numbers (a count or a sum is computed, not
    copied), or shares any new word with the evidence, passes.

    >>> ev = [Evidence(quote="The call sign was Blue Heron Seven.", doc_id="d", source="s", char_start=0, char_end=35)]
    >>> grounded("It was Blue Heron Seven [1].", "What was the call sign?", ev)
    True
    >>> grounded("The call sign was John Smith [1].", "What was the call sign?", ev)
    False
    >>> grounded("There are 13 [1].", "How many call signs are there?", ev)
    True
    """
    new = {w for w in _new_stems(answer, question) if not w.isdigit()}  # counts and sums are computed
    if not new:
        return True
    seen = set().union(*(_stems(e.quote) for e in evidence)) if evidence else set()
    return bool(new & seen)


def attribute(answer: str, evidence: Sequence[Evidence]) -> list[int]:
    """For an answer without [n] markers: the evidence numbers (1-based) sharing the most content words
    with it, best first; empty when none shares any (then every piece is cited)."""
    words = _words(answer)
    overlap = [(len(words & _words(ev.quote)), n) for n, ev in enumerate(evidence, start=1)]
    best = max((o for o, _ in overlap), default=0)
    return [n for o, n in overlap if o and o >= best / 2] if best else []


def number_citations(
    text: str, evidence: Sequence[Evidence], *, refs: dict[int, int] | None = None,
    cited: Sequence[int] = (), cite_all_if_none: bool = True,
) -> tuple[str, list[Citation]]:
    """Renumber ``[n]`` markers in ``text`` as 1..m in order of first use and build the citations.

    ``n`` is what the model saw: a 1-based index into ``evidence``, or a key of ``refs`` (model
    number → 0-based evidence index) when the model numbered things differently. Markers that point
    at nothing verified are removed. Numbers in ``cited`` without a marker are appended at the end;
    when nothing is cited at all and ``cite_all_if_none``, every piece of evidence is cited.
    """
    lookup = refs if refs is not None else {i + 1: i for i in range(len(evidence))}
    order: list[int] = []  # evidence indexes in citation order

    def number(model_n: int) -> int | None:
        idx = lookup.get(model_n)
        if idx is None:
            return None
        if idx not in order:
            order.append(idx)
        return order.index(idx) + 1

    def replace(match: re.Match[str]) -> str:
        nums = [number(int(n)) for n in re.split(r"\s*,\s*", match.group(1))]
        return "".join(f"[{n}]" for n in dict.fromkeys(n for n in nums if n is not None))

    out = _MARKER.sub(replace, text).strip()
    out = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", out))
    extra = [n for n in (number(c) for c in cited) if n is not None and f"[{n}]" not in out]
    if not order and cite_all_if_none:
        extra = [number(k) for k in sorted(lookup)]
        extra = [n for n in extra if n is not None]
    if extra:
        out = f"{out} {''.join(f'[{n}]' for n in dict.fromkeys(extra))}".strip()
    return out, [Citation(n=i + 1, evidence=evidence[idx]) for i, idx in enumerate(order)]


def supporting_lines(answer: str, question: str, passages: Sequence[dict], most: int = 3) -> list[Evidence]:
    r"""The source lines that carry the answer's new words (those not in the question), best first,
    as evidence at their exact spans; empty when those lines carry under half of the new words (the
    answer is unsupported: a name or place the source does not hold).
    ``passages`` are dicts with ``text``, ``doc_id``, ``source``, ``char_start``, ``line_start``.

    >>> p = {"text": "def dumps(obj):\n    pass\ndef loads(s):\n    return parse(s)\n", "doc_id": "d",
    ...      "source": "json/__init__.py", "char_start": 1000, "line_start": 40, "chunks": [3]}
    >>> [(e.quote, e.line_start) for e in supporting_lines("It is json.loads.", "Which function parses JSON?", [p])]
    [('def loads(s):', 42)]
    >>> supporting_lines("It is yaml.safe_load.", "Which function parses JSON?", [p])
    []
    """
    new = _new_stems(answer, question)
    if not new:
        return []
    scored: list[tuple[int, int, int, int, int]] = []  # (-hits, passage, line, start, end)
    for n, p in enumerate(passages):
        pos = 0
        for i, line in enumerate(p["text"].split("\n")):
            stripped = line.strip()
            hits = len(_stems(stripped) & new) if stripped else 0
            if hits and _DEFINITION.match(stripped):
                hits += 1  # where a symbol is defined beats where it is mentioned
            if hits:
                start = pos + line.index(stripped)
                scored.append((-hits, n, i, start, start + len(stripped)))
            pos += len(line) + 1
    found: list[Evidence] = []
    for _, n, i, start, end in sorted(scored)[:most]:
        p = passages[n]
        chunks = p.get("chunks") or [None]
        found.append(Evidence(
            quote=p["text"][start:end], doc_id=p["doc_id"], source=p["source"], char_start=p["char_start"] + start,
            char_end=p["char_start"] + end, line_start=p["line_start"] + i, line_end=p["line_start"] + i,
            chunk_index=chunks[0], match="exact", score=1.0))
    covered = set().union(*(_stems(e.quote) for e in found)) & new if found else set()
    if 2 * len(covered) < len(new):
        return []
    return sorted(found, key=lambda e: (e.source, e.char_start))
