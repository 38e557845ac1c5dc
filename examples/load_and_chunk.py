"""Load a file or folder, show its structure, chunk it with the default model's tokenizer, map its code.

Runs offline on the defaults (the local Qwen2.5-Coder GGUF counts the tokens):

    python examples/load_and_chunk.py                      # this project's own agentlong/ package
    python examples/load_and_chunk.py book.epub --tokens 1000
    python examples/load_and_chunk.py some/repo --map 800
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from agentlong import Agentlong, AgentlongError
from agentlong.documents import chunk_document, load_path, repo_map, sections

HERE = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(HERE / "agentlong"), help="file or folder to load")
    parser.add_argument("--tokens", type=int, default=512, help="chunk size in model tokens (default 512)")
    parser.add_argument("--map", type=int, default=400, help="repo map budget in tokens (code only; 0 = none)")
    parser.add_argument("--model", default=None, help="model whose tokenizer counts (default: the local default)")
    args = parser.parse_args(argv)
    try:
        result = load_path(args.path)
        count = Agentlong(model=args.model).backend.count_tokens
        report(result, args, count)
    except AgentlongError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    return 0


def report(result, args, count) -> None:
    print(f"loaded {len(result.documents)} document(s), skipped {len(result.skipped)}")
    for skipped in result.skipped[:10]:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    kinds = Counter(d.metadata.get("language") or d.kind for d in result.documents)
    print("kinds:", ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    total = 0
    for doc in result.documents:
        chunks = chunk_document(doc, args.tokens, count)
        total += len(chunks)
        if len(result.documents) <= 3 or doc is result.documents[0]:
            secs = sections(doc)
            print(f"\n{doc.source} — {doc.kind}, {len(doc.text):,} chars, {len(secs)} sections, {len(chunks)} chunks")
            for warning in doc.warnings:
                print(f"  warning: {warning}")
            for c in chunks[:5]:
                label = c.symbol or c.section or ""
                print(f"  #{c.index} {c.where()} {c.tokens} tok {label[:40]!r}: {c.text[:50]!r}")
    print(f"\n{total} chunks of at most {args.tokens} tokens in all")
    if args.map and any(d.kind == "code" for d in result.documents):
        print(f"\nrepo map ({args.map} tokens):")
        print(repo_map(result.documents, args.map, count))


if __name__ == "__main__":
    raise SystemExit(main())
