"""Chat with memory on the default local model: a fact from turn 1 is recalled after it left flash memory.

Runs offline on the defaults (Qwen2.5-Coder-0.5B GGUF, MiniLM embedder, embedded Chroma under
$AGENTLONG_HOME). Takes about a minute on 2 CPU cores.

    python examples/chat_memory.py
"""

from __future__ import annotations

import sys

from agentlong import Agentlong
from agentlong.memory import Chat
from agentlong.settings import ChunkSettings, Settings

SESSION = "example-memory"


def main() -> int:
    # short answers keep the example quick; every other setting is the default
    app = Agentlong(settings=Settings(chunking=ChunkSettings(output_reserve=64)))
    chat = app.chat(SESSION)
    chat.reset()  # start clean if the example ran before

    print("you: Please remember this: my locker code is 4719.")
    print("bot:", chat.send("Please remember this: my locker code is 4719.").text)
    for question in ("What is the capital of Italy? One word.", "How many legs does a spider have?",
                     "Name a yellow fruit. One word."):
        print("you:", question)
        stream = chat.stream(question)  # text arrives in pieces
        print("bot: ", end="")
        for delta in stream:
            print(delta, end="", flush=True)
        print()

    reply = chat.send("What is my locker code?")
    print("you: What is my locker code?")
    print("bot:", reply.text)
    for m in reply.memory_used:
        score = f", similarity {m.score:.2f}" if m.score is not None else ""
        print(f"   memory: turn {m.n} ({m.kind}, {m.form}{score})")
    print("usage this turn:", reply.usage.prompt_tokens, "prompt +", reply.usage.completion_tokens, "completion tokens")

    chat.close()
    later = app.chat(SESSION)  # days later: same name, same memory
    print(f"resumed {later.name}: {len(later.history())} turns;",
          "sessions:", [s.name for s in Chat.list_sessions(app)])
    later.close()
    Chat.delete_session(app, SESSION)
    return 0 if "4719" in reply.text else 1


if __name__ == "__main__":
    sys.exit(main())
