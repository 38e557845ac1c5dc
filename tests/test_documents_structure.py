"""Structure: book headings, contents tables, Markdown, paragraphs and sentences."""

from __future__ import annotations

from agentlong.documents import chunk_document, load_text, sections
from agentlong.documents.structure import paragraphs, sentences

BODY = "It was a long day, and the rain fell steadily on the old roofs of the town. " * 3


def titles(text: str, kind: str = "txt") -> list[tuple[str, int]]:
    return [(s.title, s.level) for s in sections(load_text(text, kind=kind))]


def test_book_heading_styles():
    text = (
        f"PRELUDE\n\n{BODY}\n\nBOOK ONE\n\n{BODY}\n\nCHAPTER I.\n\nThe Arrival\n\n{BODY}\n\n"
        f"Chapter 12\n\n{BODY}\n\nCHAPTER XIV. The Storm.\n\n{BODY}\n\nPART II\n\n{BODY}\n\nIV.\n\n{BODY}\n\n"
        f"Chapter the Last\n\n{BODY}\n"
    )
    assert titles(text) == [
        ("PRELUDE", 2), ("BOOK ONE", 1), ("CHAPTER I. The Arrival", 2), ("Chapter 12", 2),
        ("CHAPTER XIV. The Storm.", 2), ("PART II", 1), ("IV.", 2), ("Chapter the Last", 2),
    ]


def test_headings_inside_running_text_are_not_sections():
    text = f"{BODY}\nChapter 12 of the report says the opposite.\n{BODY}\n\nI\n\n{BODY}"
    assert titles(text) == [("I", 1)]


def test_table_of_contents_is_dropped_but_real_chapters_kept():
    contents = "CONTENTS\n\n" + "".join(f"    CHAPTER {r}\n\n" for r in ["I", "II", "III", "IV"])
    chapters = "".join(f"CHAPTER {r}\n\n{BODY}\n\n" for r in ["I", "II", "III", "IV"])
    doc = load_text(contents + "\n\n" + chapters)
    secs = sections(doc)
    assert [s.title for s in secs] == ["CHAPTER I", "CHAPTER II", "CHAPTER III", "CHAPTER IV"]
    assert secs[0].char_start == len(contents) + 2
    assert secs[-1].char_end == len(doc.text)


def test_contents_running_straight_into_the_text():
    contents = "".join(f"BOOK {b}\n\nCHAPTER I\n\nCHAPTER II\n\n" for b in ["ONE", "TWO"])
    book = "".join(f"BOOK {b}\n\nCHAPTER I\n\n{BODY}\n\nCHAPTER II\n\n{BODY}\n\n" for b in ["ONE", "TWO"])
    secs = sections(load_text(contents + book))
    assert [(s.title, s.level) for s in secs] == [("BOOK ONE", 1), ("CHAPTER I", 2), ("CHAPTER II", 2),
                                                   ("BOOK TWO", 1), ("CHAPTER I", 2), ("CHAPTER II", 2)]
    assert secs[0].char_start == len(contents)


def test_markdown_setext_fences_and_nesting_spans():
    text = "Title\n=====\n\nIntro\n\nPart\n----\n\n```\n# code\n```\n\n### Deep\n\nx\n\n# Next\n\ny\n"
    doc = load_text(text, kind="md")
    secs = sections(doc)
    assert [(s.title, s.level) for s in secs] == [("Title", 1), ("Part", 2), ("Deep", 3), ("Next", 1)]
    assert secs[0].char_end == secs[3].char_start == text.index("# Next")
    assert secs[1].char_end == secs[3].char_start  # a level-2 section ends at the next level-1 heading


def test_txt_with_markdown_headings_gets_sections():
    assert titles("# One\n\ntext\n\n# Two\n\nmore\n") == [("One", 1), ("Two", 1)]


def test_chunk_section_is_the_heading_the_chunk_starts_in():
    text = "".join(f"CHAPTER {r}\n\n{BODY}\n\n{BODY}\n\n" for r in ["I", "II", "III"])
    doc = load_text(text)
    chunks = chunk_document(doc, 60, lambda t: len(t.split()))
    for c in chunks:
        heading = [line for line in text[: c.char_start + 12].split("\n") if line.startswith("CHAPTER")][-1]
        assert c.section == heading


def test_paragraphs_and_sentences():
    text = "First para. Still first!\n\n  Second para? Yes.\n\n\nThird Mr. Smith said. Dr. Who came.\n"
    paras = paragraphs(text)
    assert [text[a:b] for a, b in paras] == ["First para. Still first!", "Second para? Yes.",
                                            "Third Mr. Smith said. Dr. Who came."]
    a, b = paras[2]
    assert [text[x:y] for x, y in sentences(text, a, b)] == ["Third Mr. Smith said.", "Dr. Who came."]
    cjk = "你好。再见！"
    assert [cjk[x:y] for x, y in sentences(cjk)] == ["你好。", "再见！"]
