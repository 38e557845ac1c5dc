"""Load one file or a string into a :class:`~agentlong.types.Document`.

Formats: .txt, .md, .rst, .html/.htm, .pdf (text layer), .epub (spine order), source code by
extension. Text is decoded from a BOM, else UTF-8, else charset-normalizer's guess; bytes that do
not decode are replaced and noted in ``Document.warnings``. Newlines become ``\\n``.

>>> doc = load_text("Hello world.")
>>> doc.kind, doc.id == doc.sha256[:16], doc.text
('txt', True, 'Hello world.')
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..settings import Settings
from ..types import Document
from .encoding import BOMS, decode

__all__ = ["load_file", "load_text", "decode", "looks_binary", "kind_of", "LANGUAGES", "BINARY_EXTENSIONS"]

PROSE = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".mdx": "md", ".rst": "rst",
         ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".epub": "epub"}
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".pyw": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx", ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp",
    ".cc": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".cs": "csharp", ".rb": "ruby",
    ".php": "php", ".swift": "swift", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala", ".sh": "bash",
    ".bash": "bash", ".zsh": "bash", ".fish": "fish", ".ps1": "powershell", ".lua": "lua", ".r": "r",
    ".pl": "perl", ".pm": "perl", ".sql": "sql", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".json": "json", ".ini": "ini", ".cfg": "ini", ".xml": "xml", ".css": "css", ".scss": "scss",
    ".vue": "vue", ".svelte": "svelte", ".dart": "dart", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang",
    ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure", ".zig": "zig", ".nim": "nim", ".jl": "julia",
    ".proto": "protobuf", ".graphql": "graphql", ".tf": "terraform", ".cmake": "cmake", ".mk": "make",
}
CODE_NAMES = {"Makefile": "make", "makefile": "make", "GNUmakefile": "make", "Dockerfile": "dockerfile",
              "CMakeLists.txt": "cmake", "Rakefile": "ruby", "Gemfile": "ruby", "Justfile": "make"}
BINARY_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .psd .mp3 .mp4 .m4a .wav .ogg .flac .avi .mov .mkv .webm "
    ".zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .whl .egg .jar .war .class .so .dll .dylib .exe .bin .o .a .lib "
    ".pyc .pyo .pyd .woff .woff2 .ttf .otf .eot .sqlite .sqlite3 .db .npy .npz .pkl .pickle .pt .pth .ckpt "
    ".onnx .gguf .safetensors .parquet .arrow .feather .h5 .hdf5 .iso .dmg .deb .rpm .msi .pdb .wasm".split()
)
OFFICE = {".doc", ".docx", ".odt", ".rtf", ".xls", ".xlsx", ".ods", ".ppt", ".pptx", ".odp", ".pages"}
HARD_LIMIT_MB = 512  # a single file loaded directly; folders use settings.chunking.max_file_mb
SNIFF_BYTES = 8192


def kind_of(path: str | Path) -> tuple[str, str | None]:
    """``(kind, language)`` from the file name; unknown names are plain text.

    >>> kind_of("a/b.tsx"), kind_of("notes.md"), kind_of("Makefile")
    (('code', 'tsx'), ('md', None), ('code', 'make'))
    """
    p = Path(path)
    if p.name in CODE_NAMES:
        return "code", CODE_NAMES[p.name]
    ext = p.suffix.lower()
    if ext in PROSE:
        return PROSE[ext], None
    if ext in LANGUAGES:
        return "code", LANGUAGES[ext]
    return "txt", None


def load_file(path: str | Path, settings: Settings | None = None) -> Document:
    """Load one file; raises :class:`InputError` with a one-line reason when it cannot.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.py"
    >>> _ = p.write_text("def f():\\n    return 1\\n")
    >>> d = load_file(p)
    >>> d.kind, d.metadata["language"], d.title
    ('code', 'python', 'a.py')
    """
    p = Path(path)
    size = _check_file(p)
    ext = p.suffix.lower()
    if ext in OFFICE:
        raise InputError(f"unsupported format {ext}: {p}", hint="export it to PDF, HTML or plain text first")
    kind, language = kind_of(p)
    if ext in BINARY_EXTENSIONS:
        raise InputError(f"binary file ({ext}): {p}", hint="give a text, Markdown, HTML, PDF, EPUB or source file")
    meta: dict[str, Any] = {"path": str(p.resolve()), "size_bytes": size, "mtime": _mtime(p)}
    if kind in ("pdf", "epub"):
        from . import formats

        loaded = formats.load_pdf(p) if kind == "pdf" else formats.load_epub(p)
        meta.update(loaded.metadata)
        return _document(loaded.text, str(p), kind, _path_id(p), loaded.title or p.name, loaded.warnings, meta)
    data = _read(p)
    text, encoding, warnings = decode(data)
    meta["encoding"] = encoding
    return _from_text(text, str(p), kind, language, _path_id(p), warnings, meta, default_title=p.name)


def load_text(text: str, source: str = "<text>", kind: str = "text") -> Document:
    """A Document from a string. ``kind``: text/txt, md, rst, html (converted), code, or a language name.

    >>> load_text("def f(): pass", source="x.py", kind="code").metadata["language"]
    'python'
    """
    if not isinstance(text, str):
        raise InputError(f"load_text needs a str, got {type(text).__name__}",
                         hint="decode bytes first or use load_file")
    kind = "txt" if kind == "text" else kind
    language = None
    if kind in set(LANGUAGES.values()) | set(CODE_NAMES.values()):
        kind, language = "code", kind
    elif kind == "code":
        language = kind_of(source)[1]
    elif kind not in {"txt", "md", "rst", "html", "pdf", "epub"}:
        raise InputError(f"unknown document kind {kind!r}", hint="use txt, md, rst, html, code or a language name")
    doc_id = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return _from_text(text, source, kind, language, doc_id, [], {}, default_title=None, normalize=False)


# -- helpers ------------------------------------------------------------------------------------


def _check_file(p: Path) -> int:
    if not os.path.lexists(p):
        raise InputError(f"no such file or folder: {p}", hint="check the path")
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"cannot open {p}: {exc.strerror or exc}", hint="fix the symlink or the path") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p} is a folder", hint="use load_path for folders")
    if not stat.S_ISREG(st.st_mode):  # a fifo or device would block or never end
        raise InputError(f"not a regular file: {p}", hint="give a file on disk")
    if st.st_size == 0:
        raise InputError(f"empty file: {p}", hint="give a file with text in it")
    if st.st_size > HARD_LIMIT_MB * 1024 * 1024:
        raise InputError(f"file too large: {p} is {st.st_size / 2**20:.0f} MB (limit {HARD_LIMIT_MB} MB)",
                         hint="split it into smaller files first")
    return st.st_size


def _read(p: Path) -> bytes:
    """The file's bytes; a binary file is refused after its first few KB, before reading the rest."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            if looks_binary(head):
                raise InputError(f"binary file (not text): {p}",
                                 hint="give a text, Markdown, HTML, PDF, EPUB or source file")
            return head + fh.read()
    except PermissionError as exc:
        raise InputError(f"permission denied: {p}",
                         hint="make the file readable (chmod +r) or run as its owner") from exc
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}", hint="check the file and the disk") from exc


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:  # pragma: no cover - raced with a delete
        return 0.0


def _path_id(p: Path) -> str:
    return hashlib.sha256(str(p.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def looks_binary(head: bytes) -> bool:
    """True for NUL bytes or many control characters in the first bytes (UTF-16/32 with a BOM is text).

    >>> looks_binary(b"plain text\\n"), looks_binary(b"\\x00\\x01\\x02abc")
    (False, True)
    """
    if not head or any(head.startswith(bom) for bom, _ in BOMS):
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27, 8))
    return control / len(head) > 0.10


def _from_text(
    text: str, source: str, kind: str, language: str | None, doc_id: str, warnings: list[str],
    meta: dict[str, Any], *, default_title: str | None, normalize: bool = True,
) -> Document:
    if normalize and "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    title = None
    if kind == "html":
        from .formats import html_to_text

        html = html_to_text(text)
        text, title = html.text, html.title
        meta = {**meta, "sections": html.sections}
    if not text.strip():
        raise InputError(f"empty: {source} has no text", hint="give a file or string with text in it")
    if language:
        meta = {**meta, "language": language}
    return _document(text, source, kind, doc_id, title or _title(text, kind) or default_title, warnings, meta)


def _title(text: str, kind: str) -> str | None:
    from .structure import markdown_headings, rst_headings

    head = text[:4000]
    if kind == "md":
        found = markdown_headings(head)
    elif kind == "rst":
        found = rst_headings(head)
    elif kind == "txt":
        for line in head.split("\n")[:80]:
            if line.startswith("Title:") and line[6:].strip():  # Project Gutenberg header
                return line[6:].strip()
        found = markdown_headings(head, atx_only=True)
    else:
        return None
    return found[0][0] if found else None


def _document(text: str, source: str, kind: str, doc_id: str, title: str | None, warnings: list[str],
              meta: dict[str, Any]) -> Document:
    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return Document(id=doc_id, source=source, text=text, sha256=sha, kind=kind, title=title,
                    warnings=list(warnings), metadata=meta)
