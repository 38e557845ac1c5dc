"""Talk to `agentlong mcp` with the official MCP SDK's client, over stdio (offline, default model).

    pip install -e '.[local,mcp]'
    python examples/mcp_client.py                  # default local GGUF model
    python examples/mcp_client.py --model fake     # no model: see the protocol only

It starts ``agentlong mcp`` as a subprocess (what Claude Desktop or VS Code do from their
``mcpServers`` config), lists the tools, indexes a small generated note into a corpus (progress
notifications are printed as they arrive), searches it, asks a question and prints the structured
answer: text, citations (file, lines, character span, verbatim quote), usage, strategy and reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from mcp import Client, StdioServerParameters

NOTE = ("Harbour office notes, spring season.\n"
        "The night ferry to Lindholm now leaves at 22:15 from pier 3.\n"
        "Bicycles travel free; cars need a booking two days ahead.\n"
        "The harbour café closes at nine on weekdays.\n")


async def progress(value: float, total: float | None, message: str | None) -> None:
    print(f"   · {message}", file=sys.stderr)


async def main(model: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="agentlong_mcp_example_")) / "harbour"
    folder.mkdir()
    (folder / "note.txt").write_text(NOTE)
    args = ["-m", "agentlong.cli.main"] + (["-m", model] if model else []) + ["mcp"]
    async with Client(StdioServerParameters(command=sys.executable, args=args)) as client:
        tools = (await client.list_tools()).tools
        print("tools:", ", ".join(tool.name for tool in tools))

        index = await client.call_tool("index", {"paths": [str(folder)], "name": "harbour-example"},
                                       progress_callback=progress, read_timeout_seconds=600)
        print("indexed:", json.dumps(index.structured_content, indent=2))

        hits = await client.call_tool("search", {"corpus": "harbour-example", "query": "night ferry", "k": 1})
        print("best passage:", hits.structured_content["hits"][0]["text"].strip().splitlines()[1])

        answer = await client.call_tool("ask", {"source": "harbour-example",
                                                "question": "When does the night ferry to Lindholm leave?"},
                                        progress_callback=progress, read_timeout_seconds=600)
        if answer.is_error:
            sys.exit(f"error: {answer.content[0].text}")
        print("structured answer:", json.dumps(answer.structured_content, indent=2, ensure_ascii=False))

        resource = await client.read_resource("corpus://harbour-example")
        print("corpus resource:", resource.contents[0].text[:200], "…")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model string (default: the local default GGUF)")
    asyncio.run(main(ap.parse_args().model))
