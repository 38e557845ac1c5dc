"""``agentlong`` entry point: argparse subcommands, one module per command group.

Each module in ``COMMANDS`` exposes ``register(subparsers)`` and sets ``func`` on its parser;
``func(args) -> int`` is the exit code. Errors become one line on stderr, never a traceback
(set ``AGENTLONG_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from .. import __version__
from ..errors import AgentlongError, debug_traceback

COMMANDS = ["models", "index", "ask", "write", "chat", "batch", "mcp"]
LONG_WORK = ["index", "ask", "summarize", "write"]  # commands whose work may ask first (see agentlong.estimate)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``agentlong: error: … (see agentlong ask --help)``.

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's type).
    """

    def error(self, message: str) -> NoReturn:  # argparse prints usage and the error: two or more lines
        self.exit(2, f"agentlong: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="agentlong",
        description="Agentic long-document processing: ask, summarize, index, write, chat, batch.",
    )
    parser.add_argument("--version", action="version", version=f"agentlong {__version__}")
    parser.add_argument("-m", "--model", help="model string, e.g. llama:qwen2.5-coder-0.5b, openai:gpt-4o-mini, fake")
    parser.add_argument("--reasoner", metavar="MODEL",
                        help="a second model for the steps that decide (the answer, the writer's plan and review), "
                             "e.g. llama:qwen2.5-coder-1.5b while --model reads every chunk")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="go ahead with work estimated above confirm_minutes (default 15) without asking")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"agentlong.cli.cmd_{name}").register(sub)
    for name in LONG_WORK:  # `agentlong ask --yes …` as well as `agentlong --yes ask …`
        sub.choices[name].add_argument("-y", "--yes", action="store_true", default=argparse.SUPPRESS,
                                       help="go ahead with long work without asking")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except AgentlongError as exc:
        debug_traceback()
        print(f"agentlong: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        note = getattr(args, "on_interrupt", None)  # set by commands whose work survives an interrupt
        print("agentlong: interrupted" + (f" — {note}" if note else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last line of defence: still one line
        debug_traceback()
        settings_error = _settings_error(exc)
        if settings_error is not None:
            print(f"agentlong: error: {settings_error.one_line()}", file=sys.stderr)
            return 2
        msg = " ".join(str(exc).split())[:300]
        print(f"agentlong: internal error: {type(exc).__name__}: {msg} — "
              "re-run with AGENTLONG_DEBUG=1 for a traceback and report it", file=sys.stderr)
        return 1


def _settings_error(exc: Exception) -> AgentlongError | None:
    """A broken setting (env var or config file) as a ConfigError; None for anything else.

    Only field names and pydantic's messages are shown, never the values (they may be secrets).
    """
    import tomllib

    from pydantic import ValidationError

    from ..errors import ConfigError
    from ..settings import home_dir

    where = os.environ.get("AGENTLONG_CONFIG") or str(home_dir() / "config.toml")
    hint = f"fix the AGENTLONG_* environment variable or the config file {where}"
    if isinstance(exc, tomllib.TOMLDecodeError):
        return ConfigError(f"the config file {where} is not valid TOML ({exc})", hint=hint)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        return ConfigError(f"invalid settings: {problems}", hint=hint)
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
