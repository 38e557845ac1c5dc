"""Document structure: sections (chapters, headings, definitions), paragraphs and sentences.

Sections come from the loader when the format has them (HTML h1-h3, EPUB chapters, PDF outline,
stored in ``doc.metadata["sections"]``), else from the text: Markdown ``#`` and setext headings,
reStructuredText underlines, book headings ("CHAPTER I", "Chapter 12", "BOOK ONE", "PART II",
lone roman numerals, PRELUDE/EPILOGUE...), and definitions for code.

>>> from agentlong.documents import load_text
>>> doc = load_text("BOOK ONE\\n\\nCHAPTER I\\n\\nIt began.\\n\\nCHAPTER II\\n\\nIt went on.\\n")
>>> [(s.title, s.level, s.char_start) for s in sections(doc)]
[('BOOK ONE', 1, 0), ('CHAPTER I', 2, 10), ('CHAPTER II', 2, 32)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..types import Document

__all__ = ["Section", "sections", "paragraphs", "sentences"]


@dataclass(frozen=True)
class Section:
    """A heading and the span it governs: up to the next heading of the same or a higher level."""

    title: str
    level: int
    char_start: int
    char_end: int


def sections(doc: Document) -> list[Section]:
    """The document's sections in order, each with its span; ``[]`` when it has none."""
    stored = doc.metadata.get("sections")
    if stored:
        found = [(str(s["title"]), int(s["level"]), int(s["char_start"])) for s in stored]
        return _close(found, len(doc.text))
    if doc.kind == "code":
        from .code import definitions

        return [Section(d.qualname, d.depth + 1, d.char_start, d.char_end) for d in definitions(doc)]
    if doc.kind == "md":
        found = markdown_headings(doc.text)
    elif doc.kind == "rst":
        found = rst_headings(doc.text)
    else:
        found = book_headings(doc.text) or (markdown_headings(doc.text, atx_only=True) if doc.kind == "txt" else [])
    return _close(found, len(doc.text))


def _close(found: list[tuple[str, int, int]], n: int) -> list[Section]:
    """Give each heading an end: the start of the next heading at the same or a higher level."""
    if not found:
        return []
    top = min(level for _, level, _ in found)
    found = sorted(((t, level - top + 1, start) for t, level, start in found), key=lambda h: h[2])
    out: list[Section] = []
    for i, (title, level, start) in enumerate(found):
        end = next((s for _, lv, s in found[i + 1 :] if lv <= level), n)
        out.append(Section(title, level, start, end))
    return out


# -- Markdown / reStructuredText ---------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def _lines(text: str):
    """``(offset, line)`` for each line, without the newline."""
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


def markdown_headings(text: str, *, atx_only: bool = False) -> list[tuple[str, int, int]]:
    """``(title, level, offset)`` of ATX (``# Title``) and setext headings, skipping fenced code."""
    found: list[tuple[str, int, int]] = []
    fenced = False
    prev: tuple[int, str] | None = None
    for offset, line in _lines(text):
        if _FENCE.match(line):
            fenced, prev = not fenced, None
            continue
        if fenced:
            continue
        m = _ATX.match(line)
        if m:
            found.append((m.group(2).strip(), len(m.group(1)), offset))
        elif not atx_only and prev and prev[1].strip() and _SETEXT.match(line) and not _is_list_item(prev[1]):
            found.append((prev[1].strip(), 1 if line.strip()[0] == "=" else 2, prev[0]))
        prev = (offset, line)
    if atx_only and len(found) < 2:
        return []
    return found


def _is_list_item(line: str) -> bool:
    return bool(re.match(r"^\s*([-*+]|\d+[.)])\s", line)) or line.lstrip().startswith("#")


_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:._!$%&,/;<>?@\\|])\1{2,}[ \t]*$")


def rst_headings(text: str) -> list[tuple[str, int, int]]:
    """``(title, level, offset)`` of reStructuredText titles (underlined, optionally overlined)."""
    lines = list(_lines(text))
    styles: list[tuple[str, bool]] = []
    found: list[tuple[str, int, int]] = []
    for i in range(1, len(lines)):
        offset, title = lines[i - 1]
        under = lines[i][1]
        m = _RST_ADORN.match(under)
        if not m or not title.strip() or _RST_ADORN.match(title) or len(under.rstrip()) < len(title.rstrip()):
            continue
        over = i >= 2 and lines[i - 2][1].rstrip() == under.rstrip()
        style = (m.group(1), over)
        if style not in styles:
            styles.append(style)
        found.append((title.strip(), styles.index(style) + 1, lines[i - 2][0] if over else offset))
    return found


# -- books ---------------------------------------------------------------------------------------

_WORDS = ("ONE|TWO|THREE|FOUR|FIVE|SIX|SEVEN|EIGHT|NINE|TEN|ELEVEN|TWELVE|THIRTEEN|FOURTEEN|FIFTEEN|SIXTEEN|"
          "SEVENTEEN|EIGHTEEN|NINETEEN|TWENTY|THIRTY|FORTY|FIFTY|FIRST|SECOND|THIRD|FOURTH|FIFTH|SIXTH|SEVENTH|"
          "EIGHTH|NINTH|TENTH|LAST")
_NUMBER = (rf"(?:[IVXLCDM]+|\d+|(?:{_WORDS})(?:-(?:{_WORDS}))?|[A-Z][a-z]+(?:-[a-z]+)?|THE\s+[A-Z]+|"
           r"the\s+[A-Z]?[a-z]+)")
_BOOK = re.compile(rf"[ \t]*((?:BOOK|Book|PART|Part|VOLUME|Volume|ACT|Act)\s+{_NUMBER}\b.{{0,70}}?)\s*")
_CHAPTER = re.compile(rf"[ \t]*((?:CHAPTER|Chapter|SCENE|Scene|STAVE|Stave)\s+{_NUMBER}\b.{{0,70}}?)\s*")
_ROMAN = re.compile(
    r"[ \t]*((?=[IVXLCDM])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
    r"(?:\.|\.?[ \t]+[A-Z][A-Z0-9 ,;:'’\-!?.]{1,60})?)\s*")
_SPECIAL = re.compile(
    r"[ \t]*((?:(?:FIRST|SECOND|THIRD|FINAL)\s+)?(?:PROLOGUE|PRELUDE|PREFACE|FOREWORD|INTRODUCTION|EPILOGUE|"
    r"FINALE|CONCLUSION|AFTERWORD|APPENDIX|ETYMOLOGY|EXTRACTS)\b.{0,50}?)\s*")
_SPECIAL_TITLE = re.compile(
    r"[ \t]*((?:Prologue|Prelude|Preface|Foreword|Introduction|Epilogue|Finale|Conclusion|Afterword)\.?)\s*")
_PATTERNS = ((_BOOK, 1), (_CHAPTER, 2), (_ROMAN, 2), (_SPECIAL, 2), (_SPECIAL_TITLE, 2))
MAX_HEADING_CHARS = 100
TOC_GAP = 40  # headings with fewer characters of text between them may be a table of contents


def book_headings(text: str) -> list[tuple[str, int, int]]:
    """``(title, level, offset)`` of book parts (level 1) and chapters (level 2): short lines that match a
    heading pattern and stand alone, with a blank line (or the text's start/end) before and after."""
    lines = text.split("\n")
    found: list[tuple[str, int, int]] = []
    offset = 0
    for i, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        if len(line) > MAX_HEADING_CHARS or not line.strip():
            continue
        if i and lines[i - 1].strip():
            continue
        wrapped = i + 1 < len(lines) and bool(lines[i + 1].strip())
        if wrapped and not _wraps(lines, i):
            continue
        for pattern, level in _PATTERNS:
            m = pattern.fullmatch(line)
            if m and wrapped:
                found.append((f"{m.group(1).strip()} {lines[i + 1].strip()}", level, start))
            elif m:
                found.append((_with_subtitle(text, m.group(1).strip(), start + len(line)), level, start))
            if m:
                break
    return _drop_contents(text, found)


def _wraps(lines: list[str], i: int) -> bool:
    """An upper-case heading whose title runs onto one more short line, then a blank line."""
    nxt = lines[i + 1]
    return (lines[i].lstrip().startswith(("CHAPTER", "BOOK", "PART")) and len(nxt) <= 70
            and (i + 2 >= len(lines) or not lines[i + 2].strip())
            and not any(p.fullmatch(nxt) for p, _ in _PATTERNS))


def _with_subtitle(text: str, title: str, end: int) -> str:
    """``CHAPTER I.`` followed by a short title line and a blank line becomes ``CHAPTER I. The Title``."""
    if len(title.split()) > 2:
        return title
    m = re.match(r"\n(?:[ \t]*\n)?[ \t]*([^\n]{2,60}?)[ \t]*\n[ \t]*\n", text[end : end + 200])
    if not m:
        return title
    sub = m.group(1)
    return f"{title} {sub}" if _is_subtitle(sub) else title


def _is_subtitle(line: str) -> bool:
    """A short title, not a sentence, a quotation, a note or another heading."""
    sentence = line[-1] in ".!?" and re.search("[a-z]", line) and " " in line
    return not (sentence or line[-1] in ",;:" or line.startswith(("[", "(", "“", '"'))
                or any(p.fullmatch(line) for p, _ in _PATTERNS))


def _drop_contents(text: str, headings: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Remove a table of contents: a run of three or more headings with almost no text between them,
    at least one of which comes back later in the text as a real heading."""
    kept: list[tuple[str, int, int]] = []
    i = 0
    while i < len(headings):
        j = i
        while j + 1 < len(headings) and _gap(text, headings[j], headings[j + 1]) < TOC_GAP:
            j += 1
        run = headings[i : j + 1]
        restart = max((k for k in range(1, len(run)) if _key(run[k][0]) == _key(run[0][0])), default=0)
        if restart:  # the contents run straight into the text: its first entry comes back as a real heading
            run, j = run[:restart], i + restart - 1
        later = {_key(h[0]) for h in headings[j + 1 :]}
        if not (len(run) >= 3 and later & {_key(h[0]) for h in run}):
            kept.extend(run)
        i = j + 1
    return kept


def _key(title: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", title.upper()).split()[:2])


def _gap(text: str, a: tuple[str, int, int], b: tuple[str, int, int]) -> int:
    line_end = text.find("\n", a[2])
    return len(text[line_end if line_end >= 0 else a[2] : b[2]].strip())


# -- paragraphs and sentences ---------------------------------------------------------------------

_PARA_BREAK = re.compile(r"\n[ \t]*\n")
_SENT_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]*[A-Z0-9])|[。！？]")


def paragraphs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each paragraph (blank-line separated), without the surrounding whitespace.

    >>> paragraphs("one\\n\\n  two\\nlines\\n")
    [(0, 3), (7, 16)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _PARA_BREAK.finditer(text):
        _add_stripped(text, start, m.start(), spans)
        start = m.end()
    _add_stripped(text, start, len(text), spans)
    return spans


def sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence in ``text[start:end]``, without surrounding whitespace.

    >>> t = "It rained. Mr. Smith left! Did he?"
    >>> [t[a:b] for a, b in sentences(t)]
    ['It rained.', 'Mr. Smith left!', 'Did he?']
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SENT_END.finditer(text, start, end):
        if re.search(r"\b(?:Mr|Mrs|Ms|Dr|St|vs|Jr|Sr)\.$", text[max(start, m.end() - 5) : m.end()]):
            continue
        _add_stripped(text, pos, m.end(), spans)
        pos = m.end()
    _add_stripped(text, pos, end, spans)
    return spans


def _add_stripped(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    piece = text[a:b]
    stripped = piece.strip()
    if stripped:
        a += len(piece) - len(piece.lstrip())
        spans.append((a, a + len(stripped)))
