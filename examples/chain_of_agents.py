"""Chain-of-agents and map-reduce over a text longer than the model's context (offline, default model).

    python examples/chain_of_agents.py                              # a generated story with a planted fact
    python examples/chain_of_agents.py book.txt "Who rents Netherfield Park?"
    python examples/chain_of_agents.py book.txt --summary 200       # a 200-word summary

Prints each worker's progress on stderr, then the answer with its citations and usage.
"""

from __future__ import annotations

import argparse
import random
import sys

from agentlong import Agentlong
from agentlong.events import Event, Progress, StepDone
from agentlong.graphs import chain_of_agents, map_reduce
from agentlong.graphs.common import RunContext


def story() -> str:
    """~2,500 tokens of village life with one planted fact."""
    rng = random.Random(3)
    people = ["the baker", "old Tom", "the ferryman", "a fisherman", "the schoolmistress"]
    deeds = ["mended the nets by the harbour wall", "carried bread up the lane", "counted crates of herring",
             "painted the shutters of the inn", "watched the clouds roll in from the west"]
    paras = [" ".join(f"On day {i}, {rng.choice(people)} {rng.choice(deeds)}." for _ in range(3)) for i in range(50)]
    paras.insert(33, "The lighthouse keeper's cat was named Biscuit.")
    return "\n\n".join(paras) + "\n"


def show(event: Event) -> None:
    if isinstance(event, Progress):
        print(f"  {event.task} {event.done}/{event.total} {event.detail}", file=sys.stderr)
    elif isinstance(event, StepDone) and not event.step.startswith("worker"):
        print(f"  {event.step}: {event.detail}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="a text file (default: a generated story)")
    parser.add_argument("question", nargs="?", default="What was the name of the lighthouse keeper's cat?")
    parser.add_argument("--summary", type=int, metavar="WORDS", help="summarize in about WORDS words instead")
    parser.add_argument("--strategy", choices=["coa", "mapreduce"], default="coa")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="force a chunk size")
    args = parser.parse_args()

    app = Agentlong(llama={"n_ctx": 4096})
    if args.path:
        documents = app.load(args.path).documents
    else:
        from agentlong.documents import load_text

        documents = [load_text(story(), source="village.txt")]
        args.chunk_tokens = args.chunk_tokens or 800  # several workers even on this short text
    module = chain_of_agents if args.strategy == "coa" else map_reduce
    ctx = RunContext.from_app(app, emit=show)
    task = "summary" if args.summary else "qa"
    question = "" if args.summary else args.question
    answer = module.run(ctx, documents, question, task=task, words=args.summary, chunk_tokens=args.chunk_tokens)

    print(f"\n{answer.text}\n")
    for citation in answer.citations:
        print(f"[{citation.n}] {citation.evidence.where()}: {citation.evidence.quote!r}")
    u = answer.usage
    print(f"\n{answer.strategy}: {u.calls} calls, {u.prompt_tokens:,} prompt + {u.completion_tokens:,} "
          f"completion tokens, {u.seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
