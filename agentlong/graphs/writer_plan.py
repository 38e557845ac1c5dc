"""The writer's plan: outline models, options, budget rescaling, outline files and the model's plan.

A small model's own word budgets sum to several times the target (FINDINGS.md), so budgets are
only weights: ``rescale`` turns them into integers that sum to the target exactly.

>>> rescale([900, 300, 300], 600)
[300, 150, 150]
>>> section_count(10_000, 450)
22
>>> o = parse_outline_text("# Trip\\n## Day one (200 words)\\n- the beach\\n## Day two\\n")
>>> [(s.title, s.budget) for s in normalize_outline(o, 400).sections]
[('Day one', 200), ('Day two', 200)]
"""

from __future__ import annotations

import json
import math
import re
from statistics import median
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from ..errors import InputError, ParseError
from ..wordcount import has_cjk
from .writer_text import on_one_line, prompt_echo

if TYPE_CHECKING:  # pragma: no cover
    from ..llm import LLM

__all__ = [
    "SectionPlan", "Outline", "WriterOptions", "MIN_WORDS", "MAX_WORDS", "check_target", "section_count",
    "rescale", "normalize_outline", "parse_outline_text", "plan_outline", "plan_more", "same_title", "unit_for",
]

MIN_WORDS, MAX_WORDS = 50, 100_000
MIN_SECTION_WORDS = 20  # below this a section is a sentence, not a section
PLAN_BATCH = 10  # sections planned per model call (keeps each JSON reply small)
TOP_UP_SPAN = 5000  # words of target per `top_up` rounds of extra sections
_TITLE_CHARS, _POINT_CHARS = 100, 160
_ITEM_TOKENS = 40 + (_TITLE_CHARS + 3 * _POINT_CHARS) // 3  # the longest section item the schema allows


class WriterOptions(BaseModel):
    """Knobs of the plan-write-review writer (all have working defaults)."""

    model_config = ConfigDict(extra="forbid")
    section_words: int = Field(450, ge=50, le=5000, description="aimed words per section when the plan is derived from the target (a 0.5B model holds ~300-700)")
    sections: int | None = Field(None, ge=1, le=1000, description="number of sections; None = target / section_words")
    tolerance: float = Field(0.15, gt=0, lt=1, description="a section within ±tolerance of its budget is on target")
    max_calls: int = Field(4, ge=1, le=20, description="model calls per section to draft and extend it (the first draft counts)")
    review: bool = Field(True, description="run a reviewer call on every section")
    max_revisions: int = Field(1, ge=0, le=5, description="rewrites of a section the reviewer failed")
    rebalance: bool = Field(True, description="carry each finished section's shortfall or surplus into the budgets of the sections left")
    top_up: int = Field(4, ge=0, le=10, description="rounds of extra sections (up to 10 a round, sized to what the model writes per section, placed before the planned last section) when the text runs short of the target (model-planned outlines only); as many again per further 5,000 words of target, while rounds gain at least half of what they plan")
    continuity: bool = Field(False, description="final pass that smooths the first paragraph of each section into the one before")
    earlier_passages: int = Field(2, ge=0, le=10, description="passages of earlier sections retrieved (BM25) for each section")
    source_passages: int = Field(4, ge=0, le=20, description="source passages retrieved for each section when sources are given")
    summary_tokens: int = Field(300, ge=0, description="cap on the running summary of earlier sections in a prompt")
    tail_tokens: int = Field(150, ge=0, description="cap on the tail of the previous section/draft in a prompt")
    passage_tokens: int = Field(250, ge=0, description="cap on retrieved passages of earlier sections in a prompt")
    source_tokens: int = Field(700, ge=0, description="cap on source passages in a prompt")
    max_call_tokens: int = Field(1536, ge=64, description="cap on the output tokens of one drafting call")
    tokens_per_word: float | None = Field(None, gt=0, description="override the measured tokens-per-word ratio")
    temperature: float | None = Field(0.7, ge=0, le=2, description="sampling temperature of the writer's calls (greedy decoding makes small models loop); None = settings.temperature")


class SectionPlan(BaseModel):
    """One section of the outline: a title, the points it covers, and its word budget."""

    title: str
    points: list[str] = Field(default_factory=list)
    budget: int = Field(0, ge=0, description="words (CJK characters count one each)")


class Outline(BaseModel):
    """The whole plan: a document title and its sections."""

    title: str = ""
    sections: list[SectionPlan]

    @property
    def total(self) -> int:
        return sum(s.budget for s in self.sections)

    def markdown(self) -> str:
        """The editable outline format that ``parse_outline_text`` reads back."""
        lines = [f"# {self.title}", ""] if self.title else []
        for s in self.sections:
            lines.append(f"## {s.title} ({s.budget} words)" if s.budget else f"## {s.title}")
            lines.extend(f"- {p}" for p in s.points)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def unit_for(instruction: str) -> str:
    """The length unit to ask for: Chinese characters for a Chinese instruction, else words."""
    return "Chinese characters" if has_cjk(instruction) else "words"


def check_target(words: Any) -> int:
    """A valid target length, or an InputError that says the allowed range."""
    if isinstance(words, bool) or not isinstance(words, int):
        raise InputError(f"target length {words!r} is not a whole number", hint=f"give --words between {MIN_WORDS} and {MAX_WORDS:,}")
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise InputError(f"target length {words:,} words is out of range",
                         hint=f"give --words between {MIN_WORDS} and {MAX_WORDS:,}")
    return words


def section_count(target: int, section_words: int, override: int | None = None) -> int:
    """How many sections a target needs (at least 1, and never under MIN_SECTION_WORDS each)."""
    n = override if override else round(target / section_words)
    return max(1, min(n, target // MIN_SECTION_WORDS))


def rescale(weights: list[float], target: int, *, spread: float | None = 2.0) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``target`` (largest remainder).

    With ``spread``, weights are first clamped to [median/spread, median*spread] so one absurd
    budget cannot starve the others; missing or non-positive weights count as the median.
    """
    if not weights:
        return []
    positive = [float(w) for w in weights if w and w > 0]
    mid = median(positive) if positive else 1.0
    clean = [float(w) if w and w > 0 else mid for w in weights]
    if spread:
        clean = [min(max(w, mid / spread), mid * spread) for w in clean]
    total = sum(clean)
    raw = [w * target / total for w in clean]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: target - sum(out)]:
        out[i] += 1
    return out


# -- user outlines -----------------------------------------------------------------------------
def normalize_outline(raw: Any, target: int) -> Outline:
    """A user-supplied outline (Outline, dict, list of titles/dicts) with budgets summing to ``target``."""
    outline = raw if isinstance(raw, Outline) else _coerce(raw)
    if not outline.sections:
        raise InputError("the outline has no sections", hint="give at least one section title")
    if any(not s.title.strip() for s in outline.sections):
        raise InputError("the outline has a section without a title", hint="give every section a title")
    if len(outline.sections) > target // MIN_SECTION_WORDS:
        raise InputError(f"the outline has {len(outline.sections)} sections for {target:,} words",
                         hint=f"use fewer sections or more words (at least {MIN_SECTION_WORDS} words per section)")
    given = [s.budget for s in outline.sections]
    budgets = given if sum(given) == target and all(given) else rescale(given, target, spread=None)
    sections = [s.model_copy(update={"budget": b, "title": s.title.strip()}) for s, b in zip(outline.sections, budgets)]
    return Outline(title=outline.title.strip(), sections=sections)


def _coerce(raw: Any) -> Outline:
    try:
        if isinstance(raw, dict):
            return Outline(title=str(raw.get("title", "")), sections=[_item(x) for x in raw.get("sections", [])])
        if isinstance(raw, (list, tuple)):
            return Outline(sections=[_item(x) for x in raw])
    except (ValidationError, TypeError, ValueError) as exc:
        raise InputError(f"the outline is malformed: {' '.join(str(exc).split())[:160]}",
                         hint="give a list of titles or of {title, points, budget} objects") from exc
    raise InputError(f"an outline must be a list or a dict, not {type(raw).__name__}",
                     hint="give a list of titles or of {title, points, budget} objects")


def _item(x: Any) -> SectionPlan:
    if isinstance(x, str):
        title, budget = _split_budget(x)
        return SectionPlan(title=title, budget=budget)
    if isinstance(x, SectionPlan):
        return x
    if not isinstance(x, dict):
        raise TypeError(f"a section must be a title or an object, not {type(x).__name__}")
    points = x.get("points", x.get("summary", []))
    points = [points] if isinstance(points, str) else list(points or [])
    budget = x.get("budget", x.get("words", 0)) or 0
    return SectionPlan(title=str(x.get("title", x.get("heading", ""))), points=[str(p) for p in points], budget=int(budget))


_BUDGET = re.compile(r"\s*[\(\[]\s*(\d[\d,]*)\s*(?:words?|w|字|characters?)?\s*[\)\]]\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")


def _split_budget(title: str) -> tuple[str, int]:
    m = _BUDGET.search(title)
    if not m:
        return title.strip(), 0
    return title[: m.start()].strip(), int(m.group(1).replace(",", ""))


def parse_outline_text(text: str, source: str = "outline") -> Outline:
    """Read an outline file: JSON (list or {title, sections}) or Markdown (headings + bullets)."""
    body = text.strip()
    if not body:
        raise InputError(f"{source} is empty", hint="write one section title per '## ' heading")
    if body[0] in "[{":
        try:
            return _coerce(json.loads(body))
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})",
                             hint="fix the JSON or use the Markdown outline format") from exc
    return _parse_markdown(body.splitlines())


def _parse_markdown(lines: list[str]) -> Outline:
    heads = [(len(m.group(1)), i) for i, line in enumerate(lines) if (m := _HEADING.match(line))]
    title, level = "", min((lv for lv, _ in heads), default=0)
    if heads and heads[0][0] == level and sum(1 for lv, _ in heads if lv == level) == 1 and len(heads) > 1:
        title = _HEADING.match(lines[heads[0][1]]).group(2)  # a single top heading is the document title
        level = min(lv for lv, _ in heads[1:])
    sections: list[SectionPlan] = []
    for line in lines:
        m = _HEADING.match(line)
        if m and len(m.group(1)) == level:
            name, budget = _split_budget(m.group(2))
            sections.append(SectionPlan(title=name, budget=budget))
        elif m or not line.strip():
            continue
        elif not heads:  # no headings: one section per line
            name, budget = _split_budget((_BULLET.match(line) or re.match(r"(.*)", line)).group(1))
            sections.append(SectionPlan(title=name, budget=budget))
        elif sections:
            bullet = _BULLET.match(line)
            sections[-1].points.append((bullet.group(1) if bullet else line).strip())
    return Outline(title=title, sections=sections)


# -- the model's plan ------------------------------------------------------------------------
class _PlanItem(BaseModel):
    title: str = Field(max_length=_TITLE_CHARS)
    points: list[str] = Field(json_schema_extra={"minItems": 1, "maxItems": 3,
                                                 "items": {"type": "string", "maxLength": _POINT_CHARS}})
    words: int = Field(ge=0)

    @field_validator("title", mode="before")
    @classmethod
    def _clip_title(cls, v: Any) -> Any:
        return v[:_TITLE_CHARS] if isinstance(v, str) else v

    @field_validator("points", mode="before")
    @classmethod
    def _clip_points(cls, v: Any) -> Any:
        return [p[:_POINT_CHARS] if isinstance(p, str) else p for p in v][:3] if isinstance(v, list) else v


def _plan_model(k: int) -> type[BaseModel]:
    return create_model(
        "WriterPlan",
        document_title=(str, Field(max_length=_TITLE_CHARS)),
        sections=(list[_PlanItem], Field(json_schema_extra={"minItems": k, "maxItems": k})),
    )


def plan_outline(llm: "LLM", instruction: str, target: int, options: WriterOptions) -> Outline:
    """Ask the model for an outline in batches of PLAN_BATCH sections, then rescale budgets in code.

    A long text (more than 2 x PLAN_BATCH sections) is planned in parts first, then each part in
    sections: a small model asked for section 31 after a list of 30 mostly copies the list.
    """
    n = section_count(target, options.section_words, options.sections)
    if n > 2 * PLAN_BATCH:
        outline = _plan_in_parts(llm, instruction, target, n)
        if outline is not None:
            return outline
    items, title = _plan_batches(llm, instruction, target, n)
    return _outline(instruction, title, items, rescale([it.words for it in items], target), target)


def _outline(instruction: str, title: str, items: list[_PlanItem], budgets: list[int], target: int) -> Outline:
    sections = [SectionPlan(title=it.title.strip(), points=[p.strip() for p in it.points if p.strip()], budget=b)
                for it, b in zip(items, budgets)]
    if not sections:
        sections = [SectionPlan(title=title or "Text", points=[], budget=target)]
    return Outline(title=title or instruction.strip().splitlines()[0][:_TITLE_CHARS], sections=sections)


def _plan_batches(llm: "LLM", instruction: str, target: int, n: int, part: str = "",
                  taken: tuple[str, ...] = ()) -> tuple[list[_PlanItem], str]:
    """Up to ``n`` sections (of ``part`` of the text, when given), in batches; titles that repeat one
    planned before (or in ``taken``), read the prompt back or are not words are dropped. A batch with
    nothing new ends the plan (what was planned is kept); an invalid reply is retried as a smaller batch."""
    items: list[_PlanItem] = []
    title = ""
    batch = PLAN_BATCH
    while len(items) < n:
        k = min(batch, n - len(items))
        variables = dict(instruction=instruction, target=target, unit=unit_for(instruction), n=n, start=len(items) + 1,
                         count=k, words_each=round(target / n), previous=[it.title for it in items][-30:], part=part)
        try:
            plan = llm.call_json("writer_plan", _plan_model(k), max_tokens=80 + k * _ITEM_TOKENS, **variables)
        except ParseError:
            if k > 1:  # a smaller batch is a shorter reply: try again with half as many sections
                batch = max(1, k // 2)
                continue
            if items:
                break  # keep what was planned: budgets are rescaled over those sections below
            raise
        scaffold = _scaffold(llm, variables)
        got = _new_items(plan.sections, scaffold, [*taken, *(it.title for it in items)])  # type: ignore[attr-defined]
        if not got:
            break  # nothing new: the model is copying; the sections planned so far are kept
        items.extend(got[:k])
        title = title or plan.document_title.strip()  # type: ignore[attr-defined]
    return items, title


PART_SECTIONS = 5  # sections per part when a long text is planned in parts


def _plan_in_parts(llm: "LLM", instruction: str, target: int, n: int) -> Outline | None:
    """Parts (at most PLAN_BATCH), then each part's sections; a part whose sections cannot be planned
    stays one section. None when not even the parts could be planned (the caller plans flat)."""
    try:
        parts, title = _plan_batches(llm, instruction, target, min(PLAN_BATCH, math.ceil(n / PART_SECTIONS)))
    except ParseError:
        return None
    if len(parts) < 2:
        return None
    part_budgets = rescale([p.words for p in parts], target)
    items: list[_PlanItem] = []
    budgets: list[int] = []
    for i, (part, budget) in enumerate(zip(parts, part_budgets), 1):
        count = max(1, round(n * budget / target))
        scope = f"part {i} of {len(parts)}, \"{part.title.strip()}\": " + " ".join(p.strip() for p in part.points)
        try:
            sub, _ = _plan_batches(llm, instruction, budget, count, part=scope, taken=tuple(it.title for it in items))
        except ParseError:
            sub = []
        sub = sub or [part]  # the part is one section
        items.extend(sub)
        budgets.extend(rescale([1] * len(sub), budget))  # even shares: the part's budget already weighs it
    return _outline(instruction, title, items, budgets, target)


def plan_more(llm: "LLM", instruction: str, target: int, titles: list[str], words: int, k: int,
              later: list[str] | None = None) -> list[SectionPlan]:
    """``k`` more sections after ``titles`` whose budgets sum to ``words``: the top-up of a text that ran short.

    ``later``: planned sections the new ones go before (the held-back last section); the model is not shown
    them, but a title that repeats one is dropped too. Titles that repeat an earlier one are dropped (so the
    result may be shorter, or empty); a reply that is not valid JSON twice raises ParseError.
    """
    k = max(1, min(k, PLAN_BATCH, words // MIN_SECTION_WORDS))
    ask = min(k + 1, PLAN_BATCH)  # one spare: a small model often re-proposes an earlier section first
    variables = dict(instruction=instruction, target=target, unit=unit_for(instruction), n=len(titles) + ask,
                     start=len(titles) + 1, count=ask, words_each=round(words / k), previous=titles[-30:], part="")
    plan = llm.call_json("writer_plan", _plan_model(ask), max_tokens=80 + ask * _ITEM_TOKENS, **variables)
    scaffold = _scaffold(llm, variables)
    got = _new_items(plan.sections, scaffold, [*titles, *(later or [])])[:k]  # type: ignore[attr-defined]
    budgets = rescale([it.words for it in got], words)
    return [SectionPlan(title=it.title.strip(), points=[p.strip() for p in it.points if p.strip()], budget=b)
            for it, b in zip(got, budgets)]


_TITLE_LABEL = re.compile(r"^\s*(?:(?:step|section|part|chapter)\s+\w+|\d+)\s*[:.)-]\s*", re.IGNORECASE)


def _title_words(title: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", _TITLE_LABEL.sub("", title).casefold()))


def _plain_words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[^\W\d_]+", text.casefold()) if len(w) > 2)  # document_title: 2 words


def _scaffold(llm: "LLM", variables: dict[str, Any]) -> list[frozenset[str]]:
    """The words of each line of the plan prompt itself (without the request and earlier titles)."""
    lines = []
    for part in ("", "part"):  # with and without the part lines ("Plan only part 3 of 8" came back as a title)
        text = llm.render("writer_plan", **{**variables, "instruction": "", "part": part, "previous": ["-"]})  # "-": keeps that block, no words
        lines += [w for line in text.splitlines() if (w := _plain_words(line)) and w not in lines]
    return lines


def _new_items(items: list[_PlanItem], scaffold: list[frozenset[str]], titles: list[str]) -> list[_PlanItem]:
    """The usable items (``_retitled``) whose titles repeat neither ``titles`` nor each other."""
    seen = list(titles)
    got: list[_PlanItem] = []
    for it in map(lambda it: _retitled(it, scaffold), items):
        if it is not None and not any(same_title(it.title, old) for old in seen):
            seen.append(it.title)
            got.append(it)
    return got


def point_title(point: str, chars: int = 80) -> str:
    """An outline point as a heading: its first sentence (of 3+ words), without its end stop (a question
    keeps its mark), cut at a word within ``chars``.

    >>> point_title("Lily hears footsteps in the attic at night.")
    'Lily hears footsteps in the attic at night'
    >>> point_title("word " * 30, chars=20)
    'word word word word'
    >>> point_title("What is a ghost? What does it do? What is it like?")  # its first sentence, when that has 3+ words
    'What is a ghost?'
    >>> point_title("Dr. Lee opens the door.")
    'Dr. Lee opens the door'
    """
    text = " ".join(point.split())
    first = re.match(r"(.+?[.!?])\s+(?=[A-Z\"'“‘])", text)
    if first and len(first.group(1).split()) >= 3:
        text = first.group(1)
    text = text.rstrip(".;:, ") if text.endswith("?") else text.rstrip(".!?;:, ")
    if len(text) > chars:
        text = text[: chars + 1].rsplit(" ", 1)[0].rstrip(".!?;:, ")
    return text


def _retitled(it: _PlanItem, scaffold: list[frozenset[str]]) -> _PlanItem | None:
    """The item without echoed points; a bare or echoed title ("Section 1") is replaced by its first
    point (cut at a word within 80 characters); None when neither is usable."""
    points = [p for p in it.points if usable_title(p, scaffold)]
    title = it.title
    if not usable_title(title, scaffold):
        title = point_title(points[0]) if points else ""
        if not usable_title(title, scaffold):
            return None
    return it.model_copy(update={"title": title, "points": points})


_COUNT = re.compile(r"\d[\d,]*\s*(?:words?|characters?|字)\b|\d\s*字", re.IGNORECASE)


def usable_title(title: str, scaffold: list[frozenset[str]]) -> bool:
    """A title (or point) with words, not JSON debris (``words]: 262}, {``), and not a prompt read back: the
    plan prompt (``scaffold``), a long line of another writer prompt, or the asked length ("12000 words of").

    >>> [usable_title(t, []) for t in ("The Harbor", "3", "12000 words of an article", "Examples",
    ...                                "Read the text between <document> and </document> tags and quote it")]
    [True, False, False, True, False]
    """
    return (bool(re.search(r"[^\W\d_]", title)) and not re.search(r"[{}\[\]]|\":", title) and not echoes(title, scaffold)
            and not prompt_echo(title, min_words=4) and not _COUNT.search(title))


def echoes(title: str, scaffold: list[frozenset[str]]) -> bool:
    """A "title" that is the plan prompt read back (a small model does it): 75% of its words (of 3+ letters)
    are on one line of the prompt.

    >>> lines = [_plain_words("Sections 1 to 8 are already planned:"), _plain_words('Give "document_title": the title')]
    >>> [echoes(t, lines) for t in ("Sections 9 to 18", "document_title", "Document Title", "Planting the Garden", "A")]
    [True, True, True, False, False]
    """
    return on_one_line(_plain_words(title), scaffold)


def same_title(a: str, b: str) -> bool:
    """Titles that name the same section: their words (numbering labels aside) overlap 75% or more.

    >>> same_title("Choosing the Right Simulation Tools", "Step 2: Choosing the right simulation tools")
    True
    >>> same_title("Cost Consultation", "Cost Consultation for Hydraulic Projects")
    False
    """
    x, y = _title_words(a), _title_words(b)
    return bool(x and y) and len(x & y) >= 0.75 * len(x | y)
