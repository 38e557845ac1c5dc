"""Loaders: every format, and every kind of bad input gets a clear InputError (never a crash, never lost text)."""

from __future__ import annotations

import builtins
import hashlib
import os
import zipfile

import pytest

from agentlong.documents import load_file, load_text, sections
from agentlong.documents.loaders import decode, kind_of, looks_binary
from agentlong.errors import InputError


def test_txt_has_stable_path_id_and_text_hash(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Line one.\r\nLine two.\r\n", encoding="utf-8")
    doc = load_file(path)
    assert doc.text == "Line one.\nLine two.\n"  # newlines normalised
    assert doc.kind == "txt" and doc.title == "notes.txt"
    assert doc.id == hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    assert doc.sha256 == hashlib.sha256(doc.text.encode()).hexdigest()
    assert load_file(path).id == doc.id  # stable per source
    assert doc.metadata["encoding"] == "utf-8" and doc.metadata["path"] == str(path.resolve())


def test_load_text_ids_hash_the_text_and_kinds_are_checked():
    a, b = load_text("same text"), load_text("same text", source="elsewhere")
    assert a.id == b.id == hashlib.sha256(b"same text").hexdigest()[:16]
    assert a.kind == "txt" and a.source == "<text>" and b.source == "elsewhere"
    assert load_text("fn main() {}", kind="rust").metadata["language"] == "rust"
    assert load_text("<p>Hi <b>there</b></p>", kind="html").text == "Hi there"
    with pytest.raises(InputError, match="unknown document kind"):
        load_text("x", kind="docx")
    with pytest.raises(InputError, match="empty"):
        load_text("  \n\t ")


def test_markdown_and_rst_titles_and_sections(tmp_path):
    md = tmp_path / "guide.md"
    md.write_text("# Guide\n\nIntro.\n\n## Install\n\n```sh\n# not a heading\n```\n\n## Use\n\nRun it.\n")
    doc = load_file(md)
    assert doc.kind == "md" and doc.title == "Guide"
    assert [(s.title, s.level) for s in sections(doc)] == [("Guide", 1), ("Install", 2), ("Use", 2)]
    rst = tmp_path / "api.rst"
    rst.write_text("=====\nAPI\n=====\n\nText.\n\nClasses\n-------\n\nMore.\n")
    doc = load_file(rst)
    assert doc.kind == "rst" and doc.title == "API"
    assert [(s.title, s.level, s.char_start) for s in sections(doc)] == [("API", 1, 0), ("Classes", 2, 24)]


def test_html_keeps_blocks_drops_script_and_records_headings(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Main</h1><p>First <i>para</i>\ngraph.</p><script>alert('x')</script>"
        "<ul><li>one</li><li>two</li></ul><h2>Next</h2><p>a<br>b</p><pre>  x = 1\n  y = 2</pre>"
        "<!-- a comment --></body></html>"
    )
    doc = load_file(page)
    assert doc.kind == "html" and doc.title == "T"
    assert doc.text == "Main\n\nFirst para graph.\n\none\n\ntwo\n\nNext\n\na\nb\n\n  x = 1\n  y = 2"
    assert "alert" not in doc.text and "color" not in doc.text and "comment" not in doc.text
    secs = sections(doc)
    assert [(s.title, s.level) for s in secs] == [("Main", 1), ("Next", 2)]
    assert doc.text[secs[1].char_start :].startswith("Next")


def test_deeply_nested_html_does_not_hit_the_recursion_limit():
    html = "<div>" * 3000 + "deep text" + "</div>" * 3000
    assert load_text(html, kind="html").text == "deep text"


def make_pdf(path, pages: list[str], outline: bool = False) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for i, text in enumerate(pages):
        pdf.add_page()
        if outline:
            pdf.start_section(f"Part {i + 1}")
        if text:
            pdf.multi_cell(0, 10, text)
    pdf.output(str(path))


def test_pdf_text_layer_pages_and_outline(tmp_path):
    path = tmp_path / "report.pdf"
    make_pdf(path, ["Alpha page text about otters.", "Beta page text about beavers."], outline=True)
    doc = load_file(path)
    assert doc.kind == "pdf"
    assert "otters" in doc.text and "beavers" in doc.text
    pages = doc.metadata["pages"]
    assert len(pages) == 2 and doc.text[pages[1] :].startswith("Beta")
    assert [(s.title, s.char_start) for s in sections(doc)] == [("Part 1", 0), ("Part 2", pages[1])]


def test_pdf_without_text_layer_says_ocr_it(tmp_path):
    path = tmp_path / "scan.pdf"
    make_pdf(path, ["", ""])
    with pytest.raises(InputError, match=r"no text layer \(scanned\?\).*OCR it first"):
        load_file(path)


def test_broken_pdf_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pdf"
    make_pdf(path, ["Some text."])
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable PDF"):
        load_file(path)


def make_epub(path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("Tiny Book")
    book.set_language("en")
    chapters = []
    for i, (title, body) in enumerate([("Arrival", "They came by sea."), ("Departure", "They left by land.")]):
        ch = epub.EpubHtml(title=title, file_name=f"ch{i}.xhtml", lang="en")
        ch.content = f"<html><body><h1>{title}</h1><p>{body}</p><h2>Notes</h2><p>Note {i}.</p></body></html>"
        book.add_item(ch)
        chapters.append(ch)
    book.toc = tuple(epub.Link(c.file_name, c.title, c.file_name) for c in chapters)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", chapters[1], chapters[0]]  # spine order, not file order
    epub.write_epub(str(path), book)


def test_epub_spine_order_and_chapter_titles(tmp_path):
    path = tmp_path / "tiny.epub"
    make_epub(path)
    doc = load_file(path)
    assert doc.kind == "epub" and doc.title == "Tiny Book"
    assert doc.text.index("They left by land.") < doc.text.index("They came by sea.")
    secs = sections(doc)
    assert [(s.title, s.level) for s in secs] == [("Departure", 1), ("Notes", 2), ("Arrival", 1), ("Notes", 2)]
    assert doc.text[secs[2].char_start :].startswith("Arrival")
    assert doc.metadata["chapters"] == 2


def test_broken_epub_is_a_clear_error(tmp_path):
    bad_zip = tmp_path / "bad.epub"
    bad_zip.write_bytes(b"PK\x03\x04 this is not really a zip file" * 20)
    with pytest.raises(InputError, match="broken EPUB"):
        load_file(bad_zip)
    no_container = tmp_path / "hollow.epub"
    with zipfile.ZipFile(no_container, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    with pytest.raises(InputError, match="broken EPUB"):
        load_file(no_container)


def test_empty_file_and_whitespace_only_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        load_file(empty)
    blank = tmp_path / "blank.md"
    blank.write_text("\n\n   \n")
    with pytest.raises(InputError, match="empty"):
        load_file(blank)


def test_binary_renamed_txt_is_refused(tmp_path):
    fake = tmp_path / "photo.txt"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    with pytest.raises(InputError, match="binary"):
        load_file(fake)
    controls = tmp_path / "controls.txt"
    controls.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 65]) * 100)
    with pytest.raises(InputError, match="binary"):
        load_file(controls)
    assert looks_binary(b"\x00abc") and not looks_binary("héllo\n".encode())


def test_mis_encoded_latin1_and_cp1252_are_decoded_with_a_warning(tmp_path):
    path = tmp_path / "french.txt"
    text = "Le café était très animé. Les élèves répétaient leçons et poèmes « à la française ».\n" * 5
    path.write_bytes(text.encode("cp1252"))
    doc = load_file(path)
    assert "café" in doc.text and "élèves" in doc.text
    assert any("not UTF-8" in w for w in doc.warnings)
    assert doc.metadata["encoding"] != "utf-8"


def test_invalid_bytes_are_replaced_never_a_crash():
    text, encoding, warnings = decode(b"\xef\xbb\xbfgood \xff\xfe bad")  # UTF-8 BOM, then garbage
    assert text.startswith("good") and "\ufffd" in text and encoding == "utf-8-sig"
    assert warnings and "replaced" in warnings[0]


def test_utf8_with_a_few_corrupt_bytes_stays_utf8():
    data = ("naïve café, déjà vu. " * 50).encode("utf-8") + b"\xff\xfe" + "fin é".encode("utf-8")
    text, encoding, warnings = decode(data)
    assert encoding == "utf-8" and text.startswith("naïve café") and text.endswith("fin é")
    assert "2 undecodable" in warnings[0]


def test_fifo_is_refused_not_read_forever(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_file(fifo)


def test_utf16_with_bom_is_text(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes("Wide text, ünïcode.\n".encode("utf-16"))
    doc = load_file(path)
    assert doc.text == "Wide text, ünïcode.\n" and doc.metadata["encoding"] == "utf-16"


def test_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("classified")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)  # tests run as root, which chmod 000 would not stop
    with pytest.raises(InputError, match="permission denied.*chmod"):
        load_file(path)


def test_missing_path_folder_and_unsupported_formats(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_file(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a folder"):
        load_file(tmp_path)
    office = tmp_path / "report.docx"
    office.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match="unsupported format .docx.*export"):
        load_file(office)


def test_source_files_by_extension(tmp_path):
    assert kind_of("a.py") == ("code", "python") and kind_of("b.go") == ("code", "go")
    assert kind_of("c.yaml") == ("code", "yaml") and kind_of("Dockerfile") == ("code", "dockerfile")
    assert kind_of("README") == ("txt", None) and kind_of("x.HTM") == ("html", None)
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    doc = load_file(script)
    assert doc.kind == "code" and doc.metadata["language"] == "bash"


def test_huge_file_direct_load_fails_fast_when_binary(tmp_path):
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # 200 MB of NUL bytes, sparse on disk
    with pytest.raises(InputError, match="binary"):  # refused after the first 8 KB, not after reading 200 MB
        load_file(sparse)
