"""The chat REPL behind ``agentlong chat``.

On a terminal: prompt_toolkit line editing with history ($AGENTLONG_HOME/chat_history), answers
streamed as Markdown with rich, Ctrl-C stops the current answer (or clears the line), Ctrl-D leaves.
Otherwise (a pipe): lines are read from stdin and answers printed as plain text, so
``printf 'hi\\n/quit\\n' | agentlong chat --model fake`` works in scripts.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AgentlongError
from ..events import Event, Notice, Progress, StepDone
from ..memory.chat import STRATEGIES, Chat, ChatReply
from . import render

__all__ = ["Repl", "COMMANDS"]

COMMANDS: dict[str, tuple[str, str]] = {
    "/help": ("", "show this list"),
    "/load": ("PATH", "chat about a file or folder (added to the sources)"),
    "/corpus": ("NAME", "chat about an indexed corpus (added to the sources)"),
    "/sources": ("[clear]", "list the loaded sources, or clear them"),
    "/strategy": ("[NAME]", "how source questions are read: " + ", ".join(STRATEGIES)),
    "/model": ("[STRING]", "show or switch the model (memory is kept)"),
    "/memory": ("", "flash and archived memory, and the memories used last"),
    "/usage": ("", "tokens and calls of this session"),
    "/save": ("FILE", "write the transcript as Markdown"),
    "/session": ("[NAME]", "show this session, or switch to (or create) another"),
    "/reset": ("", "forget this session's conversation"),
    "/quit": ("", "leave (also /exit or Ctrl-D)"),
}



def private_file(path: Path) -> Path:
    """``path`` created (or narrowed) to owner-only access: typed lines may hold names, notes or keys."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return path

class Repl:
    """Read a line, run a slash command or a chat turn, render, repeat."""

    def __init__(self, app: Any, *, session: str | None, sources: list[str], strategy: str | None,
                 tty: bool, progress: bool = True) -> None:
        self.tty = tty
        self.progress = progress and tty
        self.out = render.stdout_console()
        self.err = render.stderr_console()
        self._live = False
        self._pending: list[str] = []
        self.chat = Chat(app, session=session, sources=sources, on_event=self._on_event)
        if strategy:
            self.chat.set_strategy(strategy)

    # -- output ----------------------------------------------------------------
    def say(self, text: str, style: str | None = None) -> None:
        """A line for stdout (command output)."""
        if self.tty:
            self.out.print(text, style=style, markup=False, highlight=False)
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def note(self, text: str, style: str = "dim") -> None:
        """A diagnostic line for stderr; held back while an answer is being drawn."""
        if self._live:
            self._pending.append(text)
        elif self._view is not None and self._view.enabled:
            self._view.progress.console.print(text, style=style, markup=False, highlight=False)
        elif self.tty:
            self.err.print(text, style=style, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def error(self, exc: AgentlongError) -> None:
        self.note(f"error: {exc.one_line()}", style="red")

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.note(event.message, style={"info": "dim", "warning": "yellow", "error": "red"}[event.level])
        elif isinstance(event, StepDone) and event.step == "memory":
            self.note(f"memory: {event.detail}")
        elif isinstance(event, Progress) and self._view is not None:
            self._view(event)

    _view: Any = None

    # -- loop ------------------------------------------------------------------
    def banner(self) -> None:
        chat = self.chat
        state = "resumed" if chat.resumed else "new"
        turns = sum(t.kind == "turn" for t in chat.history())
        sources = f", sources: {', '.join(chat.sources)}" if chat.sources else ""
        self.note(f"agentlong chat — session {chat.name} ({state}, {turns} turns), model {chat.app.settings.model}"
                  f"{sources}. /help for commands, /quit or Ctrl-D to leave.")

    def run(self) -> int:
        self.banner()
        read = self._tty_reader() if self.tty else _pipe_reader
        while True:
            try:
                line = read(self.chat.name)
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    break
                continue
            self.turn(line)
        self.chat.close()
        return 0

    def _tty_reader(self) -> Callable[[str], str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        home = self.chat.app.settings.home
        home.mkdir(parents=True, exist_ok=True)
        session: PromptSession = PromptSession(history=FileHistory(str(private_file(home / "chat_history"))))
        return lambda name: session.prompt(f"{name}› ")

    # -- a chat turn -------------------------------------------------------------
    def turn(self, text: str) -> None:
        stream = self.chat.stream(text)
        parts: list[str] = []
        try:
            if self.tty:
                self._draw_tty(stream, parts)
            else:
                for delta in stream:
                    parts.append(delta)
                    sys.stdout.write(delta)
                    sys.stdout.flush()
                sys.stdout.write("\n")
        except KeyboardInterrupt:
            stream.close()
            self._flush_pending()
            if not self.tty and parts:
                sys.stdout.write("\n")
            self.note("[answer stopped — the turn is kept, marked interrupted]", style="yellow")
            return
        except AgentlongError as exc:
            self._flush_pending()
            if not self.tty and parts:
                sys.stdout.write("\n")
            self.error(exc)
            return
        self._flush_pending()
        if stream.reply is not None:
            self.citations(stream.reply)

    def _draw_tty(self, stream: Any, parts: list[str]) -> None:
        from rich.live import Live
        from rich.markdown import Markdown

        view = render.ProgressView(enabled=self.progress and bool(self.chat.sources))
        self._view = view
        live = Live(Markdown(""), console=self.out, refresh_per_second=10, vertical_overflow="visible")
        view.__enter__()
        try:
            for delta in stream:
                if not parts:
                    view.__exit__(None, None, None)
                    self._view = None
                    live.start()
                    self._live = True
                parts.append(delta)
                live.update(Markdown("".join(parts)))
        finally:
            if self._view is not None:
                view.__exit__(None, None, None)
                self._view = None
            if self._live:
                live.stop()
                self._live = False

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for line in pending:
            self.note(line)

    def citations(self, reply: ChatReply) -> None:
        if not reply.citations:
            return
        self.say("Sources:", style="bold")
        for c in reply.citations:
            quote = " ".join(c.evidence.quote.split())
            quote = quote if len(quote) <= 160 else quote[:159] + "…"
            self.say(f"  [{c.n}] {c.evidence.where()} — “{quote}”", style="dim")

    # -- slash commands ----------------------------------------------------------
    def command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        name, args = words[0].lower(), words[1:]
        if name in ("/quit", "/exit", "/q"):
            return False
        handler = getattr(self, "cmd_" + name[1:], None) if name in COMMANDS else None
        if handler is None:
            self.note(f"unknown command {name} — type /help for the list", style="yellow")
            return True
        try:
            handler(args)
        except AgentlongError as exc:
            self.error(exc)
        return True

    def cmd_help(self, args: list[str]) -> None:
        width = max(len(f"{c} {a}") for c, (a, _) in COMMANDS.items())
        for cmd, (arg, text) in COMMANDS.items():
            self.say(f"  {f'{cmd} {arg}'.strip():<{width}}  {text}")
        self.say("  Anything else is a message. Ctrl-C stops an answer; Ctrl-D leaves.")

    def _need(self, args: list[str], what: str) -> str | None:
        if not args:
            self.note(f"give {what} — type /help for the list", style="yellow")
            return None
        return " ".join(args)

    def cmd_load(self, args: list[str]) -> None:
        if (path := self._need(args, "a path: /load PATH")) is not None:
            added = self.chat.add_source(path)
            self.say(f"loaded {added} ({len(self.chat.sources)} source(s); questions now use strategy {self.chat.strategy})")

    def cmd_corpus(self, args: list[str]) -> None:
        if (name := self._need(args, "a corpus name: /corpus NAME")) is not None:
            self.chat.add_corpus(name)
            self.say(f"added corpus {name} ({len(self.chat.sources)} source(s))")

    def cmd_sources(self, args: list[str]) -> None:
        if args[:1] == ["clear"]:
            self.chat.clear_sources()
            self.say("sources cleared: plain chat")
        elif not self.chat.sources:
            self.say("no sources: plain chat (add some with /load PATH or /corpus NAME)")
        else:
            for s in self.chat.sources:
                self.say(f"  {s}")
            self.say(f"strategy: {self.chat.strategy}")

    def cmd_strategy(self, args: list[str]) -> None:
        if args:
            self.chat.set_strategy(args[0])
        self.say(f"strategy: {self.chat.strategy} (one of {', '.join(STRATEGIES)})")

    def cmd_model(self, args: list[str]) -> None:
        if args:
            self.chat.set_model(args[0])
        self.say(f"model: {self.chat.app.settings.model}")

    def cmd_memory(self, args: list[str]) -> None:
        st = self.chat.memory_stats()
        flash = ", ".join(map(str, st.flash)) or "none"
        self.say(f"session {st.session}: {st.turns} turns; flash memory: turns {flash}; archived: {st.archived} "
                 f"({st.summarized} summarized, {st.notes} notes); failed/interrupted: {st.failed}")
        if st.archive_fallback:
            self.say(f"archive search uses word overlap: {st.archive_fallback}")
        if not st.last_retrieved:
            self.say("last turn used no archived memory")
        for m in st.last_retrieved:
            self.say(f"  turn {m.n} ({m.form}, similarity {m.score:.2f}): {m.preview}")

    def cmd_usage(self, args: list[str]) -> None:
        self.say(f"session {self.chat.name}: {render.usage_line(self.chat.usage)}")

    def cmd_save(self, args: list[str]) -> None:
        if (path := self._need(args, "a file name: /save FILE")) is not None:
            self.say(f"saved the transcript to {self.chat.save_transcript(path)}")

    def cmd_session(self, args: list[str]) -> None:
        if args:
            new = Chat(self.chat.app, session=args[0], on_event=self._on_event)
            self.chat.close()
            self.chat = new
            self.banner()
            return
        turns = sum(t.kind == "turn" for t in self.chat.history())
        self.say(f"session {self.chat.name}: {turns} turns, model {self.chat.app.settings.model}")

    def cmd_reset(self, args: list[str]) -> None:
        self.say(f"forgot {self.chat.reset()} entries of session {self.chat.name}")


def _pipe_reader(_name: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line
