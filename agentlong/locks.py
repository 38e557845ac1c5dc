"""One lock for work two agentlong processes must not do at once: an exclusive ``fcntl`` lock on a
file that holds the holder's pid and what it is doing.

The kernel drops the lock when its process dies, so a killed run never leaves a stale lock (only
a stale pid, which :meth:`ProcessLock.holder` ignores). Used by batch jobs (a second runner of the
same job is refused) and corpus indexing (a second indexer of the same corpus waits, with a message,
then finds the work done).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.lock"
>>> with ProcessLock(path, "the job"):
...     ProcessLock.holder(path) == os.getpid()
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .errors import InputError

__all__ = ["ProcessLock"]


class ProcessLock:
    """Exclusive lock on ``path`` for ``what``.

    Taken while another process holds it: with ``on_wait`` unset, :class:`InputError` (refuse);
    with ``on_wait``, that callback gets one line saying who holds it, then the call blocks until
    the holder is done.
    """

    def __init__(self, path: Path, what: str, *, on_wait: Callable[[str], None] | None = None,
                 hint: str = "wait for it to finish") -> None:
        self.path, self.what, self.on_wait, self.hint = path, what, on_wait, hint
        self.fd: int | None = None

    def __enter__(self) -> "ProcessLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(self.path)
            who = f" (pid {pid})" if pid else ""
            if self.on_wait is None:
                os.close(fd)
                raise InputError(f"{self.what} is already running{who}", hint=self.hint) from None
            self.on_wait(f"waiting for another agentlong process{who}: {self.what} is in progress there")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:  # Ctrl-C while waiting: nothing was taken
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        import fcntl

        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    @staticmethod
    def holder(path: Path) -> int | None:
        """The pid of a live process holding the lock, else None (a killed run leaves a stale pid)."""
        pid = _read_pid(path)
        if not pid:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
