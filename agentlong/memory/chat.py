"""The SDK chat: a persistent session with a memory controller, optionally about files or corpora.

>>> from agentlong import Agentlong
>>> chat = Agentlong(model="fake").chat("doc-demo")
>>> chat.send("Hello there").text.endswith("Hello there")
True
>>> [t.user for t in chat.history()]
['Hello there']
>>> Chat.delete_session(chat.app, "doc-demo")
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..errors import AgentlongError, BackendError, InputError, missing_dependency
from ..events import CitationFound, Emit, EventBus, Notice, StepDone, TextDelta
from ..llm import LLM
from ..types import Citation, Usage
from .archive import Archive
from .controller import FOLLOW_UP, OPTIONAL_STEP_ERRORS, SMALL_TALK, Budget, MemoryController, MemoryRef
from .stream import SessionDB, SessionInfo, Turn, sessions_path, valid_session_name
from .transcript import transcript_markdown

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["Chat", "ChatReply", "ChatStream", "MemoryStats", "STRATEGIES"]

STRATEGIES = ("auto", "full", "rtr", "coa", "mapreduce")
# With sources loaded, these questions are about the conversation, not the documents.
ABOUT_CHAT = re.compile(r"\b(you (said|told|mentioned|wrote|answered|suggested)|i (said|told you|mentioned|asked)|"
                        r"earlier|previous(ly)?|remember|we (discussed|talked)|my name|last answer)\b", re.IGNORECASE)


class ChatReply(BaseModel):
    """One answered turn."""

    text: str
    turn: int = Field(description="turn number in the session's stream")
    status: Literal["ok", "failed", "interrupted"] = "ok"
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    memory_used: list[MemoryRef] = Field(default_factory=list, description="flash and archived memories in the prompt")
    strategy: str = Field("chat", description="chat, chat+memory, or the QA strategy used on the sources")
    decision: str = Field("", description="why archived memory was or was not used")
    question: str = Field("", description="the question answered (a follow-up rewritten to stand alone)")
    budget: Budget | None = None


class MemoryStats(BaseModel):
    """What ``/memory`` shows."""

    session: str
    turns: int
    flash: list[int] = Field(description="turn numbers in flash memory now")
    archived: int = Field(description="usable turns and notes outside flash memory")
    summarized: int
    notes: int
    failed: int
    last_retrieved: list[MemoryRef] = Field(default_factory=list)
    archive_fallback: str | None = Field(None, description="why retrieval uses word overlap instead of embeddings")


class ChatStream:
    """Iterate for the answer's text deltas; ``reply`` is set once iteration ends."""

    def __init__(self, chat: "Chat", text: str) -> None:
        self.reply: ChatReply | None = None
        self._it = chat._turn(text, self)

    def __iter__(self) -> Iterator[str]:
        return self._it

    def close(self) -> None:
        """Stop the answer early; the turn is kept, marked interrupted."""
        self._it.close()


class Chat:
    """A chat session with Self-Controlled Memory; resumes ``session`` when it exists.

    ``sources`` (paths or corpus names) make questions go to ``app.ask`` with ``strategy``;
    questions about the conversation itself still use memory.
    """

    def __init__(self, app: "Agentlong", session: str | None = None, sources: Sequence[str | Path] = (), *,
                 on_event: Emit | None = None, embedder: Any = None, store: Any = None) -> None:
        self.app = app
        self.events = EventBus([on_event] if on_event else [])
        self.db = SessionDB(sessions_path(app.settings.home), recover=True)
        self.recovered_from = self.db.recovered_from
        if self.recovered_from:
            self.events(Notice(level="warning", message=f"the session database was corrupt: it was kept as "
                                                        f"{self.recovered_from} and a fresh one was started"))
        self.name = valid_session_name(session) if session else _new_name(self.db)
        self.resumed = self.db.ensure_session(self.name, model=app.settings.model)
        state = self.db.get_state(self.name)
        self.sources: list[str] = list(state.get("sources", []))
        self.strategy: str = state.get("strategy", "auto")
        self.archive = Archive(self.name, embedder=embedder, store=store, embedder_factory=self._embedder,
                               store_factory=lambda: app.store, emit=self.events)
        self.controller = MemoryController(self.db, self.name, self.archive, app.settings.memory)
        for source in sources:
            self.add_source(source)

    def _embedder(self) -> Any:
        try:
            from ..store import get_embedder
        except ImportError as exc:
            raise missing_dependency("sentence_transformers", "local") from exc
        return get_embedder(self.app.settings)

    # -- sessions --------------------------------------------------------------
    @classmethod
    def list_sessions(cls, app: "Agentlong") -> list[SessionInfo]:
        """All saved sessions, most recently used first."""
        db = SessionDB(sessions_path(app.settings.home))
        try:
            return db.sessions()
        finally:
            db.close()

    @classmethod
    def delete_session(cls, app: "Agentlong", name: str) -> None:
        """Delete a session and its memory (stream and embeddings)."""
        db = SessionDB(sessions_path(app.settings.home))
        try:
            db.delete_session(name)
        finally:
            db.close()
        Archive(name, store_factory=lambda: app.store).forget()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- settings of the session ---------------------------------------------
    def _save_state(self) -> None:
        self.db.set_state(self.name, {"sources": self.sources, "strategy": self.strategy}, model=self.app.settings.model)

    def add_source(self, source: str | Path) -> str:
        """Load a file/folder (checked now: missing, empty, binary → InputError) or a corpus name."""
        text = str(source).strip()
        if not text:
            raise InputError("no source given", hint="give a file, a folder or a corpus name")
        path = Path(text).expanduser()
        if path.exists():
            from ..documents import load_path

            result = load_path(path, self.app.settings)
            if not result.documents:
                why = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped[:3]) or "nothing readable"
                raise InputError(f"{text} holds no loadable documents ({why})", hint="give a text, Markdown, PDF, "
                                 "EPUB, HTML or source file, or a folder of them")
            value = str(path.resolve())
        elif "/" in text or "\\" in text or path.suffix:
            raise InputError(f"{text}: no such file or folder", hint="check the path (or use /corpus NAME for a corpus)")
        else:
            from ..store.corpus import corpus_exists

            if not corpus_exists(self.app, text):
                raise InputError(f"no file, folder or corpus named {text!r}",
                                 hint="give an existing path, or index it first: agentlong index PATH --name NAME")
            value = text
        if value not in self.sources:
            self.sources.append(value)
            self._save_state()
        return value

    def add_corpus(self, name: str) -> str:
        """Add an indexed corpus by name (InputError when no such corpus)."""
        from ..store.corpus import corpus_exists

        if not corpus_exists(self.app, name):
            raise InputError(f"no corpus named {name!r}", hint="index one first: agentlong index PATH --name NAME")
        if name not in self.sources:
            self.sources.append(name)
            self._save_state()
        return name

    def clear_sources(self) -> None:
        self.sources = []
        self._save_state()

    def set_strategy(self, name: str) -> None:
        if name not in STRATEGIES:
            raise InputError(f"unknown strategy {name!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
        self.strategy = name
        self._save_state()

    def set_model(self, model: str) -> None:
        """Switch the model; memory stays (it is text)."""
        app = type(self.app)(model=model, settings=self.app.settings)
        _ = app.backend  # load it now, so a bad model string fails here and the old model stays
        self.app = app
        self._save_state()

    # -- memory ----------------------------------------------------------------
    def history(self) -> list[Turn]:
        """Every entry of the stream, failed and interrupted ones included."""
        return self.db.turns(self.name)

    @property
    def usage(self) -> Usage:
        """Token usage of the whole session (all turns, across runs)."""
        total = Usage()
        for turn in self.db.turns(self.name):
            if turn.meta.get("usage"):
                total = total + Usage.model_validate(turn.meta["usage"])
        return total

    def remember(self, text: str, *, source: str = "") -> Turn:
        """Add a note (e.g. from a long run) to archived memory."""
        if not text.strip():
            raise InputError("empty note", hint="give the note's text")
        return self.db.add_turn(self.name, user=source, assistant=text.strip(), kind="note")

    def record(self, user: str, assistant: str, *, summarize: bool = False) -> Turn:
        """Add an exchange without calling the model (import a transcript)."""
        turn = self.db.add_turn(self.name, user=user, assistant=assistant)
        return self.controller.maybe_summarize(self.app.llm(self.events), turn) if summarize else turn

    def reset(self) -> int:
        """Forget the whole conversation (the session and its sources stay). Returns entries removed."""
        removed = self.db.clear(self.name)
        self.archive.forget()
        self.controller.last_retrieved = []
        return removed

    def memory_stats(self) -> MemoryStats:
        llm = self.app.llm()
        turns = self.db.turns(self.name)
        usable = [t for t in turns if t.usable]
        budget = self._budget_preview(llm)
        flash = [t.n for t, _ in self.controller.flash(llm, usable, budget)]
        return MemoryStats(session=self.name, turns=sum(t.kind == "turn" for t in turns), flash=flash,
                           archived=len(usable) - len(flash), summarized=sum(bool(t.summary) for t in usable),
                           notes=sum(t.kind == "note" for t in usable), failed=sum(not t.usable for t in turns),
                           last_retrieved=self.controller.last_retrieved, archive_fallback=self.archive.broken)

    def _budget_preview(self, llm: LLM) -> int:
        from .controller import make_budget

        return make_budget(llm, self.controller.cfg, question="", has_sources=bool(self.sources)).flash

    def transcript(self) -> str:
        """The conversation as Markdown."""
        return transcript_markdown(self.name, self.sources, self.history())

    def save_transcript(self, path: str | Path) -> Path:
        target = Path(path).expanduser()
        if target.is_dir():
            raise InputError(f"{target} is a folder", hint="give a file name, e.g. chat.md")
        try:
            target.write_text(self.transcript(), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror}", hint="check the folder exists and is writable") from exc
        return target

    # -- turns -----------------------------------------------------------------
    def send(self, text: str) -> ChatReply:
        """Answer ``text`` (blocking) and return the reply with its memory and citations."""
        stream = self.stream(text)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream(self, text: str) -> ChatStream:
        """Answer ``text`` as a stream of text deltas; ``.reply`` holds the ChatReply at the end."""
        return ChatStream(self, text)

    def _turn(self, text: str, sink: ChatStream) -> Iterator[str]:
        question = " ".join(text.split()) if "\n" not in text.strip() else text.strip()
        if not question:
            raise InputError("empty message", hint="type a question, or /help")
        llm = self.app.llm(self.events)
        started = time.perf_counter()
        parts: list[str] = []
        reply = ChatReply(text="", turn=0, question=question)
        if self._route(question) == "sources":
            source_call = self._ask(llm, question, reply)
        else:
            source_call = None
            plan = self.controller.plan(llm, question, evidence=self._recent_evidence() if self.sources else None)
            archived = [m for m in plan.memory if m.kind == "archive"]
            reply.memory_used, reply.budget, reply.decision = plan.memory, plan.budget, plan.decision.reason
            reply.strategy = "chat+memory" if archived else "chat"
            if archived:
                self.events(StepDone(step="memory", detail=_memory_line(archived)))
        try:
            deltas = source_call() if source_call else llm.stream(plan.messages, step="chat_answer",
                                                                   max_tokens=plan.budget.reserve)
            for delta in deltas:
                parts.append(delta)
                self.events(TextDelta(text=delta))
                yield delta
        except (GeneratorExit, KeyboardInterrupt):
            self._store(question, reply, "".join(parts), "interrupted", llm, started)
            raise
        except Exception as exc:
            self._store(question, reply, "".join(parts), "failed", llm, started, error=exc)
            if isinstance(exc, OSError):  # the connection under a backend; anything else is ours to fix
                raise BackendError(f"the model failed mid-answer ({type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:200]})",
                                   hint="the turn is kept, marked failed; send the message again") from exc
            raise
        turn = self._store(question, reply, "".join(parts), "ok", llm, started)
        try:
            self.controller.maybe_summarize(llm, turn)
        finally:
            reply.usage = reply.usage + llm.usage if source_call else llm.usage
            self.db.set_meta(turn.id, {**turn.meta, "usage": reply.usage.model_dump()})
        sink.reply = reply

    def _store(self, question: str, reply: ChatReply, text: str, status: str, llm: LLM, started: float,
               error: BaseException | None = None) -> Turn:
        reply.text, reply.status = text, status  # type: ignore[assignment]
        if not reply.usage.calls:
            reply.usage = llm.usage
        meta: dict[str, Any] = {
            "strategy": reply.strategy, "usage": reply.usage.model_dump(), "seconds": round(time.perf_counter() - started, 3),
            "memory": [m.model_dump() for m in reply.memory_used], "model": self.app.settings.model,
            "citations": [{"n": c.n, "where": c.evidence.where(), "quote": c.evidence.quote} for c in reply.citations],
        }
        if reply.question != question:
            meta["question"] = reply.question  # the standalone rewrite that was answered
        if error is not None:
            meta["error"] = error.one_line() if isinstance(error, AgentlongError) else f"{type(error).__name__}: {error}"
        turn = self.db.add_turn(self.name, user=question, assistant=text, status=status, meta=meta)  # type: ignore[arg-type]
        reply.turn = turn.n
        return turn

    # -- sources -----------------------------------------------------------------
    def _route(self, question: str) -> str:
        if not self.sources or SMALL_TALK.match(question) or ABOUT_CHAT.search(question):
            return "chat"
        return "sources"

    def _ask(self, llm: LLM, question: str, reply: ChatReply):
        """Prepare the source route: returns a callable that runs ``app.ask`` and yields its text."""
        standalone = self._standalone(llm, question)
        reply.question = question if standalone == question else standalone

        def run() -> Iterator[str]:
            source: Any = self.sources[0] if len(self.sources) == 1 else list(self.sources)
            answer = self.app.ask(source, standalone, strategy=self.strategy, on_event=self.events)
            reply.citations, reply.usage = list(answer.citations), answer.usage
            reply.strategy, reply.decision = answer.strategy, answer.strategy_reason
            for citation in answer.citations:
                self.events(CitationFound(citation=citation))
            yield answer.text

        return run

    def _standalone(self, llm: LLM, question: str) -> str:
        """Rewrite a short follow-up ("what did he do next?") with the recent turns; rules gate the call."""
        recent = [t for t in self.db.turns(self.name, usable_only=True) if t.kind == "turn"][-2:]
        if not recent or not FOLLOW_UP.search(question) or len(question.split()) > 30:
            return question
        from ..packing import truncate_to_tokens

        turns = [{"user": truncate_to_tokens(t.user, 150, llm.tokens),
                  "assistant": truncate_to_tokens(t.summary or t.assistant, 200, llm.tokens)} for t in recent]
        try:
            out = llm.call_json("chat_condense", _Standalone, max_tokens=min(160, llm.tokens(question) * 3 + 48),
                                system=None, turns=turns, question=question)
        except OPTIONAL_STEP_ERRORS:
            return question
        rewritten = " ".join(out.question.split())
        return rewritten if 0 < len(rewritten) <= 4 * len(question) + 200 else question

    def _recent_evidence(self) -> list[dict]:
        found: list[dict] = []
        for turn in reversed(self.db.turns(self.name, usable_only=True)[-6:]):
            found += [{"where": c["where"], "quote": c["quote"]} for c in turn.meta.get("citations", [])]
        return found


class _Standalone(BaseModel):
    question: str


def _memory_line(refs: list[MemoryRef]) -> str:
    return "archived turns " + ", ".join(f"{m.n} ({m.form}, {m.score:.2f})" for m in refs)


def _new_name(db: SessionDB) -> str:
    base = "chat-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    name, i = base, 2
    while db.exists(name):
        name, i = f"{base}-{i}", i + 1
    return name
