"""Render events: rich progress bars and notices on stderr; answers on stdout."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from ..api import Agentlong
from ..events import Event, Notice, Progress, StepDone, TextDelta, UsageUpdate
from ..types import Usage


def make_agentlong(args: Any) -> Agentlong:
    """The SDK object for a CLI invocation (global ``--model``, ``--yes``).

    Work estimated above ``confirm_minutes`` asks on a terminal; ``--yes`` goes ahead without asking.
    """
    extra: dict[str, Any] = {"reasoner": args.reasoner} if getattr(args, "reasoner", None) else {}
    if getattr(args, "yes", False):
        return Agentlong(model=getattr(args, "model", None), confirm_minutes=None, **extra)
    app = Agentlong(model=getattr(args, "model", None), **extra)
    app.confirm = ask_terminal
    return app


_active: list["ProgressView"] = []  # the live progress display, paused while a question is asked


def ask_terminal(plan: str) -> bool:
    """``plan`` + "go ahead? [y/N]" on a terminal; False (so the caller raises) when stdin is not one."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    view = _active[-1] if _active else None
    if view is not None:
        view.progress.stop()
    try:
        sys.stderr.write(f"{plan}. Go ahead? [y/N] ")
        sys.stderr.flush()
        reply = sys.stdin.readline().strip().lower()
    finally:
        if view is not None:
            view.progress.start()
    return reply in ("y", "yes")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def stdout_console():
    from rich.console import Console

    return Console()


class ProgressView:
    """Context manager: a live set of rich progress bars on stderr fed by events.

    One bar per ``Progress.task``; the footer line shows running token usage.
    """

    def __init__(self, enabled: bool = True, stream_text: bool = False) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self.enabled = enabled and not _quiet_env()
        self.stream_text = stream_text
        self.usage = Usage()
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.console = stderr_console()
        self.progress = RichProgress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
            console=self.console, transient=False, disable=not self.enabled,
        )

    def __enter__(self) -> "ProgressView":
        self.progress.__enter__()
        _active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _active:
            _active.remove(self)
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        from rich.markup import escape  # messages carry file names and model text: "[x]" is not markup

        if isinstance(event, Progress):
            task = self._tasks.get(event.task)
            detail = event.detail[:60]
            if task is None:
                task = self.progress.add_task(event.task, total=event.total, detail=detail)
                self._tasks[event.task] = task
            self.progress.update(task, completed=event.done, total=event.total, detail=detail)
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif isinstance(event, Notice):
            style = {"info": "dim", "warning": "yellow", "error": "red"}[event.level]
            self.progress.console.print(f"[{style}]{escape(event.message)}[/{style}]", markup=True, highlight=False,
                                        soft_wrap=True)  # one notice, one line: never wrapped at 80 columns
        elif isinstance(event, TextDelta) and self.stream_text:
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, StepDone) and event.detail:
            self.progress.console.print(f"[dim]{escape(f'{event.step}: {event.detail}')}[/dim]", highlight=False)


def _quiet_env() -> bool:
    import os

    return os.environ.get("AGENTLONG_SHOW_PROGRESS", "1").lower() in ("0", "false", "no")


def usage_line(usage: Usage) -> str:
    cost = f", ${usage.cost_usd:.4f}" if usage.cost_usd is not None else ""
    return (f"{usage.calls} calls, {usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens, "
            f"{usage.seconds:.1f}s{cost}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
