"""Prices and context windows of known hosted OpenAI models, for Usage.cost_usd and budgets.

Prices are US dollars per million tokens (input, cached input, output), from openai.com/api/pricing
(2025). A model is matched by its longest known prefix, so dated snapshots
(``gpt-4o-mini-2024-07-18``) price like their family. Unknown models cost ``None``.

>>> cost("gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=0)
0.15
>>> cost("my-local-model", 10, 10) is None
True
>>> known_context_window("gpt-4.1-nano")
1047576
"""

from __future__ import annotations

__all__ = ["PRICES", "CONTEXT_WINDOWS", "cost", "known_context_window"]

# model prefix -> (input, cached input, output) USD per 1M tokens
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4-turbo": (10.00, 10.00, 30.00),
    "gpt-4": (30.00, 30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 0.50, 1.50),
    "o1": (15.00, 7.50, 60.00),
    "o1-mini": (1.10, 0.55, 4.40),
    "o3": (2.00, 0.50, 8.00),
    "o3-mini": (1.10, 0.55, 4.40),
    "o4-mini": (1.10, 0.275, 4.40),
}

# model prefix -> context window in tokens (input + output)
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}


def _lookup(table: dict, model: str):
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" from routers prices like "gpt-4o"
    matches = [key for key in table if name == key or name.startswith(key + "-")]
    return table[max(matches, key=len)] if matches else None


def cost(model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
    """USD for one call, or None when the model's price is unknown."""
    price = _lookup(PRICES, model)
    if price is None:
        return None
    fresh = max(prompt_tokens - cached_tokens, 0)
    usd = (fresh * price[0] + cached_tokens * price[1] + completion_tokens * price[2]) / 1_000_000
    return round(usd, 8)


def known_context_window(model: str) -> int | None:
    """The documented context window of a known hosted model, else None."""
    return _lookup(CONTEXT_WINDOWS, model)
