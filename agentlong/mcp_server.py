"""agentlong over the Model Context Protocol, on the official ``mcp`` SDK (2.x, ``MCPServer``).

Tools: ``ask``, ``summarize``, ``search``, ``index``, ``corpora``, ``write``. Each returns structured
content (answer text, ``found``, citations with file, lines, character span and quote, usage, strategy and
its reason). ``Progress`` and ``Notice`` events of a run become MCP progress notifications. An
``AgentlongError`` is a tool error whose text is its one-line message and hint, never a traceback.
Indexed corpora are resources: ``corpus://NAME`` reads a corpus's info and documents as JSON.

Runs share one ``Agentlong`` (one backend, one store) and go one at a time: a local model uses
every core, and the llama.cpp backend is not re-entrant.

>>> import asyncio
>>> from agentlong import Agentlong
>>> server = build_server(Agentlong(model="fake"))
>>> sorted(tool.name for tool in asyncio.run(server.list_tools()))
['ask', 'corpora', 'index', 'search', 'summarize', 'write']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import CallToolResult, Resource, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__
from .errors import AgentlongError, debug_traceback
from .events import Event, Notice, Progress

if TYPE_CHECKING:  # pragma: no cover
    from .api import Agentlong
    from .types import Answer, Citation, Usage

__all__ = ["build_server", "serve", "AnswerResult", "CitationResult", "UsageResult", "SearchResult",
           "IndexResult", "CorporaResult", "WriteResult"]

INSTRUCTIONS = (
    "agentlong answers questions about long documents, folders and indexed corpora with verified citations "
    "(each citation is a verbatim sentence or code line of the source, with its file, lines and character span). "
    "Use `index` to make a named corpus of files, `corpora` to list them, `search` for passages, `ask` for a "
    "cited answer, `summarize` for a summary of about N words. Paths are read on the server's machine."
)
Strategy = Literal["auto", "full", "rtr", "coa", "mapreduce"]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


# -- structured results ---------------------------------------------------------------------
class UsageResult(BaseModel):
    """Token usage of one run (cost in USD where the model's price is known)."""

    tokens: int = Field(description="prompt plus completion tokens")
    prompt_tokens: int
    completion_tokens: int
    calls: int = Field(description="model calls")
    seconds: float
    cost_usd: float | None = None


class CitationResult(BaseModel):
    """A numbered citation: a verbatim quote of the source at its exact place."""

    n: int
    file: str = Field(description="the source file (or corpus document) the quote is from")
    lines: str = Field(description="1-based line or line range, e.g. '12' or '12-14'")
    line_start: int | None = None
    line_end: int | None = None
    char_start: int = Field(description="character offset of the quote in the file's text")
    char_end: int
    quote: str


class AnswerResult(BaseModel):
    """A cited answer (or summary)."""

    text: str
    found: bool = Field(description="False when the text did not hold the answer")
    basis: str = Field(description="'selected': from sentences picked as the answer; 'read': from the text read")
    strategy: str
    strategy_reason: str
    citations: list[CitationResult]
    usage: UsageResult


class SearchHit(BaseModel):
    file: str
    lines: str
    char_start: int
    char_end: int
    score: float = Field(description="cosine similarity to the query")
    text: str


class SearchResult(BaseModel):
    corpus: str
    query: str
    hits: list[SearchHit]


class IndexResult(BaseModel):
    """What one index run did."""

    corpus: str
    embedder: str
    indexed: list[str] = Field(description="files (re-)embedded in this run")
    unchanged: list[str]
    removed: list[str]
    skipped: list[str] = Field(description="'path: reason' for each file that was not indexed")
    chunks: int
    total_documents: int
    total_chunks: int
    seconds: float
    resource: str = Field(description="the corpus's resource URI")


class CorpusSummary(BaseModel):
    name: str
    documents: int
    chunks: int
    embedder: str
    paths: list[str]
    updated: str
    resource: str


class CorporaResult(BaseModel):
    corpora: list[CorpusSummary]


class WriteResult(BaseModel):
    title: str
    text: str = Field(description="the Markdown text")
    words: int
    target: int
    citations: list[CitationResult]
    usage: UsageResult


def usage_result(usage: "Usage") -> UsageResult:
    return UsageResult(tokens=usage.prompt_tokens + usage.completion_tokens, prompt_tokens=usage.prompt_tokens,
                       completion_tokens=usage.completion_tokens, calls=usage.calls, seconds=usage.seconds,
                       cost_usd=usage.cost_usd)


def _lines(start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    end = start if end is None else end
    return f"{start}" if end == start else f"{start}-{end}"


def citation_result(citation: "Citation") -> CitationResult:
    ev = citation.evidence
    return CitationResult(n=citation.n, file=ev.source, lines=_lines(ev.line_start, ev.line_end),
                          line_start=ev.line_start, line_end=ev.line_end, char_start=ev.char_start,
                          char_end=ev.char_end, quote=ev.quote)


def answer_result(answer: "Answer") -> AnswerResult:
    return AnswerResult(text=answer.text, found=answer.found, basis=answer.basis, strategy=answer.strategy,
                        strategy_reason=answer.strategy_reason,
                        citations=[citation_result(c) for c in answer.citations], usage=usage_result(answer.usage))


def answer_text(result: AnswerResult) -> str:
    """The answer followed by its sources, as the CLI prints it (for clients that read text only)."""
    sources = [f"[{c.n}] {c.file}:{c.lines}\n    “{c.quote}”" for c in result.citations]
    return result.text + ("\n\nSources:\n" + "\n".join(sources) if sources else "")


def corpus_uri(name: str) -> str:
    return f"corpus://{name}"


# -- running SDK calls from the event loop -----------------------------------------------------
def _tool_result(model: BaseModel, text: str | None = None) -> CallToolResult:
    data = model.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=text if text is not None else json.dumps(data))],
                          structured_content=data)


def _error_result(exc: Exception) -> CallToolResult:
    """The one line the CLI would print, as a tool error (never a traceback)."""
    debug_traceback()
    if isinstance(exc, AgentlongError):
        line = exc.one_line()
    else:
        msg = " ".join(str(exc).split())[:300]
        line = (f"internal error: {type(exc).__name__}: {msg} — re-run the server with AGENTLONG_DEBUG=1 "
                "for a traceback on its stderr and report it")
    return CallToolResult(content=[TextContent(type="text", text=line)], is_error=True)


def progress_message(event: Progress) -> str:
    count = f"{event.done}/{event.total}" if event.total is not None else f"{event.done}"
    return f"{event.task} {count}" + (f": {event.detail}" if event.detail else "")


class _Bridge:
    """An ``on_event`` listener for a worker thread that forwards events to the MCP context.

    MCP progress must increase with every notification, while agentlong's events count several tasks
    in turn (files, chunks, embeddings, parts); so ``progress`` is the running count of events sent
    and the message says which task is at what point (``"embed 64/120"``). Notices travel the same way
    (``"warning: skipped a.bin: binary"``): MCP logging is deprecated since protocol 2026-07-28.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sent = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            message = progress_message(event)
        elif isinstance(event, Notice):  # skipped files, retries, route choices: progress, not the deprecated log
            message = f"{event.level}: {event.message}"
        else:
            return
        self.sent += 1
        anyio.from_thread.run(self.ctx.report_progress, float(self.sent), None, message)


class AgentlongMCP(MCPServer):
    """``MCPServer`` whose resource list also holds one ``corpus://NAME`` per indexed corpus."""

    def __init__(self, app: "Agentlong", **kwargs: Any) -> None:
        super().__init__(log_level="WARNING", **kwargs)  # INFO would show every library's log lines
        self.app = app
        self.lock = anyio.Lock()

    async def list_resources(self) -> list[Resource]:
        from .store.corpus import list_corpora

        static = await super().list_resources()
        infos = await anyio.to_thread.run_sync(list_corpora, self.app)
        return static + [Resource(uri=corpus_uri(info.name), name=info.name, mime_type="application/json",
                                  description=f"corpus {info.name}: {info.documents} documents, {info.chunks} chunks")
                         for info in infos]

    async def run_sdk(self, ctx: Context | None, fn: Callable[..., Any], *args: Any,
                      events: bool = True, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread, one run at a time, its events sent to ``ctx``."""
        if events and ctx is not None:
            kwargs["on_event"] = _Bridge(ctx)
        async with self.lock:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    async def guarded(self, make: Callable[[], Any]) -> CallToolResult:
        try:
            return await make()
        except Exception as exc:  # a tool error with one line, like the CLI
            return _error_result(exc)


# -- the server -------------------------------------------------------------------------------
def build_server(app: "Agentlong", *, name: str = "agentlong") -> AgentlongMCP:
    """An MCP server over ``app`` (its backend and store), with the tools and corpus resources."""
    server = AgentlongMCP(app, name=name, version=__version__, instructions=INSTRUCTIONS)
    _add_question_tools(server, app)
    _add_corpus_tools(server, app)
    _add_resources(server, app)
    return server


def _add_question_tools(server: AgentlongMCP, app: "Agentlong") -> None:
    @server.tool(annotations=READ_ONLY)
    async def ask(source: str | list[str], question: str, ctx: Context,
                  strategy: Strategy = "auto") -> Annotated[CallToolResult, AnswerResult]:
        """Answer a question about a file, folder (or several paths) or an indexed corpus name, with verified
        citations. strategy: auto (the router picks), full, rtr (retrieve-then-reason), coa (chain-of-agents),
        mapreduce."""
        async def run() -> CallToolResult:
            answer = await server.run_sdk(ctx, app.ask, source, question, strategy=strategy)
            result = answer_result(answer)
            return _tool_result(result, answer_text(result))
        return await server.guarded(run)

    @server.tool(annotations=READ_ONLY)
    async def summarize(source: str | list[str], ctx: Context, words: int = 300,
                        strategy: Literal["auto", "full", "coa", "mapreduce"] = "auto"
                        ) -> Annotated[CallToolResult, AnswerResult]:
        """Summarize a whole file, folder or indexed corpus in about `words` words, each sentence cited."""
        async def run() -> CallToolResult:
            answer = await server.run_sdk(ctx, app.summarize, source, words=words, strategy=strategy)
            result = answer_result(answer)
            return _tool_result(result, answer_text(result))
        return await server.guarded(run)

    @server.tool()
    async def write(instruction: str, words: int, ctx: Context,
                    sources: list[str] | None = None) -> Annotated[CallToolResult, WriteResult]:
        """Plan, write, review and revise a long text of about `words` words (Markdown); `sources` (paths or
        corpus names) ground it and are cited."""
        async def run() -> CallToolResult:
            done = await server.run_sdk(ctx, app.write, instruction, words=words, sources=sources or None)
            result = WriteResult(title=done.title, text=done.text, words=done.words, target=done.target,
                                 citations=[citation_result(c) for c in done.citations],
                                 usage=usage_result(done.usage))
            return _tool_result(result, done.text)
        return await server.guarded(run)


def _add_corpus_tools(server: AgentlongMCP, app: "Agentlong") -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    async def index(paths: list[str], ctx: Context, name: str | None = None,
                    reindex: bool = False) -> Annotated[CallToolResult, IndexResult]:
        """Index files and folders into a named corpus (incremental: unchanged files are skipped). `name`
        defaults to the first path's file stem or folder name; `paths` may be empty to refresh corpus `name`."""
        async def run() -> CallToolResult:
            report = await server.run_sdk(ctx, app.index, paths, name=name, reindex=reindex)
            result = IndexResult(**report.model_dump(include=set(IndexResult.model_fields) - {"skipped", "resource"}),
                                 skipped=[f"{s.path}: {s.reason}" for s in report.skipped],
                                 resource=corpus_uri(report.corpus))
            return _tool_result(result)
        return await server.guarded(run)

    @server.tool(annotations=READ_ONLY)
    async def search(corpus: str, query: str, k: int = 8) -> Annotated[CallToolResult, SearchResult]:
        """Dense search of an indexed corpus: the k best passages with file, lines and score."""
        async def run() -> CallToolResult:
            hits = await server.run_sdk(None, app.search, corpus, query, k=k, events=False)
            result = SearchResult(corpus=corpus, query=query, hits=[
                SearchHit(file=h.chunk.source, lines=_lines(h.chunk.line_start, h.chunk.line_end),
                          char_start=h.chunk.char_start, char_end=h.chunk.char_end, score=round(h.score, 4),
                          text=h.chunk.text) for h in hits])
            return _tool_result(result)
        return await server.guarded(run)

    @server.tool(annotations=READ_ONLY)
    async def corpora() -> Annotated[CallToolResult, CorporaResult]:
        """List the indexed corpora with their document and chunk counts."""
        from .store.corpus import list_corpora

        async def run() -> CallToolResult:
            infos = await anyio.to_thread.run_sync(list_corpora, app)
            return _tool_result(CorporaResult(corpora=[
                CorpusSummary(name=i.name, documents=i.documents, chunks=i.chunks, embedder=i.embedder,
                              paths=i.paths, updated=i.updated, resource=corpus_uri(i.name)) for i in infos]))
        return await server.guarded(run)


def corpus_document(app: "Agentlong", name: str) -> str:
    """A corpus's registry entry and its documents, as JSON (what ``agentlong corpora show --json`` prints)."""
    from .store.corpus import corpus_info, registry

    info = corpus_info(app, name)
    docs = registry(app).doc_states(info.name)
    files = [{"source": d.source, "chunks": d.chunks, "sha256": d.sha256, "pending": d.pending}
             for d in sorted(docs.values(), key=lambda d: d.source)]
    return json.dumps({**info.model_dump(mode="json"), "files": files}, indent=2)


def _add_resources(server: AgentlongMCP, app: "Agentlong") -> None:
    @server.resource("corpus://{name}", name="corpus", mime_type="application/json",
                     description="an indexed corpus: its settings, counts and document list")
    async def corpus(name: str) -> str:
        try:
            return await anyio.to_thread.run_sync(corpus_document, app, name)
        except AgentlongError as exc:
            raise ResourceNotFoundError(exc.one_line()) from exc


def serve(app: "Agentlong", *, http: bool = False, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve over stdio (default) or streamable HTTP at ``http://HOST:PORT/mcp``; returns when stopped."""
    server = build_server(app)
    if http:
        anyio.run(partial(server.run_streamable_http_async, host=host, port=port))
    else:
        anyio.run(server.run_stdio_async)
