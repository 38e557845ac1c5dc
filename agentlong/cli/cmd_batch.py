"""``agentlong batch init|run|status``: resumable batch jobs from a spec file.

Exit codes of ``run``: 0 every result ok, 1 some failed (or the run stopped early), 2 bad spec or input.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from .render import ProgressView, print_json, stderr_console, stdout_console, usage_line


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "batch", help="run a job over many documents from a spec file (resumable, parallel, Ray)",
        description="Batch jobs: summarize / ask / extract / write over many documents. "
                    "Results go to JSONL; kill the job at any moment and run the same command to resume.")
    parser.set_defaults(func=lambda args: _help(parser))
    actions = parser.add_subparsers(dest="batch_command", metavar="ACTION")

    init = actions.add_parser("init", help="write a commented example spec")
    init.add_argument("file", nargs="?", default="batch.yaml", help="where to write it (default: batch.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    run = actions.add_parser("run", help="run or resume the job in SPEC")
    run.add_argument("spec", help="the job spec (.yaml, .yml, .toml or .json)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("--concurrency", type=int, help="override the spec's concurrency")
    run.add_argument("--retry-failed", action="store_true", help="run failed documents again (their old lines are replaced)")
    run.add_argument("--restart", action="store_true", help="start over; old results are moved to <output>.prev")
    run.set_defaults(func=cmd_run, on_interrupt="finished documents are recorded; run the same command again to do the rest")

    status = actions.add_parser("status", help="show progress of a running or stopped job")
    status.add_argument("spec", help="the job spec")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=cmd_status)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.file)
    if target.exists() and not args.force:
        raise InputError(f"{target} already exists", hint="pass --force to overwrite it, or give another file name")
    text = resources.files("agentlong.batch").joinpath("spec_template.yaml").read_text(encoding="utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}", hint="choose a writable path") from exc
    print(f"wrote {target} — edit inputs and tasks, then: agentlong batch run {target}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..batch import load_spec, run

    spec = load_spec(args.spec)
    if getattr(args, "model", None):
        spec.model = args.model
    if args.concurrency:
        if args.concurrency < 1:
            raise InputError("--concurrency must be at least 1", hint="e.g. --concurrency 8")
        spec.concurrency = args.concurrency
    with ProgressView(enabled=not args.quiet) as view:
        summary = run(spec, on_event=view, restart=args.restart, retry_failed=args.retry_failed)
    if args.json:
        print_json(summary.model_dump(mode="json"))
    else:
        _print_summary(summary)
    return summary.exit_code


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    table = Table(title=f"batch {summary.spec}", show_footer=True)
    totals = {"ok": summary.ok, "failed": summary.failed, "pending": summary.pending,
              "tokens": summary.job_usage.total_tokens, "cost_usd": summary.job_usage.cost_usd}
    table.add_column("task", footer="total")
    for key in ("ok", "failed", "pending", "tokens"):
        table.add_column(key, justify="right", footer=f"{totals[key]:,}")
    table.add_column("cost", justify="right", footer=_cost(totals["cost_usd"]))
    for name, row in summary.tasks.items():
        table.add_row(name, f"{row['ok']:,}", f"{row['failed']:,}", f"{row['pending']:,}", f"{row['tokens'] or 0:,}",
                      _cost(row["cost_usd"]))
    out = stdout_console()
    out.print(table)
    out.print(f"results: {summary.output}", highlight=False)
    err = stderr_console()
    err.print(f"this run: {summary.ran} done, {summary.done_before} kept from earlier runs, {summary.duration_s:.1f}s; "
              f"{usage_line(summary.usage)}", highlight=False)
    for f in summary.failures[:5]:
        q = f" [{f['question']}]" if f.get("question") else ""
        err.print(f"[red]failed[/red] {f['document']} ({f['task']}{q}): {f['error']}", highlight=False)
    if summary.failed:
        err.print(f"{summary.failed} failed — fix the cause, then: agentlong batch run {summary.spec} --retry-failed",
                  highlight=False)


def _cost(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def cmd_status(args: argparse.Namespace) -> int:
    from ..batch import status

    data = status(args.spec)
    if args.json:
        print_json(data)
        return 0
    if not data.get("exists"):
        print(f"not started: no job state at {data['state']}", file=sys.stderr)
        return 0
    pid = data.get("running_pid")
    state = f"running (pid {pid})" if pid else ("finished" if data["pending"] == 0 else "stopped")
    done = data["ok"] + data["failed"]
    pct = 100.0 * done / data["total"] if data["total"] else 100.0
    out = stdout_console()
    out.print(f"{data['spec']}: {state} — {done:,}/{data['total']:,} done ({pct:.0f}%), {data['ok']:,} ok, "
              f"{data['failed']:,} failed, {data['pending']:,} pending", highlight=False)
    out.print(f"tokens: {data['prompt_tokens']:,} prompt + {data['completion_tokens']:,} completion"
              f"{', cost ' + _cost(data['cost_usd']) if data['cost_usd'] is not None else ''}; "
              f"last update {data['updated_at']}; results: {data['output']}", highlight=False)
    for f in data["failures"][:5]:
        out.print(f"  failed {f['document']} ({f['task']}): {f['error']}", highlight=False)
    return 0
