"""Code structure: definitions (Python ``ast``; tree-sitter for JS, TS, TSX, Go, Rust, Java) and cuts.

A definition spans whole lines, from its first decorator/attribute or the comment block right
above it, to its last line. Top-level definitions are the strongest cut points for the chunker,
members of classes/impls the next strongest; languages without a parser fall back to lines, with
unindented lines after a blank line as the strong cuts.

>>> from agentlong.documents import load_text
>>> doc = load_text("import os\\n\\n# helper\\ndef f():\\n    pass\\n\\nclass A:\\n    def m(self):\\n        pass\\n",
...                 source="m.py", kind="code")
>>> [(d.qualname, d.kind, d.line_start, d.line_end) for d in definitions(doc)]
[('f', 'function', 3, 5), ('A', 'class', 7, 9), ('A.m', 'method', 8, 9)]
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..types import Document
from .strength import MEMBER, SECTION

__all__ = ["Definition", "definitions", "code_marks", "symbol_finder", "TREE_SITTER"]

MAX_PARSE_CHARS = 5_000_000  # larger files are chunked by lines
MAX_DEPTH = 2  # top-level (0), members (1), nested members (2)

TREE_SITTER = {  # language -> (module, function returning the grammar)
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "python": ("tree_sitter_python", "language"),
}
_JS = {"function_declaration": "function", "generator_function_declaration": "function",
       "class_declaration": "class", "class": "class", "method_definition": "method",
       "lexical_declaration": "function", "variable_declaration": "function"}
_TS = {**_JS, "abstract_class_declaration": "class", "interface_declaration": "interface",
       "type_alias_declaration": "type", "enum_declaration": "enum", "internal_module": "namespace",
       "module": "namespace", "function_signature": "function", "abstract_method_signature": "method",
       "method_signature": "method"}
DEF_TYPES: dict[str, dict[str, str]] = {
    "javascript": _JS, "typescript": _TS, "tsx": _TS,
    "go": {"function_declaration": "function", "method_declaration": "method", "type_declaration": "type"},
    "rust": {"function_item": "function", "struct_item": "struct", "enum_item": "enum", "trait_item": "trait",
             "impl_item": "impl", "mod_item": "module", "union_item": "struct", "macro_definition": "macro",
             "function_signature_item": "function"},
    "java": {"class_declaration": "class", "interface_declaration": "interface", "enum_declaration": "enum",
             "record_declaration": "class", "annotation_type_declaration": "interface",
             "method_declaration": "method", "constructor_declaration": "method"},
    "python": {"function_definition": "function", "class_definition": "class"},
}
WRAPPERS = {"export_statement", "decorated_definition", "ambient_declaration", "expression_statement"}
BODIES = {"class_body", "declaration_list", "interface_body", "enum_body", "statement_block", "object_type", "block",
          "enum_body_declarations"}
COMMENT_PREFIXES = {"python": ("#", "@"), "rust": ("//", "/*", "*", "#[", "#!["), "go": ("//", "/*", "*")}
DEFAULT_PREFIXES = ("//", "/*", "*", "@")
_NON_BLANK = re.compile(r"\S")


@dataclass(frozen=True)
class Definition:
    """A class, function, method (or struct, impl, interface...) and its whole-line span."""

    name: str
    qualname: str
    kind: str
    depth: int
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    signature: str


def definitions(doc: Document) -> list[Definition]:
    """Definitions of a code document, sorted by start; ``[]`` for languages without a parser."""
    language = doc.metadata.get("language")
    if doc.kind != "code" or not language or len(doc.text) > MAX_PARSE_CHARS:
        return []
    return list(_definitions_cached(doc.text, language))


@lru_cache(maxsize=16)
def _definitions_cached(text: str, language: str) -> tuple[Definition, ...]:
    lines = _LineIndex(text, COMMENT_PREFIXES.get(language, DEFAULT_PREFIXES))
    raw: list[tuple[str, str, str, int, int, int]] | None = None
    if language == "python":
        raw = _python_raw(text)
    if raw is None and language in TREE_SITTER:
        raw = _tree_sitter_raw(text, language)
    if not raw:
        return ()
    defs = [lines.definition(*r) for r in raw]
    return tuple(sorted(defs, key=lambda d: (d.char_start, d.depth)))


# -- Python via ast ---------------------------------------------------------------------------------

def _python_raw(text: str) -> list[tuple[str, str, str, int, int, int]] | None:
    """``(name, qualname, kind, depth, first_line, last_line)`` per definition; None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    out: list[tuple[str, str, str, int, int, int]] = []

    def visit(body: list[ast.stmt], prefix: str, depth: int, in_class: bool) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            kind = "class" if isinstance(node, ast.ClassDef) else ("method" if in_class else "function")
            out.append((node.name, prefix + node.name, kind, depth, first, node.end_lineno or node.lineno))
            if isinstance(node, ast.ClassDef) and depth < MAX_DEPTH:
                visit(node.body, f"{prefix}{node.name}.", depth + 1, True)

    visit(tree.body, "", 0, False)
    return out


# -- tree-sitter ------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _parser(language: str) -> Any:
    import importlib

    from tree_sitter import Language, Parser

    module_name, fn = TREE_SITTER[language]
    module = importlib.import_module(module_name)
    return Parser(Language(getattr(module, fn)()))


def _tree_sitter_raw(text: str, language: str) -> list[tuple[str, str, str, int, int, int]] | None:
    try:
        parser = _parser(language)
    except ImportError:
        return None  # grammar wheel not installed: line-based chunks
    src = text.encode("utf-8", "surrogatepass")
    root = parser.parse(src).root_node
    out: list[tuple[str, str, str, int, int, int]] = []
    types = DEF_TYPES[language]

    def visit(node: Any, prefix: str, depth: int, span: Any = None) -> None:
        for child in node.named_children:
            outer = child
            while child.type in WRAPPERS and child.named_children:
                inner = [c for c in child.named_children if c.type in types or c.type in WRAPPERS]
                if not inner:
                    break
                child = inner[-1]
            if child.type not in types:
                continue
            name = _ts_name(child, language, src)
            if name is None:
                continue
            qual = _qualify(child, language, src, prefix, name)
            kind = types[child.type]
            kind = "method" if depth and kind == "function" else kind
            out.append((name, qual, kind, depth, outer.start_point[0] + 1, outer.end_point[0] + 1))
            body = child.child_by_field_name("body")
            body = body or next((c for c in child.named_children if c.type in BODIES), None)
            if body is not None and depth < MAX_DEPTH and kind not in ("function", "method"):
                visit(body, qual + ".", depth + 1)

    visit(root, "", 0)
    return out


def _text(node: Any, src: bytes) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _ts_name(node: Any, language: str, src: bytes) -> str | None:
    if node.type in ("lexical_declaration", "variable_declaration"):
        for decl in node.named_children:
            value = decl.child_by_field_name("value")
            if decl.type == "variable_declarator" and value is not None and value.type in (
                    "arrow_function", "function_expression", "function", "class", "generator_function"):
                name = decl.child_by_field_name("name")
                return _text(name, src) if name is not None else None
        return None
    if node.type == "type_declaration":  # go: type X struct {...}
        spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
        name = spec.child_by_field_name("name") if spec is not None else None
        return _text(name, src) if name is not None else None
    name = node.child_by_field_name("name")
    if name is None and node.type == "impl_item":
        name = node.child_by_field_name("type")
    return _text(name, src) if name is not None else None


def _qualify(node: Any, language: str, src: bytes, prefix: str, name: str) -> str:
    if language == "go" and node.type == "method_declaration":
        receiver = node.child_by_field_name("receiver")
        if receiver is not None:
            m = re.search(r"\*?\s*([A-Za-z_]\w*)(?:\[[^\]]*\])?\s*\)$", _text(receiver, src))
            if m:
                return f"{m.group(1)}.{name}"
    return prefix + name


# -- offsets, marks, symbols ---------------------------------------------------------------------------

class _LineIndex:
    """Line starts of a text, to turn 1-based line spans into whole-line character spans."""

    def __init__(self, text: str, comment_prefixes: tuple[str, ...]) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.prefixes = comment_prefixes

    def line(self, number: int) -> str:
        a = self.starts[number - 1]
        b = self.starts[number] if number < len(self.starts) else len(self.text)
        return self.text[a:b]

    def signature(self, name: str, first: int, last: int) -> str:
        """The first line of the definition that names it (skips decorators and annotations)."""
        pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
        candidates = [self.line(n).strip() for n in range(first, min(last, first + 10) + 1)]
        named = [line for line in candidates if pattern.search(line)]
        plain = [line for line in named if not line.startswith(("@", "#[", "//", "#", "/*", "*"))]
        return (plain or named or candidates)[0]

    def definition(self, name: str, qual: str, kind: str, depth: int, first: int, last: int) -> Definition:
        first = max(1, min(first, len(self.starts)))
        last = max(first, min(last, len(self.starts)))
        signature = self.signature(name, first, last)
        while first > 1 and self.line(first - 1).strip().startswith(self.prefixes):  # attached comments
            first -= 1
        end = self.starts[last] if last < len(self.starts) else len(self.text)
        return Definition(name, qual, kind, depth, self.starts[first - 1], end, first, last, signature[:200])


def code_marks(doc: Document, defs: list[Definition]) -> list[tuple[int, int]]:
    """``(offset, strength)`` cut points: definition starts and ends, or unindented lines after a blank."""
    if not defs:
        return [(m.end(), MEMBER) for m in re.finditer(r"\n[ \t]*\n(?=[^\s}\])])", doc.text)]
    marks: list[tuple[int, int]] = []
    for d in defs:
        strength = SECTION if d.depth == 0 else MEMBER
        marks.append((d.char_start, strength))
        marks.append((d.char_end, strength))
    return [(o, s) for o, s in marks if 0 < o < len(doc.text)]


def symbol_finder(text: str, defs: list[Definition]) -> Callable[[int, int], str | None]:
    """``symbol(start, end)``: innermost definition enclosing the chunk's first non-blank character, else the
    first definition starting inside the chunk. Expects calls in increasing ``start`` order (a sweep)."""
    ordered = sorted(defs, key=lambda d: (d.char_start, d.depth))
    starts = [d.char_start for d in ordered]
    open_defs: list[Definition] = []
    state = {"next": 0}

    def symbol(start: int, end: int) -> str | None:
        m = _NON_BLANK.search(text, start, end)
        p = m.start() if m else start
        if state["next"] and p < ordered[state["next"] - 1].char_start:  # out-of-order call: restart the sweep
            open_defs.clear()
            state["next"] = 0
        while state["next"] < len(ordered) and ordered[state["next"]].char_start <= p:
            d = ordered[state["next"]]
            while open_defs and open_defs[-1].char_end <= d.char_start:
                open_defs.pop()
            open_defs.append(d)
            state["next"] += 1
        while open_defs and open_defs[-1].char_end <= p:
            open_defs.pop()
        if open_defs:
            return open_defs[-1].qualname
        i = bisect.bisect_left(starts, start)
        return ordered[i].qualname if i < len(ordered) and ordered[i].char_start < end else None

    return symbol
