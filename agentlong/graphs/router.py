"""The strategy router behind ``Agentlong.ask`` / ``summarize`` and ``agentlong ask|summarize``.

``strategy="auto"`` (the default) starts with the cheapest strategy that can work and escalates
when a step finds nothing:

- the input fits the model's window → ``full`` (one selection call over every numbered unit);
- a count or list over the whole text ("how many times", "in how many towns", "list every place")
  → ``mapreduce``: every chunk is read, the occurrences are labelled and counted in code;
- a question about the whole text (summaries, themes, how something changes) → ``coa``;
- otherwise a fact question ("how many rooms did the inn have" included) → ``rtr``, retrieval with
  up to three hops.
- ``full`` or ``rtr`` finding nothing, or selecting nothing and answering only from the text
  read (``Answer.basis == "read"``), escalates to a full read in order (``coa``), which carries
  the names it selects forward to later parts; when that finds nothing either, the answer from the
  text read stands.

The user may force any strategy (then nothing escalates); the route, each escalation and its reason
are in ``Answer.strategy_reason`` and the trace. ``source`` is a file, a folder, a list of paths or
the name of an indexed corpus; paths asked with ``rtr`` are indexed on the fly (incrementally).

>>> choose("How many times does Ahab mention the whale?", fits=False)[0]
'mapreduce'
>>> choose("How many rooms did the inn have?", fits=False)[0]
'rtr'
>>> choose("What are the main themes of the book?", fits=False)[0]
'coa'
>>> choose("Who wrote the letter to Elizabeth?", fits=True)[0]
'full'
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..errors import InputError, ParseError
from ..events import Emit, Notice
from ..types import Answer, Document
from ..evidence.aggregate import is_aggregation
from . import full_context
from .common import RunContext

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["ask", "summarize", "choose", "resolve_source", "STRATEGIES", "auto_corpus_name"]

STRATEGIES = ("auto", "full", "rtr", "coa", "mapreduce")
SUMMARY_STRATEGIES = ("auto", "full", "coa", "mapreduce")
MAX_QUESTION_CHARS = 8000

_GLOBAL = re.compile(
    r"\bsummar|\bthemes?\b|\bmain (?:idea|point|argument|message|topic)s?\b|\boverall\b|\bthroughout\b|"
    r"\b(?:whole|entire) (?:book|text|document|story|novel|codebase|repo|paper)\b|\boverview\b|\bgist\b|"
    r"\b(?:evolve|develop|change|grow)s? (?:over|throughout|across|during)\b|\b(?:character|story) arc\b|"
    r"\bplot\b|\barchitecture\b|\bstructure of the\b|\bwhat is (?:this|the) (?:book|document|text|paper|code) about\b",
    re.IGNORECASE)


class Scope(BaseModel):
    scope: Literal["specific", "whole"]
    reason: str = ""


def choose(question: str, *, fits: bool, needed: int | None = None, window: int | None = None) -> tuple[str, str]:
    """(strategy, reason) by cheap rules: fit first, then whole-text keywords, else rtr."""
    size = f" ({needed:,} of {window:,} tokens)" if needed and window else ""
    if fits:
        return "full", f"the input fits the model's window{size}: one call reads it all"
    if is_aggregation(question):
        return "mapreduce", f"too long for one call{size}, and a count or list over the whole text: read every part"
    if m := _GLOBAL.search(question):
        return "coa", f"too long for one call{size} and {m.group(0)!r} needs the whole text read in order"
    return "rtr", f"too long for one call{size}; a question about specific facts: retrieve the passages"


def classify(ctx: RunContext, question: str) -> tuple[str, str] | None:
    """Optional tiny schema-constrained model call when the rules see no whole-text keyword."""
    try:
        out = ctx.llm.call_json("router_classify", Scope, max_tokens=64, question=question)
    except ParseError:
        return None
    if out.scope == "whole":
        return "coa", f"the model judged it needs the whole text ({out.reason.strip()[:80]})"
    return "rtr", f"the model judged it a question about specific facts ({out.reason.strip()[:80]})"


# -- sources -------------------------------------------------------------------------------------
@dataclass
class Resolved:
    """What ``source`` named: paths on disk, or an indexed corpus."""

    label: str
    paths: list[Path] = field(default_factory=list)
    corpus: str | None = None


def resolve_source(app: "Agentlong", source: str | Path | Sequence[str | Path]) -> Resolved:
    """Paths that exist, or the name of an indexed corpus; anything else is a clear InputError."""
    items = [source] if isinstance(source, (str, Path)) else list(source)
    if not items or any(not str(s).strip() for s in items):
        raise InputError("no source given", hint="give a file, a folder or the name of an indexed corpus")
    paths = [Path(str(s)).expanduser() for s in items]
    if all(p.exists() for p in paths):
        return Resolved(label=", ".join(str(p) for p in paths), paths=paths)
    if len(items) == 1 and isinstance(source, str):
        from ..store.corpus import corpus_exists

        if corpus_exists(app, source):
            return Resolved(label=f"corpus {source}", corpus=source)
    missing = next(str(s) for s, p in zip(items, paths) if not p.exists())
    raise InputError(f"no file, folder or corpus named {missing!r}", hint=_corpora_hint(app))


def _corpora_hint(app: "Agentlong") -> str:
    from ..store.corpus import list_corpora

    names = [getattr(c, "name", str(c)) for c in list_corpora(app)]
    if names:
        return f"corpora: {', '.join(sorted(names))} — or give an existing path (or: agentlong index PATH)"
    return "no corpora are indexed yet — give an existing path, or index one with: agentlong index PATH --name NAME"


def auto_corpus_name(paths: Sequence[Path]) -> str:
    """A corpus name for paths asked about directly: their stem plus a hash of the resolved paths."""
    resolved = sorted(str(p.resolve()) for p in paths)
    stem = re.sub(r"[^a-z0-9]+", "-", (paths[0].stem or paths[0].resolve().name).lower()).strip("-")[:40] or "docs"
    digest = hashlib.sha256("\n".join(resolved).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


def load_documents(app: "Agentlong", resolved: Resolved, emit: Emit) -> list[Document]:
    """Full texts of the source; skipped files are reported as notices, no text at all is an error."""
    if resolved.corpus is not None:
        from ..store.corpus import open_corpus

        docs = open_corpus(app, resolved.corpus).documents()
        if not docs:
            raise InputError(f"corpus {resolved.corpus!r} is empty",
                             hint=f"index files into it: agentlong index PATH --name {resolved.corpus}")
        return docs
    from ..documents import load_path

    docs: list[Document] = []
    skipped: list[Any] = []
    for path in resolved.paths:
        result = load_path(path, app.settings)
        docs.extend(result.documents)
        skipped.extend(result.skipped)
        for line in result.warnings():
            emit(Notice(level="warning", message=line))
    for skip in skipped:
        emit(Notice(level="warning", message=f"skipped {skip.path}: {skip.reason}"))
    if not docs:
        why = f" (first skip: {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise InputError(f"no readable text in {resolved.label}{why}",
                         hint="give text, Markdown, PDF, EPUB, HTML or code files")
    return docs


def open_for_rtr(app: "Agentlong", resolved: Resolved, emit: Emit) -> Any:
    """The corpus to retrieve from; paths are indexed first (incremental: cheap when unchanged)."""
    from ..store.corpus import index_paths, open_corpus

    name = resolved.corpus
    if name is None:
        name = auto_corpus_name(resolved.paths)
        emit(Notice(level="info", message=f"indexing {resolved.label} into corpus {name!r} (incremental)"))
        index_paths(app, [str(p) for p in resolved.paths], name=name, emit=emit)
    return open_corpus(app, name)


# -- entry points --------------------------------------------------------------------------------
def _check_question(question: str) -> str:
    q = (question or "").strip()
    if not q:
        raise InputError("empty question", hint="ask a question in words")
    if len(q) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(q):,} characters long",
                         hint=f"keep questions under {MAX_QUESTION_CHARS:,} characters; put long text in a file")
    return q


def _check_strategy(strategy: str, allowed: Sequence[str], what: str) -> str:
    s = (strategy or "auto").strip().lower().replace("-", "").replace("_", "")
    s = {"chainofagents": "coa", "fullcontext": "full", "retrievethenreason": "rtr"}.get(s, s)
    if s not in allowed:
        raise InputError(f"unknown strategy {strategy!r} for {what}", hint=f"use one of: {', '.join(allowed)}")
    return s


def ask(app: "Agentlong", source: Any, question: str, *, strategy: str = "auto", emit: Emit | None = None,
        k: int | None = None, classify_with_model: bool = False, checkpoint: bool | Path = True) -> Answer:
    """Answer ``question`` about ``source`` with citations; see the module docstring for strategies.

    >>> from agentlong import Agentlong
    >>> from agentlong.backends.fake import FakeBackend
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = f.write_text("The meeting moved to Friday at noon.")
    >>> fake = FakeBackend(mode="keyed", responses={"Answer the question": {"answer": "Friday at noon [1]."},
    ...                                             "meeting": {"answer": "Friday at noon"}})
    >>> ans = ask(Agentlong(backend=fake, model="fake"), f, "When is the meeting?")
    >>> ans.strategy, ans.text, ans.citations[0].evidence.line_start
    ('full', 'Friday at noon [1].', 1)
    """
    started, started_at = time.perf_counter(), _now()
    question = _check_question(question)
    chosen = _check_strategy(strategy, STRATEGIES, "ask")
    ctx = RunContext.from_app(app, emit)
    resolved = resolve_source(app, source)
    docs = load_documents(app, resolved, ctx.emit) if chosen != "rtr" else []
    reason = "chosen by the user"
    if chosen == "auto":
        fit = full_context.fits(ctx, docs, question)
        chosen, reason = choose(question, fits=fit.fits, needed=fit.needed, window=fit.window)
        if chosen == "rtr" and classify_with_model:
            chosen, reason = classify(ctx, question) or (chosen, reason)
    ctx.emit(Notice(level="info", message=f"strategy {chosen}: {reason}"))
    answer = _dispatch(app, ctx, chosen, resolved, docs, question, k=k, checkpoint=checkpoint)
    if strategy == "auto" and (not answer.found or answer.basis == "read") and chosen in ("full", "rtr"):
        chosen, reason, answer = _escalate(app, ctx, chosen, reason, resolved, docs, question, checkpoint, answer)
    return _finish(app, ctx, answer, chosen, reason, started, started_at)


def _escalate(app: "Agentlong", ctx: RunContext, chosen: str, reason: str, resolved: Resolved,
              docs: list[Document], question: str, checkpoint: bool | Path,
              first: Answer) -> tuple[str, str, Answer]:
    """``full`` or ``rtr`` selected nothing: read the whole text in order, in selection-sized parts.
    When that finds nothing either, ``first`` stands if it was answered from the text read."""
    what = "found nothing" if not first.found else "selected nothing"
    why = f"{reason}; {chosen} {what} → coa: read every part in order"
    ctx.emit(Notice(level="info", message=f"escalating: {chosen} {what}; reading the whole text in order"))
    docs = docs or load_documents(app, resolved, ctx.emit)
    from . import chain_of_agents

    answer = chain_of_agents.run(ctx, docs, question, task="qa", checkpoint=checkpoint)
    if not answer.found and first.found:
        why += f"; coa found nothing either → the {chosen} answer from the text read"
        return chosen, why, first.model_copy(update={"usage": answer.usage, "trace": first.trace + answer.trace})
    return "coa", why, answer


def summarize(app: "Agentlong", source: Any, *, words: int = 300, strategy: str = "auto", emit: Emit | None = None,
              checkpoint: bool | Path = True) -> Answer:
    """Summarize ``source`` in about ``words`` words: full context when it fits, else chain-of-agents."""
    started, started_at = time.perf_counter(), _now()
    if not 10 <= int(words) <= 20000:
        raise InputError(f"a summary of {words} words was asked", hint="ask for between 10 and 20000 words")
    chosen = _check_strategy(strategy, SUMMARY_STRATEGIES + ("rtr",), "summarize")
    if chosen == "rtr":
        raise InputError("strategy 'rtr' answers questions and cannot summarize",
                         hint="use --strategy auto, full, coa or mapreduce")
    ctx = RunContext.from_app(app, emit)
    resolved = resolve_source(app, source)
    docs = load_documents(app, resolved, ctx.emit)
    reason = "chosen by the user"
    if chosen == "auto":
        fit = full_context.fits(ctx, docs, task="summary", words=words)
        size = f" ({fit.needed:,} of {fit.window:,} tokens)"
        chosen, reason = ("full", f"the input fits the model's window{size}: one call") if fit.fits else \
            ("coa", f"too long for one call{size}: chain-of-agents reads it in order")
    ctx.emit(Notice(level="info", message=f"strategy {chosen}: {reason}"))
    if chosen == "full":
        answer = full_context.run(ctx, docs, task="summary", words=words, truncate_to_fit=True)
    else:
        answer = _whole_text(chosen).run(ctx, docs, f"Summarize in about {words} words.", task="summary",
                                         words=words, checkpoint=checkpoint)
    return _finish(app, ctx, answer, chosen, reason, started, started_at)


def _whole_text(strategy: str) -> Any:
    if strategy == "coa":
        from . import chain_of_agents

        return chain_of_agents
    from . import map_reduce

    return map_reduce


def _dispatch(app: "Agentlong", ctx: RunContext, chosen: str, resolved: Resolved, docs: list[Document],
              question: str, *, k: int | None, checkpoint: bool | Path) -> Answer:
    if chosen == "full":
        return full_context.run(ctx, docs, question, truncate_to_fit=True)
    if chosen == "rtr":
        from . import rtr

        corpus = open_for_rtr(app, resolved, ctx.emit)
        return rtr.run(ctx, corpus, question, k=k or rtr.DEFAULT_K, checkpoint=checkpoint)
    return _whole_text(chosen).run(ctx, docs, question, task="qa", checkpoint=checkpoint)


def _finish(app: "Agentlong", ctx: RunContext, answer: Answer, chosen: str, reason: str, started: float,
            started_at: str) -> Answer:
    from ..estimate import record_model_rate

    record_model_rate(app.settings, ctx.llm.backend.name, ctx.llm.usage, ctx.emit)
    return answer.model_copy(update={
        "strategy": chosen, "strategy_reason": reason, "usage": ctx.llm.usage,
        "record": app.record(ctx.llm, started, started_at)})


def _now() -> str:
    from ..api import now_iso

    return now_iso()
