"""Load a file or a whole folder. Nothing is dropped silently: every file not loaded is in ``skipped``.

The walk honours ``.gitignore`` files (the folder's own, nested ones, and those of the enclosing git
repository), does not enter vendored or generated folders (``.git``, ``node_modules``, ``.venv``,
``dist``...), skips generated files (``*.min.js``, lock files), binaries, and files over
``settings.chunking.max_file_mb`` (checked before reading), follows symlinks but not loops.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "a.md").write_text("# Hi\\n\\ntext\\n")
>>> _ = (root / "logo.png").write_bytes(b"\\x89PNG\\r\\n")
>>> result = load_path(root)
>>> [d.kind for d in result.documents], [s.reason.split(":")[0] for s in result.skipped]
(['md'], ['binary file (.png)'])
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..settings import Settings
from ..types import Document
from .loaders import BINARY_EXTENSIONS, load_file

__all__ = ["Skipped", "LoadResult", "load_path", "warning_line", "VENDORED_DIRS"]

VENDORED_DIRS = frozenset(
    ".git .hg .svn node_modules bower_components vendor third_party __pycache__ .venv venv .tox .nox dist build "
    ".mypy_cache .pytest_cache .ruff_cache .hypothesis .cache .idea .vscode .eggs site-packages .next .nuxt "
    "htmlcov coverage .gradle target .terraform .direnv".split()
)
GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".bundle.js", ".js.map", ".css.map", ".map", ".pb.go",
                      "_pb2.py", "_pb2_grpc.py", ".lock")
GENERATED_NAMES = frozenset("package-lock.json yarn.lock pnpm-lock.yaml poetry.lock Cargo.lock uv.lock Gemfile.lock "
                            "composer.lock go.sum Pipfile.lock npm-shrinkwrap.json .DS_Store".split())


@dataclass
class Skipped:
    """A file or folder that was not loaded, and why (one line that says what to do)."""

    path: str
    reason: str


@dataclass
class LoadResult:
    """Documents loaded from a path, plus everything skipped on the way."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """One line per document loaded with a guess or a repair (encoding, replaced bytes, pages)."""
        return [line for doc in self.documents if (line := warning_line(doc))]


def warning_line(doc: Document, most: int = 3) -> str | None:
    """The line a user sees for a document loaded with a guess or a repair; None when there was none."""
    if not doc.warnings:
        return None
    more = f" (+{len(doc.warnings) - most} more)" if len(doc.warnings) > most else ""
    return f"{doc.source}: {'; '.join(doc.warnings[:most])}{more}"


def load_path(path: str | Path, settings: Settings | None = None) -> LoadResult:
    """Load a file (errors raise :class:`InputError`) or a folder (problems land in ``skipped``).

    >>> load_path("/no/such/place")
    Traceback (most recent call last):
    ...
    agentlong.errors.InputError: no such file or folder: /no/such/place — check the path
    """
    root = Path(path)
    if not os.path.lexists(root):
        raise InputError(f"no such file or folder: {root}", hint="check the path")
    settings = settings or Settings()
    max_bytes = int(settings.chunking.max_file_mb * 1024 * 1024)
    if not root.is_dir():
        size = root.stat().st_size if root.is_file() else 0
        if size > max_bytes:
            raise InputError(f"{root} is {size / 1e6:,.0f} MB, over chunking.max_file_mb "
                             f"({settings.chunking.max_file_mb:g})",
                             hint="raise it (AGENTLONG_CHUNKING__MAX_FILE_MB) if you mean it, or give a part of the file")
        return LoadResult(documents=[load_file(root, settings)])
    result = LoadResult()
    entries = list(_walk(root, max_bytes))
    loaded: dict[str, str] = {}  # document id -> relative path, so a symlinked file is not loaded twice
    for rel, problem, is_link in sorted(entries, key=lambda e: e[2]):  # real files before links to them
        shown = str(root / rel)
        if problem:
            result.skipped.append(Skipped(shown, problem))
            continue
        try:
            doc = load_file(root / rel, settings)
        except InputError as exc:
            result.skipped.append(Skipped(shown, exc.one_line()))
            continue
        if doc.id in loaded:
            result.skipped.append(Skipped(shown, f"same file as {loaded[doc.id]} (a symlink), loaded once"))
            continue
        loaded[doc.id] = rel
        doc.metadata["relpath"] = rel
        result.documents.append(doc)
    result.documents.sort(key=lambda d: d.metadata["relpath"])
    result.skipped.sort(key=lambda s: s.path)
    return result


def _walk(root: Path, max_bytes: int) -> Iterator[tuple[str, str | None, bool]]:
    """``(relative posix path, reason to skip or None, is a symlink)`` for every entry, depth-first."""
    ignores = _Ignores(root)
    seen: set[tuple[int, int]] = set()
    stack: list[str] = [""]
    try:
        st = root.stat()
        seen.add((st.st_dev, st.st_ino))
    except OSError as exc:
        raise InputError(f"cannot open folder {root}: {exc.strerror or exc}", hint="check its permissions") from exc
    while stack:
        rel_dir = stack.pop()
        folder = root / rel_dir if rel_dir else root
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            yield rel_dir, "permission denied: folder not readable — fix its permissions (chmod +rx)", False
            continue
        except OSError as exc:
            yield rel_dir, f"cannot list folder ({exc.strerror or exc}) — check it", False
            continue
        ignores.enter(rel_dir, folder)
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            kind, problem = _classify(entry, rel, ignores, seen, max_bytes)
            if kind == "dir" and problem is None:
                subdirs.append(rel)
            else:
                yield rel, problem, entry.is_symlink()
        stack.extend(reversed(subdirs))


def _classify(entry: os.DirEntry, rel: str, ignores: "_Ignores", seen: set[tuple[int, int]],
              max_bytes: int) -> tuple[str, str | None]:
    """("dir"|"file", reason to skip or None)."""
    try:
        st = entry.stat(follow_symlinks=True)
    except FileNotFoundError:
        return "file", "broken symlink — fix or remove the link"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "file", "symlink loop — fix the link"
        return "file", f"cannot stat ({exc.strerror or exc}) — check the file"
    is_dir = entry.is_dir(follow_symlinks=True)
    name = entry.name
    if ignores.ignored(rel, is_dir):
        return ("dir" if is_dir else "file"), "ignored by .gitignore"
    if is_dir and (name in VENDORED_DIRS or name.endswith(".egg-info")
                   or os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))):
        return "dir", f"vendored or generated folder ({name}) — load it directly to include it"
    if name.startswith(".") and name not in (".github", ".gitlab"):  # .env files hold secrets
        return ("dir" if is_dir else "file"), "hidden file or folder — load it directly to include it"
    if is_dir:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return "dir", "symlink loop (folder already loaded) — fix the link"
        seen.add(key)
        return "dir", None
    if not entry.is_file(follow_symlinks=True):
        return "file", "not a regular file (socket, fifo or device)"
    lower = name.lower()
    if name in GENERATED_NAMES or lower.endswith(GENERATED_SUFFIXES):
        return "file", "generated file (minified, source map or lock file) — load it directly to include it"
    ext = os.path.splitext(lower)[1]
    if ext in BINARY_EXTENSIONS:
        return "file", f"binary file ({ext})"
    if st.st_size > max_bytes:
        return "file", (f"too large: {st.st_size / 2**20:.1f} MB > {max_bytes / 2**20:g} MB — raise "
                        "chunking.max_file_mb (AGENTLONG_CHUNKING__MAX_FILE_MB) or load it directly")
    return "file", None


class _Ignores:
    """``.gitignore`` rules in force: the enclosing repository's, then each folder's, deepest wins."""

    def __init__(self, root: Path) -> None:
        import pathspec

        self._pathspec = pathspec
        self.root = root
        self.specs: list[tuple[str, object]] = []  # (folder relative to root, or absolute for parents; spec)
        for parent in _parents_in_repo(root):
            self._add(parent / ".gitignore", str(parent))
        if self.specs and self._root_ignored():
            # the user named an ignored folder explicitly (e.g. a library inside ~/.pyenv): read it
            self.specs.clear()

    def _root_ignored(self) -> bool:
        resolved = self.root.resolve()
        for base, spec in reversed(self.specs):
            target = os.path.relpath(resolved, base).replace(os.sep, "/")
            result = spec.check_file(target + "/")  # type: ignore[attr-defined]
            if result.include is not None:
                return bool(result.include)
        return False

    def _add(self, file: Path, base: str) -> None:
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        self.specs.append((base, self._pathspec.GitIgnoreSpec.from_lines(lines)))

    def enter(self, rel_dir: str, folder: Path) -> None:
        if (folder / ".gitignore").is_file():
            self._add(folder / ".gitignore", rel_dir)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, spec in reversed(self.specs):
            if os.path.isabs(base):
                target = os.path.relpath(self.root.resolve() / rel, base).replace(os.sep, "/")
            elif base and not rel.startswith(base + "/"):
                continue
            else:
                target = rel[len(base) + 1 :] if base else rel
            result = spec.check_file(target + ("/" if is_dir else ""))  # type: ignore[attr-defined]
            if result.include is not None:
                return bool(result.include)
        return False


def _parents_in_repo(root: Path) -> list[Path]:
    """Folders from the enclosing git repository's root down to ``root``'s parent (empty outside a repo)."""
    resolved = root.resolve()
    chain: list[Path] = []
    for parent in resolved.parents:
        chain.append(parent)
        if (parent / ".git").exists():
            return list(reversed(chain))
    return []
