"""Chunking invariants (hypothesis), linearity on huge inputs, and chunking with the real llama tokenizer."""

from __future__ import annotations

import keyword
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlong.documents import chunk_document, load_file, load_text, sections
from agentlong.documents.chunking import split_spans
from agentlong.errors import InputError


def quarter(text: str) -> int:
    return len(text) // 4 + 1


def words(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> int:  # a BPE-ish counter: words and punctuation marks
    return len(re.findall(r"\w+|[^\w\s]", text))


COUNTERS = [quarter, words, pieces, len]

FRAGMENTS = [
    "The quick brown fox. ", "Mr. Smith arrived! ", "Is it? ", "\n", "\n\n", "\n\n\n", "  ", "\t",
    "CHAPTER I\n\n", "Chapter 12\n\n", "BOOK ONE\n\n", "# Heading\n", "## Sub\n", "Title\n=====\n",
    "```\n# not a heading\n```\n", "word", "é", "中文。", "—", "\r\n", "supercalifragilisticexpialidocious",
    "a" * 90, "1. item\n", "- bullet\n",
]
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), min_size=1, max_size=60).map(
    "".join
).filter(lambda t: t.strip() != "")


def check(doc, chunks, max_tokens, count) -> None:
    """Every invariant ``chunk_document`` promises."""
    text = doc.text
    assert "".join(c.text for c in chunks) == text
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    secs = sections(doc)
    for i, c in enumerate(chunks):
        assert c.index == i and c.doc_id == doc.id and c.source == doc.source
        assert c.text and text[c.char_start : c.char_end] == c.text
        if i:
            assert chunks[i - 1].char_end == c.char_start
        assert c.line_start == text.count("\n", 0, c.char_start) + 1
        assert c.line_end == text.count("\n", 0, c.char_end - 1) + 1
        assert c.tokens == count(c.text) <= max_tokens
        inside = [s for s in secs if s.char_start <= c.char_start < s.char_end]
        assert c.section == (max(inside, key=lambda s: (s.char_start, s.level)).title if inside else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, max_tokens=st.integers(1, 60), counter=st.sampled_from(COUNTERS),
       kind=st.sampled_from(["txt", "md", "rst"]))
def test_prose_chunks_cover_text_exactly_within_budget(text, max_tokens, counter, kind):
    doc = load_text(text, kind=kind)
    check(doc, chunk_document(doc, max_tokens, counter), max_tokens, counter)


NAMES = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n) and n != "m0")
PY_ITEM = st.one_of(
    st.tuples(st.just("def"), NAMES, st.integers(0, 12)),
    st.tuples(st.just("class"), st.from_regex(r"[A-Z][a-z]{0,6}", fullmatch=True), st.integers(0, 4)),
    st.tuples(st.just("stmt"), NAMES, st.integers(0, 3)),
)


def python_source(items) -> tuple[str, set[str]]:
    lines, names = ["import os", '"""Module docstring."""', ""], set()
    for kind, name, size in items:
        if kind == "def":
            body = [f"    x = x + {i}  # step" for i in range(size)]
            lines += ["# a comment", f"def {name}(x):", *body, "    return x", ""]
            names.add(name)
        elif kind == "class":
            lines += ["@decorator", f"class {name}:"]
            names.add(name)
            for m in range(size):
                lines += [f"    def m{m}(self):", f"        return {m}", ""]
                names.add(f"{name}.m{m}")
            lines += ["    pass", ""]
        else:
            lines += [f"{name} = {size}"] * (size + 1)
    return "\n".join(lines) + "\n", names


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(PY_ITEM, max_size=12), max_tokens=st.integers(4, 120), counter=st.sampled_from(COUNTERS))
def test_python_chunks_cover_source_and_name_symbols(items, max_tokens, counter):
    source, names = python_source(items)
    doc = load_text(source, source="mod.py", kind="code")
    chunks = chunk_document(doc, max_tokens, counter)
    check(doc, chunks, max_tokens, counter)
    text = doc.text
    for c in chunks:
        assert c.symbol is None or c.symbol in names
        p = c.char_start + len(c.text) - len(c.text.lstrip())
        line_start = text.rfind("\n", 0, p) + 1
        lines = text[line_start:].split("\n", 2)
        if text[line_start:p].strip() or p >= c.char_end:
            continue  # the chunk starts mid-line or is blank
        if lines[0].strip() in ("# a comment", "@decorator"):
            lines = lines[1:]
        m = re.match(r"( *)(?:def|class) (\w+)", lines[0])
        if m and not m.group(1):
            assert c.symbol == m.group(2)
        elif m:
            assert c.symbol is not None and c.symbol.endswith("." + m.group(2))


CODE_SNIPPETS = {
    "javascript": "function f(a) {\n  return a;\n}\n\nclass K {\n  m() { return 1; }\n}\n",
    "go": "package p\n\nfunc F() int {\n\treturn 1\n}\n\ntype T struct{}\n\nfunc (t *T) M() {}\n",
    "rust": "fn f() -> i32 {\n    1\n}\n\nimpl S {\n    fn m(&self) {}\n}\n",
    "java": "class A {\n    void m() {}\n\n    int n() { return 1; }\n}\n",
    "c": "int main(void) {\n    return 0;\n}\n\nstatic int g(int x) {\n    return x;\n}\n",
}


@settings(max_examples=60, deadline=None)
@given(language=st.sampled_from(sorted(CODE_SNIPPETS)), repeat=st.integers(1, 8), noise=TEXTS,
       max_tokens=st.integers(2, 80), counter=st.sampled_from(COUNTERS))
def test_tree_sitter_and_line_chunks_cover_source(language, repeat, noise, max_tokens, counter):
    source = (CODE_SNIPPETS[language] + "\n") * repeat + noise
    doc = load_text(source, source=f"x.{language}", kind=language)
    check(doc, chunk_document(doc, max_tokens, counter), max_tokens, counter)


def test_a_word_longer_than_the_budget_is_split_by_characters():
    doc = load_text("short " + "x" * 1000 + " end")
    chunks = chunk_document(doc, 10, len)
    assert "".join(c.text for c in chunks) == doc.text
    assert all(c.tokens <= 10 for c in chunks) and len(chunks) >= 100


def test_cuts_prefer_paragraphs_and_sections_to_words():
    paragraph = "This sentence has exactly seven words here. " * 3
    text = "\n\n".join([paragraph.strip()] * 6)
    doc = load_text(text)
    chunks = chunk_document(doc, 50, words)
    assert all(c.text.endswith("\n\n") for c in chunks[:-1])  # never mid-paragraph when paragraphs fit
    md = load_text("# One\n\n" + "alpha beta gamma. " * 20 + "\n\n# Two\n\n" + "delta epsilon. " * 5, kind="md")
    by_section = chunk_document(md, 70, words)  # 74 words in all: one cut, at the heading
    assert [c.section for c in by_section] == ["One", "Two"]
    assert by_section[1].text.startswith("# Two")


def test_budget_too_small_for_one_character_is_a_clear_error():
    with pytest.raises(InputError, match="too small"):
        chunk_document(load_text("abc"), 1, lambda t: 5 * len(t))
    with pytest.raises(InputError, match="at least 1"):
        split_spans("abc", 0, len)


def test_huge_single_line_is_chunked_in_linear_work(tmp_path):
    """~25 MB on one line, loaded from disk: count() sees about as many characters as the text has."""
    path = tmp_path / "huge.txt"
    with path.open("w") as fh:
        for _ in range(250):
            fh.write("lorem ipsum dolor sit amet consectetur " * 2600)  # ~100 KB, no newline
    doc = load_file(path)
    assert len(doc.text) > 25_000_000 and "\n" not in doc.text
    seen = {"chars": 0, "calls": 0}

    def counting(text: str) -> int:
        seen["chars"] += len(text)
        seen["calls"] += 1
        return len(text) // 4 + 1

    chunks = chunk_document(doc, 4000, counting)
    assert sum(len(c.text) for c in chunks) == len(doc.text)
    assert chunks[-1].char_end == len(doc.text) and all(c.line_start == 1 == c.line_end for c in chunks)
    assert all(c.tokens <= 4000 for c in chunks)
    assert seen["chars"] < 3 * len(doc.text), seen  # linear: not quadratic in the line length
    assert seen["calls"] < 4 * len(chunks)


def test_huge_line_without_spaces_is_hard_split_linearly():
    doc = load_text("x" * 3_000_000)
    seen = [0]

    def counting(text: str) -> int:
        seen[0] += len(text)
        return len(text)

    chunks = chunk_document(doc, 1000, counting)
    assert len(chunks) == 3000 and all(c.tokens == 1000 for c in chunks)
    assert seen[0] < 3 * len(doc.text)


@pytest.fixture(scope="module")
def llama_count(llama_backend):
    return llama_backend.count_tokens


def test_chunks_fit_the_real_llama_tokenizer(llama_count):
    text = "\n\n".join(
        f"CHAPTER {n}\n\n" + " ".join(f"Sentence {i} of chapter {n} mentions naïve café prices." for i in range(25))
        for n in ("I", "II", "III")
    )
    doc = load_text(text)
    chunks = chunk_document(doc, 120, llama_count)
    check(doc, chunks, 120, llama_count)
    assert {c.section for c in chunks} == {"CHAPTER I", "CHAPTER II", "CHAPTER III"}
    assert sum(c.tokens for c in chunks) / (120 * len(chunks)) > 0.6  # chunks are reasonably full
