"""What does agentlong's LlamaBackend add on top of calling llama-cpp-python directly?

Both sides load the same GGUF with the same Llama settings in this process and answer the same short
prompts (SWE-QA questions about `requests`, behind agentlong's system prompt), greedy, alternating
which side goes first for each prompt so that machine noise falls on both. Each side has its own
model instance, so each sees the same KV-cache history (the shared system prompt is reused on both).

    python benchmarks/backend_overhead.py                  # 20 prompts, max 32 new tokens
    python benchmarks/backend_overhead.py --prompts 48 --max-tokens 64 --rounds 2 --threads 2

Prints per-side seconds, the ratio agentlong / direct (goal: <= 1.03), whether the answers are
identical, and the prompt tokens agentlong served from the KV cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared evals data folder")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="catalog name or .gguf path")
    parser.add_argument("--prompts", type=int, default=20, help="number of questions")
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per answer")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the prompts")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads (default 1: on busy shared cores multi-thread timings swing wildly)")
    return parser.parse_args()


def load_questions(data: Path, n: int) -> list[str]:
    path = data / "code/swe_qa/requests.jsonl"
    if not path.is_file():
        raise SystemExit(f"benchmark data not found: {path} (pass --data)")
    with path.open(encoding="utf-8") as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    return questions[:n]


def main() -> None:
    args = parse_args()
    import llama_cpp

    from agentlong.backends.llama import LlamaBackend
    from agentlong.backends.models import resolve_model_path
    from agentlong.prompts import render
    from agentlong.settings import LlamaSettings
    from agentlong.types import Message

    questions = load_questions(args.data, args.prompts)
    path = resolve_model_path(args.model)
    settings = LlamaSettings(n_ctx=args.n_ctx, n_threads=args.threads)
    ours = LlamaBackend(path, settings, name=f"llama:{args.model}")
    direct = llama_cpp.Llama(  # exactly the parameters LlamaBackend passes
        model_path=str(path), n_ctx=args.n_ctx, n_batch=min(settings.n_batch, args.n_ctx), n_threads=args.threads,
        n_threads_batch=args.threads, n_gpu_layers=settings.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0,
        seed=settings.seed, verbose=False,
    )
    system = render("system")
    inner: list[float] = []  # seconds agentlong's calls spent inside llama-cpp-python
    wrapped = ours._llama.create_chat_completion

    def timed(*a, **kw):
        started = time.perf_counter()
        try:
            return wrapped(*a, **kw)
        finally:
            inner.append(time.perf_counter() - started)

    ours._llama.create_chat_completion = timed

    def run_ours(question: str) -> tuple[float, str, int, int]:
        started = time.perf_counter()
        c = ours.complete([Message(role="system", content=system), Message(role="user", content=question)],
                          max_tokens=args.max_tokens, temperature=0.0)
        return time.perf_counter() - started, c.text, c.usage.prompt_tokens, c.usage.cached_tokens

    def run_direct(question: str) -> tuple[float, str, int, int]:
        started = time.perf_counter()
        r = direct.create_chat_completion(
            [{"role": "system", "content": system}, {"role": "user", "content": question}],
            max_tokens=args.max_tokens, temperature=0.0, stop=[], seed=settings.seed)
        return time.perf_counter() - started, r["choices"][0]["message"]["content"] or "", r["usage"]["prompt_tokens"], 0

    run_ours("warm up"), run_direct("warm up")
    times = {"agentlong": [], "direct": []}
    same = prompt_tokens = cached = 0
    for _ in range(args.rounds):
        for i, question in enumerate(questions):
            order = [("agentlong", run_ours), ("direct", run_direct)]
            results = {}
            for side, fn in order if i % 2 == 0 else reversed(order):
                results[side] = fn(question)
                times[side].append(results[side][0])
            same += results["agentlong"][1] == results["direct"][1]
            prompt_tokens += results["agentlong"][2]
            cached += results["agentlong"][3]

    calls = len(times["agentlong"])
    total_ours, total_direct = sum(times["agentlong"]), sum(times["direct"])
    print(f"model {path.name}, n_ctx {args.n_ctx}, threads {args.threads}, {calls} calls per side, "
          f"max_tokens {args.max_tokens}")
    for side in ("agentlong", "direct"):
        t = times[side]
        print(f"  {side:9s} total {sum(t):7.2f} s   mean {statistics.mean(t):.3f} s   median {statistics.median(t):.3f} s")
    per_call = statistics.median(a / b for a, b in zip(times["agentlong"], times["direct"]))
    print(f"ratio agentlong/direct: total {total_ours / total_direct:.3f}, median per call {per_call:.3f} (goal <= 1.03)")
    own = (total_ours - sum(inner[1:])) / calls  # inner[0] is the warm-up
    print(f"agentlong's own code around llama-cpp-python: {own * 1000:.2f} ms per call "
          f"({own / statistics.mean(times['agentlong']):.3%} of a call)")
    print(f"identical answers: {same}/{calls}")
    print(f"agentlong prompt tokens {prompt_tokens:,}, served from KV cache {cached:,} ({cached / max(prompt_tokens, 1):.0%})")
    ours.close()
    direct.close()


if __name__ == "__main__":
    main()
