"""Pure text helpers of the writer: trim at boundaries, drop repeats, clean model output, BM25.

>>> trim_to("One two three. Four five six. Seven eight.", max_words=6)
'One two three. Four five six.'
>>> dedupe("The sky is very blue. The sky is very blue. Grass is green.")
('The sky is very blue. Grass is green.', 1)
>>> BM25(["cats purr softly", "dogs bark loudly", "cats and dogs"]).top("purring cats", 1)
[0]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache

from ..wordcount import count_words, trim_to

__all__ = ["heading", "trim_to", "dedupe", "RepeatWatch", "clean_section", "tidy", "tail", "passages", "join_draft", "complete_sentences", "BM25"]

_UNIT = re.compile(r"[\u4e00-\u9fff]|\b[a-zA-Z]+\b")
_SEGMENT = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+[\"”’')\]]*|(?=\n)|$)")
_SEGMENT_WS = re.compile(r"[^.!?。！？\n]*(?:[.!?。！？]+[\"”’')\]]*|\n|$)[ \t]*")  # sentences and line breaks, covering all the text
_SENT_END = re.compile(r"[.!?。！？][\"”’')\]]*(?=\s|$)")
_PREAMBLE = re.compile(r"^\s*(sure|certainly|of course|okay|here is|here's|below is)\b[^\n]*[:!.]\s*\n", re.IGNORECASE)
_HEAD = re.compile(r"^(#{1,6})\s+(.*)$", re.MULTILINE)
_FRAGMENT = re.compile(r"^\s*(?=\S)(?:[*#>\-+_\d.)\s]*|</?[a-z]+>|\"\"\"|```)\s*$")  # markup only: "**1.", "---", "<document>"
_LABEL = re.compile(r"^\s*(\*\*)?(section|part|chapter)\s+\d+[^\n]{0,80}\n", re.IGNORECASE)
_LABEL_LINE = re.compile(r"^\s*(\*\*)?(section|part|chapter|step)\s+\d+\b(?=\W*$|\s*[:.)\-–—])[^\n]{0,80}$", re.IGNORECASE)
# the model stepping out of the text to talk to the user: a sentence that holds one of these is dropped
_ASSISTANT = re.compile(
    r"\b(I apologi[sz]e|as an AI\b|I(?:'m| am) (?:sorry|unable|not able)[^.!?\n]{0,60}\b(?:can't|cannot|unable|able to|generate|write|provide|assist)"
    r"|I can(?:'t|not) (?:generate|provide|assist|fulfil|help with (?:that|this)|write (?:that|this|such|about that|a story|content))|if you have any (?:other|more|further) questions"
    r"|feel free to ask|let me know if you|I hope (?:this|that) (?:helps|story|article|essay|text)|happy to help)",
    re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def complete_sentences(text: str) -> str:
    """``text`` cut after its last sentence end (unchanged when it has none)."""
    ends = list(_SENT_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


def _dedupe_lines(text: str, seen: set[str]) -> tuple[str, int]:
    """Drop whole lines (headings, bold labels, list items, paragraphs) that repeat an earlier line."""
    keep: list[str] = []
    dropped = 0
    for line in text.split("\n"):
        key = _norm(line)
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        keep.append(line)
    return "\n".join(keep), dropped


def _keys(text: str) -> tuple[set[str], set[str]]:
    lines = {k for line in text.split("\n") if (k := _norm(line))}
    return lines, {_norm(m.group()) for m in _SEGMENT.finditer(text)}


NEAR = 0.8  # word-set overlap (Jaccard) at which a sentence of NEAR_WORDS+ words counts as a repeat
NEAR_WORDS = 6


def _near(words: frozenset[str], pool: list[frozenset[str]]) -> bool:
    n = len(words)
    return any(NEAR * len(w) <= n <= len(w) / NEAR and len(words & w) >= NEAR * len(words | w) for w in pool)


class _Seen:
    """The sentences written so far, and the repeat test that ``dedupe`` and ``RepeatWatch`` share:
    the same sentence again (by its words), or one of 6+ words sharing 80% of its words with an earlier one."""

    def __init__(self, text: str = "") -> None:
        self.lines, self.keys = _keys(text) if text else (set(), set())
        self.pool = [w for k in self.keys if len(w := frozenset(k.split())) >= NEAR_WORDS]

    def repeats(self, segment: str) -> bool:
        key = _norm(segment)
        words = frozenset(key.split())
        return key in self.keys or (len(words) >= NEAR_WORDS and _near(words, self.pool))

    def add(self, segment: str) -> None:
        key = _norm(segment)
        self.keys.add(key)
        if len(words := frozenset(key.split())) >= NEAR_WORDS:
            self.pool.append(words)


def dedupe(text: str, min_words: int = 4, seen_text: str = "") -> tuple[str, int]:
    """Drop repeated lines, then sentences (of ``min_words`` or more) seen earlier; returns (text, dropped).

    ``seen_text`` counts as already written: the prompt (an echo of it is dropped) and earlier sections.
    A sentence of 6+ words that shares 80% of its words with an earlier one is a repeat too (a small
    model loops by swapping one word):

    >>> dedupe("This is the final section: bring the whole text to a close.",
    ...        seen_text="This is the last section: bring the whole text to a close.")
    ('', 1)
    >>> dedupe("Roses need sun and water every day. Tulips need cold winters to bloom well.")[1]
    0
    """
    seen = _Seen(seen_text)
    text, dropped = _dedupe_lines(text, seen.lines)
    keep: list[str] = []
    last = 0
    for m in _SEGMENT.finditer(text):
        if count_words(m.group()) >= min_words and seen.repeats(m.group()):
            keep.append(text[last : m.start()])
            last, dropped = m.end(), dropped + 1
            if text[last : last + 1] == "\n" and (m.start() == 0 or text[m.start() - 1] == "\n"):
                last += 1  # a whole line went: drop its line break too
            continue
        seen.add(m.group())
    keep.append(text[last:])
    out = "".join(keep)
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return re.sub(r"(?<=\S) {2,}(?=\S)", " ", out).strip(), dropped


class RepeatWatch:
    """Says when text being generated has gone into a loop: ``streak`` sentences in a row that ``dedupe``
    would drop (seen in ``seen_text``, earlier in the text, or near-repeats). Used to stop sampling early.

    >>> watch = RepeatWatch("Plants need light every day.", streak=2)
    >>> watch("Roses are red flowers here. Plants need light every day. ")
    False
    >>> watch("Roses are red flowers here. Plants need light every day. Roses are red flowers here. And")
    True
    """

    def __init__(self, seen_text: str = "", streak: int = 4, min_words: int = 4) -> None:
        self.seen = _Seen(seen_text)
        self.streak, self.min_words = streak, min_words
        self.done = 0  # offset up to which complete sentences were checked
        self.run = 0  # repeated sentences in a row

    def __call__(self, text: str) -> bool:
        for m in _SEGMENT.finditer(text, self.done):
            if m.end() >= len(text) or not m.group().strip():
                break  # the last sentence may still be growing
            self.done = m.end()
            if count_words(m.group()) < self.min_words:
                continue
            if self.seen.repeats(m.group()):
                self.run += 1
                if self.run >= self.streak:
                    return True
                continue
            self.run = 0
            self.seen.add(m.group())
        return False


def clean_section(text: str, title: str, titles: tuple[str, ...] = ()) -> str:
    r"""Strip a chatty preamble, a leading heading/label, title-only lines and bare list markers, label lines
    ("Section 2: ...") and sentences where the model talks to the user; demote # and ## headings inside to ###.

    ``titles`` are other outline titles: a heading or bold line that only repeats one is dropped.

    >>> clean_section("The door creaked.\n\nSection 2: \"What is a ghost?\n\nI apologize, but I can't write that. "
    ...               "If you have any other questions, feel free to ask! Then the lights went out.", "The House")
    'The door creaked.\n\nThen the lights went out.'
    >>> clean_section("\"I'm sorry,\" she said. Part 2 of the plan failed.", "Plans")
    '"I\'m sorry," she said. Part 2 of the plan failed.'
    """
    out = _PREAMBLE.sub("", text.strip(), count=1).lstrip()
    for _ in range(2):
        m = _HEAD.match(out)
        if m and (_norm(m.group(2)) == _norm(title) or _norm(title) in _norm(m.group(2)) or len(m.group(1)) <= 2):
            out = out[m.end():].lstrip()
        out = _LABEL.sub("", out, count=1).lstrip() if _LABEL.match(out) else out
    names = {_norm(t) for t in (title, *titles, "introduction", "conclusion")}
    lines = [line for line in out.split("\n")
             if not _FRAGMENT.match(line) and not _title_line(line, names) and not _LABEL_LINE.match(line)]
    out = _HEAD.sub(lambda m: ("### " if len(m.group(1)) <= 2 else m.group(1) + " ") + m.group(2), "\n".join(lines))
    out = "".join(m.group() for m in _SEGMENT_WS.finditer(out) if not _ASSISTANT.search(m.group()))
    return re.sub(r"\n{3,}", "\n\n", out).strip()


_WRITER_PROMPTS = ("writer_system", "writer_plan", "writer_section", "writer_continue", "writer_revise")
_BOLD_LINE = re.compile(r"^\s*\*\*(.+?)\*\*:?\s*$")
_TITLE_NUMBER = re.compile(r"^\s*(?:(?:step|section|part|chapter)\s+)?[\d.]+\s*[:.)\-–—]?\s*", re.IGNORECASE)


def _stems(text: str) -> frozenset[str]:
    """Words of 3+ letters, lower case, without an -ing/-ed/-s ending ("Avoiding Mistakes" -> avoid, mistake)."""
    out = set()
    for w in re.findall(r"[^\W\d_]{3,}", text.casefold()):
        for suffix in ("ing", "ed", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        out.add(w)
    return frozenset(out)


@lru_cache(maxsize=1)
def _prompt_lines() -> tuple[frozenset[str], ...]:
    """The words of each line of the writer's own prompts (template text, variables left out)."""
    from ..prompts import builtin_prompts_dir

    lines = []
    for name in _WRITER_PROMPTS:
        path = builtin_prompts_dir() / f"{name}.j2"
        source = path.read_text(encoding="utf-8") if path.is_file() else ""
        for line in source.replace("{{ unit }}", "words").splitlines():
            if words := _stems(re.sub(r"\{\{.*?\}\}|\{%|%\}", " ", line)):
                lines.append(words)
    return tuple(lines)


def prompt_echo(heading: str, min_words: int = 1) -> bool:
    """A heading the model made of the writer's prompt ("Practical Steps and Details Involved", "New Facts
    and New Sentences", "Outline"): 75% of its words (of 3+ letters, at least ``min_words``) are on one line of a
    writer prompt.

    >>> [prompt_echo(h) for h in ("Practical Steps and Details Involved", "Avoiding Mistakes", "Outline",
    ...                           "522 Words of Flowing Prose in Five Sections", "The Harbor at Night", "Key Components")]
    [True, True, True, True, False, False]
    """
    words = _stems(heading)
    return len(words) >= max(1, min_words) and on_one_line(words, _prompt_lines())


def on_one_line(words: frozenset[str], lines: Iterable[frozenset[str]]) -> bool:
    """75% of ``words`` are on one of ``lines`` (word sets): the test of a title or heading read back from a prompt."""
    return bool(words) and any(len(words & line) >= 0.75 * len(words) for line in lines)


def tidy(text: str) -> str:
    r"""A finished section without debris headings: heading or bold-only lines with no letters ("#### 2.",
    left by a cut at "2."), that read a writer prompt back, or that end the section with nothing under them.

    >>> tidy("Intro text.\n\n### Practical Steps and Details Involved\n\nStep text.\n\n#### 2.\n\n### Key Ideas\n\nMore.\n\n### Next")
    'Intro text.\n\nStep text.\n\n### Key Ideas\n\nMore.'
    """
    lines = text.split("\n")
    keep = []
    for line in lines:
        m = _HEAD.match(line) or _BOLD_LINE.match(line)
        label = m.group(m.lastindex).strip() if m else ""
        if m and (not re.search(r"[^\W\d_]", label) or prompt_echo(_TITLE_NUMBER.sub("", label))):
            continue
        keep.append(line)
    while keep and (not keep[-1].strip() or _HEAD.match(keep[-1]) or _BOLD_LINE.match(keep[-1])):
        keep.pop()  # a heading with nothing under it
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()


def _title_line(line: str, names: set[str]) -> bool:
    bare = line.strip()
    structural = bare.startswith("#") or (bare.startswith("**") and bare.rstrip(":").endswith("**")) or len(bare.split()) <= 8
    return structural and _norm(re.sub(r"^[#*\s\d.)]+", "", bare)) in names


_LIST_LABEL = re.compile(r"^\s*(?:(?:step|section|part|chapter)\s+\w+\s*[:.)\-–—]|\d{1,2}(?:\.\d{1,2})*\s*[:.)\-–—])\s*", re.IGNORECASE)
_META_OPENER = re.compile(r"^\s*(?:in\s+)?this\s+(?:section|part|chapter)\s+(?:will\s+)?(?:discuss|explain|introduce|describe|cover|"
                          r"outline|explore|examine|present|look\s+at|focus\s+on)(?:e?s)?\s+(?:the\s+topic\s+of\s+)?", re.IGNORECASE)
_CUT_END = re.compile(r"\s+(?:a|an|the|and|or|of|for|to|in|on|at|with|by|that|which|as|from)$", re.IGNORECASE)


def heading(title: str) -> str:
    """A section's title as the text shows it: without a list number or "Section 3:" label, without a
    "This section discusses ..." opener, and, when it was cut long, without the dangling word at the cut.
    Only the heading changes: the model wrote the section against the title as planned.

    >>> heading("1. Identify the problem")
    'Identify the problem'
    >>> heading("This section discusses the amount of money that can be used in starting an")
    'The amount of money that can be used in starting'
    >>> heading("Section 2: Tools of the trade (continued)")
    'Tools of the trade (continued)'
    >>> [heading(t) for t in ("1984", "2001: A Space Odyssey", "What to Look For", "3.")]  # kept as they are
    ['1984', '2001: A Space Odyssey', 'What to Look For', '3.']
    """
    base, more = (title[: -len(" (continued)")], " (continued)") if title.endswith(" (continued)") else (title, "")
    new = _META_OPENER.sub("", _LIST_LABEL.sub("", base, count=1), count=1).strip().rstrip(",;:-–—").rstrip()
    while len(base) >= 60 and _CUT_END.search(new):  # a long one was cut (at 80 characters by point_title): "... starting an"
        new = _CUT_END.sub("", new).rstrip(",;:-–—").rstrip()
    if new == base or not re.search(r"[^\W\d_]{2}", new):
        return title
    return new[0].upper() + new[1:] + more  # "the amount of ..." after "This section discusses"


def join_draft(draft: str, more: str) -> str:
    """Append a continuation: the draft is cut to complete sentences first; a new paragraph follows."""
    base = complete_sentences(draft.rstrip()) if draft.strip() else ""
    more = more.strip()
    if not base:
        return more
    return f"{base}\n\n{more}" if more else base


def tail(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Longest suffix of ``text`` (from a word boundary) within ``budget`` tokens."""
    if budget <= 0 or not text:
        return ""
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # smallest start whose suffix fits
        mid = (lo + hi) // 2
        if count(text[mid:]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    space = text.find(" ", lo)
    return text[space + 1 :] if 0 <= space < lo + 40 else text[lo:]


def passages(text: str, min_words: int = 40) -> list[str]:
    """Paragraphs of ``text``, short ones merged with the next until ``min_words``."""
    out: list[str] = []
    buf = ""
    for para in re.split(r"\n\s*\n", text):
        buf = f"{buf}\n\n{para.strip()}" if buf else para.strip()
        if count_words(buf) >= min_words:
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return [p for p in out if p]


def _terms(text: str) -> list[str]:
    return [t[:-1] if len(t) > 4 and t.endswith("s") else t
            for t in re.findall(r"[\u4e00-\u9fff]|[a-z0-9]+", text.lower())]


class BM25:
    """Okapi BM25 over a handful of passages (earlier sections, source chunks): no index needed."""

    def __init__(self, docs: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(_terms(d)) for d in docs]
        self.lengths = [sum(c.values()) for c in self.docs]
        self.avg = (sum(self.lengths) / len(self.docs)) if self.docs else 0.0
        df: Counter[str] = Counter(t for c in self.docs for t in c)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        terms = set(_terms(query))
        out = []
        for c, length in zip(self.docs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg or 1))
            out.append(sum(self.idf.get(t, 0.0) * c[t] * (self.k1 + 1) / (c[t] + norm) for t in terms if t in c))
        return out

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the ``k`` best passages with a positive score, best first."""
        scores = self.scores(query)
        ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        return [i for i in ranked[:k] if scores[i] > 0]
