"""``agentlong mcp [--http [--host HOST] [--port N]]``: serve agentlong over the Model Context Protocol.

stdio by default (an MCP client starts it as a subprocess); ``--http`` serves streamable HTTP at
``http://HOST:PORT/mcp``, bound to 127.0.0.1 unless ``--host`` says otherwise. The global ``-m`` picks
the model; ``-y`` lets tools run work estimated above ``confirm_minutes`` (without it such a call
is refused with a one-line tool error, since a server cannot ask). Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    mcp = subparsers.add_parser(
        "mcp", help="serve ask/summarize/search/index/corpora over the Model Context Protocol",
        description="Serve agentlong as an MCP server: tools ask, summarize, search, index, corpora, write; "
                    "indexed corpora as corpus://NAME resources. stdio by default; --http for streamable HTTP.")
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1: this machine only)")
    mcp.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    mcp.add_argument("-y", "--yes", action="store_true", default=argparse.SUPPRESS,
                     help="let tools run work estimated above confirm_minutes without asking")
    mcp.set_defaults(func=run_mcp)


def run_mcp(args: argparse.Namespace) -> int:
    from ..api import Agentlong
    from ..errors import InputError, missing_dependency

    try:
        from ..mcp_server import serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        raise missing_dependency("mcp", "mcp") from exc
    if not 0 < args.port < 65536:
        raise InputError(f"port {args.port} is out of range", hint="give --port between 1 and 65535")
    overrides = {"confirm_minutes": None} if getattr(args, "yes", False) else {}
    app = Agentlong(model=getattr(args, "model", None), **overrides)
    where = f"http://{args.host}:{args.port}/mcp" if args.http else "stdio"
    print(f"agentlong: MCP server on {where} (model {app.settings.model})", file=sys.stderr)
    try:
        serve(app, http=args.http, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
