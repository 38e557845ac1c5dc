"""``agentlong write "instruction" --words N [-o out.md]``: plan, write, review a long text.

The outline and a words-vs-target progress bar go to stderr; the sections go to stdout as they
are finished; ``-o`` also saves the Markdown (the path is checked before any model call).
``--plan-only`` prints (or saves) the outline in the editable Markdown format that ``--outline``
reads back. Running the same command again after a crash resumes at the next section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..events import Notice, StepDone, TextDelta
from . import render

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "write", help="write a long text (thousands of words) by plan, write, review",
        description="Plan an outline whose sections carry word budgets summing to --words, write each "
                    "section (extending short ones, trimming long ones), review and revise it, and assemble "
                    "Markdown. Resumable: re-run the same command after a crash.")
    p.add_argument("instruction", help='what to write, in quotes ("-" reads it from stdin)')
    p.add_argument("-w", "--words", type=int, default=None,
                   help="target length in words (CJK characters count one each); default: the --outline budgets")
    p.add_argument("-o", "--output", metavar="FILE", help="save the Markdown here (with --plan-only: the outline)")
    p.add_argument("-s", "--sources", nargs="+", metavar="PATH|CORPUS", help="files, folders or indexed corpora to ground and cite")
    p.add_argument("--outline", metavar="FILE", help="use this outline (Markdown headings + bullets, or JSON)")
    p.add_argument("--plan-only", action="store_true", help="print or save the outline for editing, write nothing")
    p.add_argument("--sections", type=int, default=None, help="number of sections (default: words / --section-words)")
    p.add_argument("--section-words", type=int, default=450, help="aimed words per section (default 450)")
    p.add_argument("--max-calls", type=int, default=4, help="drafting calls per section to reach its budget (default 4)")
    p.add_argument("--no-review", action="store_true", help="skip the reviewer call on each section")
    p.add_argument("--max-revisions", type=int, default=1, help="rewrites of a failed section (default 1)")
    p.add_argument("--continuity", action="store_true", help="final pass smoothing each section's first paragraph")
    p.add_argument("--no-rebalance", action="store_true",
                   help="keep each section's planned budget (default: carry a section's shortfall into the ones left)")
    p.add_argument("--top-up", type=int, default=4,
                   help="rounds of extra sections when the text ends short of --words (default 4; 0 = none)")
    p.add_argument("--json", action="store_true", help="print the whole result (text, outline, sections, usage) as JSON")
    p.add_argument("-m", "--model", default=argparse.SUPPRESS, help="model string (as the global --model)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    p.set_defaults(func=run_write, on_interrupt="finished sections are checkpointed; run the same command again to resume")


def _options(args: argparse.Namespace):
    from pydantic import ValidationError

    from ..graphs.writer import WriterOptions

    try:
        return WriterOptions(section_words=args.section_words, sections=args.sections, max_calls=args.max_calls,
                             review=not args.no_review, max_revisions=args.max_revisions, continuity=args.continuity,
                             rebalance=not args.no_rebalance, top_up=args.top_up)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}", hint="see agentlong write --help") from exc


def _read_outline(path: str):
    from ..graphs.writer_plan import parse_outline_text

    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InputError(f"cannot read outline {path}: {reason}", hint="give a Markdown or JSON outline file") from exc
    return parse_outline_text(text, source=f"outline {path}")


def _inputs(args: argparse.Namespace) -> tuple[str, int, Any]:
    from ..graphs.writer import check_instruction

    instruction = check_instruction(sys.stdin.read() if args.instruction == "-" else args.instruction)
    outline = _read_outline(args.outline) if args.outline else None
    words = args.words
    if words is None:
        if outline is None or not all(s.budget for s in outline.sections):
            raise InputError("no target length", hint="give --words N (or an --outline whose every section has a budget)")
        words = outline.total
    return instruction, words, outline


def run_write(args: argparse.Namespace) -> int:
    from ..graphs.writer import check_writable, plan_only, write

    instruction, words, outline = _inputs(args)
    out = check_writable(args.output) if args.output else None  # before any model call
    options = _options(args)
    app = render.make_agentlong(args)
    quiet = getattr(args, "quiet", False)
    stdout = sys.stdout  # the real stdout, captured before rich redirects it
    with render.ProgressView(enabled=not quiet and app.settings.show_progress) as view:
        sink = _Sink(view, stdout, quiet=quiet, stream=not args.json and not args.plan_only)
        if args.plan_only:
            plan = plan_only(app, instruction, words=words, outline=outline, emit=sink, options=options)
        else:
            result = write(app, instruction, words=words, sources=args.sources, outline=outline, emit=sink,
                           options=options, path=out)
    if args.plan_only:
        return _finish_plan(plan, out)
    if args.json:
        render.print_json(result.model_dump(mode="json"))
    elif result.citations:
        sources = result.text[result.text.rfind("## Sources"):]
        stdout.write(sources if sources.endswith("\n") else sources + "\n")
    on_target = sum(s.within_tolerance for s in result.sections)
    where = f"wrote {result.path}: " if result.path else ""
    print(f"{where}{result.words:,} words (target {result.target:,}), {len(result.sections)} sections, "
          f"{on_target} within ±15% · {render.usage_line(result.usage)}", file=sys.stderr)
    return 0


def _finish_plan(plan: Any, out: Path | None) -> int:
    if out is not None:
        out.write_text(plan.markdown(), encoding="utf-8")
        print(f"outline saved to {out}: {len(plan.sections)} sections, {plan.total:,} words — edit it, then run "
              f"agentlong write ... --outline {out}", file=sys.stderr)
    else:
        sys.stdout.write(plan.markdown())
    return 0


class _Sink:
    """Events to the progress view; finished sections to stdout (through rich when both are one terminal)."""

    def __init__(self, view: render.ProgressView, stdout: Any, *, quiet: bool, stream: bool) -> None:
        self.view, self.stdout, self.quiet, self.stream = view, stdout, quiet, stream
        self.through_rich = view.enabled and stdout.isatty()

    def __call__(self, event: Any) -> None:
        if isinstance(event, TextDelta):
            if self.stream:
                self._out(event.text)
            return
        if isinstance(event, StepDone) and event.step == "outline" and self.stream:
            title = event.detail.splitlines()[0] if event.detail.startswith("# ") else ""
            if title:
                self._out(title + "\n\n")
        if not self.quiet or (isinstance(event, Notice) and event.level != "info"):
            self.view(event)

    def _out(self, text: str) -> None:
        if self.through_rich:
            self.view.progress.console.print(text.rstrip("\n") + "\n", markup=False, highlight=False, soft_wrap=True)
        else:
            self.stdout.write(text)
            self.stdout.flush()
