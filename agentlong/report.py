"""The citation report: one self-contained HTML page for an :class:`~agentlong.types.Answer`.

The page shows the answer with its citations linked to the passages they quote (in context, the
quoted span in a ``<mark>``), a strip per document showing where the evidence lies, the strategy and
why it was chosen, usage, provenance and the per-step trace. It makes no network requests (inline
CSS, no scripts, a Content-Security-Policy that forbids loading anything) and every piece of text
that came from a document or a model is HTML-escaped.

Context needs the documents' text: pass ``texts`` (doc id or source -> full text), or leave it
out and :func:`source_texts` re-reads the cited files (or takes the text the corpus registry kept). A span is shown in context
only when ``text[char_start:char_end] == quote``; otherwise the quote stands alone with a note.

>>> from agentlong.types import Answer, Citation, Evidence
>>> ev = Evidence(quote="The lens is in crate 42.", doc_id="d", source="notes.txt", char_start=4, char_end=28)
>>> ans = Answer(question="Where?", text="Crate 42 [1].", strategy="full", citations=[Citation(n=1, evidence=ev)],
...              evidence=[ev])
>>> page = render_html(ans, {"d": "Hi. The lens is in crate 42. Bye."})
>>> "<mark>The lens is in crate 42.</mark>" in page, 'href="#cite-1"' in page
(True, True)
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .types import Answer, Evidence, Usage

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["render_html", "source_texts", "evidence_items", "CONTEXT_CHARS"]

CONTEXT_CHARS = 320  # characters of surrounding text shown on each side of a quoted span
_CITE = re.compile(r"\[(\d+)\]")

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;background:#f6f7f9;margin:0}
main{max-width:980px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d8dde3}
.question{color:#4a5562;margin:0 0 16px}
.answer{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:14px 18px;white-space:pre-wrap}
.answer a{text-decoration:none;font-weight:600;color:#1f5fb4}
.note{color:#7a4b00;background:#fff6e0;border-radius:4px;padding:4px 8px;display:inline-block;margin:6px 0}
.doc{margin:10px 0}.doc .label{font-size:13px;color:#4a5562;overflow-wrap:anywhere}
.bar{position:relative;height:18px;background:#e3e7ec;border-radius:3px;margin-top:3px}
.bar a,.bar span{position:absolute;top:0;bottom:0;min-width:3px;background:#e0a800;border-radius:2px}
.bar span.other{background:#9aa5b1}
.cite{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:10px 16px;margin:12px 0}
.cite:target{border-color:#1f5fb4;box-shadow:0 0 0 2px #c9dbf3}
.cite h3{font-size:14px;margin:0 0 6px;overflow-wrap:anywhere}
.context{font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
 overflow-wrap:anywhere;background:#fafbfc;border-left:3px solid #d8dde3;padding:6px 10px;margin:0}
mark{background:#ffe58a;padding:1px 0}
.quote{font-style:italic;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;background:#fff;font-size:13px}td,th{border:1px solid #d8dde3;padding:4px 10px;
 text-align:left;vertical-align:top}th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#6b7682;font-size:13px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# -- evidence and texts --------------------------------------------------------------------------
def _key(ev: Evidence) -> tuple[str, int, int]:
    return ev.doc_id, ev.char_start, ev.char_end


def evidence_items(answer: Answer) -> list[Evidence]:
    """The answer's evidence plus any cited span not in it, once each, in the answer's order."""
    seen: dict[tuple[str, int, int], Evidence] = {}
    for ev in [*answer.evidence, *(c.evidence for c in answer.citations)]:
        seen.setdefault(_key(ev), ev)
    return list(seen.values())


def _text_for(ev: Evidence, texts: Mapping[str, str]) -> str | None:
    return texts.get(ev.doc_id, texts.get(ev.source))


def _matches(ev: Evidence, text: str | None) -> bool:
    return text is not None and text[ev.char_start:ev.char_end] == ev.quote


def source_texts(answer: Answer, settings: "Settings | None" = None) -> dict[str, str]:
    """Full texts of the documents the answer cites, keyed by doc id, for :func:`render_html`.

    Each cited file is re-read with the loaders; when it is gone or its spans no longer match, the
    text indexed in the corpus registry is used instead. Documents found nowhere are left out.
    """
    by_doc: dict[str, list[Evidence]] = {}
    for ev in evidence_items(answer):
        by_doc.setdefault(ev.doc_id, []).append(ev)
    texts: dict[str, str] = {}
    for doc_id, evs in by_doc.items():
        text = _file_text(evs[0].source, settings)
        if text is not None:
            texts[doc_id] = text
    stale = {d for d, evs in by_doc.items() if not all(_matches(ev, texts.get(d)) for ev in evs)}
    for doc_id, text in _registry_texts(stale, settings).items():
        if all(_matches(ev, text) for ev in by_doc[doc_id]) or doc_id not in texts:
            texts[doc_id] = text
    return texts


def _file_text(source: str, settings: "Settings | None") -> str | None:
    from .documents import load_path
    from .errors import AgentlongError

    path = Path(source).expanduser()
    if not path.is_file():
        return None
    try:
        docs = load_path(path, settings).documents
    except (AgentlongError, OSError, ValueError):
        return None
    return docs[0].text if docs else None


def _registry_texts(doc_ids: set[str], settings: "Settings | None") -> dict[str, str]:
    """Texts kept by the corpus registry for ``doc_ids`` (the registry is not created when absent)."""
    if not doc_ids:
        return {}
    from .errors import StoreError
    from .settings import Settings
    from .store.registry import Registry

    path = (settings or Settings()).home / "corpora.sqlite"
    if not path.is_file():
        return {}
    found: dict[str, str] = {}
    try:
        registry = Registry(path)
        for name in registry.names():
            for doc in registry.documents(name):
                if doc.id in doc_ids and doc.id not in found:
                    found[doc.id] = doc.text
            if len(found) == len(doc_ids):
                break
    except StoreError:
        return found
    return found


# -- page parts ------------------------------------------------------------------------------------
def _answer_html(answer: Answer) -> str:
    numbers = {c.n for c in answer.citations}

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f'<a href="#cite-{n}" title="citation {n}">[{n}]</a>' if n in numbers else m.group(0)

    body = _CITE.sub(link, _e(answer.text.strip()))  # escaping never makes brackets: safe to link after it
    notes = []
    if not answer.found:
        notes.append("The documents did not contain the answer.")
    elif answer.basis == "read":
        notes.append("No sentence was selected as the answer; it was written from the text read.")
    return f'<div class="answer">{body}</div>' + "".join(f'<div class="note">{_e(n)}</div>' for n in notes)


def _strip_html(answer: Answer, texts: Mapping[str, str]) -> str:
    """One bar per document; one mark per piece of evidence at its char offset over the document length."""
    cited = {_key(c.evidence): c.n for c in answer.citations}
    docs: dict[str, list[Evidence]] = {}
    for ev in evidence_items(answer):
        docs.setdefault(ev.doc_id, []).append(ev)
    rows = []
    for evs in docs.values():
        text = _text_for(evs[0], texts)
        length = len(text) if text else max(ev.char_end for ev in evs)
        scale = f"{length:,} characters" if text else f"length unknown: scaled to the last cited character ({length:,})"
        marks = [_strip_mark(ev, length, cited.get(_key(ev))) for ev in evs]
        rows.append(f'<div class="doc"><div class="label">{_e(evs[0].source)} <span class="muted">· {_e(scale)}'
                    f'</span></div><div class="bar">{"".join(marks)}</div></div>')
    return "".join(rows) or '<p class="muted">No evidence.</p>'


def _strip_mark(ev: Evidence, length: int, n: int | None) -> str:
    left = 100.0 * ev.char_start / max(length, 1)
    width = 100.0 * (ev.char_end - ev.char_start) / max(length, 1)
    style = f"left:{min(left, 99.7):.3f}%;width:{width:.3f}%"
    tip = _e(f"{ev.where()} · chars {ev.char_start:,}–{ev.char_end:,}")
    if n is None:
        return f'<span class="ev other" style="{style}" title="{tip} (read, not cited)"></span>'
    return f'<a class="ev" href="#cite-{n}" style="{style}" title="[{n}] {tip}"></a>'


def _context_html(ev: Evidence, text: str | None) -> str:
    if not _matches(ev, text):
        why = ("the source text is not available" if text is None
               else "the source no longer matches this span (it changed after the answer)")
        return f'<p class="quote">“{_e(ev.quote)}”</p><div class="note">{_e(why)}: the quote is shown alone</div>'
    assert text is not None
    start = _snap_left(text, max(0, ev.char_start - CONTEXT_CHARS))
    end = _snap_right(text, min(len(text), ev.char_end + CONTEXT_CHARS))
    before = ("…" if start > 0 else "") + text[start:ev.char_start]
    after = text[ev.char_end:end] + ("…" if end < len(text) else "")
    return f'<div class="context">{_e(before)}<mark>{_e(ev.quote)}</mark>{_e(after)}</div>'


def _snap_left(text: str, i: int) -> int:
    """Move a cut forward to the start of a word, so context does not open mid-word."""
    if i == 0:
        return 0
    j = min((k for k in (text.find(" ", i), text.find("\n", i)) if k >= 0), default=-1)
    return j + 1 if 0 <= j < i + 40 else i


def _snap_right(text: str, i: int) -> int:
    if i >= len(text):
        return len(text)
    j = max(text.rfind(" ", 0, i), text.rfind("\n", 0, i))
    return j if j > i - 40 else i


def _citations_html(answer: Answer, texts: Mapping[str, str]) -> str:
    parts = []
    for c in answer.citations:
        ev = c.evidence
        match = "" if ev.match == "exact" else f" · {ev.match} match {ev.score:.2f}"
        where = f"{ev.where()} · chars {ev.char_start:,}–{ev.char_end:,}{match}"
        parts.append(f'<section class="cite" id="cite-{c.n}"><h3>[{c.n}] {_e(where)}</h3>'
                     f"{_context_html(ev, _text_for(ev, texts))}</section>")
    cited = {_key(c.evidence) for c in answer.citations}
    others = [ev for ev in evidence_items(answer) if _key(ev) not in cited]
    if others:
        items = "".join(f'<li><span class="muted">{_e(ev.where())}</span> <span class="quote">“{_e(ev.quote)}”'
                        f"</span></li>" for ev in others)
        parts.append(f"<h2>Evidence read but not cited ({len(others)})</h2><ul>{items}</ul>")
    return "".join(parts) or '<p class="muted">No citations.</p>'


def _usage_row(label: str, u: Usage, detail: str = "", css: str = "") -> str:
    cost = f"${u.cost_usd:.4f}" if u.cost_usd is not None else "—"
    cells = [u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.total_tokens, u.calls]
    nums = "".join(f'<td class="num">{v:,}</td>' for v in cells)
    return (f'<tr class="{css}"><td>{_e(label)}</td>'
            f"<td>{_e(detail)}</td>{nums}<td class=\"num\">{u.seconds:.2f}</td>"
            f'<td class="num">{_e(cost)}</td></tr>')


def _usage_html(answer: Answer) -> str:
    head = ("<tr><th>step</th><th>detail</th><th>prompt</th><th>completion</th><th>cached</th><th>total tokens</th>"
            "<th>calls</th><th>seconds</th><th>cost</th></tr>")
    rows = "".join(_usage_row(t.step, t.usage, t.detail) for t in answer.trace)
    total = _usage_row("total", answer.usage, css="total")
    return f'<table class="trace">{head}{rows}{total}</table>'


def _record_html(answer: Answer) -> str:
    r = answer.record
    if r is None:
        return '<p class="muted">No run record.</p>'
    fields = [("backend", r.backend), ("model", r.model), ("started", r.started_at),
              ("wall time", f"{r.duration_s:.2f} s"), ("settings hash", r.settings_hash),
              ("prompts", ", ".join(r.prompts)), ("agentlong", r.agentlong_version)]
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in fields) + "</table>"


def render_html(answer: Answer, texts: Mapping[str, str] | None = None) -> str:
    """The whole report page as a string (UTF-8 safe: unpaired surrogates become ``?``).

    ``texts`` maps a doc id (or a source) to the document's full text. ``None`` reads them with
    :func:`source_texts` (default settings); ``{}`` reads nothing. Where no text is known or it does
    not match a span, the quote is shown without context, with a note saying why.
    """
    texts = source_texts(answer) if texts is None else texts
    title = f"agentlong · {answer.question.strip()[:80]}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>Citation report</h1>
<p class="question">{_e(answer.question.strip())}</p>
{_answer_html(answer)}
<h2>Where the evidence lies</h2>
<div class="strip">{_strip_html(answer, texts)}</div>
<h2>Citations ({len(answer.citations)})</h2>
{_citations_html(answer, texts)}
<h2>Strategy</h2>
<p><b>{_e(answer.strategy)}</b> — {_e(answer.strategy_reason or "no reason recorded")}</p>
<h2>Usage and trace</h2>
{_usage_html(answer)}
<h2>Provenance</h2>
{_record_html(answer)}
</main></body></html>
"""
    return page.encode("utf-8", "replace").decode("utf-8")
