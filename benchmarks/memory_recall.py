"""Recall of facts planted early in long conversations: memory controller vs a sliding window.

Each conversation has ``--turns`` exchanges (far more than fit the window): ``--facts`` personal
facts are planted in the first turns, the rest is filler — passages from the Paul Graham essays in
the shared eval data with short canned replies. Filler and fact turns are *recorded* into the
memory stream (no generation: that would take hours on this machine); only the final questions are
answered by the model, once per method, on the same history:

- **memory**: agentlong's controller (flash turns + archived memories retrieved by embedding
  similarity and recency, within the budget derived from the window);
- **window**: the most recent turns that fit the same prompt budget (the usual chat truncation).

Recall = the answer contains the planted value. It also prints the prompt tokens each method would
send at every turn of the conversation (counted with the model's tokenizer, no generation).

    python benchmarks/memory_recall.py                      # 2 conversations x 60 turns x 5 facts
    python benchmarks/memory_recall.py --conversations 1 --turns 80 --facts 6 --n-ctx 4096
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"

NAMES = ["Orlanda", "Bexley", "Tamsin", "Quillon", "Marisol", "Dovrik", "Ysolde", "Fenwick"]
FACTS = [  # (statement, question, value pool)
    ("Please remember: my locker code at the gym is {v}.", "What is my locker code at the gym?",
     [str(n) for n in range(2000, 9999, 137)]),
    ("Note for later: my sister's name is {v}.", "What is my sister's name?", NAMES),
    ("Remember that I parked the car on level {v} of the airport garage.",
     "On which level of the airport garage did I park the car?", [str(n) for n in range(3, 10)]),
    ("My flight back home is {v}, please keep that in mind.", "What is my flight number back home?",
     [f"{a}{n}" for a in ("KL", "BA", "LH", "AF") for n in (417, 2281, 963)]),
    ("Keep in mind that my dog is called {v}.", "What is my dog called?", ["Biscuit", "Pepper", "Juniper", "Waffles"]),
    ("For the record, my hotel room number is {v}.", "What is my hotel room number?",
     [str(n) for n in range(301, 899, 53)]),
    ("Remember my favourite tea is {v}.", "What is my favourite tea?", ["rooibos", "genmaicha", "lapsang souchong"]),
    ("My employee ID is {v}; I may need it later.", "What is my employee ID?", [f"E-{n}" for n in range(5100, 5999, 71)]),
]
REPLIES = ["Interesting passage. The author argues from experience rather than theory.",
           "That is a thoughtful point; it connects to how startups learn from users.",
           "I agree in part, though the argument depends on the context described.",
           "Good excerpt. It shows the author's habit of questioning common assumptions."]


def passages(data: Path, words: int, rng: random.Random) -> list[str]:
    text = (data / "haystack/paul_graham_essays_concat.txt").read_text(encoding="utf-8")
    paras = [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) >= 20]
    rng.shuffle(paras)
    return [" ".join(p.split()[:words]) for p in paras]


def conversation(data: Path, turns: int, facts: int, words: int, seed: int):
    """[(user, assistant)] plus [(question, value, planted_turn)]."""
    rng = random.Random(seed)
    chosen = rng.sample(FACTS, facts)
    plant_at = {1 + 2 * i: fact for i, fact in enumerate(chosen)}  # turns 1, 3, 5, ...
    filler = iter(passages(data, words, rng))
    history, asks = [], []
    for n in range(1, turns + 1):
        if n in plant_at:
            statement, question, pool = plant_at[n]
            value = rng.choice(pool)
            history.append((statement.format(v=value), "Got it, I will remember that."))
            asks.append((question, value, n))
        else:
            history.append((f"Here is a passage I am reading: \"{next(filler)}\" What do you make of it?",
                            rng.choice(REPLIES)))
    return history, asks


def window_messages(llm, history, question: str, budget_tokens: int):
    """System + the most recent turns that fit ``budget_tokens`` + the question (the baseline)."""
    from agentlong.types import Message

    kept, used = [], 0
    for user, assistant in reversed(history):
        cost = llm.tokens(user) + llm.tokens(assistant) + 16
        if used + cost > budget_tokens:
            break
        kept.append((user, assistant))
        used += cost
    msgs = [Message(role="system", content=llm.render("chat_system"))]
    for user, assistant in reversed(kept):
        msgs += [Message(role="user", content=user), Message(role="assistant", content=assistant)]
    msgs.append(Message(role="user", content=llm.render("chat_user", memories=[], evidence=[], question=question)))
    return msgs, len(kept)


def prompt_tokens(llm, messages) -> int:
    return sum(llm.tokens(m.content) + 8 for m in messages)


def answer(llm, messages, max_tokens: int):
    started = time.perf_counter()
    completion = llm.send(messages, step="bench", max_tokens=max_tokens)
    return completion, time.perf_counter() - started


def hit(text: str, value: str) -> bool:
    return re.search(re.escape(value.lower()), text.lower()) is not None


def run_conversation(app, history, asks, args, label: str) -> dict:
    from agentlong.memory import Chat
    from agentlong.memory.controller import make_budget

    chat = Chat(app, session=label)
    chat.reset()
    llm = app.llm()
    per_turn = {"memory": [], "window": []}
    for user, assistant in history:  # what each method would send at every turn (token counts only)
        plan = chat.controller.plan(llm, user)
        budget = make_budget(llm, chat.controller.cfg, question=user, has_sources=False)
        msgs, _ = window_messages(llm, [(t.user, t.assistant) for t in chat.history()], user,
                                  budget.flash + budget.archive)
        per_turn["memory"].append(prompt_tokens(llm, plan.messages))
        per_turn["window"].append(prompt_tokens(llm, msgs))
        chat.record(user, assistant)
    results = []
    for question, value, planted in asks:
        plan = chat.controller.plan(llm, question)
        budget = plan.budget
        mem_completion, mem_s = answer(llm, plan.messages, args.answer_tokens)
        win_msgs, win_turns = window_messages(llm, history, question, budget.flash + budget.archive)
        win_completion, win_s = answer(llm, win_msgs, args.answer_tokens)
        retrieved = [m.n for m in plan.memory if m.kind == "archive"]
        row = {"question": question, "value": value, "planted": planted,
               "memory_hit": hit(mem_completion.text, value), "window_hit": hit(win_completion.text, value),
               "memory_retrieved": planted in retrieved, "memory_prompt": mem_completion.usage.prompt_tokens,
               "window_prompt": win_completion.usage.prompt_tokens, "memory_s": mem_s, "window_s": win_s,
               "window_turns": win_turns, "memory_answer": mem_completion.text, "window_answer": win_completion.text}
        results.append(row)
        print(f"  turn {planted:>2} fact {value!r:<18} memory: {'HIT ' if row['memory_hit'] else 'miss'} "
              f"(retrieved={row['memory_retrieved']}, {row['memory_prompt']} prompt tok, {mem_s:.1f}s) | "
              f"window: {'HIT ' if row['window_hit'] else 'miss'} ({row['window_prompt']} prompt tok, "
              f"{win_turns} turns, {win_s:.1f}s)", flush=True)
        if args.verbose:
            print(f"     memory answer: {' '.join(mem_completion.text.split())[:160]}")
            print(f"     window answer: {' '.join(win_completion.text.split())[:160]}")
    Chat.delete_session(app, label)
    return {"rows": results, "per_turn": per_turn}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="shared eval data folder")
    parser.add_argument("--model", default="llama:qwen2.5-coder-0.5b", help="model string")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window for the llama backend")
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: all cores; 1 is faster on an oversubscribed machine)")
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--turns", type=int, default=60, help="turns per conversation (>= 2 x facts)")
    parser.add_argument("--facts", type=int, default=5, help="facts planted per conversation (max 8)")
    parser.add_argument("--filler-words", type=int, default=90, help="words per filler passage")
    parser.add_argument("--answer-tokens", type=int, default=48, help="max tokens per answer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verbose", action="store_true", help="print the answers")
    args = parser.parse_args(argv)
    if not (args.data / "haystack/paul_graham_essays_concat.txt").is_file():
        print(f"no eval data at {args.data} (use --data)", file=sys.stderr)
        return 2
    if not 1 <= args.facts <= len(FACTS) or args.turns < 2 * args.facts + 4:
        print("need 1 <= --facts <= 8 and --turns >= 2 x facts + 4", file=sys.stderr)
        return 2

    import os

    os.environ.setdefault("AGENTLONG_HOME", tempfile.mkdtemp(prefix="memory-recall-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from agentlong import Agentlong
    from agentlong.settings import ChunkSettings, LlamaSettings, Settings

    settings = Settings(model=args.model, llama=LlamaSettings(n_ctx=args.n_ctx, n_threads=args.threads),
                        chunking=ChunkSettings(output_reserve=args.answer_tokens), confirm_minutes=None)
    app = Agentlong(settings=settings)
    print(f"model {app.backend.model} window {app.backend.context_window()} tokens; {args.conversations} "
          f"conversation(s) x {args.turns} turns, {args.facts} facts each; filler {args.filler_words} words/turn",
          flush=True)
    rows, per_turn = [], {"memory": [], "window": []}
    started = time.perf_counter()
    for c in range(args.conversations):
        history, asks = conversation(args.data, args.turns, args.facts, args.filler_words, args.seed + c)
        total = sum(app.backend.count_tokens(u) + app.backend.count_tokens(a) for u, a in history)
        print(f"conversation {c + 1}: {total:,} tokens of history ({total / app.backend.context_window():.1f}x the window)",
              flush=True)
        out = run_conversation(app, history, asks, args, f"bench-{c}")
        rows += out["rows"]
        for k in per_turn:
            per_turn[k] += out["per_turn"][k]
    report(rows, per_turn, time.perf_counter() - started)
    return 0


def report(rows: list[dict], per_turn: dict, seconds: float) -> None:
    n = len(rows)
    mem = sum(r["memory_hit"] for r in rows)
    win = sum(r["window_hit"] for r in rows)
    retrieved = sum(r["memory_retrieved"] for r in rows)
    mp = statistics.mean(r["memory_prompt"] for r in rows)
    wp = statistics.mean(r["window_prompt"] for r in rows)
    ms = statistics.mean(r["memory_s"] for r in rows)
    ws = statistics.mean(r["window_s"] for r in rows)
    print()
    print(f"{'':28}{'memory controller':>20}{'sliding window':>18}")
    print(f"{'recall (answer has fact)':28}{f'{mem}/{n} = {mem / n:.0%}':>20}{f'{win}/{n} = {win / n:.0%}':>18}")
    print(f"{'fact turn retrieved':28}{f'{retrieved}/{n}':>20}{'-':>18}")
    print(f"{'prompt tokens / question':28}{mp:>20.0f}{wp:>18.0f}")
    print(f"{'seconds / question':28}{ms:>20.1f}{ws:>18.1f}")
    for key, label in (("mean", statistics.mean), ("max", max)):
        print(f"{f'prompt tokens / turn ({key})':28}{label(per_turn['memory']):>20.0f}{label(per_turn['window']):>18.0f}")
    print(f"ratios: recall memory/window = {mem}/{win}; prompt tokens per question memory/window = {mp / wp:.2f}; "
          f"total {seconds:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
