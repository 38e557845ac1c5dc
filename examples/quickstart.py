"""Quickstart: a plain answer, a streamed answer and a schema-constrained JSON answer from the default
local model (Qwen2.5-Coder-0.5B-Instruct through llama.cpp; offline, joined from its packages on
first use).

    python examples/quickstart.py
    AGENTLONG_MODEL=openai:qwen@http://127.0.0.1:8000/v1 python examples/quickstart.py   # any server
"""

from __future__ import annotations

from pydantic import BaseModel

from agentlong import Agentlong
from agentlong.types import Message


class Release(BaseModel):
    project: str
    version: str
    year: int


def main() -> None:
    al = Agentlong()  # settings from AGENTLONG_* variables and $AGENTLONG_HOME/config.toml
    print(f"model: {al.backend.name}, context window {al.backend.context_window()} tokens")

    answer = al.complete("What does HTTP status 404 mean? Answer in one sentence.", max_tokens=48)
    print("\ncomplete:", answer.text)
    print("usage:", answer.usage.prompt_tokens, "prompt +", answer.usage.completion_tokens, "completion tokens,",
          f"{answer.usage.seconds:.1f}s")

    print("\nstream: ", end="", flush=True)
    stream = al.backend.stream([Message(role="user", content="List three HTTP methods, comma separated.")],
                               max_tokens=24)
    for delta in stream:
        print(delta, end="", flush=True)
    print()

    # JSON constrained by a schema (a llama.cpp grammar locally; json_schema on OpenAI-compatible servers)
    llm = al.llm()
    text = "Requests 2.32.0 came out in 2024 and dropped support for Python 3.7."
    completion = llm.send([Message(role="user", content=f"Extract the project, version and year as JSON: {text}")],
                          step="extract", max_tokens=64, schema=Release.model_json_schema())
    release = Release.model_validate(completion.parsed)
    print("\njson:", release.model_dump())
    print("run usage:", llm.usage.calls, "calls,", llm.usage.total_tokens, "tokens")


if __name__ == "__main__":
    main()
