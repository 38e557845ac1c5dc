"""``agentlong ask PATH|CORPUS "question"`` and ``agentlong summarize PATH|CORPUS``.

The answer goes to stdout, then its citations (number, location, quoted text); progress bars,
the strategy notice and the usage line go to stderr. ``--json`` prints the whole Answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..events import Notice
from ..graphs.router import STRATEGIES, SUMMARY_STRATEGIES
from ..types import Answer
from . import render

__all__ = ["register"]


INDEX_KEPT = "what was indexed is kept; run the same command again to go on from there"

def _common(parser: argparse.ArgumentParser, *, question: bool) -> None:
    parser.add_argument("source", nargs="+", metavar="PATH|CORPUS",
                        help="file(s), folder(s) or the name of an indexed corpus")
    if question:
        parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    parser.add_argument("--html", metavar="PATH", default=None,
                        help="also write a self-contained citation report page to PATH")
    # also accepted after the command; SUPPRESS keeps the global value when absent here
    parser.add_argument("-m", "--model", default=argparse.SUPPRESS, help="model string (as the global --model)")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")


def register(subparsers: Any) -> None:
    ask = subparsers.add_parser(
        "ask", help="answer a question about files or a corpus, with verified citations",
        description="Answer a question about a file, folder or indexed corpus. --strategy auto picks full "
                    "context when the input fits the window, else retrieve-then-reason (rtr) for specific "
                    "facts, chain-of-agents (coa) or map-reduce for whole-text questions.")
    _common(ask, question=True)
    ask.add_argument("-s", "--strategy", choices=STRATEGIES, default="auto", help="how to read (default: auto)")
    ask.add_argument("-k", "--top-k", type=int, default=None, help="chunks retrieved per round with rtr (default 8)")
    ask.set_defaults(func=run_ask, on_interrupt=INDEX_KEPT)

    summ = subparsers.add_parser(
        "summarize", help="summarize files or a corpus in about N words",
        description="Summarize a file, folder or corpus: one call when it fits the window, "
                    "else chain-of-agents (or --strategy mapreduce).")
    _common(summ, question=False)
    summ.add_argument("-w", "--words", type=int, default=300, help="about how many words (default 300)")
    summ.add_argument("-s", "--strategy", choices=SUMMARY_STRATEGIES, default="auto", help="how to read")
    summ.set_defaults(func=run_summarize, on_interrupt=INDEX_KEPT)


def _source(args: argparse.Namespace) -> Any:
    return args.source[0] if len(args.source) == 1 else list(args.source)


def _show_progress(args: argparse.Namespace, app: Any) -> bool:
    return not getattr(args, "quiet", False) and app.settings.show_progress


def _sink(view: render.ProgressView, args: argparse.Namespace) -> Any:
    """Events to the progress view; with --quiet only warnings and errors get through."""
    if not getattr(args, "quiet", False):
        return view
    return lambda event: view(event) if isinstance(event, Notice) and event.level != "info" else None


def run_ask(args: argparse.Namespace) -> int:
    from ..graphs.router import ask

    report = _report_path(args.html)
    app = render.make_agentlong(args)
    with render.ProgressView(enabled=_show_progress(args, app)) as view:
        answer = ask(app, _source(args), args.question, strategy=args.strategy, emit=_sink(view, args),
                     k=args.top_k)
    _output(answer, args.json)
    _write_report(answer, report, app)
    return 0


def run_summarize(args: argparse.Namespace) -> int:
    from ..graphs.router import summarize

    report = _report_path(args.html)
    app = render.make_agentlong(args)
    with render.ProgressView(enabled=_show_progress(args, app)) as view:
        answer = summarize(app, _source(args), words=args.words, strategy=args.strategy,
                           emit=_sink(view, args))
    _output(answer, args.json)
    _write_report(answer, report, app)
    return 0


def _report_path(html: str | None) -> Path | None:
    """Check --html before any work is done, so a bad path does not cost a whole run."""
    if html is None:
        return None
    path = Path(html).expanduser()
    folder = path.parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) or \
            (path.exists() and not os.access(path, os.W_OK)):
        why = "is a folder" if path.is_dir() else "no such folder" if not folder.is_dir() else "not writable"
        raise InputError(f"cannot write the report {path}: {why}", hint="give --html a file path in a writable folder")
    return path


def _write_report(answer: Answer, path: Path | None, app: Any) -> None:
    if path is None:
        return
    from ..report import render_html, source_texts

    page = render_html(answer, source_texts(answer, app.settings))
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report {path}: {exc.strerror or exc}",
                         hint="give --html a file path in a writable folder") from exc
    print(f"report: {path}", file=sys.stderr)


def _output(answer: Answer, as_json: bool) -> None:
    if as_json:
        render.print_json(answer.model_dump(mode="json"))
    else:
        sys.stdout.write(format_answer(answer))
        sys.stdout.flush()
    seconds = answer.record.duration_s if answer.record else answer.usage.seconds
    print(f"strategy {answer.strategy} · {render.usage_line(answer.usage)} · {seconds:.1f}s wall", file=sys.stderr)


def format_answer(answer: Answer, width: int = 100) -> str:
    """The answer text, then one block per citation: ``[n] file:line`` and the quoted text."""
    lines = [answer.text.strip()]
    if answer.found and answer.basis == "read":
        lines.append("(no sentence was selected as the answer; answered from the text read)")
    lines.append("")
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            ev = c.evidence
            match = "" if ev.match == "exact" else f" ({ev.match} match {ev.score:.2f})"
            lines.append(f"[{c.n}] {ev.where()}{match}")
            quote = " ".join(ev.quote.split())
            lines.extend(textwrap.wrap(f"“{quote}”", width=width, initial_indent="    ", subsequent_indent="    "))
        lines.append("")
    return "\n".join(lines)
