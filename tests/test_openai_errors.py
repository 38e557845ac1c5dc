"""OpenAIBackend against a scripted OpenAI-compatible HTTP server on 127.0.0.1: retries, fallbacks, errors.

The server is real (``http.server`` in a thread on a free port); each request takes the next scripted
reply, so a test says exactly what the wire does: 429, 500, garbage, then a good answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from agentlong.backends.openai_backend import OpenAIBackend
from agentlong.errors import (BackendError, BackendUnavailable, ConfigError, ContextWindowExceeded, ParseError,
                              RateLimited)
from agentlong.llm import LLM
from agentlong.settings import OpenAISettings, Settings
from agentlong.types import Message
from conftest import free_port

SECRET = "sk-test-DO-NOT-LEAK-0123456789"
HI = [Message(role="user", content="Say hi.")]


def chat_reply(text: str, prompt_tokens: int = 7, completion_tokens: int = 3) -> dict:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error_reply(status: int, message: str, code: str | None = None) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class ScriptedServer:
    """Answers each POST with the next scripted reply (the last one repeats); records requests."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[dict] = []
        self.gets: dict[str, Any] = {}  # path -> JSON for GET requests
        self.tokenize = False
        self.responder: Any = None  # body -> reply, instead of the script (replies that depend on the request)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path in server.gets:
                    self._send(200, server.gets[self.path])
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if self.path.endswith("/extras/tokenize/count"):
                    if server.tokenize:
                        self._send(200, {"count": len(body["input"].split())})
                    else:
                        self._send(404, {"detail": "Not Found"})
                    return
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("authorization")})
                    reply = server.responder(body) if server.responder else \
                        server.script[min(len(server.requests) - 1, len(server.script) - 1)]
                self._reply(reply, body)

            def _reply(self, reply: Any, body: dict) -> None:
                if reply == "garbage":
                    self._raw(200, b"<html>upstream proxy error</html>", "application/json")
                elif isinstance(reply, tuple):
                    self._send(*reply)
                elif isinstance(reply, str) and body.get("stream"):
                    self._sse(reply)
                elif isinstance(reply, str):
                    self._send(200, chat_reply(reply))
                else:
                    self._send(200, reply)

            def _sse(self, text: str) -> None:
                events = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
                           "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                          for word in [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]]
                events[-1]["choices"][0]["finish_reason"] = "stop"
                payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self._raw(200, payload.encode(), "text/event-stream")

            def _send(self, status: int, data: Any) -> None:
                self._raw(status, json.dumps(data).encode(), "application/json")

            def _raw(self, status: int, payload: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def backend_for(srv: ScriptedServer, **overrides: Any) -> OpenAIBackend:
    settings = OpenAISettings(**{"max_retries": 3, "backoff_s": 0.001, "timeout_s": 10, **overrides})
    return OpenAIBackend("test-model", base_url=srv.url, settings=settings)


class Person(BaseModel):
    name: str
    age: int


# -- retries -----------------------------------------------------------------------------------------

def test_retries_429_500_garbage_then_succeeds(server):
    server.script = [error_reply(429, "slow down"), error_reply(500, "boom"), "garbage", "hello"]
    backend = backend_for(server)
    completion = backend.complete(HI, max_tokens=8)
    assert completion.text == "hello"
    assert len(server.requests) == 4
    assert backend.retries == 3
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.calls) == (7, 3, 1)


def test_rate_limited_after_retries_are_exhausted(server):
    server.script = [error_reply(429, "slow down")]
    with pytest.raises(RateLimited) as info:
        backend_for(server, max_retries=2).complete(HI, max_tokens=8)
    assert len(server.requests) == 3
    assert "429" in str(info.value) and "3 attempts" in str(info.value)


def test_server_errors_exhausted_give_backend_error(server):
    server.script = [error_reply(503, "overloaded")]
    with pytest.raises(BackendError) as info:
        backend_for(server, max_retries=1).complete(HI, max_tokens=8)
    assert not isinstance(info.value, RateLimited)
    assert "503" in str(info.value)
    assert len(server.requests) == 2


def test_garbage_exhausted_gives_malformed_error(server):
    server.script = ["garbage"]
    with pytest.raises(BackendError, match="malformed") as info:
        backend_for(server, max_retries=1).complete(HI, max_tokens=8)
    assert "/v1" in info.value.hint
    assert len(server.requests) == 2


def test_no_retries_when_max_retries_is_zero(server):
    server.script = [error_reply(500, "boom"), "never reached"]
    with pytest.raises(BackendError):
        backend_for(server, max_retries=0).complete(HI, max_tokens=8)
    assert len(server.requests) == 1


def test_async_acomplete_retries_then_succeeds(server):
    server.script = [error_reply(429, "slow down"), "async hello"]
    backend = backend_for(server)
    completion = asyncio.run(backend.acomplete(HI, max_tokens=8))
    assert completion.text == "async hello"
    assert len(server.requests) == 2


def test_stream_retries_opening_then_streams(server):
    server.script = [error_reply(502, "bad gateway"), "one two three"]
    stream = backend_for(server).stream(HI, max_tokens=8)
    deltas = list(stream)
    assert "".join(deltas) == "one two three" and len(deltas) == 3
    assert stream.completion is not None and stream.completion.text == "one two three"
    assert stream.completion.usage.completion_tokens > 0  # estimated: this server sends no usage
    assert server.requests[-1]["body"]["stream"] is True


def test_async_stream(server):
    server.script = ["alpha beta"]

    async def collect() -> list[str]:
        return [d async for d in backend_for(server).astream(HI, max_tokens=8)]

    assert "".join(asyncio.run(collect())) == "alpha beta"


# -- errors that are not retried ---------------------------------------------------------------------

def test_unreachable_port_is_backend_unavailable():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    backend = OpenAIBackend("m", base_url=url, settings=OpenAISettings(max_retries=1, backoff_s=0.001, timeout_s=5))
    with pytest.raises(BackendUnavailable) as info:
        backend.complete(HI, max_tokens=8)
    assert url in str(info.value)
    assert "start the server" in info.value.hint
    assert backend.retries == 1


def test_401_is_config_error_without_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = [error_reply(401, f"Incorrect API key provided: {SECRET}", "invalid_api_key")]
    backend = backend_for(server)
    with pytest.raises(ConfigError) as info:
        backend.complete(HI, max_tokens=8)
    text = info.value.one_line()
    assert "OPENAI_API_KEY" in text and "AGENTLONG_OPENAI__API_KEY" in text
    assert SECRET not in text and SECRET not in repr(info.value)
    assert len(server.requests) == 1  # a wrong key is not retried
    assert server.requests[0]["auth"] == f"Bearer {SECRET}"


def test_other_4xx_messages_are_redacted(server):
    server.script = [error_reply(400, f"bad field; your key was {SECRET}")]
    backend = backend_for(server, api_key=SECRET)
    with pytest.raises(BackendError) as info:
        backend.complete(HI, max_tokens=8)
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_404_names_the_model(server):
    server.script = [error_reply(404, "model not found")]
    with pytest.raises(BackendError) as info:
        backend_for(server).complete(HI, max_tokens=8)
    assert "test-model" in str(info.value) and "model_alias" in info.value.hint


def test_hosted_openai_without_key_is_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="no API key") as info:
        OpenAIBackend("gpt-4o-mini")
    assert "OPENAI_API_KEY" in info.value.hint


def test_server_side_context_overflow_is_context_window_exceeded(server):
    message = "This model's maximum context length is 2048 tokens, however you requested 5000 tokens"
    server.script = [error_reply(400, message, "context_length_exceeded")]
    backend = backend_for(server)
    with pytest.raises(ContextWindowExceeded):
        backend.complete(HI, max_tokens=8)
    assert backend.context_window() == 2048  # learned from the server's message
    assert len(server.requests) == 1


# -- structured output -------------------------------------------------------------------------------

def test_json_schema_rejected_falls_back_to_json_object(server):
    rejected = error_reply(500, "1 validation error: ('body', 'response_format', 'type') Input should be 'text' or 'json_object'")
    server.script = [rejected, json.dumps({"name": "Bob", "age": 3}), json.dumps({"name": "Al", "age": 4})]
    backend = backend_for(server)
    first = backend.complete(HI, max_tokens=32, schema=Person.model_json_schema())
    assert first.parsed == {"name": "Bob", "age": 3}
    formats = [r["body"]["response_format"] for r in server.requests]
    assert formats[0]["type"] == "json_schema" and formats[0]["json_schema"]["schema"]["title"] == "Person"
    assert formats[1] == {"type": "json_object", "schema": Person.model_json_schema()}
    backend.complete(HI, max_tokens=32, schema=Person.model_json_schema())
    assert server.requests[2]["body"]["response_format"]["type"] == "json_object"  # remembered
    assert len(server.requests) == 3


def test_concurrent_first_calls_rejected_together_move_past_the_format_once(server):
    """Four threads send json_schema at once and are all refused: the backend moves to the next
    format once (not three steps, to a format without the schema) and every call succeeds."""
    rejected = error_reply(500, "1 validation error: ('body', 'response_format', 'type') Input should be 'text' or 'json_object'")
    gate = threading.Barrier(4, timeout=10)

    def by_format(body: dict) -> Any:
        if body["response_format"]["type"] == "json_schema":
            return rejected
        return json.dumps({"name": "Bob", "age": 3}) if "schema" in body["response_format"] else "{}"

    server.responder = by_format
    backend = backend_for(server, max_retries=0, context_window=4096, max_concurrency=4)
    results: list[Any] = []

    def one() -> None:
        gate.wait()
        try:
            results.append(backend.complete(HI, max_tokens=32, schema=Person.model_json_schema()).parsed)
        except Exception as exc:  # the test reports it below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [{"name": "Bob", "age": 3}] * 4
    kinds = [r["body"]["response_format"]["type"] + ("+schema" if "schema" in r["body"]["response_format"] else "")
             for r in server.requests]
    assert "json_object" not in kinds and kinds.count("json_object+schema") == 4


def test_invalid_json_twice_is_parse_error_after_one_repair(server):
    server.script = ["not json at all", "still {not json"]
    llm = LLM(backend_for(server), Settings(model="fake"))
    with pytest.raises(ParseError, match="invalid JSON twice"):
        llm.call_json("answer_direct", Person, max_tokens=32, question="who?", document="Bob is 3.")
    assert len(server.requests) == 2
    repair = server.requests[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "not json at all"}
    assert llm.usage.calls == 2


def test_repair_retry_recovers(server):
    server.script = ["oops", json.dumps({"name": "Bob", "age": 3})]
    llm = LLM(backend_for(server), Settings(model="fake"))
    person = llm.call_json("answer_direct", Person, max_tokens=32, question="who?", document="Bob is 3.")
    assert person == Person(name="Bob", age=3)


# -- sizes and cost ----------------------------------------------------------------------------------

def test_context_window_from_llama_server_props(server):
    server.gets["/props"] = {"default_generation_settings": {"n_ctx": 3072}}
    assert backend_for(server).context_window() == 3072


def test_context_window_from_vllm_models_listing(server):
    server.gets["/v1/models"] = {"object": "list", "data": [{"id": "other", "max_model_len": 1},
                                                             {"id": "test-model", "max_model_len": 16384}]}
    assert backend_for(server).context_window() == 16384


def test_context_window_default_and_override(server):
    assert backend_for(server).context_window() == 8192
    assert backend_for(server, context_window=1234).context_window() == 1234
    assert OpenAIBackend("gpt-4o-mini", base_url=server.url).context_window() == 128_000


def test_count_tokens_uses_server_tokenizer_when_present(server):
    text = "one two three four five six"
    assert backend_for(server).count_tokens(text) == -(-len(text) // 3)  # no tokenizer: chars / 3
    server.tokenize = True
    assert backend_for(server).count_tokens(text) == 6
    assert backend_for(server).count_tokens("") == 0


def test_hosted_usage_has_cost(server):
    server.script = [chat_reply("hi", prompt_tokens=1000, completion_tokens=500)]
    backend = backend_for(server)
    backend.model, backend.hosted = "gpt-4o-mini", True  # price it as api.openai.com would
    usage = backend.complete(HI, max_tokens=8).usage
    assert usage.cost_usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert "max_completion_tokens" in server.requests[0]["body"]
    assert backend_for(server).complete(HI, max_tokens=8).usage.cost_usd is None  # local: no price


def test_stream_options_rejected_then_streams_without_them(server):
    server.script = [error_reply(400, "Unrecognized request argument: stream_options"), "a b"]
    backend = backend_for(server)
    assert "".join(backend.stream(HI, max_tokens=8)) == "a b"
    assert "stream_options" in server.requests[0]["body"] and "stream_options" not in server.requests[1]["body"]
    backend.stream(HI, max_tokens=8).collect()
    assert "stream_options" not in server.requests[2]["body"]  # remembered


def test_unreachable_stream_is_backend_unavailable_without_extra_attempts():
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{free_port()}/v1",
                            settings=OpenAISettings(max_retries=2, backoff_s=0.001, timeout_s=5))
    with pytest.raises(BackendUnavailable):
        backend.stream(HI, max_tokens=8)
    assert backend.retries == 2


def test_one_cut_off_tokenizer_reply_does_not_turn_the_server_tokenizer_off():
    from agentlong.backends.openai_probe import ServerProbe

    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(self.path)
            data = b'{"count": 4}' if len(calls) > 1 else b'{"cou'  # the first reply is cut in half
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        probe = ServerProbe(f"http://127.0.0.1:{httpd.server_address[1]}/v1", "m", "k")
        assert [probe.count_tokens(t) for t in ("one two", "three four", "five six")] == [None, 4, 4]
    finally:
        httpd.shutdown()
        httpd.server_close()
