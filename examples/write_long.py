"""Write a long text with the plan-write-review writer on the default local model (offline).

    python examples/write_long.py                      # ~800 words in 2 sections, a few minutes on 2 cores
    python examples/write_long.py --words 3000 -o guide.md

The outline and each finished section are printed as they come; the per-section record (budget,
words, calls, review verdicts; budgets after carrying earlier sections' shortfall) is printed at the end. Run it again after Ctrl-C: it resumes.
"""

from __future__ import annotations

import argparse
import sys

from agentlong import Agentlong
from agentlong.events import Progress, StepDone, TextDelta
from agentlong.graphs.writer import WriterOptions, write


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instruction", default="Write a practical guide for beginners on keeping houseplants alive.")
    p.add_argument("--words", type=int, default=800)
    p.add_argument("--section-words", type=int, default=400)
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args()

    def show(event) -> None:
        if isinstance(event, StepDone) and event.step == "outline":
            print("Outline:\n" + event.detail, file=sys.stderr)
        elif isinstance(event, StepDone) and event.step == "top-up":  # the text ran short: more sections
            print("Top-up: " + event.detail, file=sys.stderr)
        elif isinstance(event, TextDelta):
            print(event.text, flush=True)
        elif isinstance(event, Progress) and event.task == "words":
            print(f"  [{event.done}/{event.total} words]", file=sys.stderr, flush=True)

    app = Agentlong()  # the default local model: llama:qwen2.5-coder-0.5b
    result = write(app, args.instruction, words=args.words, emit=show, path=args.output,
                   options=WriterOptions(section_words=args.section_words))
    print(f"\n{result.words} words for a target of {result.target}; {result.usage.calls} model calls", file=sys.stderr)
    for s in result.sections:
        calls = ", ".join(a.action for a in s.attempts)
        verdicts = "; ".join(("pass" if v.passed else "fail: " + ", ".join(v.problems)) for v in s.verdicts)
        print(f"  {s.index + 1}. {s.title}: {s.words}/{s.budget} words ({s.length}) [{calls}] review: {verdicts}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
