"""A bridge fact and a count over a long text, answered with cited sentences (offline, default model).

    python examples/two_hop_and_count.py

A ~5,000-token harbour log hides a ship's name in one place and its cargo in another, and a
fisherman's visits to five villages (one told twice). ``agentlong ask`` answers:

- "How many barrels did Captain Hale's ship carry?" — retrieve-then-reason finds the captain's
  sentence, searches again for the ship's name it holds, and cites both hops' sentences;
- "In how many villages did the fisherman Abel Crane mend nets? Name them." — every part is read,
  each visit labelled, and the count computed in code ("5 — …"), each village cited.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from agentlong import Agentlong
from agentlong.events import Notice

VILLAGES = ["Ashby", "Carrow", "Dunmore", "Elsworth", "Fennick"]


def harbour_log(days: int = 110) -> str:
    rng = random.Random(7)
    paras = [f"Day {i + 1}: the wind was {rng.choice(['calm', 'gusty', 'wet', 'cold'])}, "
             f"{rng.randint(3, 40)} boats came in and the crane on pier {rng.randint(1, 6)} was "
             f"{rng.choice(['oiled', 'inspected', 'repainted', 'idle'])}." for i in range(days)]
    planted = [(8, "Captain Hale commanded a brig called the Sea Lantern."),
               (90, "The Sea Lantern carried three hundred barrels of whale oil into port.")]
    planted += [(15 + 17 * i, f"The fisherman Abel Crane mended nets in the village of {v}.")
                for i, v in enumerate(VILLAGES)]
    planted.append((100, "In Carrow, the fisherman Abel Crane mended nets again."))
    for at, sentence in sorted(planted, reverse=True):
        paras.insert(at, sentence)
    return "\n\n".join(paras) + "\n"


def show(answer) -> None:
    print(f"\nQ: {answer.question}\nA: {answer.text}\n   (strategy {answer.strategy}: {answer.strategy_reason})")
    for c in answer.citations:
        print(f"   [{c.n}] {c.evidence.where()}: “{' '.join(c.evidence.quote.split())}”")
    u = answer.usage
    print(f"   {u.calls} calls, {u.prompt_tokens:,} prompt + {u.completion_tokens:,} generated tokens")


def main() -> None:
    path = Path(tempfile.mkdtemp(prefix="agentlong_example_")) / "harbour_log.txt"
    path.write_text(harbour_log())
    al = Agentlong(llama={"n_ctx": 4096})
    notices = lambda e: print(f"   · {e.message}") if isinstance(e, Notice) else None  # noqa: E731
    show(al.ask(path, "How many barrels did Captain Hale's ship carry?", on_event=notices))
    show(al.ask(path, "In how many villages did the fisherman Abel Crane mend nets? Name them.", on_event=notices))


if __name__ == "__main__":
    main()
