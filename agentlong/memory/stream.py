"""The memory stream: every chat turn and note of every session, persisted in SQLite.

One database, ``$AGENTLONG_HOME/sessions.sqlite``, holds all sessions. A turn is one exchange
(user message + assistant answer) with an optional summary; failed and interrupted turns are kept
(with their status) but never used as memory. A file that is not a readable SQLite database is
renamed aside (never deleted) and a fresh one is started when ``recover=True``.

>>> import tempfile, pathlib
>>> db = SessionDB(pathlib.Path(tempfile.mkdtemp()) / "sessions.sqlite")
>>> _ = db.ensure_session("demo", model="fake")
>>> db.add_turn("demo", user="My cat is Pixel.", assistant="Nice name!").n
1
>>> [t.user for t in db.turns("demo")]
['My cat is Pixel.']
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import InputError, StoreError

__all__ = ["SessionDB", "Turn", "SessionInfo", "valid_session_name", "sessions_path"]

SCHEMA_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    assistant TEXT NOT NULL,
    summary TEXT,
    status TEXT NOT NULL,
    embedded TEXT,
    created_at TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns(session, n);
"""

Status = Literal["ok", "failed", "interrupted"]
Kind = Literal["turn", "note"]


class Turn(BaseModel):
    """One memory-stream entry: an exchange (``kind="turn"``) or a note from a long run."""

    id: int
    session: str
    n: int = Field(description="1-based position in the session's stream")
    kind: Kind = "turn"
    user: str
    assistant: str
    summary: str | None = None
    status: Status = "ok"
    embedded: str | None = Field(None, description="embedder whose vector of this turn is in the store")
    created_at: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    def raw_text(self) -> str:
        """The exchange as plain text (what is embedded and injected in raw form)."""
        if self.kind == "note":
            return f"Note ({self.user}): {self.assistant}" if self.user else f"Note: {self.assistant}"
        return f"User: {self.user}\nAssistant: {self.assistant}"

    @property
    def usable(self) -> bool:
        return self.status == "ok"


class SessionInfo(BaseModel):
    """A row of ``Chat.list_sessions``."""

    name: str
    created_at: str
    updated_at: str
    model: str = ""
    turns: int = 0
    state: dict[str, Any] = Field(default_factory=dict)


def sessions_path(home: Path) -> Path:
    return home / "sessions.sqlite"


def valid_session_name(name: str) -> str:
    """``name`` if it is a usable session name, else InputError."""
    if not NAME_RE.match(name or ""):
        raise InputError(f"invalid session name {name!r}",
                         hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SessionDB:
    """SQLite access to sessions and their memory streams (thread-safe, one connection)."""

    def __init__(self, path: Path, *, recover: bool = False) -> None:
        self.path = Path(path)
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if not recover:
                raise StoreError(f"session database {self.path} is corrupt ({exc})",
                                 hint="move the file aside, or start the chat again to have it renamed and a fresh one made") from exc
            self.recovered_from = self._move_aside()
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(f"integrity check failed: {rows[0][0] if rows else 'no answer'}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"session database {self.path} was written by a newer agentlong (schema {version})",
                                 hint="upgrade agentlong, or set AGENTLONG_HOME to another folder")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        i = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{i}")
            i += 1
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):  # stale journals belong to the corrupt file
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        return target

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _exec(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                with self._conn:  # one transaction per statement group
                    return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"session database {self.path}: {exc}",
                                 hint="if the file is damaged, move it aside; agentlong chat starts a fresh one") from exc

    # -- sessions --------------------------------------------------------------
    def ensure_session(self, name: str, *, model: str = "") -> bool:
        """Create session ``name`` if missing. True when it already existed."""
        valid_session_name(name)
        if self._exec("SELECT 1 FROM sessions WHERE name=?", (name,)):
            return True
        now = _now()
        self._exec("INSERT INTO sessions(name, created_at, updated_at, model) VALUES (?,?,?,?)", (name, now, now, model))
        return False

    def exists(self, name: str) -> bool:
        return bool(self._exec("SELECT 1 FROM sessions WHERE name=?", (name,)))

    def sessions(self) -> list[SessionInfo]:
        rows = self._exec(
            "SELECT s.name, s.created_at, s.updated_at, s.model, s.state, "
            "(SELECT COUNT(*) FROM turns t WHERE t.session = s.name AND t.kind = 'turn') "
            "FROM sessions s ORDER BY s.updated_at DESC, s.name")
        return [SessionInfo(name=r[0], created_at=r[1], updated_at=r[2], model=r[3], state=json.loads(r[4] or "{}"),
                            turns=r[5]) for r in rows]

    def delete_session(self, name: str) -> None:
        if not self.exists(name):
            raise InputError(f"no chat session named {name!r}", hint="list sessions with: agentlong chat --list")
        self._exec("DELETE FROM turns WHERE session=?", (name,))
        self._exec("DELETE FROM sessions WHERE name=?", (name,))

    def get_state(self, name: str) -> dict[str, Any]:
        rows = self._exec("SELECT state FROM sessions WHERE name=?", (name,))
        return json.loads(rows[0][0] or "{}") if rows else {}

    def set_state(self, name: str, state: dict[str, Any], *, model: str | None = None) -> None:
        blob = json.dumps(state, default=str)
        if model is None:
            self._exec("UPDATE sessions SET state=?, updated_at=? WHERE name=?", (blob, _now(), name))
        else:
            self._exec("UPDATE sessions SET state=?, model=?, updated_at=? WHERE name=?", (blob, model, _now(), name))

    # -- turns -----------------------------------------------------------------
    def add_turn(self, session: str, *, user: str, assistant: str, kind: Kind = "turn", status: Status = "ok",
                 summary: str | None = None, meta: dict[str, Any] | None = None) -> Turn:
        """Append an entry to ``session``'s stream and return it."""
        now = _now()
        with self._lock:
            rows = self._exec("SELECT COALESCE(MAX(n), 0) FROM turns WHERE session=?", (session,))
            n = rows[0][0] + 1
            blob = json.dumps(meta or {}, default=str)
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO turns(session, n, kind, user, assistant, summary, status, created_at, meta) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", (session, n, kind, user, assistant, summary, status, now, blob))
                self._conn.execute("UPDATE sessions SET updated_at=? WHERE name=?", (now, session))
            return Turn(id=cur.lastrowid, session=session, n=n, kind=kind, user=user, assistant=assistant,
                        summary=summary, status=status, created_at=now, meta=meta or {})

    def turns(self, session: str, *, usable_only: bool = False) -> list[Turn]:
        """The stream of ``session`` in order."""
        where = " AND status='ok'" if usable_only else ""
        rows = self._exec(
            "SELECT id, session, n, kind, user, assistant, summary, status, embedded, created_at, meta "
            f"FROM turns WHERE session=?{where} ORDER BY n", (session,))
        return [Turn(id=r[0], session=r[1], n=r[2], kind=r[3], user=r[4], assistant=r[5], summary=r[6], status=r[7],
                     embedded=r[8], created_at=r[9], meta=json.loads(r[10] or "{}")) for r in rows]

    def set_summary(self, turn_id: int, summary: str) -> None:
        self._exec("UPDATE turns SET summary=?, embedded=NULL WHERE id=?", (summary, turn_id))

    def set_meta(self, turn_id: int, meta: dict[str, Any]) -> None:
        self._exec("UPDATE turns SET meta=? WHERE id=?", (json.dumps(meta, default=str), turn_id))

    def mark_embedded(self, turn_ids: list[int], embedder: str | None) -> None:
        with self._lock:
            with self._conn:
                self._conn.executemany("UPDATE turns SET embedded=? WHERE id=?", [(embedder, i) for i in turn_ids])

    def clear(self, session: str) -> int:
        """Delete every entry of ``session`` (the session itself stays). Returns how many."""
        n = self._exec("SELECT COUNT(*) FROM turns WHERE session=?", (session,))[0][0]
        self._exec("DELETE FROM turns WHERE session=?", (session,))
        return n
