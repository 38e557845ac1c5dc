"""Plan a batch job: which files the spec's inputs name, the units of work, and a writable output.

>>> from agentlong.batch.spec import parse_spec
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.txt").write_text("hello")
>>> spec = parse_spec({"inputs": ["*.txt"], "tasks": [{"type": "ask", "questions": ["Who?", "When?"]}]}, "job.yaml", d)
>>> [(u.document, u.task, u.question) for u in plan_units(spec, resolve_inputs(spec))]
[('a.txt', 'ask', 'Who?'), ('a.txt', 'ask', 'When?')]
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..events import Emit, EventBus, Notice
from .spec import AskTask, BatchSpec
from .tasks import Unit, build_app

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["resolve_inputs", "plan_units", "check_output"]

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache"}
BINARY_OK = {".pdf", ".epub"}


def resolve_inputs(spec: BatchSpec, app: "Agentlong | None" = None, emit: Emit | None = None) -> list[Path]:
    """Files named by ``inputs`` (files, folders, globs) and ``corpus``, deduplicated, in order."""
    emit = emit or EventBus()
    max_bytes = int((app.settings.chunking.max_file_mb if app else 20.0) * 1024 * 1024)
    found: list[Path] = []
    skipped: list[str] = []
    for entry in spec.inputs:
        target = spec.resolve(entry)
        if glob.has_magic(entry):
            matches = [Path(m) for m in sorted(glob.glob(str(target), recursive=True))]
        else:
            matches = [target] if target.exists() else []
        if not matches:
            emit(Notice(level="warning", message=f"input {entry!r} matched nothing"))
        for m in matches:
            found += _walk(m, skipped, max_bytes) if m.is_dir() else ([m] if m.is_file() else [])
    if spec.corpus:
        found += _corpus_files(spec, app)
    if skipped:
        emit(Notice(level="warning", message=f"skipped {len(skipped)} file(s): " + "; ".join(skipped[:3])
                    + (" …" if len(skipped) > 3 else "")))
    files = list(dict.fromkeys(p.resolve() for p in found))
    if not files:
        raise InputError(f"{spec.source}: no input files matched {spec.inputs or spec.corpus!r}",
                         hint="check `inputs:` (paths and globs are relative to the spec's folder)")
    return files


def _walk(folder: Path, skipped: list[str], max_bytes: int) -> list[Path]:
    out: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            reason = _skip_reason(path, max_bytes)
            if reason:
                skipped.append(f"{path.name} ({reason})")
            else:
                out.append(path)
    return out


def _skip_reason(path: Path, max_bytes: int) -> str | None:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return f"{size / 1e6:.0f} MB, over max_file_mb"
        if size == 0:
            return "empty"
        if path.suffix.lower() not in BINARY_OK:
            with path.open("rb") as f:
                if b"\0" in f.read(4096):
                    return "binary"
    except OSError as exc:
        return exc.strerror or "unreadable"
    return None


def _corpus_files(spec: BatchSpec, app: "Agentlong | None") -> list[Path]:
    from ..store.corpus import open_corpus

    corpus = open_corpus(app or build_app(spec), spec.corpus or "")
    return [Path(d.source) for d in corpus.documents()]


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def plan_units(spec: BatchSpec, files: list[Path]) -> list[Unit]:
    """One unit per (file, task[, question]), in file order then task order; ids are stable."""
    names = spec.task_names()
    units: list[Unit] = []
    for path in files:
        for ti, task in enumerate(spec.tasks):
            for q in (task.all_questions() if isinstance(task, AskTask) else [None]):
                uid = hashlib.sha256(json.dumps([str(path), names[ti], q]).encode()).hexdigest()[:20]
                units.append(Unit(id=uid, document=_display(path, spec.base_dir), path=str(path), task=names[ti],
                                  task_index=ti, question=q))
    return units


def check_output(output: Path) -> None:
    """Fail before any work when the results file cannot be written."""
    if output.is_dir():
        raise InputError(f"output {output} is a folder", hint="give a file path such as results.jsonl in `output:`")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        probe = output.with_name(f".{output.name}.probe-{os.getpid()}")
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"output folder {output.parent} is not writable ({exc.strerror or exc})",
                         hint="choose a writable `output:` path in the spec") from exc
    if output.exists() and not os.access(output, os.W_OK):
        raise InputError(f"output {output} is not writable", hint="fix its permissions or choose another `output:`")
