"""Chunking cost and quality: ``chunk_document`` against two baselines, side by side, same text and counter.

- ``bisect``: per chunk, binary-search the longest prefix (of at most 8 chars per token) that fits,
  then back off to the last space (what ``packing.truncate_to_tokens`` does once; structure-blind).
- ``greedy``: add sentences one at a time and count the whole growing chunk after each (the
  usual naive splitter; cost grows with the square of the chunk size).

Prints count() calls, characters tokenized per character of text, seconds, how full the chunks
are, and where they end (paragraph / sentence / mid-word).

    python benchmarks/chunking.py                       # 200K chars of Pride and Prejudice, llama tokenizer
    python benchmarks/chunking.py --chars 0 --tokens 1000 --counter quarter
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

from agentlong.documents import chunk_document, load_file, load_text

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"


def metered(count: Callable[[str], int]) -> tuple[Callable[[str], int], dict[str, int]]:
    seen = {"calls": 0, "chars": 0}

    def wrapped(text: str) -> int:
        seen["calls"] += 1
        seen["chars"] += len(text)
        return count(text)

    return wrapped, seen


def bisect_spans(text: str, budget: int, count: Callable[[str], int]) -> list[tuple[int, int]]:
    spans, start = [], 0
    while start < len(text):
        lo, hi = start + 1, min(len(text), start + 8 * budget)  # assumes at most 8 chars per token
        if count(text[start:hi]) <= budget:
            lo = hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        space = text.rfind(" ", start, lo)
        end = space + 1 if lo < len(text) and space > start + (lo - start) // 2 else lo
        spans.append((start, end))
        start = end
    return spans


def greedy_spans(text: str, budget: int, count: Callable[[str], int]) -> list[tuple[int, int]]:
    pieces = [m.end() for m in re.finditer(r"[.!?][\"'”’)]*\s+|\n\s*\n", text)] + [len(text)]
    spans, start, end = [], 0, 0
    for stop in pieces:
        if stop <= end:
            continue
        if count(text[start:stop]) <= budget:
            end = stop
            continue
        if end > start:
            spans.append((start, end))
            start = end
        while count(text[start:stop]) > budget:  # one sentence over budget: fall back to bisection
            sub = bisect_spans(text[start:stop], budget, count)[0]
            spans.append((start, start + sub[1]))
            start += sub[1]
        end = stop
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def quality(text: str, spans: list[tuple[int, int]], budget: int, count: Callable[[str], int]) -> dict[str, float]:
    tokens = [count(text[a:b]) for a, b in spans]
    inner = spans[:-1] or spans
    para = sum(1 for a, b in inner if re.search(r"\n[ \t]*\n\s*$", text[a:b]))
    sent = sum(1 for a, b in inner if re.search(r"[.!?][\"'”’)\]]*\s*$", text[a:b]))
    mid = sum(1 for a, b in inner if b < len(text) and text[b - 1].isalnum() and text[b].isalnum())
    assert "".join(text[a:b] for a, b in spans) == text and max(tokens) <= budget
    n = len(inner)
    return {"chunks": len(spans), "fill": sum(tokens) / (budget * len(spans)), "para": para / n,
            "sentence": sent / n, "midword": mid / n}


def main() -> None:
    parser = argparse.ArgumentParser(description="chunk_document vs bisect and greedy baselines")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared evals data folder")
    parser.add_argument("--book", default="books/pride_and_prejudice_pg1342.txt", help="file under --data")
    parser.add_argument("--chars", type=int, default=200_000, help="use the first N characters (0 = all)")
    parser.add_argument("--tokens", type=int, default=512, help="chunk budget in tokens")
    parser.add_argument("--counter", choices=["llama", "quarter"], default="llama",
                        help="llama: the default model's tokenizer; quarter: len//4+1")
    args = parser.parse_args()
    doc = load_file(args.data / args.book)
    if args.chars:
        doc = load_text(doc.text[: args.chars], source=doc.source)
    if args.counter == "llama":
        from agentlong import Agentlong

        base = Agentlong().backend.count_tokens
    else:
        base = lambda t: len(t) // 4 + 1  # noqa: E731
    print(f"{doc.source}: {len(doc.text):,} chars, budget {args.tokens} tokens, counter {args.counter}")
    rows = {}
    for name in ("chunk_document", "bisect", "greedy"):
        count, seen = metered(base)
        started = time.perf_counter()
        if name == "chunk_document":
            spans = [(c.char_start, c.char_end) for c in chunk_document(doc, args.tokens, count)]
        elif name == "bisect":
            spans = bisect_spans(doc.text, args.tokens, count)
        else:
            spans = greedy_spans(doc.text, args.tokens, count)
        seconds = time.perf_counter() - started
        rows[name] = {"s": seconds, **seen, **quality(doc.text, spans, args.tokens, base)}
    print(f"{'method':<15}{'seconds':>9}{'calls':>8}{'chars/char':>11}{'chunks':>8}{'fill':>7}"
          f"{'para end':>9}{'sent end':>9}{'mid-word':>9}")
    for name, r in rows.items():
        print(f"{name:<15}{r['s']:>9.2f}{r['calls']:>8}{r['chars'] / len(doc.text):>11.2f}{r['chunks']:>8}"
              f"{r['fill']:>7.0%}{r['para']:>9.0%}{r['sentence']:>9.0%}{r['midword']:>9.0%}")
    ours = rows["chunk_document"]
    for name in ("bisect", "greedy"):
        r = rows[name]
        print(f"{name}: {r['s'] / ours['s']:.1f}x the time and {r['chars'] / ours['chars']:.1f}x the tokenized "
              f"characters of chunk_document")


if __name__ == "__main__":
    main()
