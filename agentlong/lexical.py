"""The one lexical tokenizer: content words and crude stems, with one stop-word list.

Used wherever code compares texts by words (citation attribution, grounding checks, bridge terms
for multi-hop retrieval, memory recall).

>>> sorted(content_words("The keeper's secret passphrase was amber walrus."))
['amber', 'keeper', 'passphrase', 'secret', 'walrus']
>>> sorted(stems("Seventeen spoons, two forks"))
['17', '2', 'forks', 'spoon']
>>> sorted(stems("three hundred and forty barrels")), sorted(stems("forty-three carriages"))
(['340', 'barre'], ['43', 'carri'])
"""

from __future__ import annotations

import re

__all__ = ["STOP", "content_words", "stems", "NUMBER_WORDS", "number_value"]

STOP = frozenset(
    "a an the and or but nor of to in on at by for with from into onto upon about as is are was were be been being "
    "it its this that these those not no if then than so do does did done has have had having which who whom whose "
    "what when where why how their there they them he she his her hers him we you your yours our ours i me my mine "
    "us can could would should will shall may might must also very just all any each every some such own same other "
    "tell please s t one's".split())
NUMBER_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"once": 1, "twice": 2, "thrice": 3})
_TENS = {w: 10 * n for n, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split(), 0)
         if n >= 2}
_SCALES = {"hundred": 100, "thousand": 1000}
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _tokens(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text.lower().replace("’", "'")):
        w = w[:-2] if w.endswith("'s") else w
        out.append(w)
    return _numbers(out)


def _numbers(tokens: list[str]) -> list[str]:
    """Runs of number words ("three hundred and forty", "forty three") as one token of digits."""
    out: list[str] = []
    total = part = 0
    run: list[str] = []

    def close() -> None:
        nonlocal total, part, run
        if run:
            words = run[:-1] if run[-1] == "and" else run
            out.append(str(total + part) if any(w != "and" for w in words) else "and")
            if run[-1] == "and":
                out.append("and")
        total = part = 0
        run = []

    for w in tokens:
        if w in _TENS or (w in NUMBER_WORDS and w not in ("once", "twice", "thrice")):
            if run and run[-1] not in _SCALES and run[-1] != "and" and not (run[-1] in _TENS and w not in _TENS):
                close()  # "two three" are two numbers; "forty three" is one
            part += _TENS.get(w, NUMBER_WORDS.get(w, 0))
            run.append(w)
        elif w in _SCALES and run:
            part = max(part, 1) * _SCALES[w]
            if _SCALES[w] == 1000:
                total, part = total + part, 0
            run.append(w)
        elif w == "and" and run and run[-1] in _SCALES:  # "three hundred and forty", not "two and three"
            run.append(w)
        else:
            close()
            out.append(w)
    close()
    return out


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` that are not stop words (possessive 's dropped)."""
    return {w for w in _tokens(text) if w not in STOP and (len(w) > 1 or w.isdigit())}


def stems(text: str) -> set[str]:
    """Content words cut to 5 letters (a crude stem); number words as digits."""
    out = set()
    for w in content_words(text):
        out.add(str(NUMBER_WORDS[w]) if w in NUMBER_WORDS else w if w.isdigit() else w[:5])
    return out


def number_value(word: str) -> int | None:
    """``"7"`` or ``"seven"`` → 7; anything else None."""
    w = word.lower()
    if w.isdigit():
        return int(w)
    return NUMBER_WORDS.get(w)
