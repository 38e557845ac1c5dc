"""Run a batch job: plan units, reconcile state, execute (threads or Ray), commit each result once.

The driver thread is the only writer of the state database and the results JSONL; executors
(local threads, Ray workers) only compute records. See ``state.py`` for the exactly-once protocol.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, Field

from ..errors import ConfigError
from ..events import Emit, EventBus, Notice, Progress, UsageUpdate
from ..types import Usage
from .plan import check_output, plan_units, resolve_inputs
from .spec import BatchSpec, load_spec, parse_spec
from ..locks import ProcessLock
from .state import JobState, ResultsFile, read_status, record_line, state_paths
from .tasks import Unit, build_app, execute_unit, prepare

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong

__all__ = ["BatchSummary", "BatchJob", "run", "iter_results", "status", "as_spec"]

SpecLike = BatchSpec | str | Path | dict


class BatchSummary(BaseModel):
    """Totals of a job (all its results, earlier runs included) and of this run."""

    spec: str
    output: str
    state: str
    total: int = Field(description="units (document x task x question) in the job")
    ok: int
    failed: int
    pending: int = Field(description="units not done (the run was stopped)")
    done_before: int = Field(description="units finished by an earlier run and not redone")
    ran: int = Field(description="units finished by this run")
    usage: Usage = Field(description="tokens and cost of this run")
    job_usage: Usage = Field(description="tokens and cost of all the job's results")
    duration_s: float
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per task: ok, failed, tokens, cost")
    failures: list[dict[str, Any]] = Field(default_factory=list, description="the first failed units with their errors")

    @property
    def exit_code(self) -> int:
        """0 when every unit succeeded, 1 when some failed or are still pending."""
        return 0 if self.failed == 0 and self.pending == 0 else 1


def as_spec(spec: SpecLike) -> BatchSpec:
    if isinstance(spec, BatchSpec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    return load_spec(spec)


# -- executing -----------------------------------------------------------------------


class LocalExecutor:
    """Units on a thread pool, at most ``concurrency`` at once; yields the records finished together."""

    def __init__(self, app: "Agentlong", spec: BatchSpec, emit: Emit, stop: threading.Event) -> None:
        self.app, self.spec, self.emit, self.stop = app, spec, emit, stop

    def run(self, units: list[Unit]) -> Iterator[list[dict[str, Any]]]:
        todo = iter(units)
        pool = ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="agentlong-batch")
        inflight: dict[Any, Unit] = {}
        clean = False
        try:
            self._fill(pool, todo, inflight)
            while inflight:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                records = [f.result() for f in done]
                for f in done:
                    del inflight[f]
                self._fill(pool, todo, inflight)  # keep workers busy while the driver commits
                yield records
            clean = True
        finally:
            pool.shutdown(wait=clean, cancel_futures=True)

    def _fill(self, pool: ThreadPoolExecutor, todo: Iterator[Unit], inflight: dict) -> None:
        while len(inflight) < self.spec.concurrency and not self.stop.is_set():
            unit = next(todo, None)
            if unit is None:
                return
            inflight[pool.submit(execute_unit, self.app, self.spec, unit, emit=self.emit)] = unit


class BatchJob:
    """One run of a job spec. ``run()`` resumes whatever an earlier run left unfinished."""

    def __init__(self, spec: SpecLike, *, app: "Agentlong | None" = None, on_event: Emit | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None, restart: bool = False,
                 retry_failed: bool = False, stop: threading.Event | None = None) -> None:
        self.spec = as_spec(spec)
        self.app = app
        self.emit: Emit = on_event or EventBus()
        self.on_record = on_record
        self.restart = restart
        self.retry_failed = retry_failed
        self.stop = stop or threading.Event()
        self.output = self.spec.output_path()
        self.db_path, self.lock_path = state_paths(self.output)

    def run(self) -> BatchSummary:
        started = time.perf_counter()
        check_output(self.output)
        with ProcessLock(self.lock_path, f"the batch job writing {self.output.name}",
                         hint="wait for it to finish; watch it with `agentlong batch status SPEC`"):
            if self.restart:
                self._move_aside()
            state = JobState(self.db_path)
            try:
                return self._run(state, started)
            finally:
                state.close()

    def _run(self, state: JobState, started: float) -> BatchSummary:
        app = self._app()
        units = plan_units(self.spec, resolve_inputs(self.spec, app, self.emit))
        self._check_fingerprint(state)
        state.add_units([u.to_dict() for u in units])
        state.drop_pending_except({u.id for u in units})
        results = ResultsFile(self.output)
        try:
            self._reconcile(state, results)
            pending_ids = set(state.pending_ids())
            todo = [u for u in units if u.id in pending_ids]
            done_before = state.counts()["total"] - len(pending_ids)
            if done_before and todo:
                self.emit(Notice(message=f"resuming: {done_before} of {done_before + len(todo)} results already done"))
            if self.on_record:
                for rec in state.records():
                    self.on_record(rec)
            usage, ran = self._execute(app, state, results, todo)
        finally:
            results.close()
        return self._summary(done_before, ran, usage, started)

    def _app(self) -> "Agentlong":
        if self.app is None:
            self.app = build_app(self.spec)
        return self.app

    def _move_aside(self) -> None:
        if self.output.exists():
            os.replace(self.output, self.output.with_name(self.output.name + ".prev"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)

    def _check_fingerprint(self, state: JobState) -> None:
        mine = self.spec.fingerprint()
        known = state.get_meta("fingerprint")
        if known is None:
            state.set_meta(fingerprint=mine, spec=self.spec.source, created_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        elif known != mine:
            raise ConfigError(f"{self.spec.source}: its tasks, model or settings changed since {self.output.name} was started",
                              hint="run with --restart to start over (old results are moved to *.prev), or set a new `output:`")

    def _reconcile(self, state: JobState, results: ResultsFile) -> None:
        report = results.reconcile(state)
        if report.truncated_bytes:
            self.emit(Notice(level="warning", message=f"cut a torn last line ({report.truncated_bytes} bytes) "
                                                      f"from {self.output.name}; its result is restored from the state"))
        if report.appended or report.adopted or report.rewritten:
            self.emit(Notice(message=f"reconciled {self.output.name} with its state: {report.appended} re-appended, "
                                     f"{report.adopted} adopted{', file rewritten' if report.rewritten else ''}"))
        if self.retry_failed and state.reset_failed():
            results.rewrite_from(state)

    def _executor(self, app: "Agentlong"):
        if self.spec.executor == "ray":
            from .ray_executor import RayExecutor

            return RayExecutor(self.spec, self.emit, self.stop)
        prepare(app, self.spec)  # load the model and warm templates once, before threads share them
        return LocalExecutor(app, self.spec, self.emit, self.stop)

    def _execute(self, app: "Agentlong", state: JobState, results: ResultsFile, todo: list[Unit]) -> tuple[Usage, int]:
        counts = state.counts()
        total, done, failed = counts["total"], counts["ok"] + counts["failed"], counts["failed"]
        tokens = counts["prompt_tokens"] + counts["completion_tokens"]
        usage, ran = Usage(), 0
        self.emit(Progress(task="batch", done=done, total=total, detail=_detail(failed, tokens)))
        if not todo:
            return usage, ran
        for records in self._executor(app).run(todo):
            committed = set(state.finish(records))
            fresh = [r for r in records if r["id"] in committed]
            results.append([record_line(r) for r in fresh])
            for rec in fresh:
                rec_usage = Usage.model_validate(rec["usage"])
                usage = usage + rec_usage
                tokens += rec_usage.total_tokens
                done += 1
                ran += 1
                failed += rec["status"] == "failed"
                if rec["status"] == "failed":
                    self.emit(Notice(level="error", message=f"failed: {rec['document']} ({rec['task']}): {rec['error'][:200]}"))
                if self.on_record:
                    self.on_record(rec)
            self.emit(Progress(task="batch", done=done, total=total, detail=_detail(failed, tokens)))
            self.emit(UsageUpdate(usage=usage))  # on stop, executors submit nothing new and drain what is in flight
        return usage, ran

    def _summary(self, done_before: int, ran: int, usage: Usage, started: float) -> BatchSummary:
        st = read_status(self.db_path, self.lock_path, failures=20)
        job_usage = Usage(prompt_tokens=st["prompt_tokens"], completion_tokens=st["completion_tokens"],
                          calls=st["calls"], cost_usd=st["cost_usd"], seconds=st["unit_seconds"])
        return BatchSummary(spec=self.spec.source, output=str(self.output), state=str(self.db_path), total=st["total"],
                            ok=st["ok"], failed=st["failed"], pending=st["pending"], done_before=done_before, ran=ran,
                            usage=usage, job_usage=job_usage, duration_s=round(time.perf_counter() - started, 3),
                            tasks=st["tasks"], failures=st["failures"])


def _detail(failed: int, tokens: int) -> str:
    return f"{failed} failed · {tokens:,} tokens" if failed else f"{tokens:,} tokens"


# -- SDK entry points ------------------------------------------------------------------


def run(spec: SpecLike, *, app: "Agentlong | None" = None, on_event: Emit | None = None, restart: bool = False,
        retry_failed: bool = False) -> BatchSummary:
    """Run (or resume) a batch job and return its summary.

    ``spec`` is a spec file path, a mapping, or a ``BatchSpec``; ``app`` reuses an SDK object's backend.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("Ada Lovelace wrote the first program.")
    >>> spec = {"inputs": [str(d / "*.txt")], "model": "fake", "output": str(d / "out.jsonl"),
    ...         "fake": {"mode": "keyed", "default": {"who": "Ada Lovelace"}},
    ...         "tasks": [{"type": "extract", "schema": {"type": "object", "properties": {"who": {"type": "string"}}}}]}
    >>> summary = run(spec)
    >>> summary.ok, summary.failed, summary.exit_code
    (1, 0, 0)
    """
    return BatchJob(spec, app=app, on_event=on_event, restart=restart, retry_failed=retry_failed).run()


def iter_results(spec: SpecLike, *, app: "Agentlong | None" = None, on_event: Emit | None = None,
                 restart: bool = False, retry_failed: bool = False) -> Iterator[dict[str, Any]]:
    """Run (or resume) a job, yielding every record: earlier results first, then new ones as they finish.

    Stopping the iteration early stops the job after the units in flight (it can be resumed).
    """
    items: queue.Queue = queue.Queue(maxsize=1024)
    stop = threading.Event()
    end = object()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            BatchJob(spec, app=app, on_event=on_event, on_record=items.put, restart=restart,
                     retry_failed=retry_failed, stop=stop).run()
        except BaseException as exc:  # re-raised in the consumer's thread
            box["error"] = exc
        items.put(end)

    thread = threading.Thread(target=work, name="agentlong-batch-driver", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not end:
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so the driver never blocks on a full queue
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
    if "error" in box:
        raise box["error"]


def status(spec: SpecLike) -> dict[str, Any]:
    """Progress of a running or stopped job, read from its state database (never blocks the job)."""
    spec = as_spec(spec)
    output = spec.output_path()
    db_path, lock_path = state_paths(output)
    data = read_status(db_path, lock_path)
    data.update(output=str(output), state=str(db_path), spec=spec.source)
    return data
