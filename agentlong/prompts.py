"""Prompts are Jinja2 files in the top-level ``prompts/`` folder, rendered by name.

A user's ``prompts_dir`` overrides built-in prompts of the same name.

>>> "system" in prompt_names()
True
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import PromptError

__all__ = ["render", "prompt_names", "builtin_prompts_dir"]


def builtin_prompts_dir() -> Path:
    """``agentlong/prompts`` in a wheel, the repo's ``prompts/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "prompts", here.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise PromptError("built-in prompts folder not found", hint="reinstall agentlong")


@lru_cache(maxsize=8)
def _env(user_dir: str | None):
    import jinja2

    dirs = ([user_dir] if user_dir else []) + [str(builtin_prompts_dir())]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def prompt_names(user_dir: Path | None = None) -> list[str]:
    """Names of all prompts available (without the ``.j2`` suffix)."""
    return sorted(n[:-3] for n in _env(str(user_dir) if user_dir else None).list_templates() if n.endswith(".j2"))


def render(name: str, user_dir: Path | None = None, **variables: Any) -> str:
    """Render prompt ``name`` with ``variables``; missing variables are an error."""
    import jinja2

    env = _env(str(user_dir) if user_dir else None)
    try:
        return env.get_template(f"{name}.j2").render(**variables).strip()
    except jinja2.TemplateNotFound as exc:
        raise PromptError(f"no prompt named {name!r}", hint=f"available: {', '.join(prompt_names(user_dir))}") from exc
    except jinja2.UndefinedError as exc:
        raise PromptError(f"prompt {name!r}: {exc.message}", hint="pass every variable the template uses") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"prompt {name!r} line {exc.lineno}: {exc.message}", hint="fix the template syntax") from exc
