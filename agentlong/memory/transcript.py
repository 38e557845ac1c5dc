"""A chat session as Markdown (``/save FILE``).

>>> from agentlong.memory.stream import Turn
>>> print(transcript_markdown("demo", [], [Turn(id=1, session="demo", n=1, user="hi", assistant="hello")]))
# Chat session `demo`
<BLANKLINE>
## Turn 1
<BLANKLINE>
**You:** hi
<BLANKLINE>
**Assistant:**
<BLANKLINE>
hello
<BLANKLINE>
"""

from __future__ import annotations

from .stream import Turn

__all__ = ["transcript_markdown"]


def transcript_markdown(name: str, sources: list[str], turns: list[Turn]) -> str:
    """Every turn (failed and interrupted ones marked), notes as quotes, citations as lists."""
    lines = [f"# Chat session `{name}`", ""]
    if sources:
        lines += ["Sources: " + ", ".join(f"`{s}`" for s in sources), ""]
    for turn in turns:
        if turn.kind == "note":
            lines += [f"> **Note{f' ({turn.user})' if turn.user else ''}:** {turn.assistant}", ""]
            continue
        lines += [f"## Turn {turn.n}" + ("" if turn.usable else f" ({turn.status})"), "", f"**You:** {turn.user}",
                  "", "**Assistant:**", "", turn.assistant or "_(no answer)_", ""]
        cites = [f"- [{c['n']}] {c['where']}: “{c['quote']}”" for c in turn.meta.get("citations", [])]
        lines += cites + ([""] if cites else [])
    return "\n".join(lines).rstrip() + "\n"
