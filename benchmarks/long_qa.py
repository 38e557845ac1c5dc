"""Long-document QA: chain-of-agents vs map-reduce vs a truncated full-context baseline, side by side.

A book excerpt of ``--tokens`` model tokens (default 17,000: over four times a 4,096-token context) with
planted facts: single needles at evenly spread depths, one multi-needle question (three facts spread
over the text) and one counting question (a sentence planted ``--count-times`` times). Every strategy
answers every question in this process, on the same model, question by question, so machine noise
falls on all of them alike. The baseline reads the longest prefix of the excerpt that fits one call.

    python benchmarks/long_qa.py                                   # defaults (see --help)
    python benchmarks/long_qa.py --singles 5 --tokens 16000 --n-ctx 4096
    python benchmarks/long_qa.py --singles 1 --no-multi --no-count --tokens 8000   # a quick look

Prints per strategy: single-needle accuracy, multi-needle recall, counting answer, wall time, LLM
calls, prompt tokens processed / document tokens (goal <= 1.3 for chain-of-agents), and how many
correct answers cite the planted sentence. Goal: chain-of-agents >= 80 % on single needles where
truncation gets <= 30 %.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"

SINGLES = [
    ("The gardener's parrot at Netherfield was called Admiral Pepper.",
     "What was the gardener's parrot at Netherfield called?", ["pepper"]),
    ("The spare key of the Meryton inn was kept inside a blue teapot.",
     "Where was the spare key of the Meryton inn kept?", ["teapot"]),
    ("Colonel Forster's favourite dessert was quince tart with clotted cream.",
     "What was Colonel Forster's favourite dessert?", ["quince"]),
    ("The church clock at Longbourn was repaired by a watchmaker from Geneva.",
     "Where did the watchmaker who repaired the Longbourn church clock come from?", ["geneva"]),
    ("Mr. Collins rode a grey pony named Thunderbolt.", "What was the name of Mr. Collins's pony?", ["thunderbolt"]),
    ("Lady Lucas kept exactly seventeen silver spoons in her walnut cabinet.",
     "How many silver spoons did Lady Lucas keep in her walnut cabinet?", ["seventeen", "17"]),
    ("The cook of the Phillips family had come from the port of Bristol.",
     "Where had the cook of the Phillips family come from?", ["bristol"]),
    ("The library at Pemberley held a globe made of polished green marble.",
     "What was the globe in the library at Pemberley made of?", ["marble"]),
]
MULTI = (["The first piece of the torn map was hidden in the hollow oak by the mill.",
          "The second piece of the torn map was hidden under the floor of the stable.",
          "The third piece of the torn map was hidden behind the chapel organ."],
         "Where were the three pieces of the torn map hidden?", ["oak", "stable", "organ"])
COUNT = ("A white owl was seen sitting on the chimney of Longbourn.",
         "How many times in the whole text was a white owl seen sitting on the chimney of Longbourn?")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "once": 1, "twice": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared evals data folder")
    parser.add_argument("--book", default="books/pride_and_prejudice_pg1342.txt", help="path under --data")
    parser.add_argument("--model", default="llama:qwen2.5-coder-0.5b", help="model string")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window of the local model")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tokens", type=int, default=17000, help="excerpt size in model tokens")
    parser.add_argument("--singles", type=int, default=2, help=f"single-needle questions (max {len(SINGLES)})")
    parser.add_argument("--no-multi", dest="multi", action="store_false", help="skip the multi-needle question")
    parser.add_argument("--no-count", dest="count", action="store_false", help="skip the counting question")
    parser.add_argument("--count-times", type=int, default=4, help="times the counted sentence is planted")
    parser.add_argument("--strategies", default="coa,mapreduce,truncate", help="comma-separated subset")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="force a chunk size (default: from window)")
    parser.add_argument("--json", type=Path, default=None, help="also write all results to this file")
    return parser.parse_args()


# -- the document -----------------------------------------------------------------------------------
def excerpt(book: Path, tokens: int, count) -> list[str]:
    """Paragraphs from the start of the story until ``tokens`` tokens."""
    text = book.read_text(encoding="utf-8")
    start = text.find("*** START OF")
    body = text[text.find("\n", start) + 1 if start >= 0 else 0:]
    paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()][20:]  # skip title pages / contents
    kept, used = [], 0
    for para in paras:
        if used >= tokens:
            break
        kept.append(para)
        used += count(para) + 1
    return kept


def plant(paras: list[str], needles: list[tuple[float, str]]) -> str:
    """Insert each needle as its own paragraph at its relative depth (0-1)."""
    out = list(paras)
    for depth, sentence in sorted(needles, reverse=True):  # from the end, so indexes stay valid
        out.insert(max(1, min(len(paras) - 1, round(depth * len(paras)))), sentence)
    return "\n\n".join(out) + "\n"


def questions(args: argparse.Namespace) -> tuple[list[tuple[float, str]], list[dict]]:
    """Needles with depths, and the questions (kind, question, expected)."""
    needles, qs = [], []
    singles = SINGLES[: args.singles]
    for i, (fact, question, expected) in enumerate(singles):
        needles.append(((i + 0.5) / len(singles), fact))
        qs.append({"kind": "single", "question": question, "expected": expected, "needles": [fact]})
    if args.multi:
        facts, question, expected = MULTI
        needles += [(d, f) for d, f in zip((0.12, 0.47, 0.83), facts)]
        qs.append({"kind": "multi", "question": question, "expected": expected, "needles": facts})
    if args.count:
        sentence, question = COUNT
        needles += [((j + 0.3) / args.count_times, sentence) for j in range(args.count_times)]
        qs.append({"kind": "count", "question": question, "expected": [str(args.count_times)], "needles": [sentence]})
    return needles, qs


# -- scoring ----------------------------------------------------------------------------------------
def score(q: dict, text: str) -> float:
    low = text.lower()
    if q["kind"] == "count":
        numbers = [int(n) for n in re.findall(r"\b\d+\b", low)] + [v for k, v in NUMBERS.items()
                                                                   if re.search(rf"\b{k}\b", low)]
        return 1.0 if numbers and numbers[0] == int(q["expected"][0]) else 0.0
    hits = [any(e in low for e in [want]) for want in q["expected"]]
    if q["kind"] == "single":
        return 1.0 if any(hits) else 0.0
    return sum(hits) / len(hits)


def cites_needle(q: dict, answer) -> bool:
    return any(any(n in c.evidence.quote or c.evidence.quote in n for n in q["needles"]) for c in answer.citations)


# -- strategies -------------------------------------------------------------------------------------
def truncated(ctx, doc, question: str):
    """The baseline: the longest prefix of the document that fits one direct call."""
    from agentlong.graphs.notes import DirectAnswer, answer_direct, answer_tokens, finish, repair_tokens
    from agentlong.packing import prompt_budget, truncate_to_tokens
    from agentlong.types import Chunk

    llm = ctx.llm
    fixed = llm.fixed_tokens("coa_direct", docs=[{"source": doc.source, "text": ""}], question=question, task="qa",
                             words=0, max_quotes=5) + repair_tokens(llm, DirectAnswer)
    text = truncate_to_tokens(doc.text, prompt_budget(llm.window, fixed, answer_tokens(llm, "qa", None)), llm.tokens)
    chunk = Chunk(doc_id=doc.id, source=doc.source, index=0, text=text, char_start=0, char_end=len(text),
                  line_start=1, line_end=text.count("\n") + 1)
    result = answer_direct(ctx, [chunk], question, "qa", None)
    return finish(ctx, question, "truncated", result, [result["trace"]])


def run_one(strategy: str, backend, settings, doc, q: dict, chunk_tokens: int | None) -> dict:
    from agentlong.graphs import chain_of_agents, map_reduce
    from agentlong.graphs.common import RunContext
    from agentlong.llm import LLM

    ctx = RunContext(llm=LLM(backend, settings), settings=settings)
    started = time.perf_counter()
    try:
        if strategy == "truncate":
            answer = truncated(ctx, doc, q["question"])
        else:
            module = chain_of_agents if strategy == "coa" else map_reduce
            answer = module.run(ctx, [doc], q["question"], chunk_tokens=chunk_tokens, checkpoint=False)
        text, error = answer.text, ""
    except Exception as exc:  # a failed run counts as wrong; the error is reported
        answer, text, error = None, "", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    usage = ctx.llm.usage
    ok = score(q, text)
    verified = answer is not None and all(doc.text[c.evidence.char_start:c.evidence.char_end] == c.evidence.quote
                                          for c in answer.citations)
    return {"strategy": strategy, "kind": q["kind"], "question": q["question"], "answer": text[:300],
            "score": ok, "cites_needle": bool(answer and ok and cites_needle(q, answer)),
            "citations_verified": verified, "seconds": round(seconds, 1), "calls": usage.calls,
            "prompt_tokens": usage.prompt_tokens, "cached_tokens": usage.cached_tokens,
            "completion_tokens": usage.completion_tokens, "error": error}


# -- report -----------------------------------------------------------------------------------------
def report(rows: list[dict], strategies: list[str], doc_tokens: int) -> None:
    print(f"\n{'strategy':<10} {'single':>8} {'multi':>6} {'count':>6} {'seconds':>8} {'calls':>6} "
          f"{'prompt/doc':>10} {'uncached':>8} {'cites':>6} {'verified':>8}")
    base = {}
    for s in strategies:
        mine = [r for r in rows if r["strategy"] == s]
        singles = [r["score"] for r in mine if r["kind"] == "single"]
        multi = [r["score"] for r in mine if r["kind"] == "multi"]
        count = [r["score"] for r in mine if r["kind"] == "count"]
        right = [r for r in mine if r["score"] > 0]
        seconds = sum(r["seconds"] for r in mine)
        ratio = sum(r["prompt_tokens"] for r in mine) / max(1, len(mine) * doc_tokens)
        uncached = sum(r["prompt_tokens"] - r["cached_tokens"] for r in mine) / max(1, len(mine) * doc_tokens)
        base.setdefault("seconds", seconds)
        print(f"{s:<10} {_pct(singles):>8} {_pct(multi):>6} {_pct(count):>6} {seconds:>8.0f} "
              f"{sum(r['calls'] for r in mine):>6} {ratio:>10.2f} {uncached:>8.2f} {sum(r['cites_needle'] for r in right):>3}/"
              f"{len(right):<2} {sum(r['citations_verified'] for r in mine):>5}/{len(mine)}")
    print(f"\nwall time relative to {strategies[0]}: " + ", ".join(
        f"{s} {sum(r['seconds'] for r in rows if r['strategy'] == s) / max(base['seconds'], 1e-9):.2f}x"
        for s in strategies))


def _pct(values: list[float]) -> str:
    return f"{100 * sum(values) / len(values):.0f}%" if values else "-"


def main() -> int:
    args = parse_args()
    book = args.data / args.book
    if not book.is_file():
        raise SystemExit(f"benchmark data not found: {book} (pass --data)")
    from agentlong.backends import get_backend
    from agentlong.settings import LlamaSettings, Settings

    settings = Settings(model=args.model, llama=LlamaSettings(n_ctx=args.n_ctx, n_threads=args.threads))
    backend = get_backend(args.model, settings)
    from agentlong.types import Document

    needles, qs = questions(args)
    text = plant(excerpt(book, args.tokens, backend.count_tokens), needles)
    doc = Document(id="excerpt", source=book.name, text=text, sha256=str(hash(text)))
    doc_tokens = backend.count_tokens(text)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    print(f"model {backend.model}, window {backend.context_window()}, document {doc_tokens:,} tokens "
          f"({doc_tokens / backend.context_window():.1f}x the window), {len(qs)} questions, "
          f"strategies {', '.join(strategies)}", flush=True)
    rows = []
    for q in qs:
        for strategy in strategies:
            row = run_one(strategy, backend, settings, doc, q, args.chunk_tokens)
            rows.append(row)
            print(f"  [{row['kind']}] {strategy:<9} score={row['score']:.2f} {row['seconds']:>6.0f}s "
                  f"calls={row['calls']:<3} {row['answer'][:90]!r} {row['error'][:120]}", file=sys.stderr, flush=True)
    report(rows, strategies, doc_tokens)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "doc_tokens": doc_tokens, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
