"""Batch job example: extract fields from and summarize a few memos with the default local model.

Run:  python examples/batch_job.py
It writes four memos to a temp folder, runs examples/batch_spec.yaml over them, prints each
result line and the summary; run it twice with --keep DIR to see the second run redo nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from agentlong import batch
from agentlong.events import Notice, Progress

MEMOS = {
    "budget.txt": "From: Maria Okafor\nThe travel budget for the spring conference is cut by ten percent.",
    "office.txt": "From: Tom Becker\nThe Berlin office moves to the third floor on Monday.",
    "hiring.txt": "From: Aiko Tanaka\nWe are hiring two data engineers for the analytics team.",
    "security.txt": "From: Lena Novak\nEveryone must enable two-factor login before the first of June.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="folder for memos and results (default: a temp folder)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="agentlong-batch-"))
    (folder / "memos").mkdir(parents=True, exist_ok=True)
    for name, text in MEMOS.items():
        (folder / "memos" / name).write_text(text + "\n")

    spec = batch.load_spec(Path(__file__).with_name("batch_spec.yaml"))
    spec.inputs = [str(folder / "memos" / "*.txt")]
    spec.output = str(folder / "memos.results.jsonl")

    def show(event) -> None:
        if isinstance(event, Progress):
            print(f"  progress: {event.done}/{event.total} {event.detail}")
        elif isinstance(event, Notice):
            print(f"  {event.level}: {event.message}")

    for record in batch.iter_results(spec, on_event=show):
        print(json.dumps({k: record[k] for k in ("document", "task", "status", "answer", "error")}, ensure_ascii=False))
    summary = batch.status(spec)
    print(f"{summary['ok']} ok, {summary['failed']} failed, "
          f"{summary['prompt_tokens'] + summary['completion_tokens']} tokens; results in {spec.output}")


if __name__ == "__main__":
    main()
