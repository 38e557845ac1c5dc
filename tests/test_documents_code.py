"""Code splitting: definitions and chunk symbols/lines for Python, JS, TS, TSX, Go, Rust, Java; repo map."""

from __future__ import annotations

import pytest

from agentlong.documents import chunk_document, load_path, load_text, repo_map
from agentlong.documents.code import definitions

SOURCES = {
    "mod.py": '''"""Module docstring."""
import os


# helper comment
def helper(x):
    return x + 1


@dataclass
class Store:
    def get(self, key):
        return key

    async def put(self, key, value):
        return None
''',
    "app.js": '''import x from "y";

// adds things
function add(a, b) {
  return a + b;
}

export class Greeter {
  greet() {
    return "hi";
  }
}

export const mul = (a, b) => a * b;
''',
    "shapes.ts": '''interface Shape {
  area(): number;
}

export abstract class Base implements Shape {
  abstract area(): number;
  describe(): string { return "shape"; }
}

namespace Util {
  export function noop() {}
}
''',
    "view.tsx": '''export function App(props: { name: string }) {
  return <div>Hello {props.name}</div>;
}

const Button = () => <button>ok</button>;
''',
    "server.go": '''package main

type Server struct {
\tName string
}

// Handle handles.
func (s *Server) Handle(x int) error {
\treturn nil
}

func main() {}
''',
    "point.rs": '''use std::fmt;

#[derive(Debug)]
pub struct Point {
    x: i32,
}

impl Point {
    pub fn new(x: i32) -> Self {
        Point { x }
    }
}

fn main() {}
''',
    "A.java": '''package demo;

public class A {
    public A() {}

    @Override
    public String toString() {
        return "A";
    }
}
''',
}

EXPECTED = {  # (qualname, kind, depth, first line, last line)
    "mod.py": [("helper", "function", 0, 5, 7), ("Store", "class", 0, 10, 16), ("Store.get", "method", 1, 12, 13),
               ("Store.put", "method", 1, 15, 16)],
    "app.js": [("add", "function", 0, 3, 6), ("Greeter", "class", 0, 8, 12), ("Greeter.greet", "method", 1, 9, 11),
               ("mul", "function", 0, 14, 14)],
    "shapes.ts": [("Shape", "interface", 0, 1, 3), ("Shape.area", "method", 1, 2, 2), ("Base", "class", 0, 5, 8),
                  ("Base.area", "method", 1, 6, 6), ("Base.describe", "method", 1, 7, 7),
                  ("Util", "namespace", 0, 10, 12), ("Util.noop", "method", 1, 11, 11)],
    "view.tsx": [("App", "function", 0, 1, 3), ("Button", "function", 0, 5, 5)],
    "server.go": [("Server", "type", 0, 3, 5), ("Server.Handle", "method", 0, 7, 10), ("main", "function", 0, 12, 12)],
    "point.rs": [("Point", "struct", 0, 3, 6), ("Point", "impl", 0, 8, 12), ("Point.new", "method", 1, 9, 11),
                 ("main", "function", 0, 14, 14)],
    "A.java": [("A", "class", 0, 3, 10), ("A.A", "method", 1, 4, 4), ("A.toString", "method", 1, 6, 9)],
}


@pytest.fixture()
def code_dir(tmp_path):
    for name, text in SOURCES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_definitions_per_language(code_dir, name):
    (doc,) = load_path(code_dir / name).documents
    got = [(d.qualname, d.kind, d.depth, d.line_start, d.line_end) for d in definitions(doc)]
    assert got == EXPECTED[name]
    text_lines = doc.text.split("\n")
    for d in definitions(doc):
        assert doc.text[d.char_start : d.char_end] == "\n".join(text_lines[d.line_start - 1 : d.line_end]) + "\n"
        assert d.name in d.signature


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_small_budget_chunks_start_at_definitions_and_name_them(code_dir, name):
    (doc,) = load_path(code_dir / name).documents
    chunks = chunk_document(doc, 24, lambda t: len(t) // 4 + 1)
    assert "".join(c.text for c in chunks) == doc.text
    assert all(c.tokens <= 24 for c in chunks)
    defs = {d.line_start: d.qualname for d in definitions(doc)}
    for c in chunks:
        assert c.source == doc.source and c.where() == f"{doc.source}:{c.line_start}-{c.line_end}"
        if c.line_start in defs and c.text.startswith(doc.text.split("\n")[c.line_start - 1]):
            assert c.symbol in {q for ln, q in defs.items() if ln == c.line_start} or c.symbol.startswith(
                defs[c.line_start] + ".")


def test_python_chunk_boundaries_follow_definitions():
    source = "\n\n".join(f"def f{i}(x):\n" + "".join(f"    x += {j}\n" for j in range(8)) + "    return x"
                         for i in range(6)) + "\n"
    doc = load_text(source, source="m.py", kind="code")
    chunks = chunk_document(doc, 60, lambda t: len(t) // 4 + 1)
    assert len(chunks) > 2
    for c in chunks:
        assert c.text.startswith("def f"), c.text[:20]  # every cut lands on a function start
        assert c.symbol == c.text[4:6]


def test_large_class_is_cut_between_methods():
    methods = "\n".join(f"    def m{i}(self):\n        return {i} * {i} + {i}\n" for i in range(30))
    doc = load_text(f"class Big:\n{methods}", source="big.py", kind="code")
    chunks = chunk_document(doc, 80, lambda t: len(t) // 4 + 1)
    assert len(chunks) > 3
    for c in chunks[1:]:
        assert c.text.lstrip().startswith("def m") and c.symbol.startswith("Big.m")


def test_syntax_error_python_falls_back_to_tree_sitter():
    source = "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nclass K:\n    pass\n"
    doc = load_text(source, source="x.py", kind="code")
    names = [d.qualname for d in definitions(doc)]
    assert "ok" in names and "K" in names


def test_unknown_language_uses_lines():
    text = "".join(f"proc p{i} {{\n  puts {i}\n}}\n\n" for i in range(40))
    doc = load_text(text, source="x.tcl", kind="code")
    assert definitions(doc) == []
    chunks = chunk_document(doc, 30, lambda t: len(t) // 4 + 1)
    assert "".join(c.text for c in chunks) == text and all(c.symbol is None for c in chunks)
    assert all(c.text.startswith("proc") for c in chunks)  # unindented lines after a blank line


def test_repo_map_ranks_referenced_symbols_and_fits_budget(tmp_path):
    (tmp_path / "core.py").write_text(
        "class Engine:\n    def run(self):\n        pass\n\ndef rarely():\n    pass\n\ndef _private():\n    pass\n")
    (tmp_path / "cli.py").write_text("from core import Engine\n\ndef main():\n    Engine().run()\n    Engine()\n")
    (tmp_path / "web.py").write_text("from core import Engine\nE = Engine()\n")
    (tmp_path / "README.md").write_text("# Readme\n")
    docs = load_path(tmp_path).documents
    count = lambda t: len(t.split())  # noqa: E731
    full = repo_map(docs, 1000, count)
    assert full.splitlines()[0] == "core.py:"
    assert "   1│ class Engine:" in full and "   2│     def run(self):" in full
    assert full.index("class Engine") < full.index("def rarely")
    assert full.splitlines()[-2:] == ["README.md", "web.py"]  # files without definitions come last
    small = repo_map(docs, 6, count)
    assert count(small) <= 6 and "class Engine" in small and "rarely" not in small
    assert repo_map(docs, 0, count) == ""
