"""Batch throughput against an OpenAI-compatible server that answers after a fixed delay.

Runs the same extract job over N generated documents with concurrency 1, 8, 32 (local threads)
and 32 on a local Ray cluster, side by side in one process, and compares each to the ideal
time ``calls x delay / concurrency``. Goal: >= 80% of ideal at concurrency 32.

    python benchmarks/batch.py                       # 200 documents, 0.5 s per call
    python benchmarks/batch.py --docs 50 --delay 0.2 --concurrency 1,8 --no-ray

The server is a ThreadingHTTPServer on 127.0.0.1 in its own process (no model): it measures the
job machinery (scheduling, state commits with fsync, JSONL appends, the OpenAI client), not a
model. A baseline row calls the bare openai SDK from a thread pool at the top concurrency, so the
job's cost shows against what this machine can do at all. Ray cluster start-up is reported
separately and not counted; the Ray run's time does include starting its worker actors.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agentlong.batch import parse_spec, run
from agentlong.events import Progress

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


class DelayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 32+ simultaneous connects must not hit the default backlog of 5

    def __init__(self, delay: float, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), DelayHandler)
        self.delay = delay
        self.calls = 0
        self.peak = 0
        self.active = 0
        self.lock = threading.Lock()


class DelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)
    server: DelayServer

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        srv = self.server
        if self.path == "/stats":
            with srv.lock:
                stats = {"calls": srv.calls, "peak": srv.peak}
                srv.peak = 0
            return self._send(200, json.dumps(stats).encode())
        self._send(404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self.path.endswith("/chat/completions"):
            return self._send(404, b"{}")
        srv = self.server
        with srv.lock:
            srv.calls += 1
            srv.active += 1
            srv.peak = max(srv.peak, srv.active)
        time.sleep(srv.delay)  # the simulated model latency
        with srv.lock:
            srv.active -= 1
        model = json.loads(body or b"{}").get("model", "bench")
        payload = json.dumps({
            "id": "bench", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps({"title": "Quarterly report"})}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 10, "total_tokens": 130},
        }).encode()
        self._send(200, payload)


def _serve(delay: float, port: int) -> None:
    DelayServer(delay, port).serve_forever()


class ServerProcess:
    """The delay server in its own process, so it does not compete with the job for the GIL."""

    def __init__(self, delay: float) -> None:
        import multiprocessing
        import socket
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.delay = delay
        self.proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(delay, self.port), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or not self.proc.is_alive():
                    raise RuntimeError("the delay server did not start")
                time.sleep(0.05)

    def stats(self) -> dict:
        import urllib.request

        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5).read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(timeout=10)


def make_docs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i:04d}.txt").write_text(f"Quarterly report {i}. Sales rose by {i % 17} percent.\n")


def one_run(work: Path, server: ServerProcess, docs: int, concurrency: int, executor: str) -> dict:
    label = f"{executor}-c{concurrency}-n{docs}"
    spec = parse_spec({
        "inputs": [f"docs{docs}/*.txt"], "output": f"{label}.jsonl", "model": f"openai:bench@{server.url}",
        "concurrency": concurrency, "executor": executor, "retries": 0,
        "settings": {"openai": {"api_key": "sk-bench", "max_retries": 0, "context_window": 4096}},
        "tasks": [{"type": "extract", "schema": SCHEMA, "max_tokens": 32}],
    }, "bench.json", work)
    calls_before = server.stats()["calls"]
    first: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, Progress) and event.done and not first:
            first.append(time.perf_counter())

    started, cpu = time.perf_counter(), time.process_time()
    summary = run(spec, on_event=on_event)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = server.stats()
    calls = stats["calls"] - calls_before
    ideal = calls * server.delay / concurrency
    after = seconds - first[0] + started if first else None  # seconds from the first result to the end
    return {"run": label, "docs": docs, "ok": summary.ok, "failed": summary.failed, "calls": calls,
            "peak_in_flight": stats["peak"], "seconds": round(seconds, 2), "docs_per_s": round(docs / seconds, 2),
            "ideal_s": round(ideal, 2), "of_ideal": round(ideal / seconds, 3),
            "first_result_s": round(first[0] - started, 2) if first else None,
            "driver_cpu_ms_per_doc": round(cpu / docs * 1000, 2),
            "of_ideal_after_first": round((ideal - server.delay) / after, 3) if after else None}


def raw_run(server: ServerProcess, docs: int, concurrency: int) -> dict:
    """Baseline: the bare openai SDK from a thread pool, same server, no job machinery."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    client = OpenAI(base_url=server.url, api_key="sk-bench", max_retries=0)
    calls_before = server.stats()["calls"]

    def one(i: int) -> str:
        reply = client.chat.completions.create(
            model="bench", max_tokens=32, temperature=0.0, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": f"Quarterly report {i}. Sales rose by {i % 17} percent."}])
        return reply.choices[0].message.content or ""

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        ok = sum(bool(text) for text in pool.map(one, range(docs)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = server.stats()
    calls = stats["calls"] - calls_before
    ideal = calls * server.delay / concurrency
    return {"run": f"raw-sdk-c{concurrency}-n{docs}", "docs": docs, "ok": ok, "failed": docs - ok, "calls": calls,
            "peak_in_flight": stats["peak"], "seconds": round(seconds, 2), "docs_per_s": round(docs / seconds, 2),
            "ideal_s": round(ideal, 2), "of_ideal": round(ideal / seconds, 3), "first_result_s": None,
            "driver_cpu_ms_per_doc": round(cpu / docs * 1000, 2), "of_ideal_after_first": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="documents per run (default 200)")
    parser.add_argument("--docs-c1", type=int, default=None, help="documents for the concurrency-1 run (default --docs)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the server takes per call (default 0.5)")
    parser.add_argument("--concurrency", default="1,8,32", help="local-thread concurrency levels (default 1,8,32)")
    parser.add_argument("--ray-concurrency", type=int, default=32, help="concurrency of the Ray run (default 32)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--no-raw", action="store_true", help="skip the bare-SDK baseline at the top concurrency")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()

    os.environ.setdefault("AGENTLONG_HOME", tempfile.mkdtemp(prefix="agentlong-bench-home-"))
    work = Path(tempfile.mkdtemp(prefix="agentlong-bench-batch-"))
    server = ServerProcess(args.delay)
    import openai  # noqa: F401  - a one-time import cost of the process, not of any run
    rows = []
    try:
        for c in [int(x) for x in args.concurrency.split(",") if x]:
            n = args.docs_c1 if (c == 1 and args.docs_c1) else args.docs
            make_docs(work / f"docs{n}", n)
            rows.append(one_run(work, server, n, c, "local"))
            _print_row(rows[-1])
        if not args.no_raw:
            top = max(int(x) for x in args.concurrency.split(",") if x)
            rows.append(raw_run(server, args.docs, top))
            _print_row(rows[-1])
        if not args.no_ray:
            import ray

            make_docs(work / f"docs{args.docs}", args.docs)
            t0 = time.perf_counter()
            ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                     logging_level="warning", log_to_driver=False)
            print(f"ray start-up: {time.perf_counter() - t0:.1f}s (not counted)")
            try:
                rows.append(one_run(work, server, args.docs, args.ray_concurrency, "ray"))
                _print_row(rows[-1])
            finally:
                ray.shutdown()
    finally:
        server.stop()
    load = os.getloadavg()[0]
    print(f"\ndelay {args.delay}s per call, {os.cpu_count()} CPUs, load average {load:.1f}; "
          "of_ideal = (calls x delay / concurrency) / seconds; 1st res = seconds to the first result;\n"
          "after 1st = (ideal - delay) / (seconds after the first result): throughput once workers are up;\n"
          "cpu ms/doc = CPU time of this process per document (Ray: the driver only)")
    print(f"{'run':<22}{'docs':>6}{'ok':>6}{'calls':>7}{'peak':>6}{'seconds':>9}{'1st res':>8}{'docs/s':>8}"
          f"{'ideal s':>9}{'of ideal':>10}{'after 1st':>10}{'cpu ms/doc':>11}")
    for r in rows:
        print(f"{r['run']:<22}{r['docs']:>6}{r['ok']:>6}{r['calls']:>7}{r['peak_in_flight']:>6}{r['seconds']:>9.2f}"
              f"{r['first_result_s'] or 0:>8.2f}{r['docs_per_s']:>8.2f}{r['ideal_s']:>9.2f}{r['of_ideal']:>10.1%}"
              f"{r['of_ideal_after_first'] or 0:>10.1%}{r['driver_cpu_ms_per_doc']:>11.2f}")
    base = rows[0]
    for r in rows[1:]:
        print(f"speed-up {r['run']} vs {base['run']}: {r['docs_per_s'] / base['docs_per_s']:.1f}x")
    if args.json:
        print(json.dumps(rows, indent=2))


def _print_row(row: dict) -> None:
    print(f"{row['run']}: {row['seconds']}s, {row['of_ideal']:.1%} of ideal ({row['failed']} failed)", flush=True)


if __name__ == "__main__":
    main()
