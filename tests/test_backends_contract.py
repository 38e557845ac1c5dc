"""One contract, every backend: fake, llama.cpp in-process (default GGUF), OpenAI SDK against a real
``llama_cpp.server`` on 127.0.0.1. Prompts are tiny so the real model answers in about a second."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel

from agentlong.backends import Backend, Stream
from agentlong.backends.fake import FakeBackend
from agentlong.errors import ContextWindowExceeded
from agentlong.settings import OpenAISettings
from agentlong.types import Message

SYSTEM = Message(role="system", content="You are a terse assistant. Answer in a few words.")
ARITHMETIC = [SYSTEM, Message(role="user", content="What is 2+2? Reply with just the number.")]
COUNT = [SYSTEM, Message(role="user", content="Count from 1 to 5, separated by spaces.")]
PERSON = [SYSTEM, Message(role="user", content="Return a JSON object for a person named Bob who is 3 years old.")]


class Person(BaseModel):
    name: str
    age: int


def fake_backend() -> FakeBackend:
    return FakeBackend(mode="keyed", responses={"2+2": "4", "Count": "1 2 3 4 5", "JSON": {"name": "Bob", "age": 3}},
                       default="ok", context_window=4096)


@pytest.fixture(scope="module")
def openai_backend(llama_server):
    from agentlong.backends.openai_backend import OpenAIBackend

    # llama_cpp.server does not report its n_ctx; a user sets it like this (AGENTLONG_OPENAI__CONTEXT_WINDOW)
    backend = OpenAIBackend("qwen", base_url=llama_server, settings=OpenAISettings(context_window=4096, timeout_s=120))
    yield backend
    backend.close()


@pytest.fixture(params=["fake", "llama", "openai"])
def backend(request) -> Backend:
    if request.param == "fake":
        return fake_backend()
    return request.getfixturevalue(f"{request.param}_backend")


def test_is_a_backend(backend):
    assert isinstance(backend, Backend)
    assert backend.max_concurrency >= 1 and backend.name and backend.model


def test_chat_answer(backend):
    completion = backend.complete(ARITHMETIC, max_tokens=8)
    assert "4" in completion.text
    assert completion.finish_reason in ("stop", "length")


def test_usage_numbers(backend):
    usage = backend.complete(ARITHMETIC, max_tokens=8).usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.calls == 1 and usage.seconds >= 0
    assert usage.cached_tokens <= usage.prompt_tokens


def test_streamed_answer_joins_to_completion(backend):
    stream = backend.stream(COUNT, max_tokens=16)
    assert isinstance(stream, Stream)
    deltas = list(stream)
    assert len(deltas) >= 2
    assert stream.completion is not None
    assert "".join(deltas) == stream.completion.text
    assert "1" in stream.completion.text and "3" in stream.completion.text
    assert stream.completion.usage.completion_tokens > 0 and stream.completion.usage.prompt_tokens > 0


def test_schema_valid_json(backend):
    completion = backend.complete(PERSON, max_tokens=48, schema=Person.model_json_schema())
    person = Person.model_validate(completion.parsed)
    assert person.name.lower() == "bob" and person.age == 3


def test_count_tokens(backend):
    short, long = backend.count_tokens("hello world"), backend.count_tokens("hello world " * 50)
    assert 1 <= short <= 5
    assert long > 20 * short
    assert backend.count_tokens("") == 0


def test_context_window(backend):
    assert backend.context_window() == 4096


def test_over_long_prompt_fails_before_any_call(backend, monkeypatch):
    def no_call(*args, **kwargs):
        raise AssertionError("the backend was called with a prompt that cannot fit")

    if isinstance(backend, FakeBackend):
        monkeypatch.setattr(backend, "_pick", no_call)
    elif hasattr(backend, "_llama"):
        monkeypatch.setattr(backend._llama, "create_chat_completion", no_call)
    else:
        monkeypatch.setattr(backend, "_sync", no_call)
        monkeypatch.setattr(backend, "_async", no_call)
    huge = [Message(role="user", content="lorem ipsum " * backend.context_window() * 2)]
    with pytest.raises(ContextWindowExceeded, match="exceeds"):
        backend.complete(huge, max_tokens=8)
    with pytest.raises(ContextWindowExceeded):
        backend.stream(huge, max_tokens=8)
    with pytest.raises(ContextWindowExceeded):
        asyncio.run(backend.acomplete(huge, max_tokens=8))
    # fits alone, but not with the requested output
    near = [Message(role="user", content="hello " * (backend.context_window() // 2))]
    with pytest.raises(ContextWindowExceeded):
        backend.complete(near, max_tokens=backend.context_window())


def test_async_complete(backend):
    completion = asyncio.run(backend.acomplete(ARITHMETIC, max_tokens=8))
    assert "4" in completion.text and completion.usage.calls == 1


def test_async_stream(backend):
    async def collect() -> list[str]:
        return [delta async for delta in backend.astream(COUNT, max_tokens=16)]

    text = "".join(asyncio.run(collect()))
    assert "1" in text and "2" in text


# -- llama.cpp specifics ---------------------------------------------------------------------------

def test_llama_reuses_kv_cache_for_a_shared_prefix(llama_backend):
    system = Message(role="system", content="You answer questions about the fruit list: apple, pear, plum. " * 6)
    prefix = llama_backend.count_tokens(system.content)
    first = llama_backend.complete([system, Message(role="user", content="Name one fruit.")], max_tokens=4)
    second = llama_backend.complete([system, Message(role="user", content="Name another fruit.")], max_tokens=4)
    assert first.usage.prompt_tokens > prefix
    assert second.usage.cached_tokens >= prefix  # the system prompt was not evaluated again
    assert second.usage.cached_tokens < second.usage.prompt_tokens


def test_llama_serialises_concurrent_calls(llama_backend):
    assert llama_backend.max_concurrency == 1
    results: list[str] = []
    errors: list[BaseException] = []

    def work(question: str) -> None:
        try:
            results.append(llama_backend.complete([Message(role="user", content=question)], max_tokens=4).text)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(q,)) for q in ("Say yes.", "Say no.", "Say ok.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 3 and all(results)


def test_a_stream_stopped_early_keeps_its_text_and_usage_and_frees_the_backend(backend):
    long_count = [SYSTEM, Message(role="user", content="Count from 1 to 100, separated by spaces.")]
    stream = backend.stream(long_count if not isinstance(backend, FakeBackend) else COUNT, max_tokens=200)
    completion = stream.collect(until=lambda text: len(text.split()) >= 3)
    assert completion.finish_reason == "stopped" and len(completion.text.split()) >= 3
    assert completion.text.startswith("1") or "1" in completion.text[:8]
    assert 0 < completion.usage.completion_tokens < 60  # sampling stopped; did not run on to 100
    assert "4" in backend.complete(ARITHMETIC, max_tokens=8).text  # the model (lock, connection) is free again


def test_llama_stream_releases_the_model_when_abandoned(llama_backend):
    stream = llama_backend.stream(COUNT, max_tokens=16)
    next(iter(stream))
    del stream  # generator closed: the lock must be free again
    assert "4" in llama_backend.complete(ARITHMETIC, max_tokens=8).text


def test_openai_server_without_context_override_learns_the_window(llama_server):
    from agentlong.backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend("qwen", base_url=llama_server)
    assert backend.context_window() == 8192  # llama_cpp.server reports no n_ctx: the default
    too_long = [Message(role="user", content="lorem ipsum " * 3000)]  # ~6000 tokens: fits 8192, not the server's 4096
    with pytest.raises(ContextWindowExceeded):
        backend.complete(too_long, max_tokens=8)
    assert backend.context_window() == 4096
