"""Token budgets of the evidence calls, from the model's real window, and the one "fits" rule.

>>> from agentlong.backends.fake import FakeBackend
>>> from agentlong.llm import LLM
>>> from agentlong.settings import Settings
>>> llm = LLM(FakeBackend(context_window=4096), Settings(model="fake"))
>>> answer_reserve(llm), read_tokens(llm, "Who?") <= 1024
(512, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from ..llm import LLM
from ..packing import SAFETY, prompt_budget
from ..prompts import render
from .select import Mode, reply_model
from .units import Unit

__all__ = ["answer_reserve", "select_reserve", "read_tokens", "select_fixed", "rendered_tokens", "repair_tokens",
           "SELECT_TOKENS", "summary_tokens"]

SELECT_TOKENS = 1024  # document text per selection call: small enough for a 0.5B model to pick from
SELECT_RESERVE = 160  # ids, a score or a few labels


def answer_reserve(llm: LLM) -> int:
    """max_tokens of an answer (and of any reply sized by the settings), scaled down for small windows."""
    return min(llm.settings.chunking.output_reserve, max(128, llm.window // 8))


def select_reserve(mode: Mode) -> int:
    return 2 * SELECT_RESERVE if mode == "aggregate" else SELECT_RESERVE


def summary_tokens(words: int) -> int:
    """max_tokens for a summary of ``words`` words (English ≈ 1.4 tokens a word, plus room)."""
    return int(words * 1.6) + 48


def repair_tokens(llm: LLM, model: type[BaseModel]) -> int:
    """Room a JSON call keeps for its one repair retry (the instruction with the schema)."""
    text = render("json_repair", llm.settings.prompts_dir, error="validation error " * 12,
                  schema=model.model_json_schema())
    return llm.tokens(text) + 16


def select_fixed(llm: LLM, question: str, mode: Mode, hints: Sequence[str] = ()) -> int:
    """Tokens of a selection prompt without its units, the reply and the repair room included."""
    probe = [{"source": "x" * 40, "lines": "99999-99999", "units": []}]
    fixed = sum(llm.tokens(render(name, llm.settings.prompts_dir, **v)) + 8 for name, v in (
        ("system", {}), ("select_units", dict(question=question, mode=mode, hints=list(hints), blocks=probe,
                                              most=8))))
    return fixed + select_reserve(mode) + repair_tokens(llm, reply_model(mode))


def rendered_tokens(llm: LLM, units: Sequence[Unit]) -> int:
    """Tokens of units as a prompt shows them (``[n] text`` lines)."""
    return llm.tokens("\n".join(f"[{n}] {' '.join(u.text.split())}" for n, u in enumerate(units, 1)))


def read_tokens(llm: LLM, question: str, mode: Mode = "fact") -> int:
    """Document tokens per selection call when reading a whole text: SELECT_TOKENS (or the
    configured chunk size), never more than the window leaves."""
    room = prompt_budget(llm.window, select_fixed(llm, question, mode, ["x" * 40] * 4), 0)
    room = int(room / 1.15)  # numbering adds a few tokens a unit
    asked = llm.settings.chunking.chunk_tokens or SELECT_TOKENS
    return max(64, min(asked, room))


def fits_window(llm: LLM, needed: int) -> bool:
    return needed <= int(llm.window * SAFETY)
