"""`agentlong mcp`: the MCP server driven by the official SDK's own client.

Over stdio (``python -m agentlong.cli.main -m fake mcp`` as a subprocess), over streamable HTTP on a
free 127.0.0.1 port, and in-process with a keyed fake backend (for found answers with citations).
Indexing uses the packaged MiniLM embedder and embedded Chroma (real parts). One slow test asks the
default GGUF a planted fact over stdio.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client, MCPError, StdioServerParameters  # noqa: E402

from agentlong import Agentlong  # noqa: E402
from agentlong.backends.fake import FakeBackend  # noqa: E402
from agentlong.errors import InputError  # noqa: E402
from agentlong.mcp_server import build_server  # noqa: E402

from conftest import free_port, stop  # noqa: E402

TOOLS = {"ask", "summarize", "search", "index", "corpora", "write"}
FACT = "The observatory's spare lens is stored in crate forty-two."
CALL_TIMEOUT_S = 240  # first index loads the embedder; a busy 2-core machine is slow


def server_env(**extra: str) -> dict[str, str]:
    """The test's environment (its AGENTLONG_HOME) for the server subprocess."""
    return {**os.environ, "AGENTLONG_SHOW_PROGRESS": "0", **extra}


def stdio_params(model: str = "fake", **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "agentlong.cli.main", "-m", model, "mcp"],
                                 env=server_env(**env))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("Inventory of the hill observatory.\n" + FACT + "\nThe dome was repainted in May.\n")
    (folder / "cats.txt").write_text("Cats sleep for sixteen hours a day.\n\nThey groom themselves with rough tongues.\n")
    return folder


def run_async(fn, *args, timeout: float = 600):
    async def bounded():
        with anyio.fail_after(timeout):
            return await fn(*args)
    return anyio.run(bounded)


class ProgressLog(list):
    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.append((progress, total, message))


def expected_missing_path_line() -> str:
    """The one line the CLI prints for a path that does not exist (same home, same corpora)."""
    with pytest.raises(InputError) as err:
        Agentlong(model="fake").ask("/no/such/file.txt", "What is in it?")
    return err.value.one_line()


async def exercise(client: Client, docs: Path) -> dict:
    """The same conversation over any transport; returns what it saw for the asserts."""
    seen: dict = {}
    seen["tools"] = {tool.name: tool for tool in (await client.list_tools()).tools}
    seen["corpora_before"] = (await client.call_tool("corpora", {})).structured_content
    progress = ProgressLog()
    seen["index"] = await client.call_tool("index", {"paths": [str(docs)], "name": "docs"},
                                           read_timeout_seconds=CALL_TIMEOUT_S, progress_callback=progress)
    seen["progress"] = progress
    seen["corpora_after"] = (await client.call_tool("corpora", {})).structured_content
    seen["search"] = await client.call_tool("search", {"corpus": "docs", "query": "where is the spare lens", "k": 2},
                                            read_timeout_seconds=CALL_TIMEOUT_S)
    seen["ask"] = await client.call_tool("ask", {"source": str(docs / "notes.txt"), "question": "Where is the lens?"},
                                         read_timeout_seconds=CALL_TIMEOUT_S)
    seen["bad"] = await client.call_tool("ask", {"source": "/no/such/file.txt", "question": "What is in it?"})
    seen["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
    seen["resource"] = (await client.read_resource("corpus://docs")).contents[0].text
    return seen


def check_conversation(seen: dict, docs: Path) -> None:
    assert set(seen["tools"]) == TOOLS
    assert seen["tools"]["ask"].output_schema["properties"].keys() >= {"text", "found", "citations", "usage"}
    assert seen["corpora_before"] == {"corpora": []}

    index = seen["index"]
    assert not index.is_error, index.content
    assert index.structured_content["corpus"] == "docs"
    assert sorted(Path(p).name for p in index.structured_content["indexed"]) == ["cats.txt", "notes.txt"]
    assert index.structured_content["resource"] == "corpus://docs"
    progress = seen["progress"]
    assert progress, "no progress notification arrived for index"
    assert [p for p, _, _ in progress] == sorted({p for p, _, _ in progress})  # strictly increasing
    assert any(message and message.startswith("files") for _, _, message in progress), progress

    assert [c["name"] for c in seen["corpora_after"]["corpora"]] == ["docs"]
    assert seen["corpora_after"]["corpora"][0]["documents"] == 2
    hits = seen["search"].structured_content["hits"]
    assert hits and Path(hits[0]["file"]).name == "notes.txt" and FACT in hits[0]["text"]

    ask = seen["ask"]
    assert not ask.is_error, ask.content
    assert ask.structured_content.keys() >= {"text", "found", "citations", "usage", "strategy", "strategy_reason"}
    assert ask.structured_content["usage"]["calls"] >= 1 and ask.structured_content["strategy"]

    bad = seen["bad"]
    assert bad.is_error and len(bad.content) == 1
    text = bad.content[0].text
    assert text == expected_missing_path_line()
    assert "\n" not in text and "Traceback" not in text and "/no/such/file.txt" in text

    assert "corpus://docs" in seen["resources"]
    info = json.loads(seen["resource"])
    assert info["name"] == "docs" and sorted(Path(f["source"]).name for f in info["files"]) == ["cats.txt", "notes.txt"]


def test_stdio_server_end_to_end(docs):
    async def talk():
        async with Client(stdio_params()) as client:
            seen = await exercise(client, docs)
            with pytest.raises(MCPError, match="no corpus named nothing"):
                await client.read_resource("corpus://nothing")
            return seen

    check_conversation(run_async(talk), docs)


def wait_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    """Until 127.0.0.1:port accepts a connection, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agentlong mcp --http exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"agentlong mcp --http not listening on {port} after {timeout_s}s")


def test_streamable_http_server_end_to_end(docs, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agentlong.cli.main", "-m", "fake", "mcp", "--http",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=server_env())
    try:
        wait_port(port, proc, 120)

        async def talk():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                return await exercise(client, docs)

        check_conversation(run_async(talk), docs)
    finally:
        stop(proc)
    assert f"http://127.0.0.1:{port}/mcp" in log.read_text()  # bound to 127.0.0.1 by default
    assert "Traceback" not in log.read_text()


@pytest.fixture
def keyed_app() -> Agentlong:
    fake = FakeBackend(mode="keyed", responses={
        "Answer the question using only the sentences above": {"answer": "It is in crate forty-two [1]."},
        "Write a summary of the text these sentences come from":
            "An inventory of the hill observatory lists its stores. The spare lens is stored in crate forty-two. "
            "The dome of the observatory was repainted in May by the keepers.",
        "Numbered sentences from the user's files": {"answer": "crate forty-two"}})
    return Agentlong(model="fake", backend=fake)


def test_in_process_ask_has_verified_citations_and_usage(keyed_app, docs):
    notes = docs / "notes.txt"

    async def talk():
        async with Client(build_server(keyed_app)) as client:
            progress = ProgressLog()
            ask = await client.call_tool("ask", {"source": str(notes), "question": "Where is the spare lens?",
                                                 "strategy": "full"}, progress_callback=progress)
            summary = await client.call_tool("summarize", {"source": str(notes), "words": 30})
            bad_strategy = await client.call_tool("ask", {"source": str(notes), "question": "x", "strategy": "nope"})
            return ask, progress, summary, bad_strategy

    ask, progress, summary, bad_strategy = run_async(talk, timeout=120)
    assert not ask.is_error, ask.content
    result = ask.structured_content
    assert result["found"] and "forty-two" in result["text"]
    assert result["strategy"] == "full" and result["strategy_reason"]
    text = notes.read_text()
    cited = result["citations"][0]
    assert cited["quote"] == FACT == text[cited["char_start"]:cited["char_end"]]
    assert Path(cited["file"]).name == "notes.txt" and cited["lines"] == "2" and cited["line_start"] == 2
    assert result["usage"]["calls"] >= 2 and result["usage"]["tokens"] > 0 and "seconds" in result["usage"]
    assert "Sources:" in ask.content[0].text and FACT in ask.content[0].text  # text for text-only clients
    assert progress, "no progress notification arrived for ask"

    assert not summary.is_error, summary.content
    assert summary.structured_content["found"] and summary.structured_content["citations"]
    assert bad_strategy.is_error and "strategy" in bad_strategy.content[0].text


def test_cli_rejects_a_bad_port_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "-m", "fake", "mcp", "--http", "--port", "0"],
                          capture_output=True, text=True, timeout=60, env=server_env())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["agentlong: error: port 0 is out of range — give --port between 1 and 65535"]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_real_model_answers_a_planted_fact_over_stdio(default_gguf, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text("The harbour office opens at eight in the morning. Fishing boats leave before dawn. "
                   "The harbourmaster keeps the spare key under the blue anchor. Tourists visit the lighthouse "
                   "in summer. The ferry to the island runs twice a week.\n")

    async def talk():
        async with Client(stdio_params("llama:qwen2.5-coder-0.5b", AGENTLONG_LLAMA__N_CTX="4096")) as client:
            return await client.call_tool("ask", {"source": str(doc), "question": "Where is the spare key kept?"},
                                          read_timeout_seconds=900)

    answer = run_async(talk, timeout=1000)
    assert not answer.is_error, answer.content
    result = answer.structured_content
    assert result["found"], result
    assert "anchor" in result["text"].lower(), result["text"]
    text = doc.read_text()
    assert result["citations"]
    for cited in result["citations"]:
        assert text[cited["char_start"]:cited["char_end"]] == cited["quote"]
    assert any("blue anchor" in c["quote"] for c in result["citations"]), result["citations"]
