"""One error tree. Every error carries a one-line hint that tells the user what to do.

>>> err = InputError("empty file: a.txt", hint="give a file with text in it")
>>> str(err)
'empty file: a.txt — give a file with text in it'
"""

from __future__ import annotations

__all__ = [
    "AgentlongError",
    "ConfigError",
    "InputError",
    "PromptError",
    "BackendError",
    "BackendUnavailable",
    "RateLimited",
    "ContextWindowExceeded",
    "ParseError",
    "StoreError",
    "GraphError",
    "missing_dependency",
    "debug_traceback",
]


class AgentlongError(Exception):
    """Base class. ``message`` says what went wrong, ``hint`` what to do about it."""

    default_hint = "see `agentlong --help`"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}"

    def one_line(self) -> str:
        """The message and hint on a single line (newlines folded), for the CLI."""
        return " ".join(str(self).split())


class ConfigError(AgentlongError):
    default_hint = "check your settings (AGENTLONG_* variables or the config file)"


class InputError(AgentlongError):
    default_hint = "check the input path or text"


class PromptError(AgentlongError):
    default_hint = "check the prompt templates folder (setting prompts_dir)"


class BackendError(AgentlongError):
    default_hint = "check the model string and that the model or server is available"


class BackendUnavailable(BackendError):
    default_hint = "start the server or check base_url / the model file"


class RateLimited(BackendError):
    default_hint = "wait and retry, or lower the concurrency"

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after  # seconds the server asked for (Retry-After), when it said


class ContextWindowExceeded(BackendError):
    default_hint = "use a shorter input, a smaller chunk size, or a model with a larger context"


class ParseError(BackendError):
    default_hint = "the model did not return valid structured output; retry or use a stronger model"


class StoreError(AgentlongError):
    default_hint = "check the vector store (chroma path or server) and re-index if needed"


class GraphError(AgentlongError):
    default_hint = "re-run the command; finished steps are resumed from the checkpoint"


def missing_dependency(module: str, extra: str) -> ConfigError:
    """The error to raise when an optional dependency is not installed."""
    return ConfigError(
        f"the optional dependency {module!r} is not installed",
        hint=f"run: pip install 'agentlong[{extra}]'",
    )


def debug_traceback() -> None:
    """Print the traceback of the exception being handled, only when ``AGENTLONG_DEBUG`` is set."""
    import os

    if os.environ.get("AGENTLONG_DEBUG"):
        import traceback

        traceback.print_exc()
