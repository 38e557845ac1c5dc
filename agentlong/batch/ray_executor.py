"""Run batch units on Ray: a local cluster by default, or an existing one by address.

Units become Ray actor tasks on a small pool of worker actors (one per CPU by default, each
running several units at once on threads), so I/O-bound API jobs reach high concurrency without
one process per unit, and a local model is loaded once per worker. Records come back to the
driver, which alone writes the state database and the JSONL, so resume works exactly as with
the local executor. With ``ray_ship_files`` the driver sends each file's bytes through the object
store, for clusters whose nodes do not share the driver's filesystem.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import AgentlongError, BackendUnavailable, ConfigError, PromptError, missing_dependency
from ..events import Emit, Notice
from .spec import BatchSpec, ExtractTask, split_secrets
from .tasks import Unit, failure_record

__all__ = ["RayExecutor", "portable_spec"]


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise missing_dependency("ray", "ray") from exc
    return ray


def portable_spec(spec: BatchSpec) -> dict[str, Any]:
    """The spec as a mapping with schema files inlined, so workers need no access to them."""
    data = spec.model_dump(mode="json", by_alias=True)
    data["settings"], _ = split_secrets(spec.settings)  # secrets travel in the runtime env: see _workers
    for i, task in enumerate(spec.tasks):
        if isinstance(task, ExtractTask) and task.schema_file:
            data["tasks"][i]["schema"] = spec.load_schema(task)
            data["tasks"][i]["schema_file"] = None
    return data


class _Worker:
    """One Ray actor: an SDK object built from the spec, running units on ``max_concurrency`` threads."""

    def __init__(self, spec_data: dict[str, Any], base_dir: str, source: str) -> None:
        from .tasks import build_app, prepare

        self.spec = BatchSpec.model_validate(spec_data).with_base(Path(base_dir), source)
        self._lock = threading.Lock()
        self.fatal: dict[str, Any] | None = None
        try:
            self.app = build_app(self.spec)
            prepare(self.app, self.spec)  # load a local model once per worker, now rather than on the first unit
        except AgentlongError as exc:  # e.g. the model is missing on this node: the driver stops the job
            self.fatal = {"fatal": type(exc).__name__, "message": exc.message, "hint": exc.hint}

    def run(self, unit_data: dict[str, Any], blob: bytes | None = None) -> dict[str, Any]:
        from .tasks import execute_unit

        from .tasks import FATAL

        if self.fatal:
            return self.fatal
        unit = Unit(**unit_data)
        local = self._materialize(unit, blob) if blob is not None else None
        try:
            record = execute_unit(self.app, self.spec, unit, path=local)
        except FATAL as exc:  # the driver re-raises it: the job stops, the unit stays pending
            return {"fatal": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        return _swap_path(record, local, unit.path) if local else record

    def _materialize(self, unit: Unit, blob: bytes) -> str:
        """Use the driver's path when this node has the same file, else a temp copy of the shipped bytes."""
        digest = hashlib.sha256(blob).hexdigest()
        try:
            if Path(unit.path).is_file() and hashlib.sha256(Path(unit.path).read_bytes()).hexdigest() == digest:
                return unit.path
        except OSError:
            pass
        target = Path(tempfile.gettempdir()) / "agentlong-batch" / digest[:16] / Path(unit.path).name
        with self._lock:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(blob)
                os.replace(tmp, target)
        return str(target)


def _swap_path(record: dict[str, Any], local: str, original: str) -> dict[str, Any]:
    """Results name the driver's path, not the worker's temp copy."""
    import json

    if local == original:
        return record
    text = json.dumps(record).replace(json.dumps(local)[1:-1], json.dumps(original)[1:-1])
    return json.loads(text)


class RayExecutor:
    """Units as Ray actor tasks; yields the records finished together (driver commits them)."""

    def __init__(self, spec: BatchSpec, emit: Emit, stop: threading.Event) -> None:
        self.spec, self.emit, self.stop = spec, emit, stop
        self.ray = _ray()
        self.started_here = False

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            if self.spec.ray_address:
                ray.init(address=self.spec.ray_address, logging_level="warning", log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                         logging_level="warning", log_to_driver=False)
        except Exception as exc:  # ConnectionError, RuntimeError, grpc errors: one line for the user
            where = self.spec.ray_address or "a local cluster"
            raise ConfigError(f"could not start or join Ray at {where}: {' '.join(str(exc).split())[:200]}",
                              hint="check `ray_address:` (e.g. ray://HOST:10001) or run `ray start --head`") from exc
        self.started_here = True

    def _workers(self) -> list[Any]:
        ray = self.ray
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        count = self.spec.ray_workers or max(1, min(self.spec.concurrency, int(cpus)))
        threads = max(1, math.ceil(self.spec.concurrency / count))
        _, secrets = split_secrets(self.spec.settings)
        actor = ray.remote(_Worker).options(num_cpus=min(1.0, cpus / count), max_concurrency=threads,
                                            max_restarts=2, max_task_retries=self.spec.retries,
                                            **({"runtime_env": {"env_vars": secrets}} if secrets else {}))
        spec_data = portable_spec(self.spec)
        self.emit(Notice(message=f"ray: {count} worker(s) × {threads} thread(s) on {cpus:g} CPU(s)"))
        return [actor.remote(spec_data, str(self.spec.base_dir), self.spec.source) for _ in range(count)]

    def _ship(self) -> bool:
        flag = self.spec.ray_ship_files
        return bool(self.spec.ray_address) if flag is None else flag

    def run(self, units: list[Unit]) -> Iterator[list[dict[str, Any]]]:
        self._init()
        try:
            yield from self._run(units)
        finally:
            if self.started_here:
                self.ray.shutdown()

    def _run(self, units: list[Unit]) -> Iterator[list[dict[str, Any]]]:
        ray = self.ray
        workers = self._workers()
        load = [0] * len(workers)
        blobs: dict[str, Any] = {}
        inflight: dict[Any, tuple[Unit, int]] = {}
        todo = iter(units)

        def fill() -> None:
            while len(inflight) < self.spec.concurrency and not self.stop.is_set():
                unit = next(todo, None)
                if unit is None:
                    return
                w = min(range(len(workers)), key=load.__getitem__)
                args = [unit.to_dict()]
                if self._ship():
                    if unit.path not in blobs:
                        blobs[unit.path] = ray.put(_read(unit.path))
                    args.append(blobs[unit.path])
                inflight[workers[w].run.remote(*args)] = (unit, w)
                load[w] += 1

        fill()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            rest = [r for r in inflight if r not in ready]
            more = ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
            records = []
            for ref in ready + more:
                unit, w = inflight.pop(ref)
                load[w] -= 1
                records.append(self._get(ref, unit))
            fill()
            yield records

    def _get(self, ref: Any, unit: Unit) -> dict[str, Any]:
        try:
            record = self.ray.get(ref)
        except Exception as exc:  # the worker died even after Ray's retries
            msg = " ".join(str(exc).split())[:300]
            return failure_record(unit, f"RayError: {type(exc).__name__}: {msg}", self.spec.model or "",
                                  attempts=self.spec.retries + 1)
        if "fatal" in record:
            kind = {"BackendUnavailable": BackendUnavailable, "PromptError": PromptError}.get(record["fatal"], ConfigError)
            raise kind(record["message"], hint=record["hint"])
        return record


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:  # the worker then reports the file as missing
        return None
