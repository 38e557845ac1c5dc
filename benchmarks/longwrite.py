"""LongBench-Write length score S_l: the plan-write-review writer vs one direct call of the same model.

Prompts come from LongBench-Write (``longbench_write_en.jsonl``) and LongWrite-Ruler
(``longwrite_ruler.jsonl``) in ``shared/evals/data/longbench_write/`` (read by path, never copied).
A stratified subset is taken: prompts are bucketed by required length and picked round-robin from
the shortest bucket up, alternating the two files, so a few prompts already span the lengths.

For each prompt, in the same process and on the same loaded model:
- writer: ``agentlong.graphs.writer.write`` (no checkpoint), Markdown output;
- direct: the prompt as the only user message, ``max_tokens`` = min(room left in the window,
  4 x required length x the model's tokens-per-word). Beyond 4x the required length S_l is 0
  anyway, so the cap bounds a runaway without changing the direct call's score.

Both outputs are counted with LongBench-Write's counter and scored with its S_l formula; wall
time, generated tokens and words/s are printed side by side.

    python benchmarks/longwrite.py --max-prompts 4 --max-words 2000        # ~what fits in 20 min here
    python benchmarks/longwrite.py --max-prompts 12 --min-words 1000 --max-words 20000   # the full goal (hours)

On 2 cores, two 1-thread shards of the same selection finish sooner than one 2-thread run; the
report merges their JSON into one table:

    python benchmarks/longwrite.py --max-prompts 12 --max-words 20000 --n-threads 1 --shard 1/2 --json-out a.json &
    python benchmarks/longwrite.py --max-prompts 12 --max-words 20000 --n-threads 1 --shard 2/2 --json-out b.json
    python benchmarks/longwrite.py --report a.json b.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"
FILES = {"en": "longbench_write/longbench_write_en.jsonl", "ruler": "longbench_write/longwrite_ruler.jsonl"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="the shared evals data folder")
    p.add_argument("--sets", nargs="+", choices=sorted(FILES), default=["en", "ruler"], help="prompt files to draw from")
    p.add_argument("--lang", choices=["en", "zh", "all"], default="all", help="keep English-only, Chinese-only or all prompts")
    p.add_argument("--min-words", type=int, default=1000, help="smallest required length to include")
    p.add_argument("--max-words", type=int, default=2000, help="largest required length to include")
    p.add_argument("--max-prompts", type=int, default=2, help="how many prompts to run")
    p.add_argument("--model", default="llama:qwen2.5-coder-0.5b", help="model string")
    p.add_argument("--n-ctx", type=int, default=32768, help="llama.cpp context (both sides share the model)")
    p.add_argument("--n-threads", type=int, default=None, help="llama.cpp threads (1 is faster on a busy machine)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of both sides (the writer's default)")
    p.add_argument("--section-words", type=int, default=450, help="writer: aimed words per section")
    p.add_argument("--no-review", action="store_true", help="writer: skip the reviewer calls")
    p.add_argument("--skip-direct", action="store_true", help="run the writer only")
    p.add_argument("--direct-cap", type=float, default=4.0,
                   help="direct call max_tokens = this x required length x tokens/word (4: S_l is 0 beyond anyway; "
                        "a lower cap can only raise the direct call's score)")
    p.add_argument("--json-out", type=Path, help="save per-prompt results as JSON here")
    p.add_argument("--prompts", nargs="+", metavar="SET:LINE", help="run exactly these prompts (e.g. en:42 ruler:33), not a subset")
    p.add_argument("--shard", default="1/1", help="K/N: run the K-th of N shards of the selection (balanced by target length)")
    p.add_argument("--report", type=Path, nargs="+", help="print the table and summary of saved --json-out files; run nothing")
    return p.parse_args(argv)


def load_prompts(args: argparse.Namespace) -> list[dict]:
    """Stratified subset: round-robin over (length bucket, file), shortest buckets first."""
    from agentlong.wordcount import has_cjk

    buckets: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for key in args.sets:
        path = args.data / FILES[key]
        if not path.is_file():
            sys.exit(f"missing {path} — pass --data to the shared evals data folder")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            rec = json.loads(line)
            zh = has_cjk(rec["prompt"])
            if args.min_words <= rec["length"] <= args.max_words and (args.lang == "all" or (args.lang == "zh") == zh):
                buckets[rec["length"]][key].append({**rec, "set": key, "line": i + 1})
    lengths = sorted(buckets)
    picked: list[dict] = []
    turn = 0
    while len(picked) < args.max_prompts and any(q for b in buckets.values() for q in b.values()):
        left = [n for n in lengths if any(buckets[n].values())]
        k = min(args.max_prompts - len(picked), len(left))
        chosen = [left[round(i * (len(left) - 1) / (k - 1))] if k > 1 else left[0] for i in range(k)]
        for n in dict.fromkeys(chosen):  # evenly spaced over the distinct lengths, alternating files
            queues = [q for q in buckets[n].values() if q]
            picked.append(queues[turn % len(queues)].pop(0))
            turn += 1
    return sorted(picked, key=lambda r: r["length"])


def pick(args: argparse.Namespace) -> list[dict]:
    """The prompts named by ``--prompts set:line`` (1-based lines, as printed in the table)."""
    out = []
    for spec in args.prompts:
        key, _, line = spec.partition(":")
        if key not in FILES or not line.isdigit():
            sys.exit(f"--prompts {spec!r}: give SET:LINE with SET one of {', '.join(sorted(FILES))}")
        lines = (args.data / FILES[key]).read_text(encoding="utf-8").splitlines()
        if not 1 <= int(line) <= len(lines):
            sys.exit(f"--prompts {spec!r}: {FILES[key]} has {len(lines)} lines")
        out.append({**json.loads(lines[int(line) - 1]), "set": key, "line": int(line)})
    return sorted(out, key=lambda r: r["length"])


def shard(prompts: list[dict], spec: str) -> list[dict]:
    """The K-th of N shards (``spec`` "K/N"): longest prompts first, each to the lightest shard so far.

    >>> [r["length"] for r in shard([{"length": n} for n in (1000, 2000, 3000, 6000)], "1/2")]
    [6000]
    >>> [r["length"] for r in shard([{"length": n} for n in (1000, 2000, 3000, 6000)], "2/2")]
    [1000, 2000, 3000]
    """
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        sys.exit(f"--shard {spec!r}: give K/N, e.g. 1/2")
    if not 1 <= k <= n:
        sys.exit(f"--shard {spec!r}: K must be between 1 and N")
    loads, owner = [0] * n, {}
    for i in sorted(range(len(prompts)), key=lambda i: -prompts[i]["length"]):
        j = loads.index(min(loads))
        loads[j] += prompts[i]["length"]
        owner[i] = j
    return [r for i, r in enumerate(prompts) if owner[i] == k - 1]


def run_writer(app, rec: dict, args: argparse.Namespace) -> dict:
    from agentlong.graphs.writer import WriterOptions, write

    started = time.perf_counter()
    res = write(app, rec["prompt"], words=rec["length"], checkpoint=False,
                options=WriterOptions(section_words=args.section_words, review=not args.no_review, temperature=None))
    wall = time.perf_counter() - started
    on_target = sum(s.within_tolerance for s in res.sections)
    detail = [{"budget": s.budget, "words": s.words, "length": s.length, "calls": [a.action for a in s.attempts],
               "notes": [a.note for a in s.attempts if a.note], "review": [v.passed for v in s.verdicts]}
              for s in res.sections]
    return _scored(rec, res.text, wall, res.usage,
                   extra={"sections": len(res.sections), "added": len(res.outline) - len(res.plan), "on_target": on_target,
                          "detail": detail, "text": res.text})


def run_direct(app, rec: dict, cap: float) -> dict:
    from agentlong.types import Message
    from agentlong.wordcount import has_cjk

    llm = app.llm()
    messages = [Message(role="user", content=rec["prompt"])]
    ratio = 1.0 if has_cjk(rec["prompt"]) else 1.4  # generous tokens per word: the cap must not bind below 4x
    room = llm.window - llm.tokens(rec["prompt"]) - 64
    max_tokens = max(64, min(room, math.ceil(cap * rec["length"] * ratio)))
    started = time.perf_counter()
    completion = llm.send(messages, step="direct", max_tokens=max_tokens)
    wall = time.perf_counter() - started
    return _scored(rec, completion.text, wall, llm.usage, extra={"max_tokens": max_tokens,
                                                                 "finish": completion.finish_reason, "text": completion.text})


def _scored(rec: dict, text: str, wall: float, usage, extra: dict) -> dict:
    from agentlong.wordcount import count_words, length_score

    words = count_words(text)
    return {"words": words, "score": round(length_score(rec["length"], words), 1), "wall_s": round(wall, 1),
            "calls": usage.calls, "prompt_tokens": usage.prompt_tokens, "gen_tokens": usage.completion_tokens,
            "words_per_s": round(words / wall, 2) if wall else 0.0, **extra}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    from agentlong import Agentlong
    from agentlong.settings import LlamaSettings, Settings

    prompts = shard(pick(args) if args.prompts else load_prompts(args), args.shard)
    if not prompts:
        sys.exit("no prompt matches --min-words/--max-words/--lang")
    llama = LlamaSettings(n_ctx=args.n_ctx, n_threads=args.n_threads)
    app = Agentlong(settings=Settings(model=args.model, llama=llama, temperature=args.temperature,
                                            confirm_minutes=None))
    print(f"model {args.model}, n_ctx {app.backend.context_window()}, temperature {args.temperature}, {len(prompts)} prompts "
          f"({', '.join(str(p['length']) for p in prompts)} words)", flush=True)
    code = code_version()
    print(f"code {code}", flush=True)
    _head(not args.skip_direct)
    rows = []
    for rec in prompts:
        w = _guarded(run_writer, app, rec, args)
        rows.append({"set": rec["set"], "line": rec["line"], "length": rec["length"], "type": rec["type"], "writer": w, "direct": None})
        if args.json_out:  # the writer's row is kept even if the direct call runs long and the run is stopped
            args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "code": code, "rows": rows}, indent=2))
        rows[-1]["direct"] = None if args.skip_direct else _guarded(run_direct, app, rec, args.direct_cap)
        _row(rows[-1])
        if args.json_out:  # after every prompt, so a stopped run keeps what it measured
            args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "code": code, "rows": rows}, indent=2))
    _summary(rows)
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "code": code, "rows": rows}, indent=2))
    return 0


def report(paths: list[Path]) -> int:
    """One table and summary over saved runs (e.g. the shards of one selection)."""
    rows, codes = [], set()
    for path in paths:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            rows.extend(saved["rows"])
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"cannot read {path}: {exc} — pass files written by --json-out")
        codes.add(saved.get("code", "unrecorded"))
    print(f"code {', '.join(sorted(codes))}" + ("" if len(codes) == 1 else "  (NOT one version: the rows do not compare)"))
    if not rows:
        sys.exit("the files hold no rows yet")
    rows.sort(key=lambda r: r["length"])
    print(f"{len(rows)} prompts ({', '.join(str(r['length']) for r in rows)} words) from {len(paths)} file(s)")
    _head(any(r["direct"] for r in rows))
    for r in rows:
        _row(r)
    _summary(rows)
    return 0


def code_version() -> str:
    """The commit the benchmark runs (with "+changes" when the agentlong/ or prompts/ tree differs from it)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agentlong", "prompts"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" +changes" if dirty else "")


def _head(direct: bool) -> None:
    head = f"{'set':5} {'line':>4} {'target':>6} | {'writer words':>12} {'S_l':>5} {'wall s':>7} {'tok':>6} {'w/s':>5}"
    print(head + (f" | {'direct words':>12} {'S_l':>5} {'wall s':>7} {'tok':>6} {'w/s':>5}" if direct else ""), flush=True)


def _row(row: dict) -> None:
    w, d = row["writer"], row["direct"]
    line = f"{row['set']:5} {row['line']:>4} {row['length']:>6} | {_cells(w)}"
    print(line + ("" if d is None else f" | {_cells(d)}"), flush=True)
    for side, r in (("writer", w), ("direct", d)):
        if r and r.get("error"):
            print(f"      {side} failed (scored 0): {r['error'][:200]}", flush=True)


def _guarded(fn, app, rec: dict, arg) -> dict:
    """Run one side; a failure (e.g. a plan the model never returns as valid JSON) scores 0, the run goes on."""
    started = time.perf_counter()
    try:
        return fn(app, rec, arg)
    except Exception as exc:  # noqa: BLE001 - measured and reported, never hidden
        return {"words": 0, "score": 0.0, "wall_s": round(time.perf_counter() - started, 1), "calls": 0,
                "prompt_tokens": 0, "gen_tokens": 0, "words_per_s": 0.0, "sections": 0, "on_target": 0,
                "error": f"{type(exc).__name__}: {exc}"}


def _cells(r: dict) -> str:
    return f"{r['words']:>12,} {r['score']:>5.1f} {r['wall_s']:>7.1f} {r['gen_tokens']:>6,} {r['words_per_s']:>5.2f}"


def _summary(rows: list[dict]) -> None:
    def mean(side: str, key: str) -> float:
        vals = [r[side][key] for r in rows if r[side]]
        return sum(vals) / len(vals) if vals else float("nan")

    def total(side: str, key: str) -> float:
        return sum(r[side][key] for r in rows if r[side])

    print(f"\nmin S_l    writer {min(r['writer']['score'] for r in rows):.1f}", end="")
    print("" if not any(r["direct"] for r in rows) else f"   direct {min(r['direct']['score'] for r in rows if r['direct']):.1f}")
    print(f"mean S_l   writer {mean('writer', 'score'):.1f}", end="")
    if any(r["direct"] for r in rows):
        print(f"   direct {mean('direct', 'score'):.1f}   (difference {mean('writer', 'score') - mean('direct', 'score'):+.1f})")
        ratio = total("writer", "wall_s") / max(total("direct", "wall_s"), 1e-9)
        print(f"wall time  writer {total('writer', 'wall_s'):.0f}s   direct {total('direct', 'wall_s'):.0f}s   (ratio {ratio:.2f}x)")
        print(f"gen tokens writer {total('writer', 'gen_tokens'):,.0f}   direct {total('direct', 'gen_tokens'):,.0f}")
        print(f"words/s    writer {total('writer', 'words') / max(total('writer', 'wall_s'), 1e-9):.2f}   "
              f"direct {total('direct', 'words') / max(total('direct', 'wall_s'), 1e-9):.2f}")
    else:
        print(f"\nwall time  writer {total('writer', 'wall_s'):.0f}s")
    sections = sum(r["writer"]["sections"] for r in rows)
    print(f"writer sections within ±15% of budget: {sum(r['writer']['on_target'] for r in rows)}/{sections}")
    print(f"writer top-up sections added: {sum(r['writer'].get('added', 0) for r in rows)}")


if __name__ == "__main__":
    sys.exit(main())
