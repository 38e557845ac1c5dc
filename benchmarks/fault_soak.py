"""Fault soak: a batch extract job against a real local model behind a fault-injecting proxy.

Measures whether a batch job stays exactly-once when the server misbehaves. A real
OpenAI-compatible server (``python -m llama_cpp.server`` with the default GGUF) runs on 127.0.0.1;
a proxy in front of it (stdlib ``ThreadingHTTPServer``, seeded RNG) turns ``--fault-rate`` of the
model calls into faults, spread evenly over: HTTP 429 with ``Retry-After: 1``, HTTP 500, a timeout
(the connection is held past the client timeout, nothing is forwarded) and a truncated JSON body
(status 200, the real reply cut in half). N generated documents (a fictional person and the city
they live in) go through one ``extract`` task with a bounded retry budget, then:

1. run 1 with faults: every document ends with exactly one record, ``ok`` or ``failed``, no line
   twice, and the JSONL agrees with the state database;
2. the same run again (faults off): nothing is redone, no model call is made;
3. ``retry_failed=True`` (faults off): every document ends ``ok``, still one line each, no call is
   made for a document that was already ok, and those ok lines are unchanged;
4. the extracted city is compared with the planted one (the share is reported, not asserted);
5. every model call seen at the proxy carried the schema (``json_schema`` or ``json_object`` with a
   ``schema``): a plain ``json_object`` call means the backend lost the grammar.

Exit status 0 when every invariant holds, 1 otherwise. Calls are counted at the proxy; only model
calls (``/v1/chat/completions``) get faults unless ``--fault-probes`` (tokenizer and probe requests
too). The server answers one call at a time, so throughput is the model's and concurrency only
overlaps waiting; on 2 cores a document takes ~3-5 s when the machine is otherwise idle.

    python benchmarks/fault_soak.py                    # 200 documents, 20% faults, concurrency 3, seed 7
    python benchmarks/fault_soak.py --docs 100         # 9.8 min on the shared 2-core machine (200: ~18 min)
    python benchmarks/fault_soak.py --docs 10          # a quick check (2-4 minutes on 2 shared cores)
    python benchmarks/fault_soak.py --docs 200 --fault-rate 0.2 --concurrency 3 --seed 7 --json

The model file is the project's default (``agentlong.backends.models.pull``, joined once into
``$AGENTLONG_MODELS_DIR`` or ``$AGENTLONG_HOME/models``); the job itself runs with a fresh
``AGENTLONG_HOME`` in a temp folder, which is printed and left for inspection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
          "required": ["name", "city"]}
INSTRUCTIONS = "name = the person's full name; city = the city where the person lives"
KINDS = ("429", "500", "timeout", "truncated")
DOC_RE = re.compile(rb"doc(\d{4})\.txt")
FIRST = ["Greta", "Omar", "Mei", "Lukas", "Sofia", "Kwame", "Ana", "Ivan", "Hana", "Liam", "Nora", "Ravi", "Elena",
         "Jonas", "Zara", "Pedro", "Yuki", "Clara", "Tariq", "Emma", "Aino", "Bram", "Ines", "Mateo", "Leila"]
LAST = ["Lindqvist", "Haddad", "Okafor", "Brandt", "Rossi", "Mensah", "Souza", "Petrov", "Sato", "Walsh", "Berg",
        "Kumar", "Garcia", "Weber", "Novak", "Alves", "Mori", "Dubois", "Aziz", "Keller", "Virtanen", "Janssen"]
CITIES = ["Lisbon", "Porto", "Tallinn", "Krakow", "Ghent", "Bergen", "Lyon", "Turin", "Seville", "Graz", "Utrecht",
          "Aarhus", "Tampere", "Brno", "Ljubljana", "Zagreb", "Cork", "Leeds", "Bilbao", "Bologna", "Basel",
          "Dresden", "Riga", "Vilnius", "Gdansk", "Salzburg", "Nantes", "Valencia"]
JOBS = ["a nurse", "a carpenter", "an accountant", "a baker", "a librarian", "a bus driver", "a teacher", "a chemist"]
HOBBIES = ["plays chess", "grows tomatoes", "sings in a choir", "repairs old radios", "runs along the river"]
SERVER_START_TIMEOUT_S = 180


# -- documents ----------------------------------------------------------------------


def make_docs(folder: Path, n: int, rng: random.Random, prefix: str = "doc") -> dict[str, dict[str, str]]:
    """``n`` small documents, each naming one person and the city they live in; file name -> planted facts."""
    folder.mkdir(parents=True, exist_ok=True)
    people = rng.sample([f"{f} {la}" for f in FIRST for la in LAST], n)
    planted: dict[str, dict[str, str]] = {}
    for i, name in enumerate(people):
        city, first = rng.choice(CITIES), name.split()[0]
        text = (f"{name} lives in {city}. {first} works as {rng.choice(JOBS)} and {rng.choice(HOBBIES)} "
                f"on weekends. Last spring {first} hosted {rng.randint(3, 40)} neighbours for a long dinner.\n")
        file = f"{prefix}{i:04d}.txt"
        (folder / file).write_text(text, encoding="utf-8")
        planted[file] = {"name": name, "city": city}
    return planted


# -- the real server --------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 with the default GGUF (as tests/conftest.py starts it)."""

    def __init__(self, model: Path, log: Path) -> None:
        self.port, self.log = free_port(), log
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "qwen",
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096",
               "--n_threads", str(os.cpu_count() or 2)]
        with log.open("w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama_cpp.server not ready after {timeout_s}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


# -- the fault-injecting proxy ---------------------------------------------------------------


class FaultProxy(ThreadingHTTPServer):
    """Forwards to ``upstream``; a seeded share of model calls (optionally all calls) gets a fault."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, upstream_port: int, rate: float, seed: int, hold_s: float, fault_probes: bool) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.port = self.server_address[1]
        self.upstream_port, self.rate, self.hold_s, self.fault_probes = upstream_port, rate, hold_s, fault_probes
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.reset()

    def reset(self) -> None:
        """Start a new phase: counters back to zero (the RNG goes on)."""
        with self.lock:
            self.faults: Counter = Counter()  # kind -> count
            self.requests: Counter = Counter()  # "chat" / "probe" -> count
            self.calls_by_doc: Counter = Counter()  # doc file -> model calls (faulted ones included)
            self.formats: Counter = Counter()  # response_format of the model calls (json_schema, json_object+schema...)
            self.upstream: Counter = Counter()  # HTTP status of the forwarded model calls
            self.client_gone = 0  # a forwarded reply the client no longer waited for (an unplanned timeout)

    def draw(self, path: str, body: bytes) -> str | None:
        """Count the request; return the fault it gets, if any."""
        chat = path.endswith("/chat/completions")
        doc = DOC_RE.search(body)
        with self.lock:
            self.requests["chat" if chat else "probe"] += 1
            if chat and doc:
                self.calls_by_doc[f"doc{doc.group(1).decode()}.txt"] += 1
            if chat:
                self.formats[_format_of(body)] += 1
            if (chat or self.fault_probes) and self.rate > 0 and self.rng.random() < self.rate:
                kind = self.rng.choice(KINDS)
                self.faults[kind] += 1
                return kind
        return None

    def forward(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=600)
        try:
            keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization", "accept")}
            conn.request(method, path, body=body or None, headers=keep)
            reply = conn.getresponse()
            if path.endswith("/chat/completions"):
                with self.lock:
                    self.upstream[reply.status] += 1
            return reply.status, reply.getheader("Content-Type", "application/json"), reply.read()
        finally:
            conn.close()

    def phase(self) -> dict[str, Any]:
        with self.lock:
            return {"faults": dict(self.faults), "chat_calls": self.requests["chat"],
                    "probe_calls": self.requests["probe"], "calls_by_doc": dict(self.calls_by_doc),
                    "formats": dict(self.formats), "upstream_status": {str(k): v for k, v in self.upstream.items()},
                    "client_gone": self.client_gone}


def _format_of(body: bytes) -> str:
    """The structured-output format a model call asks for, as the backend names it."""
    try:
        fmt = json.loads(body).get("response_format") or {}
    except ValueError:
        return "unreadable"
    kind = fmt.get("type", "none")
    return f"{kind}+schema" if kind == "json_object" and "schema" in fmt else kind


ERRORS = {
    "429": (429, {"error": {"message": "injected: too many requests", "type": "rate_limit_error",
                            "code": "rate_limit_exceeded"}}, {"Retry-After": "1"}),
    "500": (500, {"error": {"message": "injected: internal server error", "type": "server_error", "code": None}}, {}),
}


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _handle(self, body: bytes) -> None:
        srv = self.server
        kind = srv.draw(self.path, body)
        if kind == "timeout":  # hold past the client's timeout; the client gives up and retries
            srv.stopping.wait(srv.hold_s)
            self.close_connection = True
            return
        if kind in ERRORS:
            status, payload, extra = ERRORS[kind]
            return self._send(status, json.dumps(payload).encode(), "application/json", extra)
        status, ctype, payload = srv.forward(self.command, self.path, body, self.headers)
        if kind == "truncated":
            payload = payload[: len(payload) // 2]
        try:
            self._send(status, payload, ctype)
        except (BrokenPipeError, ConnectionResetError):
            with srv.lock:
                srv.client_gone += 1
            self.close_connection = True

    def _send(self, status: int, payload: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


# -- the job ---------------------------------------------------------------------------


def job_spec(work: Path, url: str, args: argparse.Namespace, timeout_s: float, inputs: str, output: str):
    from agentlong.batch import parse_spec

    return parse_spec({
        "inputs": [inputs], "output": output, "model": f"openai:qwen@{url}", "concurrency": args.concurrency,
        "retries": args.retries, "backoff_s": 0.5,
        "settings": {"openai": {"api_key": "sk-soak-local", "max_retries": args.backend_retries, "backoff_s": 0.25,
                                "timeout_s": timeout_s, "context_window": 4096}},
        "tasks": [{"type": "extract", "name": "person", "schema": SCHEMA, "max_tokens": 48,
                   "instructions": INSTRUCTIONS}],
    }, "fault_soak.json", work)


def timed_run(spec, **kwargs) -> tuple[Any, float, str | None, Counter]:
    """(summary or None, seconds, the error that stopped the job, notices by kind)."""
    from agentlong.batch import run
    from agentlong.events import Notice, Progress

    notices: Counter = Counter()
    shown = [-1]

    def on_event(event) -> None:
        if isinstance(event, Notice):
            notices["retry" if event.message.startswith("retry ") else event.level] += 1
        elif isinstance(event, Progress) and event.total and event.done * 10 // event.total > shown[0]:
            shown[0] = event.done * 10 // event.total  # a line per tenth, on stderr, to watch a long soak
            print(f"  {event.done}/{event.total} done ({event.detail}) at {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        summary, error = run(spec, on_event=on_event, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - a job-level stop (or a bug) is a finding to report, not a crash
        summary, error = None, f"{type(exc).__name__}: {exc}"
    return summary, time.perf_counter() - started, error, notices


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def check_records(records: list[dict[str, Any]], docs: set[str]) -> dict[str, Any]:
    """Per-document record counts: exactly one line each, status ok or failed."""
    per_doc = Counter(Path(r["document"]).name for r in records)
    statuses = Counter(r["status"] for r in records)
    return {"lines": len(records), "ok": statuses["ok"], "failed": statuses["failed"],
            "other_status": sum(n for s, n in statuses.items() if s not in ("ok", "failed")),
            "missing": sorted(docs - set(per_doc)), "unknown": sorted(set(per_doc) - docs),
            "duplicates": sum(n - 1 for n in per_doc.values() if n > 1),
            "duplicate_ok": sum(n - 1 for n in Counter(Path(r["document"]).name for r in records
                                                        if r["status"] == "ok").values() if n > 1)}


def cause(error: str | None) -> str:
    text = error or ""
    for key, label in (("(429)", "429"), ("HTTP 500", "500"), ("did not answer within", "timeout"),
                       ("malformed", "truncated"), ("ParseError", "model JSON"), ("cannot reach", "unreachable")):
        if key in text:
            return label
    return "other"


def correctness(records: list[dict[str, Any]], planted: dict[str, dict[str, str]], field: str) -> tuple[int, int]:
    ok = [r for r in records if r["status"] == "ok"]
    right = sum(isinstance(r["answer"], dict) and str(r["answer"].get(field, "")).strip().lower()
                == planted[Path(r["document"]).name][field].lower() for r in ok)
    return right, len(ok)


# -- main ---------------------------------------------------------------------------------


def calibrate(work: Path, server: LlamaServer, args: argparse.Namespace) -> list[float]:
    """Seconds of each of 4 documents sent straight to the server (no proxy), one at a time. The first
    calls after the server starts are several times slower (warm-up), so callers use the fastest."""
    make_docs(work / "calib", 4, random.Random(args.seed + 1), prefix="cal")
    one = argparse.Namespace(**{**vars(args), "concurrency": 1})
    summary, _, error, _ = timed_run(job_spec(work, server.url, one, 300.0, "calib/*.txt", "calib.jsonl"))
    if summary is None or summary.ok != 4:
        raise RuntimeError(f"calibration against the bare server failed: {error or summary and summary.failures}")
    return [r["duration_s"] for r in sorted(read_lines(work / "calib.jsonl"), key=lambda r: r["document"])]


def client_timeout(per_doc: float, concurrency: int) -> float:
    """Well above a normal reply's wait (``concurrency`` calls queue at the one-at-a-time server, and
    the machine is shared), so that timeouts come from the proxy, not from load."""
    return float(min(120, max(30, round(6 * concurrency * per_doc))))


def soak(work: Path, server: LlamaServer, args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    calib = calibrate(work, server, args)
    per_doc = min(calib)
    timeout_s = args.timeout or client_timeout(per_doc, args.concurrency)
    planted = make_docs(work / "docs", args.docs, random.Random(args.seed))
    docs = set(planted)
    print(f"calibration: {', '.join(f'{s:.1f}' for s in calib)} s per document (fastest {per_doc:.1f} s); "
          f"client timeout {timeout_s:g} s; run 1 ≈ {args.docs * per_doc * (1 + args.fault_rate) / 60:.0f}+ min",
          flush=True)
    proxy = FaultProxy(server.port, args.fault_rate, args.seed, timeout_s + 2.0, args.fault_probes)
    thread = threading.Thread(target=proxy.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        spec = job_spec(work, f"http://127.0.0.1:{proxy.port}/v1", args, timeout_s, "docs/*.txt", "soak.jsonl")
        out = spec.output_path()
        fig: dict[str, Any] = {"docs": args.docs, "fault_rate": args.fault_rate, "concurrency": args.concurrency,
                               "seed": args.seed, "retries": args.retries, "backend_retries": args.backend_retries,
                               "fault_probes": args.fault_probes,
                               "client_timeout_s": timeout_s, "calibration_s": [round(s, 1) for s in calib]}
        _, t1, e1, n1 = timed_run(spec)
        p1 = proxy.phase()
        r1 = read_lines(out)
        shutil.copyfile(out, work / "soak.run1.jsonl")  # the resume rewrites the file: keep run 1's for inspection
        c1 = check_records(r1, docs)
        st1 = _status(spec)
        ok_before = {Path(r["document"]).name: json.dumps(r, sort_keys=True) for r in r1 if r["status"] == "ok"}
        fig["run1"] = {**c1, "seconds": round(t1, 1), "stopped_by": e1, "notices": dict(n1), "proxy": _brief(p1),
                       "state": st1, "failed_by_cause": dict(Counter(cause(r["error"]) for r in r1 if r["status"] == "failed")),
                       "attempts": dict(Counter(r["attempts"] for r in r1)),
                       "errors": dict(Counter(r["error"] for r in r1 if r["status"] == "failed").most_common(5))}

        proxy.rate = 0.0
        proxy.reset()
        s2, t2, e2, _ = timed_run(spec)
        p2 = proxy.phase()
        fig["rerun"] = {"ran": s2.ran if s2 else None, "seconds": round(t2, 1), "stopped_by": e2, "chat_calls": p2["chat_calls"]}

        proxy.reset()
        s3, t3, e3, n3 = timed_run(spec, retry_failed=True)
        p3 = proxy.phase()
        r3 = read_lines(out)
        c3 = check_records(r3, docs)
        after = {Path(r["document"]).name: json.dumps(r, sort_keys=True) for r in r3}
        redone = sum(n for d, n in p3["calls_by_doc"].items() if d in ok_before)
        fig["resume"] = {**c3, "seconds": round(t3, 1), "stopped_by": e3, "ran": s3.ran if s3 else None,
                         "notices": dict(n3), "proxy": _brief(p3), "state": _status(spec),
                         "calls_for_docs_ok_before": redone,
                         "ok_lines_unchanged": sum(after.get(d) == line for d, line in ok_before.items()),
                         "ok_before": len(ok_before),
                         "failed_by_cause": dict(Counter(cause(r["error"]) for r in r3 if r["status"] == "failed")),
                         "errors": dict(Counter(r["error"] for r in r3 if r["status"] == "failed").most_common(5))}
        right, total = correctness(r3, planted, "city")
        names, _ = correctness(r3, planted, "name")
        fig["correct"] = {"city": right, "name": names, "ok": total}
    finally:
        proxy.stopping.set()
        proxy.shutdown()
        proxy.server_close()
    return fig, invariants(fig, args)


def _status(spec) -> dict[str, int]:
    from agentlong.batch import status

    st = status(spec)
    return {k: st.get(k, 0) for k in ("total", "ok", "failed", "pending")}


def _brief(phase: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in phase.items() if k != "calls_by_doc"}


def invariants(fig: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool]]:
    r1, rr, r3, n = fig["run1"], fig["rerun"], fig["resume"], fig["docs"]
    faults = sum(r1["proxy"]["faults"].values())
    return [
        ("run 1 ended (no job-level stop)", r1["stopped_by"] is None),
        ("run 1: one record per document, ok or failed", r1["lines"] == n and not r1["missing"] and not r1["unknown"]
         and r1["other_status"] == 0 and r1["ok"] + r1["failed"] == n),
        ("run 1: no document recorded twice", r1["duplicates"] == 0 and r1["duplicate_ok"] == 0),
        ("run 1: JSONL agrees with the state database", r1["state"] == {"total": n, "ok": r1["ok"],
                                                                     "failed": r1["failed"], "pending": 0}),
        ("faults were injected", faults > 0 or args.fault_rate == 0),
        ("plain re-run redoes nothing (0 units, 0 model calls)", rr["stopped_by"] is None and rr["ran"] == 0
         and rr["chat_calls"] == 0),
        ("resume ended (no job-level stop)", r3["stopped_by"] is None),
        ("resume: every document ok, one record each", r3["lines"] == n and r3["ok"] == n and not r3["missing"]),
        ("resume: no document recorded twice", r3["duplicates"] == 0),
        ("resume: ran exactly the failed documents", r3["ran"] == r1["failed"]),
        ("resume: no model call for a document already ok", r3["calls_for_docs_ok_before"] == 0),
        ("resume: ok lines of run 1 unchanged", r3["ok_lines_unchanged"] == r3["ok_before"]),
        ("resume: state database all ok", r3["state"] == {"total": n, "ok": n, "failed": 0, "pending": 0}),
        ("every model call carried the schema (none fell back to plain json_object)",
         not r1["proxy"]["formats"].get("json_object") and not r3["proxy"]["formats"].get("json_object")),
    ]


def _kv(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—"


def pct(a: int, b: int) -> str:
    return f"{a / b:.1%}" if b else "—"


def report(fig: dict[str, Any], checks: list[tuple[str, bool]], wall: float) -> None:
    r1, rr, r3, c = fig["run1"], fig["rerun"], fig["resume"], fig["correct"]
    f = r1["proxy"]["faults"]
    total_faults = sum(f.values())
    calls = r1["proxy"]["chat_calls"] + (r1["proxy"]["probe_calls"] if fig["fault_probes"] else 0)
    rows = [
        ("documents", fig["docs"]),
        ("settings", (f"fault rate {fig['fault_rate']:.0%}, concurrency {fig['concurrency']}, seed {fig['seed']}, "
                      f"retries {fig['retries']} (job) + {fig['backend_retries']} (backend), "
                      f"client timeout {fig['client_timeout_s']:g} s")),
        ("calibration: s/doc, bare server, c=1", ", ".join(f"{s:g}" for s in fig["calibration_s"])),
        ("run 1: model calls at the proxy", (f"{r1['proxy']['chat_calls']} (+{r1['proxy']['probe_calls']} tokenizer/probe "
                                             f"requests{', faulted too' if fig['fault_probes'] else ''})")),
        ("run 1: faults injected", f"{total_faults} = {pct(total_faults, calls)} of calls: "
                                   + ", ".join(f"{k} {f.get(k, 0)}" for k in KINDS)),
        ("run 1: ok / failed / pending", f"{r1['ok']} / {r1['failed']} / {r1['state']['pending']}"),
        ("run 1: failed by cause", _kv(r1["failed_by_cause"])),
        ("run 1: records with attempts=1/2/…", ", ".join(f"{k}: {v}" for k, v in sorted(r1["attempts"].items()))),
        ("run 1: job-level retries (notices)", r1["notices"].get("retry", 0)),
        ("run 1: duplicate lines / duplicate ok", f"{r1['duplicates']} / {r1['duplicate_ok']}"),
        ("run 1: unplanned client timeouts (reply ready, client gone)", r1["proxy"]["client_gone"]),
        ("run 1: formats asked / upstream statuses", f"{_kv(r1['proxy']['formats'])} / {_kv(r1['proxy']['upstream_status'])}"),
        ("run 1: wall time", f"{r1['seconds']} s ({fig['docs'] / max(r1['seconds'], 1e-9):.2f} docs/s)"),
        ("plain re-run: units run / model calls / wall", f"{rr['ran']} / {rr['chat_calls']} / {rr['seconds']} s"),
        ("resume (retry_failed, no faults): ok / failed", f"{r3['ok']} / {r3['failed']}"),
        ("resume: units run / model calls", f"{r3['ran']} / {r3['proxy']['chat_calls']}"),
        ("resume: calls re-done for docs already ok", r3["calls_for_docs_ok_before"]),
        ("resume: formats asked / upstream statuses", f"{_kv(r3['proxy']['formats'])} / {_kv(r3['proxy']['upstream_status'])}"),
        ("resume: job-level retries (notices)", r3["notices"].get("retry", 0)),
        ("resume: ok lines of run 1 unchanged", f"{r3['ok_lines_unchanged']} / {r3['ok_before']}"),
        ("resume: duplicate lines", r3["duplicates"]),
        ("resume: unplanned client timeouts", r3["proxy"]["client_gone"]),
        ("resume: wall time", f"{r3['seconds']} s"),
        ("city extracted exactly", f"{c['city']} / {c['ok']} ({pct(c['city'], c['ok'])})"),
        ("name extracted exactly", f"{c['name']} / {c['ok']} ({pct(c['name'], c['ok'])})"),
        ("whole soak wall time (server start included)", f"{wall:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for label, error in (("run 1", r1["stopped_by"]), ("re-run", rr["stopped_by"]), ("resume", r3["stopped_by"])):
        if error:
            print(f"{label} stopped: {error}")
    for label, errors in (("run 1", r1["errors"]), ("resume", r3["errors"])):
        for error, n in errors.items():
            print(f"{label} failure ×{n}: {error[:220]}")
    print()
    for name, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="documents (default 200)")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of model calls given a fault (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=3, help="documents in flight (default 3)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the documents and of the fault draws (default 7)")
    parser.add_argument("--retries", type=int, default=1, help="job retries per document (spec `retries`, default 1)")
    parser.add_argument("--backend-retries", type=int, default=0, help="OpenAI backend max_retries per call (default 0)")
    parser.add_argument("--timeout", type=float, default=None, help="client timeout in s (default: from calibration)")
    parser.add_argument("--fault-probes", action="store_true", help="fault tokenizer/probe requests too, not only model calls")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if not 0 <= args.fault_rate < 1 or args.docs < 1 or args.docs > len(FIRST) * len(LAST):
        parser.error(f"--fault-rate must be in [0, 1) and --docs in 1..{len(FIRST) * len(LAST)}")

    started = time.perf_counter()
    from agentlong.backends.models import DEFAULT_LOCAL, pull

    model = pull(DEFAULT_LOCAL)  # the user's models folder, before AGENTLONG_HOME moves to the temp folder
    work = Path(tempfile.mkdtemp(prefix="agentlong-fault-soak-"))
    os.environ["AGENTLONG_HOME"] = str(work / "home")
    print(f"work folder: {work}\nmodel: {model}", flush=True)
    server = LlamaServer(model, work / "llama_server.log")
    try:
        server.wait_ready()
        fig, checks = soak(work, server, args)
    finally:
        server.stop()
    report(fig, checks, time.perf_counter() - started)
    if args.json:
        print(json.dumps({**fig, "checks": dict(checks)}, indent=2, default=str))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
