"""An aider-style repository map: each file's definitions, most-referenced first, fitted to a token budget.

A definition's rank is how much its name is used in *other* files (the square root of the uses in
each file, summed, so one file's hundred calls do not outweigh ten files' one; uses in its own file
count a tenth), shared among the files that define the same name. As in aider, specific names
(``snake_case``/``camelCase``, 8+ characters) weigh more; private, dunder, very common
(defined in more than five files) and built-in-looking names (``append``, ``get``, ``id``) weigh
less; top-level definitions weigh more than members. The map keeps the best-ranked definitions
that fit, grouped by file, each shown as its signature line with its line number, under the
signatures of the classes that contain it.

>>> from agentlong.documents import load_text
>>> a = load_text("def helper(x):\\n    return x\\n\\ndef unused():\\n    pass\\n", source="util.py", kind="code")
>>> b = load_text("from util import helper\\n\\nprint(helper(1), helper(2))\\n", source="main.py", kind="code")
>>> print(repo_map([a, b], budget_tokens=5, count=lambda t: len(t.split())))
util.py:
   1│ def helper(x):
"""

from __future__ import annotations

import builtins
import math
import re
from collections import Counter
from collections.abc import Callable

from ..types import Document
from .code import Definition, definitions

__all__ = ["repo_map", "ranked_definitions"]

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_GENERIC = frozenset(
    n for t in (list, dict, str, set, bytes, int, object) for n in dir(t) if not n.startswith("_")
) | frozenset(n for n in dir(builtins) if not n.startswith("_")) | frozenset(
    "get set run main init new id name text value data item items result update close open read write "
    "load save start stop call send apply process handle execute test setup".split()
)
Entry = tuple[float, str, Definition | None]  # (score, file label, definition or None for a bare file)


def ranked_definitions(documents: list[Document]) -> list[Entry]:
    """All definitions with their scores, best first; files without definitions come last, bare."""
    code = [d for d in documents if d.kind == "code"]
    defs = {d.id: definitions(d) for d in code}
    names = {x.name for ds in defs.values() for x in ds}
    uses = {d.id: Counter(w for w in _IDENT.findall(d.text) if w in names) for d in code}
    definers = Counter(name for ds in defs.values() for name in {x.name for x in ds})
    entries: list[Entry] = []
    for doc in documents:
        label = _label(doc)
        own = defs.get(doc.id, [])
        for x in own:
            others = sum(math.sqrt(u[x.name]) for doc_id, u in uses.items() if doc_id != doc.id and u[x.name])
            here = max(0, uses[doc.id][x.name] - sum(1 for y in own if y.name == x.name))
            score = (others + 0.1 * math.sqrt(here)) / definers[x.name]
            entries.append((score * _weight(x, definers[x.name]), label, x))
        if not own:
            entries.append((-1.0, label, None))
    entries.sort(key=lambda e: (-e[0], e[1], e[2].char_start if e[2] else 0))
    return entries


def _weight(x: Definition, definers: int) -> float:
    name, weight = x.name, 1.0 if x.depth == 0 else 0.5
    if ("_" in name.strip("_") or re.search(r"[a-z][A-Z]", name)) and len(name) >= 8:
        weight *= 3
    if name.startswith("__") and name.endswith("__"):
        weight *= 0.05
    elif name.startswith("_"):
        weight *= 0.1
    if definers > 5:
        weight *= 0.1
    if name in _GENERIC:
        weight *= 0.2
    return weight


def _label(doc: Document) -> str:
    return str(doc.metadata.get("relpath") or doc.source)


def repo_map(documents: list[Document], budget_tokens: int, count: Callable[[str], int]) -> str:
    """The map of ``documents`` within ``budget_tokens`` (by ``count``); ``""`` when nothing fits."""
    entries = ranked_definitions(documents)
    parents = {_label(d): {x.qualname: x for x in definitions(d)} for d in documents if d.kind == "code"}
    lo, hi, best = 0, len(entries), ""
    while lo < hi:  # largest prefix of the ranking whose rendering fits
        mid = (lo + hi + 1) // 2
        text = _render(entries[:mid], parents)
        if count(text) <= budget_tokens:
            lo, best = mid, text
        else:
            hi = mid - 1
    return best


def _render(entries: list[Entry], parents: dict[str, dict[str, Definition]]) -> str:
    by_file: dict[str, dict[str, Definition]] = {}
    for _, label, x in entries:  # files appear in the order of their best-ranked entry
        shown = by_file.setdefault(label, {})
        if x is None:
            continue
        shown[x.qualname] = x
        parts = x.qualname.split(".")
        for i in range(1, len(parts)):  # the containing class/impl lines give a member its context
            parent = parents.get(label, {}).get(".".join(parts[:i]))
            if parent is not None:
                shown.setdefault(parent.qualname, parent)
    lines: list[str] = []
    for label, shown in by_file.items():
        lines.append(f"{label}:" if shown else label)
        for x in sorted(shown.values(), key=lambda d: (d.char_start, d.depth)):
            lines.append(f"{x.line_start:4d}│ {'    ' * x.depth}{x.signature}")
    return "\n".join(lines)
