"""Ingest benchmark: index a book and a codebase, compare with bare sentence-transformers, re-index.

For each corpus it prints chunks/s and embedder tokens/s of ``index_paths`` (load, chunk, embed,
store, registry), the ratio of that total time to embedding the very same chunk texts with
``SentenceTransformer.encode`` alone in the same process (goal ≤ 1.15), and the time of a second,
unchanged re-index as a % of the first (goal ≤ 5%). State goes to a temporary AGENTLONG_HOME.

    python benchmarks/ingest.py                       # defaults: 20K words of the book + the codebase
    python benchmarks/ingest.py --limit-words 0       # the whole book (~566K words; several minutes)
    python benchmarks/ingest.py --skip-code --limit-words 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"
BOOK = "books/war_and_peace_pg2600.txt"
CODE = ["code/flask_85c5d93", "code/requests_46e939b"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help=f"evals data folder (default {DATA})")
    p.add_argument("--limit-words", type=int, default=20_000, help="index only the book's first N words (0 = all)")
    p.add_argument("--baseline-runs", type=int, choices=(1, 2), default=2,
                   help="bare-encode runs: 2 = one before and one after indexing (averaged, fairer on a busy machine)")
    p.add_argument("--skip-book", action="store_true", help="do not run the book")
    p.add_argument("--skip-code", action="store_true", help="do not run the codebase")
    p.add_argument("--batch-size", type=int, default=32, help="embedding batch size for both sides")
    p.add_argument("--server", metavar="HOST:PORT", help="index into a running Chroma server instead of embedded")
    return p.parse_args()


def book_input(args: argparse.Namespace, tmp: Path) -> list[str]:
    src = args.data / BOOK
    if not src.exists():
        sys.exit(f"missing {src}: pass --data pointing at shared/evals/data")
    if not args.limit_words:
        return [str(src)]
    text = src.read_text(encoding="utf-8")
    words = 0
    cut = len(text)
    for i, ch in enumerate(text):  # cut after the N-th whitespace-separated word, keeping the text intact
        if ch.isspace() and i and not text[i - 1].isspace():
            words += 1
            if words >= args.limit_words:
                cut = i
                break
    out = tmp / "war_and_peace_part.txt"
    out.write_text(text[:cut], encoding="utf-8")
    return [str(out)]


def code_input(args: argparse.Namespace) -> list[str]:
    paths = [args.data / p for p in CODE]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"missing {missing}: pass --data pointing at shared/evals/data")
    return [str(p) for p in paths]


def bare_encode(emb, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds for plain ``SentenceTransformer.encode`` of ``texts`` (the same model object, warm)."""
    wall, cpu = time.perf_counter(), time.process_time()
    emb.model.encode(texts, batch_size=emb.batch_size, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def run_one(app, label: str, paths: list[str], name: str, runs: int) -> dict:
    from agentlong.events import EventBus
    from agentlong.store.corpus import index_paths, open_corpus

    from agentlong.documents import chunk_document, load_path
    from agentlong.store import get_embedder

    # the exact chunk texts the index will embed, made up front so the first bare run can go before it
    emb = get_embedder(app.settings)
    docs = [d for p in paths for d in load_path(p, app.settings).documents]
    texts = [c.text for d in docs for c in chunk_document(d, min(app.settings.chunking.index_chunk_tokens,
                                                                     emb.max_tokens), emb.count_tokens)]
    baselines = [bare_encode(emb, texts)] if runs == 2 else []
    cpu = time.process_time()
    report = index_paths(app, paths, name=name, emit=EventBus())
    index_cpu = time.process_time() - cpu
    baselines.append(bare_encode(emb, texts))
    baseline = sum(b[0] for b in baselines) / len(baselines)
    baseline_cpu = sum(b[1] for b in baselines) / len(baselines)
    corpus = open_corpus(app, name)
    chunks = corpus.chunks()
    assert [c.text for c in chunks] == texts, "the index chunked differently from the baseline"
    tokens = sum(c.tokens for c in chunks)
    words = sum(len(d.text.split()) for d in corpus.documents())
    lines = sum(d.text.count("\n") + 1 for d in corpus.documents())

    again = index_paths(app, paths, name=name, emit=EventBus())
    assert again.chunks == 0 and len(again.unchanged) == report.total_documents, "re-index was not a no-op"
    return {"label": label, "documents": report.total_documents, "words": words, "lines": lines,
            "chunks": len(chunks), "tokens": tokens, "index_s": report.seconds, "embed_s": report.embed_seconds,
            "baseline_s": baseline, "baselines": [b[0] for b in baselines], "reindex_s": again.seconds,
            "index_cpu": index_cpu, "baseline_cpu": baseline_cpu,
            "skipped": [f"{Path(s.path).name} ({s.reason[:60]})" for s in report.skipped]}


def show(r: dict) -> None:
    ratio = r["index_s"] / r["baseline_s"]
    pct = 100 * r["reindex_s"] / r["index_s"]
    print(f"\n== {r['label']}: {r['documents']} documents, {r['words']:,} words, {r['lines']:,} lines, "
          f"{r['chunks']:,} chunks, {r['tokens']:,} embedder tokens; {len(r['skipped'])} files skipped "
          f"{', '.join(r['skipped'][:6])}")
    print(f"  index_paths total           {r['index_s']:8.1f} s   {r['chunks'] / r['index_s']:7.1f} chunks/s  "
          f"{r['tokens'] / r['index_s']:8.0f} tokens/s")
    print(f"    of which embedding        {r['embed_s']:8.1f} s")
    print(f"    the rest (load, chunk, store, registry) {r['index_s'] - r['embed_s']:.1f} s = "
          f"{100 * (r['index_s'] - r['embed_s']) / r['baseline_s']:.1f}% of the bare encode")
    runs = " + ".join(f"{b:.1f}" for b in r["baselines"])
    print(f"  sentence-transformers alone {r['baseline_s']:8.1f} s   {r['chunks'] / r['baseline_s']:7.1f} chunks/s  "
          f"{r['tokens'] / r['baseline_s']:8.0f} tokens/s   (mean of runs: {runs})")
    print(f"  ratio index / bare encode   {ratio:8.3f}   (goal <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})")
    print(f"  CPU seconds (this process)  index {r['index_cpu']:.1f} / bare {r['baseline_cpu']:.1f} = "
          f"{r['index_cpu'] / r['baseline_cpu']:.3f}   (less sensitive to other load on the machine)")
    print(f"  unchanged re-index          {r['reindex_s']:8.2f} s = {pct:.2f}% of the first "
          f"(goal <= 5%: {'met' if pct <= 5 else 'NOT met'})")


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    with tempfile.TemporaryDirectory(prefix="agentlong-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["AGENTLONG_HOME"] = str(tmp / "home")
        from agentlong import Agentlong

        store = {"embed_batch_size": args.batch_size}
        if args.server:
            host, port = args.server.rsplit(":", 1)
            store.update(chroma_host=host, chroma_port=int(port))
        app = Agentlong(model="fake", store=store)
        started = time.perf_counter()
        from agentlong.store import get_embedder

        get_embedder(app.settings).embed(["warm up the model once, outside every timing"])
        print(f"embedder {get_embedder(app.settings).name} loaded in {time.perf_counter() - started:.1f} s; "
              f"store {app.store.name}; torch threads {_threads()}; batch size {args.batch_size}")
        runs = []
        if not args.skip_book:
            label = f"book ({args.limit_words:,} words)" if args.limit_words else "book (whole)"
            runs.append(run_one(app, label, book_input(args, tmp), "bench-book", args.baseline_runs))
            show(runs[-1])
        if not args.skip_code:
            runs.append(run_one(app, "code (flask + requests)", code_input(args), "bench-code", args.baseline_runs))
            show(runs[-1])


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
