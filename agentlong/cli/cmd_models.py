"""``agentlong models list [--json]`` and ``agentlong models pull [NAME]``.

``list`` prints the local catalog (status, size, description, model string) and the model-string
forms on stdout. ``pull`` joins a catalog model's PyPI parts into the cache with a progress bar on
stderr, checks its sha256 and refuses a mismatch; it prints the model file's path on stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import render

__all__ = ["register"]

MODEL_STRINGS = [
    ("llama:NAME", "a catalog model above, run in-process by llama.cpp (joined and verified on first use)"),
    ("llama:/path/to/model.gguf", "any GGUF file"),
    ("openai:MODEL", "OpenAI (key in OPENAI_API_KEY or AGENTLONG_OPENAI__API_KEY)"),
    ("openai:MODEL@http://HOST:PORT/v1", "any OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio)"),
    ("fake, fake:echo", "a built-in stand-in without a model, for tests and demos"),
]


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list and pull local models",
                                   description="The local model catalog and the model strings agentlong accepts.")
    sub = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="catalog models with status and size, and the model-string forms")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(func=run_list)
    pull = sub.add_parser("pull", help="join a catalog model from its installed packages and verify its sha256")
    pull.add_argument("name", nargs="?", default=None, help="catalog name (default: the default model)")
    pull.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
    pull.set_defaults(func=run_pull)


def catalog_rows() -> list[dict[str, Any]]:
    """One dict per catalog model: name, model string, status, size, description, path."""
    from ..backends.models import CATALOG, DEFAULT_LOCAL, models_dir, status

    rows = []
    for name, entry in CATALOG.items():
        rows.append({
            "name": name, "model_string": f"llama:{name}", "default": name == DEFAULT_LOCAL,
            "status": status(name), "size_bytes": entry.size, "speed": entry.speed, "description": entry.description,
            "path": str(models_dir() / entry.filename),
        })
    return rows


def run_list(args: argparse.Namespace) -> int:
    rows = catalog_rows()
    if args.json:
        render.print_json({"models": rows, "model_strings": [{"form": f, "meaning": m} for f, m in MODEL_STRINGS]})
        return 0
    from rich.table import Table

    table = Table(title="local models", title_justify="left", caption="* the default model", caption_justify="left")
    table.add_column("model string", no_wrap=True)
    for column in ("status", "size", "speed", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row["model_string"] + (" *" if row["default"] else "")
        table.add_row(name, row["status"], _size(row["size_bytes"]), row["speed"], row["description"])
    forms = Table(title="model strings (--model, AGENTLONG_MODEL)", title_justify="left", show_header=False)
    forms.add_column(style="bold", no_wrap=True)
    forms.add_column()
    for form, meaning in MODEL_STRINGS:
        forms.add_row(form, meaning)
    console = render.stdout_console()
    console.print(table)
    console.print(forms)
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from ..backends.models import DEFAULT_LOCAL, pull
    from ..events import Progress

    name = args.name or DEFAULT_LOCAL
    with render.ProgressView(enabled=not getattr(args, "quiet", False)) as view:
        path = pull(name, progress=lambda done, total: view(
            Progress(task=f"join {name} (MB)", done=done // 1_000_000, total=total // 1_000_000)))
    print(path)
    return 0


def _size(size: int | None) -> str:
    return f"{size / 1e6:,.0f} MB" if size else "?"
