"""Format readers for HTML, PDF and EPUB (bs4, pypdf and ebooklib are imported lazily).

>>> h = html_to_text("<h1>Title</h1><p>Some <b>bold</b> text.</p><script>x()</script>")
>>> h.text, h.sections
('Title\\n\\nSome bold text.', [{'title': 'Title', 'level': 1, 'char_start': 0}])
"""

from __future__ import annotations

import logging
import re
import warnings as pywarnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import debug_traceback, InputError, missing_dependency

__all__ = ["HtmlText", "Loaded", "html_to_text", "load_pdf", "load_epub"]

BLOCKS = frozenset(
    "address article aside blockquote body caption center dd details dialog div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hgroup hr html li main nav ol p pre section summary table tbody td tfoot "
    "th thead tr ul".split()
)
DROP = frozenset("script style noscript template head svg iframe object canvas math button select".split())
HEADINGS = {"h1": 1, "h2": 2, "h3": 3}


@dataclass
class HtmlText:
    """Text of an HTML page with block structure kept as newlines, its title and h1-h3 headings."""

    text: str
    title: str | None
    sections: list[dict[str, Any]]


@dataclass
class Loaded:
    """What a binary-format reader returns to the loader."""

    text: str
    title: str | None
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def html_to_text(html: str | bytes) -> HtmlText:
    """Visible text of ``html``: blocks separated by blank lines, ``<br>`` as a newline, no script/style."""
    try:
        from bs4 import BeautifulSoup
    except ImportError as exc:  # pragma: no cover - installed with the local extra
        raise missing_dependency("beautifulsoup4", "local") from exc
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    blocks = _Blocks()
    _walk(soup, blocks)
    blocks.flush()
    text, sections = blocks.join()
    return HtmlText(text=text, title=title or None, sections=sections)


class _Blocks:
    """Collects inline text into blocks; a block ends at every block-level tag boundary."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, int]] = []  # (text, heading level or 0)
        self.current: list[str] = []
        self.level = 0
        self.pre = 0

    def add(self, text: str) -> None:
        self.current.append(text if self.pre else re.sub(r"\s+", " ", text))

    def newline(self) -> None:
        self.current.append("\x0b")

    def flush(self) -> None:
        raw = "".join(self.current)
        self.current = []
        if self.pre:
            text = raw.replace("\x0b", "\n").strip("\n")
        else:
            text = "\n".join(line.strip() for line in raw.split("\x0b")).strip()
            text = re.sub(r"\n{3,}", "\n\n", text)
        if text.strip():
            self.blocks.append((text, self.level))

    def join(self) -> tuple[str, list[dict[str, Any]]]:
        parts, sections, offset = [], [], 0
        for text, level in self.blocks:
            if level:
                sections.append({"title": " ".join(text.split())[:200], "level": level, "char_start": offset})
            parts.append(text)
            offset += len(text) + 2
        return "\n\n".join(parts), sections


def _walk(root: Any, out: _Blocks) -> None:
    """Iterative walk (deeply nested pages must not hit the recursion limit)."""
    from bs4 import NavigableString
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    skip = (Comment, Declaration, Doctype, ProcessingInstruction)
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, skip):
                out.add(str(node))
            continue
        name = (node.name or "").lower()
        if name in DROP:
            continue
        if leaving:
            _leave(name, out)
            continue
        if name == "br":
            out.newline()
            continue
        if name in BLOCKS:
            out.flush()
            out.level = HEADINGS.get(name, out.level)
            out.pre += name == "pre"
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))


def _leave(name: str, out: _Blocks) -> None:
    if name not in BLOCKS:
        return
    out.flush()
    if name in HEADINGS:
        out.level = 0
    if name == "pre":
        out.pre -= 1


# -- PDF -------------------------------------------------------------------------------------------


@contextmanager
def _captured_logs(name: str, sink: list[str]) -> Iterator[None]:
    """Route a library's log warnings into ``sink`` (the core never prints)."""
    logger = logging.getLogger(name)

    class _Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if len(sink) < 20:
                sink.append(f"{name}: {record.getMessage()}"[:300])

    handler, propagate = _Sink(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def load_pdf(path: Path) -> Loaded:
    """Text layer of a PDF, pages joined by blank lines; ``metadata["pages"]`` holds page start offsets."""
    try:
        from pypdf import PdfReader
    except ImportError as exc:  # pragma: no cover
        raise missing_dependency("pypdf", "local") from exc
    warnings: list[str] = []
    with _captured_logs("pypdf", warnings):
        try:
            reader = PdfReader(str(path))
            if reader.is_encrypted and not reader.decrypt(""):
                raise InputError(f"encrypted PDF: {path}", hint="remove the password first (e.g. qpdf --decrypt)")
            pages = [_page_text(page, i, warnings) for i, page in enumerate(reader.pages)]
        except InputError:
            raise
        except Exception as exc:  # pypdf raises many types on broken files
            raise InputError(f"not a readable PDF: {path} ({type(exc).__name__}: {_short(exc)})",
                             hint="check the file is a complete PDF (re-download or re-export it)") from exc
        if not any(p.strip() for p in pages):
            raise InputError(f"no text layer (scanned?): {path}",
                             hint="OCR it first (e.g. ocrmypdf) and load the result")
        starts, offset = [], 0
        for text in pages:
            starts.append(offset)
            offset += len(text) + 2
        meta: dict[str, Any] = {"pages": starts}
        outline = _outline(reader, starts)
        if outline:
            meta["sections"] = outline
        title = _pdf_title(reader)
    return Loaded(text="\n\n".join(pages), title=title, warnings=warnings, metadata=meta)


def _page_text(page: Any, index: int, warnings: list[str]) -> str:
    try:
        text = page.extract_text() or ""
    except Exception as exc:  # one bad page must not lose the others
        warnings.append(f"page {index + 1}: text extraction failed ({type(exc).__name__})")
        return ""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _outline(reader: Any, starts: list[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def visit(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # one broken outline entry: skip it (the traceback under AGENTLONG_DEBUG)
                debug_traceback()
                continue
            if page is not None and 0 <= page < len(starts) and level <= 3:
                out.append({"title": str(item.title)[:200], "level": level, "char_start": starts[page]})

    try:
        visit(list(reader.outline), 1)
    except Exception:  # a broken outline is not worth failing the load
        debug_traceback()
        return []
    return out


def _pdf_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # unreadable metadata: the file name is the title
        debug_traceback()
        return None
    return str(title).strip() or None if title else None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120]


# -- EPUB ------------------------------------------------------------------------------------------


def load_epub(path: Path) -> Loaded:
    """Chapters in spine order, each a level-1 section titled from the table of contents."""
    try:
        import ebooklib
        from ebooklib import epub
    except ImportError as exc:  # pragma: no cover
        raise missing_dependency("ebooklib", "local") from exc
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            book = epub.read_epub(str(path), options={"ignore_ncx": False})
        chapters = list(_chapters(book, ebooklib.ITEM_DOCUMENT))
    except Exception as exc:  # ebooklib raises zipfile, KeyError, lxml and its own errors
        raise InputError(f"broken EPUB: {path} ({type(exc).__name__}: {_short(exc)})",
                         hint="check it opens in an e-book reader, or convert it (e.g. with Calibre)") from exc
    if not chapters:
        raise InputError(f"empty: the EPUB {path} has no text", hint="give an EPUB with text chapters")
    parts, sections, offset = [], [], 0
    for title, html in chapters:
        sections.append({"title": title, "level": 1, "char_start": offset})
        inner = [s for s in html.sections if s["title"] != title]
        top = min((s["level"] for s in inner), default=1)
        sections.extend({**s, "level": min(3, 2 + s["level"] - top), "char_start": offset + s["char_start"]}
                        for s in inner)
        parts.append(html.text)
        offset += len(html.text) + 2
    meta = book.get_metadata("DC", "title")
    title = str(meta[0][0]).strip() if meta and meta[0] and meta[0][0] else None
    return Loaded(text="\n\n".join(parts), title=title, metadata={"sections": sections, "chapters": len(parts)})


def _chapters(book: Any, document_type: int) -> Iterator[tuple[str, HtmlText]]:
    from .encoding import decode

    titles = _toc_titles(book.toc)
    for idref, *_ in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != document_type or _is_nav(item):
            continue  # the EPUB3 navigation page is a table of contents, not text
        content = item.get_content()
        html = html_to_text(decode(content)[0] if isinstance(content, bytes) else content)
        if not html.text.strip():
            continue
        name = item.get_name()
        title = titles.get(name) or titles.get(Path(name).name)
        title = title or (html.sections[0]["title"] if html.sections else None) or html.title or Path(name).stem
        yield title, html


def _is_nav(item: Any) -> bool:
    from ebooklib import epub

    return isinstance(item, epub.EpubNav) or "nav" in (getattr(item, "properties", None) or [])


def _toc_titles(toc: Any) -> dict[str, str]:
    titles: dict[str, str] = {}
    stack = list(toc or [])
    while stack:
        entry = stack.pop(0)
        if isinstance(entry, (tuple, list)):
            stack[:0] = [entry[0], *entry[1]] if len(entry) == 2 and isinstance(entry[1], list) else list(entry)
            continue
        href, title = getattr(entry, "href", None), getattr(entry, "title", None)
        if href and title:
            key = href.split("#")[0]
            titles.setdefault(key, title)
            titles.setdefault(Path(key).name, title)
    return titles
