"""Ask questions about a document and get answers with verified citations (offline, default model).

    python examples/ask_document.py                 # default local GGUF model
    python examples/ask_document.py --long          # a document too long for one call: retrieve-then-reason

The first question reads a short note in one call (strategy "full"). With ``--long`` the note is
buried in a ~6,000-token log, so the router indexes it into Chroma (embedded, under
$AGENTLONG_HOME) and answers with retrieve-then-reason: every cited quote was found verbatim in the
file, and a question the log cannot answer gets "not found" instead of a guess.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from agentlong import Agentlong
from agentlong.events import Notice

NOTE = ("Harbour office notes, spring season.\n"
        "The night ferry to Lindholm now leaves at 22:15 from pier 3.\n"
        "Bicycles travel free; cars need a booking two days ahead.\n")


def long_log(note: str, paragraphs: int = 120) -> str:
    """A long, dull log with the note buried in the middle."""
    rng = random.Random(1)
    days = [f"Day {i + 1}: the harbour master counted {rng.randint(3, 40)} fishing boats, "
            f"the wind was {rng.choice(['calm', 'gusty', 'wet', 'cold'])} and the crane on pier "
            f"{rng.randint(1, 6)} was {rng.choice(['oiled', 'inspected', 'repainted', 'idle'])}."
            for i in range(paragraphs)]
    days.insert(paragraphs // 2, note.strip())
    return "\n\n".join(days) + "\n"


def show(answer) -> None:
    print(f"\nQ: {answer.question}\nA: {answer.text}\n   (strategy {answer.strategy}: {answer.strategy_reason})")
    for c in answer.citations:
        print(f"   [{c.n}] {c.evidence.where()}: “{' '.join(c.evidence.quote.split())}”")
    print(f"   {answer.usage.calls} calls, {answer.usage.prompt_tokens} prompt tokens, "
          f"{answer.record.duration_s if answer.record else 0:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model string (default: the local default GGUF)")
    ap.add_argument("--long", action="store_true", help="bury the note in a long log (retrieve-then-reason)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="agentlong_example_"))
    path = folder / ("harbour_log.txt" if args.long else "harbour_note.txt")
    path.write_text(long_log(NOTE) if args.long else NOTE)

    al = Agentlong(model=args.model)
    notices = lambda e: print(f"   · {e.message}") if isinstance(e, Notice) else None  # noqa: E731
    show(al.ask(path, "When does the night ferry to Lindholm leave?", on_event=notices))
    if args.long:
        show(al.ask(path, "How much does the ferry ticket cost for a dog?", on_event=notices))


if __name__ == "__main__":
    main()
