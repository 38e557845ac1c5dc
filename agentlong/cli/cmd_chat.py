"""``agentlong chat [PATH|CORPUS ...] [--session NAME]``: a chat REPL with memory.

``--list`` shows saved sessions, ``--delete NAME`` removes one. See ``cli/repl.py`` for the loop.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..memory.chat import STRATEGIES
from . import render

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "chat", help="chat with memory, optionally about files or corpora",
        description="Chat in a persistent session with a memory controller: recent turns stay in context, "
                    "older ones are retrieved when relevant. With PATH or CORPUS sources, questions are "
                    "answered from them with citations. Type /help inside for commands.")
    p.add_argument("sources", nargs="*", metavar="PATH|CORPUS", help="files, folders or indexed corpus names")
    p.add_argument("-s", "--session", help="session name: resumes it when it exists, else creates it")
    p.add_argument("-m", "--model", default=argparse.SUPPRESS, help="model string (as the global --model)")
    p.add_argument("--strategy", choices=STRATEGIES, help="how source questions are read (default: auto)")
    p.add_argument("--list", action="store_true", help="list saved sessions and exit")
    p.add_argument("--delete", metavar="NAME", help="delete a saved session and its memory, then exit")
    p.add_argument("--plain", action="store_true", help="plain text in and out, even on a terminal")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..memory.chat import Chat
    from .repl import Repl

    app = render.make_agentlong(args)
    if args.list:
        return _list(app)
    if args.delete:
        Chat.delete_session(app, args.delete)
        print(f"deleted chat session {args.delete}", file=sys.stderr)
        return 0
    tty = sys.stdin.isatty() and sys.stdout.isatty() and not args.plain
    progress = not getattr(args, "quiet", False) and app.settings.show_progress
    repl = Repl(app, session=args.session, sources=list(args.sources), strategy=args.strategy, tty=tty,
                progress=progress)
    return repl.run()


def _list(app: Any) -> int:
    from ..memory.chat import Chat

    sessions = Chat.list_sessions(app)
    if not sessions:
        print("no chat sessions yet (start one with: agentlong chat --session NAME)", file=sys.stderr)
        return 0
    width = max(len(s.name) for s in sessions)
    for s in sessions:
        sources = ", ".join(s.state.get("sources", [])) or "-"
        print(f"{s.name:<{width}}  {s.turns:>4} turns  last used {s.updated_at}  model {s.model or '-'}  sources {sources}")
    return 0
