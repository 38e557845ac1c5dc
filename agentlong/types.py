"""Domain data: pydantic models that flow between layers and into results.

>>> u = Usage(prompt_tokens=10, completion_tokens=5, calls=1) + Usage(prompt_tokens=1, calls=1)
>>> (u.prompt_tokens, u.completion_tokens, u.calls, u.total_tokens)
(11, 5, 2, 16)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Message",
    "Usage",
    "Completion",
    "Document",
    "Chunk",
    "Evidence",
    "Citation",
    "Answer",
    "TraceStep",
    "RunRecord",
]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    """Token usage and cost, additive across calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(0, description="prompt tokens served from a reused KV cache / prefix cache")
    calls: int = 0
    seconds: float = 0.0
    cost_usd: float | None = Field(None, description="None when no price is known for the model")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            calls=self.calls + other.calls,
            seconds=round(self.seconds + other.seconds, 4),
            cost_usd=cost,
        )


class Completion(BaseModel):
    """What a backend returns for one call."""

    text: str
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    model: str = ""
    parsed: Any = Field(None, description="the decoded JSON when a schema was requested")


class Document(BaseModel):
    """A loaded input: its full text, where it came from and a content hash."""

    id: str
    source: str = Field(description="path or name the text came from")
    text: str
    sha256: str
    kind: str = Field("text", description="txt, md, html, pdf, epub, code, ...")
    title: str | None = None
    warnings: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Chunk(BaseModel):
    """A contiguous span of a document: ``doc.text[char_start:char_end] == text``."""

    doc_id: str
    source: str
    index: int
    text: str
    char_start: int
    char_end: int
    line_start: int = Field(description="1-based line of char_start")
    line_end: int = Field(description="1-based line of the last character")
    section: str | None = None
    symbol: str | None = Field(None, description="class/function a code chunk belongs to")
    tokens: int = 0

    @property
    def id(self) -> str:
        return f"{self.doc_id}:{self.index}"

    def where(self) -> str:
        """Human-readable location: ``file:line-line`` or ``source chars a-b``."""
        return f"{self.source}:{self.line_start}-{self.line_end}"


class Evidence(BaseModel):
    """A verbatim quote that was found in the source, with its exact span."""

    quote: str
    doc_id: str
    source: str
    char_start: int
    char_end: int
    line_start: int | None = None
    line_end: int | None = None
    chunk_index: int | None = None
    match: Literal["exact", "fuzzy"] = "exact"
    score: float = 1.0

    def where(self) -> str:
        if self.line_start is not None:
            end = self.line_end if self.line_end is not None else self.line_start
            lines = f"{self.line_start}" if end == self.line_start else f"{self.line_start}-{end}"
            return f"{self.source}:{lines}"
        return f"{self.source}[{self.char_start}:{self.char_end}]"


class Citation(BaseModel):
    """A numbered citation in an answer, pointing at one piece of evidence."""

    n: int
    evidence: Evidence


class TraceStep(BaseModel):
    """One step of a graph run, for the per-step trace."""

    step: str
    detail: str = ""
    usage: Usage = Field(default_factory=Usage)


class Answer(BaseModel):
    """The result of ``ask``/``summarize``: text, citations, usage and provenance."""

    question: str
    text: str
    strategy: str
    strategy_reason: str = ""
    citations: list[Citation] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    trace: list[TraceStep] = Field(default_factory=list)
    record: "RunRecord | None" = None
    found: bool = Field(True, description="False when the document did not contain the answer")
    basis: Literal["selected", "read"] = Field(
        "selected", description="'read' when no reading selected evidence and the answer was written from the "
        "text read (retrieved passages or a short document), citing the units that share its words")

    def to_html(self, texts: "dict[str, str] | None" = None) -> str:
        """The citation report page (texts: doc id -> full text; None re-reads the cited files).

        See :func:`agentlong.report.render_html`.
        """
        from .report import render_html

        return render_html(self, texts)


class RunRecord(BaseModel):
    """Provenance for a result (no secrets)."""

    backend: str
    model: str
    settings_hash: str
    prompts: list[str] = Field(default_factory=list)
    started_at: str = ""
    duration_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    agentlong_version: str = ""


Answer.model_rebuild()
