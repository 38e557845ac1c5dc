"""kill -9 a running `agentlong batch run` (slow fake model) at several points, resume, and check that
every document ends with exactly one record and no finished document was redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentlong.batch import status

DOCS = 14
WAIT_S = 120


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def start(spec: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agentlong.cli.main", "-q", "batch", "run", str(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "AGENTLONG_DEBUG": ""})


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen) -> None:
    """Poll (bounded) until the results file has ``n`` lines; fail if the job ends first."""
    deadline = time.monotonic() + WAIT_S
    while count_lines(path) < n:
        assert proc.poll() is None, f"the job ended early: {proc.communicate()[1].decode()[-500:]}"
        assert time.monotonic() < deadline, f"no {n} results after {WAIT_S}s"
        time.sleep(0.02)


def test_sigkill_then_resume_gives_exactly_one_record_per_document(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(DOCS):
        (docs / f"d{i:02d}.txt").write_text(f"Note {i}: the meeting is in room {100 + i}.\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "inputs: [docs/*.txt]\nmodel: fake\nconcurrency: 3\noutput: out.jsonl\n"
        "fake: {mode: keyed, default: {room: 'room 1'}, delay_s: 0.5}\n"
        "tasks:\n  - type: extract\n    schema: {type: object, properties: {room: {type: string}}}\n")
    out = tmp_path / "out.jsonl"
    finished_before_kill: dict[str, str] = {}
    for target in (3, 8):  # kill twice, at different points
        proc = start(spec)
        wait_for_lines(out, target, proc)
        assert status(spec)["running_pid"] == proc.pid  # `batch status` sees the live job
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        for line in out.read_bytes().split(b"\n"):
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line is allowed here; resume must cut it
                finished_before_kill[rec["id"]] = rec["finished_at"]
        assert count_lines(out) < DOCS
    done = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "-q", "batch", "run", str(spec), "--json"],
                          capture_output=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    summary = json.loads(done.stdout)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == DOCS and summary["ok"] == DOCS
    assert sorted(r["document"] for r in records) == [f"docs/d{i:02d}.txt" for i in range(DOCS)]
    assert len({r["id"] for r in records}) == DOCS
    assert all(r["status"] == "ok" for r in records)
    # finished work was not redone: results seen before a kill kept their original finish time
    kept = {r["id"]: r["finished_at"] for r in records}
    assert all(kept[uid] == when for uid, when in finished_before_kill.items())
    assert summary["done_before"] >= len(finished_before_kill)
