"""Retrieve-then-reason vs plain top-k RAG vs truncated full context on long-document QA.

Data (read by path, never copied): L-Eval multiple choice (quality, tpo, coursera), L-Eval open
span questions (natural_question) and LongBench v2 "short" multiple choice, from
``../shared/evals/data/longdoc_qa`` beside the checkout (``--data`` overrides).

Each document is written to a temp folder and indexed into embedded Chroma with the packaged
embedder (the real agentlong pipeline), then each question is answered three ways, interleaved so
no method profits from the previous call's KV cache:

- ``rtr``: agentlong's retrieve-then-reason graph (dense + BM25 fused with RRF, verbatim-quote
  extraction verified against the source, reasoning over verified evidence only, citations);
- ``rag``: plain top-k dense retrieval, chunks packed into the window, one ``answer_direct`` call;
- ``truncated``: the document's first tokens that fit the window, one ``answer_direct`` call.

Printed per task and overall: accuracy (multiple choice: letter match; open: token F1 and
"gold contained"), share answered "not found", wall seconds, calls and prompt tokens per question,
and for rtr the share of citations whose quote is verbatim at its cited span of the source (goal
100%) and of model-proposed quotes that verified.

    python benchmarks/rtr_qa.py --tasks quality,tpo,natural_question --docs 1 --questions 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import string
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"
LEVAL_MC = {"quality", "tpo", "coursera"}
LEVAL_OPEN = {"natural_question"}
MC_SUFFIX = "\nAnswer with the letter of the correct option."
MULTI_SUFFIX = "\nSeveral options may be correct: answer with all their letters."
METHODS = ("rtr", "rag", "truncated")


# -- data ----------------------------------------------------------------------------------------
def load_task(data: Path, task: str, docs: int, questions: int) -> list[dict[str, Any]]:
    """Items {task, doc_id, text, question, gold, kind} for the first ``docs`` documents."""
    root = data / "longdoc_qa"
    items: list[dict[str, Any]] = []
    if task == "longbench_v2":
        rows = [json.loads(line) for line in (root / "longbench_v2/longbench_v2_short.jsonl").open()]
        rows = sorted((r for r in rows if r["domain"] == "Single-Document QA"), key=lambda r: len(r["context"]))
        for r in rows[:docs]:
            q = r["question"] + "".join(f"\n{x}. {r['choice_' + x]}" for x in "ABCD")
            items.append({"task": task, "doc_id": r["_id"], "text": r["context"], "question": q + MC_SUFFIX,
                          "gold": r["answer"], "kind": "mc"})
        return items
    folder = "Closed-ended-tasks" if task in LEVAL_MC else "Open-ended-tasks"
    with (root / "leval" / folder / f"{task}.jsonl").open() as f:
        for d, line in enumerate(f):
            if d >= docs:
                break
            r = json.loads(line)
            for q, gold in list(zip(r["instructions"], r["outputs"]))[:questions]:
                if task in LEVAL_MC:
                    letters = re.match(r"\(?([A-D]+)", gold.strip())
                    suffix = MULTI_SUFFIX if task == "coursera" else MC_SUFFIX
                    items.append({"task": task, "doc_id": f"{task}-{d}", "text": r["input"], "question": q + suffix,
                                  "gold": letters.group(1) if letters else gold, "kind": "mc"})
                else:
                    items.append({"task": task, "doc_id": f"{task}-{d}", "text": r["input"], "question": q,
                                  "gold": gold, "kind": "open"})
    return items


# -- scoring -------------------------------------------------------------------------------------
_LETTER_PATTERNS = [
    r"\(([A-D])\)",  # (B)
    r"(?:^|\s)([A-D])[.):](?=\s|$)",  # B. / B) / B:
    r"(?i:option|answer|choice)s?\s*(?i:is|are)?\s*:?\s*\(?([A-D])\b(?![a-z'])",  # the answer is B
    r"^\s*([A-D])\s*$",  # just "B"
    r"^\s*([A-D])(?=[.):,])",  # "B, because"
    r"\b([A-D])(?=\s*(?:,|\band\b|&|\bor\b)\s*\(?[A-D]\b)",  # A, C and D
    r"(?:,|\band\b|&)\s*\(?([A-D])\b(?![a-z'])",
]


def predicted_letters(text: str) -> set[str]:
    """Every option letter the answer names (for multi-answer questions)."""
    clean = re.sub(r"\[\d+\]", "", text)
    return {x for pattern in _LETTER_PATTERNS for x in re.findall(pattern, clean)}


def mc_correct(answer: str, gold: str, multi: bool) -> bool:
    if multi:
        return predicted_letters(answer) == set(gold)
    return _first_letter(answer) == gold


def _first_letter(text: str) -> str | None:
    """The first option letter the answer names."""
    clean = re.sub(r"\[\d+\]", "", text)
    hits = [(m.start(1), m.group(1)) for pattern in _LETTER_PATTERNS for m in re.finditer(pattern, clean)]
    return min(hits)[1] if hits else None


def _norm_tokens(text: str) -> list[str]:
    text = re.sub(r"\[\d+\]", " ", text.lower())
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return [w for w in text.split() if w not in {"a", "an", "the"}]


def f1(pred: str, gold: str) -> float:
    p, g = _norm_tokens(pred), _norm_tokens(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def contains(pred: str, gold: str) -> bool:
    g = " ".join(_norm_tokens(gold))
    return bool(g) and g in " ".join(_norm_tokens(pred))


# -- methods -------------------------------------------------------------------------------------
def run_rtr(ctx, search, item, k: int) -> dict[str, Any]:
    from agentlong.graphs import rtr

    ans = rtr.run(ctx, search, item["question"], k=k, checkpoint=False)
    text = item["text"]
    cites = ans.citations
    verbatim = sum(text[c.evidence.char_start:c.evidence.char_end] == c.evidence.quote for c in cites)
    m = re.search(r"(\d+) quotes proposed, (\d+) dropped", ans.trace[-1].detail if ans.trace else "")
    proposed, dropped = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return {"answer": ans.text, "found": ans.found, "citations": len(cites), "verbatim": verbatim,
            "proposed": proposed, "dropped": dropped,
            "fuzzy": sum(c.evidence.match == "fuzzy" for c in cites)}


def _direct(ctx, document: str, question: str) -> str:
    llm = ctx.llm
    reserve = min(ctx.settings.chunking.output_reserve, 256)
    return llm.call("answer_direct", max_tokens=reserve, question=question, document=document).text.strip()


def _budget(ctx, question: str) -> int:
    from agentlong.packing import prompt_budget

    llm = ctx.llm
    fixed = llm.fixed_tokens("answer_direct", question=question, document="")
    return prompt_budget(llm.window, fixed, min(ctx.settings.chunking.output_reserve, 256))


def run_rag(ctx, corpus, item, k: int) -> dict[str, Any]:
    from agentlong.packing import fit

    hits = corpus.search(item["question"], k)
    budget = _budget(ctx, item["question"])
    kept = fit([h.chunk.text for h in hits], budget, lambda t: ctx.llm.tokens(t) + 2)
    return {"answer": _direct(ctx, "\n\n".join(kept), item["question"]), "found": True}


def run_truncated(ctx, item) -> dict[str, Any]:
    from agentlong.packing import truncate_to_tokens

    budget = _budget(ctx, item["question"])
    doc = truncate_to_tokens(item["text"][: budget * 8], budget, ctx.llm.tokens)
    return {"answer": _direct(ctx, doc, item["question"]), "found": True, "read_share": len(doc) / len(item["text"])}


# -- driver --------------------------------------------------------------------------------------
def score(item: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    if item["kind"] == "mc":
        ok = mc_correct(result["answer"], item["gold"], multi=item["task"] == "coursera")
        return {"score": float(ok), "contains": ok}
    return {"score": f1(result["answer"], item["gold"]), "contains": contains(result["answer"], item["gold"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared evals data folder")
    ap.add_argument("--tasks", default="quality,tpo,natural_question",
                    help="comma list of quality,tpo,coursera,natural_question,longbench_v2")
    ap.add_argument("--docs", type=int, default=1, help="documents per task")
    ap.add_argument("--questions", type=int, default=2, help="questions per document (L-Eval)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of rtr,rag,truncated")
    ap.add_argument("--model", default="llama:qwen2.5-coder-0.5b")
    ap.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context window (all methods)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (1 is faster on a busy machine)")
    ap.add_argument("-k", type=int, default=8, help="chunks retrieved (rtr per round, rag)")
    ap.add_argument("--out", type=Path, help="write per-question results as JSONL")
    args = ap.parse_args(argv)

    models = os.environ.get("AGENTLONG_MODELS_DIR") or str(Path.home() / ".cache/agentlong/models")
    home = tempfile.mkdtemp(prefix="rtr_qa_")
    os.environ.update(AGENTLONG_HOME=home, AGENTLONG_MODELS_DIR=models, HF_HUB_OFFLINE="1",
                      ANONYMIZED_TELEMETRY="False")
    from agentlong import Agentlong
    from agentlong.graphs.common import RunContext
    from agentlong.graphs.retrieval import HybridSearch
    from agentlong.store.corpus import index_paths, open_corpus

    app = Agentlong(model=args.model, llama={"n_ctx": args.n_ctx, "n_threads": args.threads},
                    confirm_minutes=None)  # unattended: long reads go ahead
    methods = [m for m in args.methods.split(",") if m]
    items = [it for t in args.tasks.split(",") if t for it in load_task(args.data, t, args.docs, args.questions)]
    print(f"{len(items)} questions, methods {methods}, model {args.model}, window {app.backend.context_window()}, "
          f"k={args.k}; AGENTLONG_HOME={home}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    out = args.out.open("w") if args.out else None  # written as it goes: a long run keeps partial results
    corpora: dict[str, Any] = {}
    index_s = 0.0
    for n, item in enumerate(items, start=1):
        if item["doc_id"] not in corpora:
            started = time.perf_counter()
            path = Path(home) / "docs" / f"{re.sub(r'[^A-Za-z0-9_-]', '_', item['doc_id'])}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(item["text"])
            item["text"] = path.read_text()  # what the loader reads, for the verbatim check
            index_paths(app, [str(path)], name=path.stem, emit=lambda e: None)
            corpus = open_corpus(app, path.stem)
            corpora[item["doc_id"]] = (corpus, HybridSearch(corpus), item["text"])
            index_s += time.perf_counter() - started
        corpus, search, item["text"] = corpora[item["doc_id"]]
        for method in methods:
            ctx = RunContext.from_app(app)
            started = time.perf_counter()
            try:
                if method == "rtr":
                    result = run_rtr(ctx, search, item, args.k)
                elif method == "rag":
                    result = run_rag(ctx, corpus, item, args.k)
                else:
                    result = run_truncated(ctx, item)
                result["error"] = None
            except Exception as exc:  # a benchmark records failures and goes on
                result = {"answer": "", "found": False, "error": f"{type(exc).__name__}: {exc}"}
            result.update(seconds=time.perf_counter() - started, calls=ctx.llm.usage.calls,
                          prompt_tokens=ctx.llm.usage.prompt_tokens, method=method, task=item["task"],
                          gold=item["gold"], question=item["question"][:200], **score(item, result))
            rows.append(result)
            if out:
                out.write(json.dumps(result) + "\n")
                out.flush()
            print(f"[{n}/{len(items)}] {item['task']:<16} {method:<9} score={result['score']:.2f} "
                  f"{result['seconds']:6.1f}s  {result['answer'][:70]!r}", file=sys.stderr)
    if out:
        out.close()
    report(rows, methods, index_s, len(corpora))
    return 0


def report(rows: list[dict[str, Any]], methods: list[str], index_s: float, docs: int) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["method"])].append(r)
        groups[("ALL", r["method"])].append(r)
    tasks = sorted({r["task"] for r in rows}) + ["ALL"]
    print(f"\n{'task':<17}{'method':<11}{'n':>3}{'score':>8}{'contains':>10}{'not found':>11}{'errors':>8}"
          f"{'s/q':>8}{'calls/q':>9}{'prompt tok/q':>14}")
    for task in tasks:
        for method in methods:
            g = groups.get((task, method), [])
            if not g:
                continue
            mean = lambda key: statistics.mean(float(r[key]) for r in g)  # noqa: E731
            print(f"{task:<17}{method:<11}{len(g):>3}{mean('score'):>8.2f}{mean('contains'):>10.2f}"
                  f"{sum(not r['found'] for r in g) / len(g):>11.2f}{sum(bool(r['error']) for r in g):>8}"
                  f"{mean('seconds'):>8.1f}{mean('calls'):>9.1f}{mean('prompt_tokens'):>14.0f}")
    rtr = [r for r in rows if r["method"] == "rtr" and not r.get("error")]
    if rtr:
        cites, verbatim = sum(r["citations"] for r in rtr), sum(r["verbatim"] for r in rtr)
        proposed, dropped = sum(r["proposed"] for r in rtr), sum(r["dropped"] for r in rtr)
        fuzzy = sum(r["fuzzy"] for r in rtr)
        print(f"\nrtr citations: {cites} cited, {verbatim} verbatim at their span "
              f"({100 * verbatim / max(cites, 1):.1f}%), {fuzzy} via fuzzy snap; model quotes: {proposed} proposed, "
              f"{proposed - dropped} verified ({100 * (proposed - dropped) / max(proposed, 1):.1f}%), "
              f"{dropped} dropped")
    by = {m: [r for r in rows if r["method"] == m] for m in methods}
    if "rtr" in by and by["rtr"]:
        for other in (m for m in methods if m != "rtr" and by[m]):
            s_rtr = statistics.mean(r["score"] for r in by["rtr"])
            s_o = statistics.mean(r["score"] for r in by[other])
            t_rtr = statistics.mean(r["seconds"] for r in by["rtr"])
            t_o = statistics.mean(r["seconds"] for r in by[other])
            print(f"rtr vs {other}: score {s_rtr:.2f} vs {s_o:.2f} ({s_rtr - s_o:+.2f}); "
                  f"wall {t_rtr:.1f}s vs {t_o:.1f}s per question (x{t_rtr / max(t_o, 1e-9):.2f})")
    print(f"indexing: {docs} documents in {index_s:.1f}s (shared by rtr and rag, not in the per-question times)")


if __name__ == "__main__":
    sys.exit(main())
