"""Plans before long work: what will be done, about how long it takes here and what it costs.

One rule, :func:`go_ahead`: every long step (embedding an index, reading every chunk of a text)
reports one plan line first; when its estimate is above ``settings.confirm_minutes`` the CLI asks
(or needs ``--yes``) and the SDK raises :class:`~agentlong.errors.InputError` unless the caller
allowed it (``Agentlong(confirm_minutes=None)``, or an ``app.confirm`` callback that says yes).

Rates are measured: every finished embedding run and model run records its speed in
``$AGENTLONG_HOME/rates.json``; until one exists, the defaults measured on this project's 2-core
CPU machine apply (all-MiniLM-L6-v2: 21 chunks/s; Qwen2.5-Coder-0.5B: ~125 prompt and ~40
generated tokens/s).

>>> duration(0.4), duration(75), duration(213)
('24 s', '1 h 15 min', '3 h 33 min')
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Callable

from .errors import InputError, debug_traceback
from .events import Emit, Notice

if TYPE_CHECKING:  # pragma: no cover
    from .backends.base import Backend
    from .settings import Settings
    from .types import Usage

__all__ = ["go_ahead", "go_ahead_calls", "duration", "embed_rate", "record_embed_rate", "model_minutes", "record_model_rate"]

EMBED_CHUNKS_PER_S = 21.0  # all-MiniLM-L6-v2, 256-token chunks, 2 CPU cores (benchmarks/ingest.py)
PROMPT_TOKENS_PER_S = {"llama": 125.0, "openai": 2000.0}
OUTPUT_TOKENS_PER_S = {"llama": 40.0, "openai": 60.0}
_BLEND = 0.5  # weight of the newest measurement


def duration(minutes: float) -> str:
    """``minutes`` as a short human duration."""
    if minutes < 1:
        return f"{max(1, round(minutes * 60))} s"
    if minutes < 60:
        return f"{round(minutes)} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min"


def go_ahead(settings: "Settings", emit: Emit, plan: str, minutes: float,
             confirm: Callable[[str], bool] | None = None) -> None:
    """Report ``plan`` (one line); above ``settings.confirm_minutes`` ask ``confirm``, or raise (the
    error carries the plan line)."""
    line = f"plan: {plan} — about {duration(minutes)} on this machine"
    limit = settings.confirm_minutes
    if limit is None or minutes <= limit or (confirm is not None and confirm(line)):
        emit(Notice(level="info", message=line))
        return
    raise InputError(f"{line}, above confirm_minutes ({limit:g})",
                     hint="go ahead with --yes (SDK: Agentlong(confirm_minutes=None)), give a smaller input, "
                          "or raise AGENTLONG_CONFIRM_MINUTES")


def go_ahead_calls(settings: "Settings", emit: Emit, backend: "Backend", what: str, calls: int, prompt: int,
                   completion: int, confirm: Callable[[str], bool] | None = None, *, bound: str = "~") -> None:
    """:func:`go_ahead` for model work: ``what`` + calls, tokens, dollars on a priced API, minutes."""
    dollars = backend.price(prompt, completion)
    cost = f", ${dollars:.2f}" if dollars is not None else ""
    go_ahead(settings, emit, f"{what} ~{calls:,} model calls ({bound}{prompt + completion:,} tokens{cost})",
             model_minutes(settings, backend.name, prompt, completion), confirm)


# -- measured rates ---------------------------------------------------------------------------------
def _path(settings: "Settings"):
    return settings.home / "rates.json"


def _load(settings: "Settings") -> dict[str, float]:
    try:
        data = json.loads(_path(settings).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):  # an unreadable cache of speeds: the defaults apply; say so under debug
        debug_traceback()
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and v > 0} if isinstance(data, dict) else {}


def _record(settings: "Settings", key: str, value: float, emit: Emit | None) -> None:
    rates = _load(settings)
    rates[key] = round(value if key not in rates else _BLEND * value + (1 - _BLEND) * rates[key], 4)
    path = _path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rates-")
        with os.fdopen(fd, "w") as fh:
            json.dump(rates, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        debug_traceback()
        if emit is not None:
            emit(Notice(level="warning", message=f"could not record a measured speed in {path}: {exc}"))


def embed_rate(settings: "Settings", embedder: str) -> float:
    """Chunks per second this machine embedded with ``embedder`` (measured, else the default)."""
    return _load(settings).get(f"embed:{embedder}", EMBED_CHUNKS_PER_S)


def record_embed_rate(settings: "Settings", embedder: str, chunks: int, seconds: float, emit: Emit | None = None) -> None:
    if chunks >= 64 and seconds > 0:
        _record(settings, f"embed:{embedder}", chunks / seconds, emit)


def _kind(backend_name: str) -> str:
    return backend_name.split(":", 1)[0]


def _nominal_seconds(backend_name: str, prompt_tokens: int, completion_tokens: int) -> float:
    kind = _kind(backend_name)
    return (prompt_tokens / PROMPT_TOKENS_PER_S.get(kind, PROMPT_TOKENS_PER_S["openai"])
            + completion_tokens / OUTPUT_TOKENS_PER_S.get(kind, OUTPUT_TOKENS_PER_S["openai"]))


def model_minutes(settings: "Settings", backend_name: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Minutes ``backend_name`` takes for these tokens: nominal rates × this machine's measured factor."""
    factor = _load(settings).get(f"model:{backend_name}", 1.0)
    return _nominal_seconds(backend_name, prompt_tokens, completion_tokens) * factor / 60


def record_model_rate(settings: "Settings", backend_name: str, usage: "Usage", emit: Emit | None = None) -> None:
    """After a run: how much slower (or faster) than nominal this backend was here."""
    nominal = _nominal_seconds(backend_name, usage.prompt_tokens - usage.cached_tokens, usage.completion_tokens)
    if usage.seconds >= 5 and nominal > 0 and _kind(backend_name) != "fake":
        _record(settings, f"model:{backend_name}", usage.seconds / nominal, emit)
