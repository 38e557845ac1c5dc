"""What one unit of a batch job does: run one task on one document, with retries and backoff.

A unit is (document, task[, question]). ``execute_unit`` never raises for a failing document:
it returns a record with ``status="failed"`` and the error, so one bad file never stops a job.
The same function runs in local threads and inside Ray workers.

>>> from agentlong.batch.spec import BatchSpec
>>> spec = BatchSpec.model_validate({"inputs": ["x"], "tasks": [{"type": "summarize"}], "model": "fake"})
>>> build_app(spec).backend.name
'fake'
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import (AgentlongError, BackendError, BackendUnavailable, ConfigError, ContextWindowExceeded,
                      InputError, PromptError, debug_traceback)
from ..events import Emit, Notice
from ..llm import metered
from ..types import Usage
from .extract import check_schema, extract
from .spec import AskTask, BatchSpec, ExtractTask, SummarizeTask, WriteTask

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["Unit", "build_app", "prepare", "execute_unit", "run_task", "failure_record", "check_schema", "is_transient", "FATAL"]

PERMANENT = (InputError, ConfigError, PromptError, ContextWindowExceeded)
FATAL = (BackendUnavailable, ConfigError, PromptError)  # the job cannot go on: stop it, keep units pending


@dataclass
class Unit:
    """One (document, task, question) to do. JSON-able, so it travels to Ray workers."""

    id: str
    document: str  # as shown in results: relative to the spec's folder when inside it
    path: str  # absolute path read by the task
    task: str  # task name
    task_index: int
    question: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_app(spec: BatchSpec) -> "Agentlong":
    """The SDK object a job uses: spec model + settings overrides; the fake model gets ``spec.fake``."""
    from ..api import Agentlong
    from ..backends import parse_model_string
    from ..settings import Settings

    settings = Settings(**{**spec.settings, **({"model": spec.model} if spec.model else {})})
    provider, mode, _ = parse_model_string(settings.model)
    if provider == "openai" and "max_concurrency" not in spec.settings.get("openai", {}):
        wider = settings.openai.model_copy(update={"max_concurrency": max(settings.openai.max_concurrency, spec.concurrency)})
        settings = settings.model_copy(update={"openai": wider})
    backend = None
    if provider == "fake":
        from ..backends.fake import FakeBackend

        fake = spec.fake
        backend = FakeBackend(mode=mode if ":" in settings.model else fake.mode, responses=dict(fake.responses),
                              default=fake.default, delay_s=fake.delay_s, name=settings.model,
                              max_concurrency=spec.concurrency)
    return Agentlong(settings=settings, backend=backend)


def prepare(app: "Agentlong", spec: BatchSpec) -> None:
    """Warm what every unit needs — the model, imports, templates, validators — once, before workers
    fan out (dozens of threads doing it at once cost seconds of CPU). Makes no model call."""
    import importlib

    app.backend  # noqa: B018 - a missing model or bad model string fails here, before any work
    modules = {"agentlong.documents"}
    for task in spec.tasks:
        if isinstance(task, ExtractTask):
            from .extract import warm

            warm(app, spec.load_schema(task), task.instructions)
        elif isinstance(task, WriteTask):
            modules.add("agentlong.graphs.writer")
        else:
            modules.add("agentlong.graphs.router")
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except ImportError:  # the units report it, one line each
            pass


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: backend trouble (rate limits, 5xx, timeouts, bad JSON), I/O hiccups."""
    if isinstance(exc, PERMANENT):
        return False
    return isinstance(exc, (BackendError, OSError, TimeoutError))


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, AgentlongError):
        return f"{type(exc).__name__}: {exc.one_line()}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _bug_trace(exc: BaseException) -> dict[str, str]:
    """A failure that is not an AgentlongError is a bug: its record keeps the traceback to report."""
    if isinstance(exc, AgentlongError):
        return {}
    import traceback

    return {"traceback": "".join(traceback.format_exception(exc))[-4000:]}


def execute_unit(
    app: "Agentlong",
    spec: BatchSpec,
    unit: Unit,
    *,
    path: str | None = None,
    emit: Emit | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run ``unit`` with up to ``spec.retries`` retries (exponential backoff) and return its record.

    A document's own failure becomes a failed record. Job-level trouble that outlasts the retries
    (unreachable server, bad key, missing model, broken prompts: ``FATAL``) is raised instead, so
    the job stops with one clear error and the unit stays pending for the next run.
    """
    started = time.perf_counter()
    attempts = 0
    spent = Usage()  # tokens of failed attempts count too
    while True:
        attempts += 1
        with metered() as step:  # every call this attempt makes, whichever LLM object it goes through
            try:
                result = run_task(app, spec, unit, path or unit.path, on_event=_warnings_to(emit))
                error = None
            except Exception as exc:  # one document's failure must not stop the job; the record says why
                debug_traceback()
                error = exc
        if error is None:
            result["usage"] = spent + (result.get("usage") or step.usage)
            return _record(app, unit, "ok", attempts, started, **result)
        spent = spent + step.usage
        if isinstance(error, FATAL) and (attempts > spec.retries or not is_transient(error)):
            raise error
        if attempts > spec.retries or not is_transient(error):
            return _record(app, unit, "failed", attempts, started, usage=spent, error=_error_line(error),
                           extra=_bug_trace(error))
        delay = spec.backoff_s * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
        delay = max(delay, getattr(error, "retry_after", None) or 0.0)  # a server's Retry-After wins
        if emit:
            emit(Notice(level="warning", message=f"retry {attempts}/{spec.retries} of {unit.document} "
                                                 f"({unit.task}) in {delay:.1f}s: {_error_line(error)[:160]}"))
        sleep(delay)


def failure_record(unit: Unit, error: str, model: str, attempts: int = 1) -> dict[str, Any]:
    """The record of a unit whose worker died (Ray), built by the driver."""
    rec = _record(None, unit, "failed", attempts, time.perf_counter(), error=error)
    rec["model"] = model
    return rec


def _record(app: "Agentlong | None", unit: Unit, status: str, attempts: int, started: float, *, answer: Any = None,
            citations: list | None = None, usage: Usage | None = None, strategy: str | None = None,
            extra: dict | None = None, error: str | None = None) -> dict[str, Any]:
    return {
        "id": unit.id, "document": unit.document, "path": unit.path, "task": unit.task, "question": unit.question,
        "status": status, "answer": answer, "citations": citations or [], "strategy": strategy,
        "usage": (usage or Usage()).model_dump(mode="json"), "duration_s": round(time.perf_counter() - started, 3),
        "attempts": attempts, "error": error, "model": _model_name(app), "extra": extra or {},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _model_name(app: "Agentlong | None") -> str:
    if app is None:
        return ""
    try:
        return app.backend.name
    except Exception:  # the backend failed to load: the record's error says why
        debug_traceback()
        return app.settings.model


def _warnings_to(emit: Emit | None) -> Emit | None:
    """A task's warnings (a guessed encoding, a skipped file) reach the job's listener; its progress
    bars and info lines stay out of the job's display."""
    if emit is None:
        return None
    return lambda event: emit(event) if isinstance(event, Notice) and event.level != "info" else None


def run_task(app: "Agentlong", spec: BatchSpec, unit: Unit, path: str, on_event: Emit | None = None) -> dict[str, Any]:
    """Do the unit's task on the file at ``path``; returns the record fields (answer, citations, usage...)."""
    task = spec.tasks[unit.task_index]
    if not Path(path).is_file():
        raise InputError(f"{unit.document} no longer exists" if not Path(path).exists() else f"{unit.document} is not a file",
                         hint="restore the file, or remove it from the spec's inputs")
    if isinstance(task, SummarizeTask):
        ans = app.summarize(path, words=task.words, strategy=task.strategy or spec.strategy, on_event=on_event)
        return _from_answer(ans)
    if isinstance(task, AskTask):
        ans = app.ask(path, unit.question or "", strategy=task.strategy or spec.strategy, on_event=on_event)
        return _from_answer(ans)
    if isinstance(task, ExtractTask):
        data, citations, usage = extract(app, path, spec.load_schema(task), instructions=task.instructions,
                                         max_tokens=task.max_tokens, on_event=on_event)
        return {"answer": data, "citations": citations, "usage": usage, "strategy": "extract"}
    if isinstance(task, WriteTask):
        instruction = task.instruction.replace("{document}", Path(unit.document).name)
        res = app.write(instruction, words=task.words, sources=[path], on_event=on_event)
        return {"answer": res.text, "usage": res.usage, "strategy": "write",
                "extra": {"words": getattr(res, "words", None), "target": task.words}}
    raise ConfigError(f"unknown task type {type(task).__name__}")  # pragma: no cover - the spec forbids it


def _from_answer(ans: Any) -> dict[str, Any]:
    return {
        "answer": ans.text,
        "citations": [c.model_dump(mode="json") for c in ans.citations],
        "usage": ans.usage,
        "strategy": ans.strategy,
        "extra": {"found": ans.found, "strategy_reason": ans.strategy_reason},
    }

