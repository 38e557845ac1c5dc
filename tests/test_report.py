"""The citation report (`--html`, `Answer.to_html`): structure, escaping, no network, and a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agentlong import Agentlong
from agentlong.backends.fake import FakeBackend
from agentlong.cli import main as cli_main
from agentlong.cli import render
from agentlong.report import evidence_items, render_html, source_texts
from agentlong.types import Answer, Citation, Evidence

FACT = "The observatory's spare lens is stored in crate forty-two."
HOSTILE = "</mark><script>alert('owned')</script><img src=x onerror=alert(1)> & \"quotes\""


class Page(HTMLParser):
    """What the tests look at: <mark> texts, evidence-strip marks, tags and attributes seen."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.marks: list[str] = []
        self.strip_marks: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self._in_mark: list[str] | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.attrs.extend(attrs)
        attrs = dict(attrs)
        self.tags.append(tag)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "mark":
            self._in_mark = []
        if "ev" in (attrs.get("class") or "").split():
            self.strip_marks.append(attrs)

    def handle_endtag(self, tag):
        if tag == "mark" and self._in_mark is not None:
            self.marks.append("".join(self._in_mark))
            self._in_mark = None

    def handle_data(self, data):
        if self._in_mark is not None:
            self._in_mark.append(data)


def assert_offline(page: str, *, hostile_text: bool = False) -> None:
    """No reference that could load anything; ``hostile_text``: the documents themselves contain ``src=``."""
    lowered = page.lower()
    for needle in ("http://", "https://", "@import", "url(", *(() if hostile_text else ("src=",))):
        assert needle not in lowered, needle
    parsed = Page(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    assert not [a for a in parsed.attrs if a[0] == "src" or (a[0] == "href" and not (a[1] or "").startswith("#"))]
    assert "default-src 'none'" in page  # the Content-Security-Policy forbids loading anything


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("Inventory of the hill observatory.\n" + FACT + "\nThe dome was repainted in May.\n")
    return path


@pytest.fixture
def keyed_fake(monkeypatch) -> FakeBackend:
    fake = FakeBackend(mode="keyed", responses={
        "Answer the question using only the sentences above": {"answer": "It is in crate forty-two [1]."},
        "Write a summary of the text these sentences come from": "The spare lens is in crate forty-two.",
        "Numbered sentences from the user's files": {"answer": "crate forty-two"}})
    monkeypatch.setattr(render, "make_agentlong", lambda args: Agentlong(model="fake", backend=fake))
    return fake


def ask_with_report(source: Path, out: Path, capsys, *extra: str) -> tuple[str, str]:
    assert cli_main.main(["-q", "ask", str(source), "Where is the spare lens?", "--html", str(out), *extra]) == 0
    _, err = capsys.readouterr()
    return out.read_text(encoding="utf-8"), err


def cited_quotes_and_page(source: Path, out: Path, capsys) -> tuple[list[str], str]:
    """Ask with --json and --html: the quotes the answer cites, and the page written."""
    assert cli_main.main(["-q", "ask", str(source), "Where is the spare lens?", "--json", "--html", str(out)]) == 0
    answer = Answer.model_validate_json(capsys.readouterr().out)
    return [c.evidence.quote for c in answer.citations], out.read_text(encoding="utf-8")


# -- through the CLI -------------------------------------------------------------------------------
def test_ask_html_highlights_each_cited_quote_in_context(notes, keyed_fake, capsys, tmp_path):
    page, err = ask_with_report(notes, tmp_path / "report.html", capsys)
    assert err.strip().splitlines()[-1] == f"report: {tmp_path / 'report.html'}"
    parsed = Page(page)
    assert parsed.marks == [FACT]
    assert "cite-1" in parsed.ids and 'href="#cite-1"' in page  # the [1] in the answer links to its passage
    assert "Inventory of the hill observatory." in page and "The dome was repainted in May." in page  # context
    assert "strategy" in page.lower() and "the input fits the model" in page  # the strategy and its reason
    assert all(step in page for step in ("read", "answer")) and "select_units" in page  # trace and prompts
    assert_offline(page)


def test_the_strip_has_one_mark_per_evidence_at_its_offset(notes, keyed_fake, capsys, tmp_path):
    page, _ = ask_with_report(notes, tmp_path / "report.html", capsys)
    marks = Page(page).strip_marks
    text = notes.read_text()
    assert len(marks) == 1
    start = text.index(FACT)
    assert f"left:{100 * start / len(text):.3f}%" in marks[0]["style"]
    assert f"width:{100 * len(FACT) / len(text):.3f}%" in marks[0]["style"]
    assert marks[0]["href"] == "#cite-1"


def test_hostile_document_text_renders_as_text(tmp_path, keyed_fake, capsys):
    doc = tmp_path / "hostile.txt"
    doc.write_text(HOSTILE + "\n" + FACT + "\n" + HOSTILE + "\n")
    keyed_fake.responses["Answer the question using only the sentences above"] = {
        "answer": "Crate forty-two [1]. " + HOSTILE}  # model output is untrusted too
    quotes, page = cited_quotes_and_page(doc, tmp_path / "report.html", capsys)
    parsed = Page(page)
    assert quotes and parsed.marks == quotes  # the document's </mark> did not close the highlight
    assert any(HOSTILE in q for q in quotes)  # the hostile line is part of the cited unit (no full stop)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert page.count("&lt;/mark&gt;&lt;script&gt;") >= 3  # in the quote, the context after it and the answer
    assert_offline(page, hostile_text=True)


def test_summarize_html(notes, keyed_fake, capsys, tmp_path):
    out = tmp_path / "summary.html"
    assert cli_main.main(["-q", "summarize", str(notes), "--words", "30", "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    answer_marks = Page(page).marks
    assert answer_marks and all(m in notes.read_text() for m in answer_marks)
    assert_offline(page)


def test_an_unwritable_report_path_is_one_line_before_any_work(notes, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "--model", "fake", "ask", str(notes), "Where?",
                           "--html", str(tmp_path / "no-such-folder" / "r.html")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "AGENTLONG_SHOW_PROGRESS": "0"})
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentlong: error: cannot write the report") and "no such folder" in lines[0]
    proc = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "--model", "fake", "ask", str(notes), "Where?",
                           "--html", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "AGENTLONG_SHOW_PROGRESS": "0"})
    assert proc.returncode == 2 and "is a folder" in proc.stderr and proc.stderr.count("\n") == 1


# -- the SDK: texts, stale and missing sources --------------------------------------------------------
def sdk_answer(keyed_fake: FakeBackend, source: Path | str) -> Answer:
    return Agentlong(model="fake", backend=keyed_fake).ask(source, "Where is the spare lens?")


def test_to_html_reads_the_cited_file_itself(notes, keyed_fake):
    answer = sdk_answer(keyed_fake, notes)
    page = answer.to_html()
    assert Page(page).marks == [FACT]
    assert page == render_html(answer, {answer.citations[0].evidence.doc_id: notes.read_text()})


def test_a_changed_or_missing_source_shows_the_quote_alone_with_a_note(notes, keyed_fake):
    answer = sdk_answer(keyed_fake, notes)
    notes.write_text("Everything was moved.\n" + FACT + "\n")  # same sentence, other offsets
    changed = answer.to_html()
    assert Page(changed).marks == [] and "no longer matches" in changed and FACT.replace("'", "&#x27;") in changed
    notes.unlink()
    missing = answer.to_html()
    assert Page(missing).marks == [] and "not available" in missing
    assert "length unknown" in missing and len(Page(missing).strip_marks) == 1


def test_the_registry_text_stands_in_for_a_deleted_file(notes, keyed_fake):
    from agentlong.store.corpus import index_paths

    app = Agentlong(model="fake", backend=keyed_fake)
    index_paths(app, [str(notes)], name="observatory", emit=lambda e: None)
    answer = app.ask(notes, "Where is the spare lens?", strategy="full")
    notes.unlink()
    texts = source_texts(answer, app.settings)
    assert list(texts) == [answer.citations[0].evidence.doc_id]
    assert Page(render_html(answer, texts)).marks == [FACT]


def test_every_piece_of_evidence_gets_a_mark_and_uncited_ones_do_not_link():
    text = "Alpha is first. Beta is second. Gamma is third."
    spans = [("Alpha is first.", 0), ("Gamma is third.", 32), ("Beta is second.", 16)]
    evs = [Evidence(quote=q, doc_id="d", source="abc.txt", char_start=s, char_end=s + len(q)) for q, s in spans]
    answer = Answer(question="Order?", text="Alpha [1], gamma [2]. [7] is no citation.", strategy="rtr",
                    citations=[Citation(n=1, evidence=evs[0]), Citation(n=2, evidence=evs[1])], evidence=evs)
    page = render_html(answer, {"abc.txt": text})  # keyed by source works too
    parsed = Page(page)
    assert len(parsed.strip_marks) == len(evidence_items(answer)) == 3
    assert [m.get("href") for m in parsed.strip_marks] == ["#cite-1", "#cite-2", None]
    assert parsed.marks == ["Alpha is first.", "Gamma is third."]
    assert 'href="#cite-7"' not in page and "Beta is second." in page  # read, listed, not highlighted


# -- a real browser -------------------------------------------------------------------------------
def chromium_binary() -> str | None:
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


def chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_headless_chromium_renders_the_highlights(tmp_path, keyed_fake, capsys):
    binary = chromium_binary()
    assert binary is not None, "chromium not found on PATH: apt-get install chromium (.ci/run installs it)"
    doc = tmp_path / "hostile.txt"
    doc.write_text(HOSTILE + "\n" + FACT + "\n" + "The dome was repainted in May.\n")
    out = tmp_path / "report.html"
    quotes, _ = cited_quotes_and_page(doc, out, capsys)
    url = out.resolve().as_uri()
    dom = chromium(binary, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = Page(dom.stdout)
    assert quotes and parsed.marks == quotes  # as the browser parsed it
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert len(parsed.strip_marks) == 1
    shot = tmp_path / "report.png"
    proc = chromium(binary, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", "--hide-scrollbars", url)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000  # a blank 1200x2000 page is ~5 KB
