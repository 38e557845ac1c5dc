"""``agentlong index PATH... [--name NAME] [--reindex]`` and ``agentlong corpora list|show|drop``.

Progress bars (files, chunks, embeddings) and skipped-file notices go to stderr; the summary table,
corpus listings and ``--json`` output go to stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import render

__all__ = ["register"]


def register(subparsers: Any) -> None:
    index = subparsers.add_parser(
        "index", help="index files/folders into a named corpus (incremental)",
        description="Index files and folders into a corpus in the vector store. Runs are incremental: "
                    "unchanged files are skipped, changed files re-embedded, deleted files removed. "
                    "A corpus remembers its paths; `agentlong index --name NAME` alone refreshes them.")
    index.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (optional with --name: refresh)")
    index.add_argument("-n", "--name", help="corpus name (default: the first path's file stem or folder name)")
    index.add_argument("--reindex", action="store_true",
                       help="drop the corpus's vectors and embed everything again (e.g. after changing embedder)")
    index.add_argument("--json", action="store_true", help="print the report as JSON")
    index.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    index.set_defaults(func=run_index, on_interrupt="what was embedded is kept; run the same command again to index the rest")

    corpora = subparsers.add_parser("corpora", help="list, show or drop indexed corpora",
                                    description="Manage the corpora made by `agentlong index`.")
    sub = corpora.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="all corpora with document and chunk counts")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(func=run_list)
    show = sub.add_parser("show", help="one corpus: settings and documents")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(func=run_show)
    drop = sub.add_parser("drop", help="delete a corpus (its vectors and registry entries; files are untouched)")
    drop.add_argument("name")
    drop.set_defaults(func=run_drop)


def run_index(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..store.corpus import index_paths

    if not args.paths and not args.name:
        raise InputError("nothing to index", hint="give files or folders: agentlong index PATH... [--name NAME]")
    app = render.make_agentlong(args)
    enabled = not getattr(args, "quiet", False) and app.settings.show_progress
    with render.ProgressView(enabled=enabled) as view:
        report = index_paths(app, list(args.paths), name=args.name, emit=view, reindex=args.reindex)
    if args.json:
        render.print_json(report.model_dump(mode="json"))
    else:
        render.stdout_console().print(_summary(report))
    return 0


def _summary(report: Any) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"corpus {report.corpus}", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("indexed", f"{len(report.indexed)} files, {report.chunks:,} chunks embedded")
    table.add_row("unchanged", f"{len(report.unchanged)} files")
    table.add_row("removed", f"{len(report.removed)} files")
    table.add_row("skipped", f"{len(report.skipped)} files")
    table.columns[1].overflow = "fold"
    for skip in report.skipped[:20]:
        table.add_row("", Text(f"{skip.path}: {skip.reason}", style="dim"))  # paths may hold [brackets]
    if len(report.skipped) > 20:
        table.add_row("", Text(f"… and {len(report.skipped) - 20} more (see --json)", style="dim"))
    table.add_row("corpus", f"{report.total_documents} documents, {report.total_chunks:,} chunks")
    table.add_row("embedder", report.embedder)
    table.add_row("seconds", f"{report.seconds:.1f} (embedding {report.embed_seconds:.1f})")
    return table


def run_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..store.corpus import list_corpora

    infos = list_corpora(render.make_agentlong(args))
    if args.json:
        render.print_json([info.model_dump(mode="json") for info in infos])
        return 0
    if not infos:
        print("no corpora yet — make one with: agentlong index PATH --name NAME")
        return 0
    table = Table("name", "documents", "chunks", "embedder", "updated (UTC)", "paths")
    table.columns[5].overflow = "fold"
    for info in infos:
        table.add_row(info.name, str(info.documents), f"{info.chunks:,}", info.embedder,
                      info.updated[:16].replace("T", " "), "\n".join(info.paths))
    render.stdout_console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..store.corpus import corpus_info, registry

    app = render.make_agentlong(args)
    info = corpus_info(app, args.name)
    docs = registry(app).doc_states(info.name)
    if args.json:
        render.print_json({**info.model_dump(mode="json"),
                           "files": [{"source": d.source, "chunks": d.chunks, "sha256": d.sha256, "pending": d.pending}
                                     for d in docs.values()]})
        return 0
    console = render.stdout_console()
    head = Table(show_header=False, box=None, title=f"corpus {info.name}", title_justify="left")
    for key in ("documents", "chunks", "embedder", "dimension", "chunk_tokens", "store", "collection", "created",
                "updated"):
        head.add_row(key, str(getattr(info, key)))
    head.add_row("paths", "\n".join(info.paths))
    console.print(head)
    files = Table("document", "chunks")
    files.columns[0].overflow = "fold"
    for doc in sorted(docs.values(), key=lambda d: d.source):
        files.add_row(_short_path(doc.source, info.paths) + (" (pending)" if doc.pending else ""), str(doc.chunks))
    console.print(files)
    return 0


def _short_path(source: str, roots: list[str]) -> str:
    """``source`` relative to the corpus path it lies under (the folder's name kept), else as is."""
    from pathlib import Path

    for root in roots:
        base = Path(root)
        try:
            return str(Path(base.name) / Path(source).relative_to(base)) if base.is_dir() else source
        except ValueError:
            continue
    return source


def run_drop(args: argparse.Namespace) -> int:
    from ..store.corpus import drop_corpus

    drop_corpus(render.make_agentlong(args), args.name)
    print(f"dropped corpus {args.name}")
    return 0
