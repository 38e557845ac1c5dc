"""Durable job state: a SQLite database beside the results JSONL, a lock file, and their reconciliation.

Exactly-once protocol (the driver is the only writer, guarded by a lock file):

1. a finished unit is committed in SQLite (status + the exact JSONL line), ``synchronous=FULL``;
2. then its line is appended to the JSONL and fsync'ed; a failed append is truncated back.

A kill between 1 and 2 leaves a unit done in the database but missing from the file; a kill
inside 2 leaves a torn last line. On start, ``reconcile`` truncates a torn line, adopts complete
lines the database does not know (a lost or reset database), re-appends done units missing from
the file, and rewrites the file from the database if it holds duplicates or garbage. So after any
kill the same command yields one line per unit, and finished units are never redone.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> st = JobState(d / "r.state.sqlite")
>>> st.add_units([{"id": "u1", "document": "a.txt", "path": "/a.txt", "task": "summarize", "question": None}])
1
>>> st.finish([{"id": "u1", "status": "ok", "attempts": 1, "usage": {}}])
['u1']
>>> st.counts()["ok"]
1
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..locks import ProcessLock

__all__ = ["JobState", "ResultsFile", "Reconciled", "state_paths", "read_status", "record_line"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY, seq INTEGER, document TEXT, path TEXT, task TEXT, question TEXT,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER DEFAULT 0, error TEXT, line TEXT,
    prompt_tokens INTEGER DEFAULT 0, completion_tokens INTEGER DEFAULT 0, calls INTEGER DEFAULT 0,
    cost_usd REAL, duration_s REAL DEFAULT 0, done_seq INTEGER, updated_at TEXT
);
CREATE INDEX IF NOT EXISTS units_status ON units(status);
"""
RESUME_HINT = "free disk space or fix the output folder, then run the same command again: finished work is kept"


def state_paths(output: Path) -> tuple[Path, Path]:
    """(state database, lock file) beside the results file."""
    return output.with_name(output.name + ".state.sqlite"), output.with_name(output.name + ".lock")


def record_line(record: dict[str, Any]) -> str:
    """The JSONL line of a record (no newline)."""
    return json.dumps(record, ensure_ascii=False, default=str)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class JobState:
    """The units of a job and their status, in SQLite (WAL, fsync on every commit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"the job state {path} is unreadable ({exc})",
                             hint="move it aside and run again with --restart, or use a new output path") from exc

    def close(self) -> None:
        self.db.close()

    # -- meta ------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, **values: str) -> None:
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    # -- units -----------------------------------------------------------------
    def add_units(self, units: list[dict[str, Any]]) -> int:
        """Insert units not seen before (status pending); returns how many were new."""
        start = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM units").fetchone()[0]
        rows = [(u["id"], start + i + 1, u["document"], u["path"], u["task"], u.get("question"), _now())
                for i, u in enumerate(units)]
        with self._tx():
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO units (id, seq, document, path, task, question, updated_at) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return self.db.total_changes - before

    def pending_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM units WHERE status='pending' ORDER BY seq")]

    def drop_pending_except(self, keep: set[str]) -> int:
        """Forget unstarted units no longer in the plan (e.g. a file removed from an input folder)."""
        gone = [(uid,) for uid in self.pending_ids() if uid not in keep]
        with self._tx():
            self.db.executemany("DELETE FROM units WHERE id=? AND status='pending'", gone)
        return len(gone)

    def reset_failed(self) -> int:
        """Failed units go back to pending (``--retry-failed``); the caller rewrites the file."""
        with self._tx():
            return self.db.execute("UPDATE units SET status='pending', line=NULL, done_seq=NULL, error=NULL "
                                   "WHERE status='failed'").rowcount

    def finish(self, records: list[dict[str, Any]]) -> list[str]:
        """Commit finished units in one transaction; returns the ids that were pending (now done)."""
        done: list[str] = []
        try:
            with self._tx():
                seq = self.db.execute("SELECT COALESCE(MAX(done_seq), 0) FROM units").fetchone()[0]
                for rec in records:
                    seq += 1
                    if self._finish_one(rec, seq):
                        done.append(rec["id"])
        except sqlite3.OperationalError as exc:
            raise InputError(f"could not record progress in {self.path}: {exc}", hint=RESUME_HINT) from exc
        return done

    def _finish_one(self, rec: dict[str, Any], seq: int) -> bool:
        usage = rec.get("usage") or {}
        cur = self.db.execute(
            "UPDATE units SET status=?, attempts=?, error=?, line=?, prompt_tokens=?, completion_tokens=?, calls=?, "
            "cost_usd=?, duration_s=?, done_seq=?, updated_at=? WHERE id=? AND status='pending'",
            (rec["status"], rec.get("attempts", 0), rec.get("error"), record_line(rec),
             usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), usage.get("calls", 0),
             usage.get("cost_usd"), rec.get("duration_s", 0.0), seq, _now(), rec["id"]))
        return cur.rowcount == 1

    def adopt(self, records: list[dict[str, Any]]) -> int:
        """Mark units done from complete JSONL lines the database lost; unknown units are inserted."""
        adopted = 0
        with self._tx():
            seq = self.db.execute("SELECT COALESCE(MAX(done_seq), 0) FROM units").fetchone()[0]
            for rec in records:
                self.db.execute("INSERT OR IGNORE INTO units (id, seq, document, path, task, question) VALUES "
                                "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM units), ?, ?, ?, ?)",
                                (rec["id"], rec.get("document", ""), rec.get("path", ""), rec.get("task", ""),
                                 rec.get("question")))
                seq += 1
                adopted += self._finish_one(rec, seq)
        return adopted

    def done_lines(self) -> dict[str, str]:
        """id -> JSONL line of every finished unit, in finishing order."""
        rows = self.db.execute("SELECT id, line FROM units WHERE status!='pending' ORDER BY done_seq")
        return {uid: line for uid, line in rows}

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.done_lines().values()]

    def counts(self) -> dict[str, Any]:
        return _counts(self.db)

    def _tx(self):
        return _Tx(self.db)


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, exc, tb) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def _counts(db: sqlite3.Connection) -> dict[str, Any]:
    out: dict[str, Any] = {"pending": 0, "ok": 0, "failed": 0}
    for status, n in db.execute("SELECT status, COUNT(*) FROM units GROUP BY status"):
        out[status] = n
    row = db.execute("SELECT COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), COALESCE(SUM(calls),0), "
                     "SUM(cost_usd), COALESCE(SUM(duration_s),0), MAX(updated_at) FROM units").fetchone()
    out.update(total=out["pending"] + out["ok"] + out["failed"], prompt_tokens=row[0], completion_tokens=row[1],
               calls=row[2], cost_usd=row[3], unit_seconds=round(row[4], 3), updated_at=row[5])
    return out


def read_status(db_path: Path, lock_path: Path, failures: int = 10) -> dict[str, Any]:
    """Counts, per-task counts, recent failures and whether a process is running the job (read-only)."""
    if not db_path.exists():
        return {"exists": False}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        out = _counts(db)
        out["tasks"] = {t: {"ok": ok, "failed": bad, "pending": pend, "tokens": tok, "cost_usd": cost}
                        for t, ok, bad, pend, tok, cost in db.execute(
            "SELECT task, SUM(status='ok'), SUM(status='failed'), SUM(status='pending'), "
            "SUM(prompt_tokens + completion_tokens), SUM(cost_usd) FROM units GROUP BY task ORDER BY MIN(seq)")}
        out["failures"] = [{"document": d, "task": t, "question": q, "error": e} for d, t, q, e in db.execute(
            "SELECT document, task, question, error FROM units WHERE status='failed' ORDER BY done_seq LIMIT ?", (failures,))]
        out["started_at"] = (db.execute("SELECT value FROM meta WHERE key='created_at'").fetchone() or [None])[0]
    finally:
        db.close()
    out["exists"] = True
    out["running_pid"] = ProcessLock.holder(lock_path)
    return out


# -- the results file ----------------------------------------------------------------


@dataclass
class Reconciled:
    truncated_bytes: int = 0
    adopted: int = 0
    appended: int = 0
    rewritten: bool = False


class ResultsFile:
    """Append-only JSONL with fsync; an append either lands whole or is truncated back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        existed = path.exists()
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot open {path} for writing: {exc.strerror}", hint="check the `output:` path") from exc
        if not existed:
            _fsync_dir(path.parent)

    def close(self) -> None:
        os.close(self.fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def append(self, lines: list[str]) -> None:
        """Durably append ``lines``; on any OSError the file is cut back and the error raised as one line."""
        if not lines:
            return
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        size = os.fstat(self.fd).st_size
        try:
            self._write(data)
            os.fsync(self.fd)
        except OSError as exc:
            self._cut(size)
            what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise InputError(f"could not write results to {self.path}: {what}", hint=RESUME_HINT) from exc

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
            os.fsync(self.fd)
        except OSError:  # the next start truncates the torn line anyway
            pass

    def reconcile(self, state: JobState) -> Reconciled:
        """Make the file hold exactly one line per finished unit (see the module docstring)."""
        report = Reconciled()
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            report.truncated_bytes = len(data) - cut
            self._cut(cut)
        done = state.done_lines()
        seen: set[str] = set()
        lost: list[dict[str, Any]] = []
        for raw in data[:cut].splitlines():
            rec = _parse(raw)
            if rec is None or rec["id"] in seen:
                report.rewritten = True
                continue
            seen.add(rec["id"])
            if rec["id"] not in done:
                lost.append(rec)
        if lost:
            report.adopted = state.adopt(lost)
            done = state.done_lines()
        if report.rewritten:
            self._rewrite(list(done.values()))
            return report
        missing = [line for uid, line in done.items() if uid not in seen]
        self.append(missing)
        report.appended = len(missing)
        return report

    def _rewrite(self, lines: list[str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(f"could not rewrite {self.path}: {exc.strerror}", hint=RESUME_HINT) from exc
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def rewrite_from(self, state: JobState) -> None:
        self._rewrite(list(state.done_lines().values()))


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or rec.get("status") not in ("ok", "failed"):
        return None
    return rec


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
