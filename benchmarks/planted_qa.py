"""Planted facts in public-domain book excerpts: every agentlong strategy vs plain baselines, side by side.

Data (read by path, never copied): the Gutenberg books in ``../shared/evals/data/books`` beside the
checkout (``--data`` overrides). Invented sentences are planted into excerpts of ``--scale`` x ``--n-ctx``
model tokens at fixed depth fractions, with their exact character spans recorded for citation scoring:

- ``short``: four ~400-word excerpts with one fact each (the whole document fits one call);
- ``single``: 24 single facts (names, numbers, quoted passwords, possessives, dates), depths 0.05-0.95;
- ``twohop``: 8 questions that need a bridge sentence and a distant fact sentence about the bridge entity;
- ``aggregation``: 8 events planted 3-7 times with a different item each: count them and name them.

All sentences of one book go into one excerpt per scale, so there are few documents to index. The first
``--long-subset`` questions are asked again over a ``16 x n_ctx`` excerpt of the same book, with the same
sentences at the same depths. Methods, interleaved question by question in one process: the SDK strategies
``auto, full, rtr, coa, mapreduce`` (``Agentlong.ask``) and the baselines ``truncated`` (the longest prefix
that fits one call), ``rag`` (plain top-8 dense chunks, one call) and ``plain`` (the whole document in one
call, only where it fits). Indexing is timed once per document, not charged to questions.

    python benchmarks/planted_qa.py --model fake --subset 1                 # offline smoke test, seconds
    python benchmarks/planted_qa.py --subset 1 --kinds short --methods plain,truncated,full
    python benchmarks/planted_qa.py --json planted.json                     # everything (hours on CPU)
    python benchmarks/planted_qa.py --report planted.json other.json       # re-print saved tables

Printed per kind (short, single, twohop, aggregation, scale16) and method: accuracy (aggregation: count
exact and item recall), "not found" share, errors, citations verbatim at their span, citation precision
and recall against the planted sentences, calls / prompt / generated / cached tokens and seconds per
question, and accuracy and seconds relative to ``truncated`` and ``rag``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared/evals/data"
SDK_METHODS = ("auto", "full", "rtr", "coa", "mapreduce")
METHODS = SDK_METHODS + ("truncated", "rag", "plain")
KINDS = ("short", "single", "twohop", "aggregation")
GROUPS = KINDS + ("scale16",)
LONG_SCALE = 16
Count = Callable[[str], int]  # tokens (or words) in a text
BOOKS = {  # key: (file under books/, first words of the story)
    "pp": ("pride_and_prejudice_pg1342.txt", "It is a truth universally acknowledged"),
    "moby": ("moby_dick_pg2701.txt", "Call me Ishmael"),
    "mm": ("middlemarch_pg145.txt", "Who that cares much to know"),
    "wp": ("war_and_peace_pg2600.txt", "Well, Prince, so Genoa"),
}
NOT_FOUND = re.compile(r"not found|does not contain|doesn't contain|not mentioned|no information", re.I)
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
CITE_MARK = re.compile(r"\[\d+(?:\s*[,;-]\s*\d+)*\]")
FIRST_NUMBER = re.compile(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")\b", re.I)

# -- the question set (invented sentences) ------------------------------------------------------
# single: (id, book, depth, sentence, question, accepted keywords); interleaved across books and depths
SINGLE = [
    ("pp-s1", "pp", 0.55, "Miss Bingley's spaniel was named Marmalade.",
     "What was the name of Miss Bingley's spaniel?", ["marmalade"]),
    ("moby-s1", "moby", 0.42, "The whaler Abigail Moss sailed from Sag Harbor on the 9th of March, 1839.",
     "On what date did the whaler Abigail Moss sail from Sag Harbor?", ["9th", "ninth", "march 9", "9 march"]),
    ("mm-s1", "mm", 0.70, "Lydgate's microscope had been made by a Glasgow instrument maker named Fergus Niall.",
     "Who made Lydgate's microscope?", ["niall", "fergus"]),
    ("wp-s1", "wp", 0.40, "The password at the Pávlograd regiment's outposts that night was 'Tula samovar'.",
     "What was the password at the Pávlograd regiment's outposts that night?", ["tula samovar"]),
    ("pp-s2", "pp", 0.22, "Sir William Lucas once counted exactly forty-three carriages at the St. James's levee.",
     "How many carriages did Sir William Lucas count at the St. James's levee?", ["forty-three", "forty three", "43"]),
    ("moby-s2", "moby", 0.93, "Queequeg's harpoon had a shaft carved from Tasmanian blackwood.",
     "What wood was the shaft of Queequeg's harpoon carved from?", ["blackwood"]),
    ("mm-s2", "mm", 0.20, "Dorothea's plans for the new cottages at Tipton allowed for thirty-two families.",
     "For how many families did Dorothea's plans for the new cottages allow?", ["thirty-two", "thirty two", "32"]),
    ("wp-s2", "wp", 0.94, "Natásha's little borzoi puppy was named Zephyr.",
     "What was the name of Natásha's borzoi puppy?", ["zephyr"]),
    ("pp-s3", "pp", 0.95, "Mr. Gardiner's warehouse in Gracechurch Street stored crates of Portuguese cork.",
     "What did Mr. Gardiner's warehouse in Gracechurch Street store?", ["cork"]),
    ("moby-s3", "moby", 0.08, "The Spouter-Inn's landlord kept a tame raccoon called Barnaby behind the bar.",
     "What was the name of the tame raccoon kept behind the bar of the Spouter-Inn?", ["barnaby"]),
    ("mm-s3", "mm", 0.36, "The label on Mr. Farebrother's favourite beetle read 'the Lowick jewel'.",
     "What did the label on Mr. Farebrother's favourite beetle read?", ["lowick jewel"]),
    ("wp-s3", "wp", 0.05, "Anna Pávlovna's footman Grigory polished the salon candlesticks with powdered pumice.",
     "With what did Anna Pávlovna's footman polish the salon candlesticks?", ["pumice"]),
    ("pp-s4", "pp", 0.05, "The Longbourn housekeeper, a widow named Mrs. Thackery, kept the key of the linen press.",
     "What was the name of the Longbourn housekeeper who kept the key of the linen press?", ["thackery"]),
    ("moby-s4", "moby", 0.58, "Stubb's secret watchword for the midnight watch was 'copper gull'.",
     "What was Stubb's secret watchword for the midnight watch?", ["copper gull"]),
    ("mm-s4", "mm", 0.90, "Mrs. Cadwallader's prize hens were fed on crushed chestnuts every morning.",
     "What were Mrs. Cadwallader's prize hens fed on every morning?", ["chestnut"]),
    ("wp-s4", "wp", 0.74, "Prince Andrew's letter from Olmütz was dated the 17th of November, 1805.",
     "What date was on Prince Andrew's letter from Olmütz?", ["17th", "seventeenth", "november 17", "17 november"]),
    ("pp-s5", "pp", 0.38, "The password of the Meryton reading club that winter was 'bluebell lantern'.",
     "What was the password of the Meryton reading club that winter?", ["bluebell"]),
    ("moby-s5", "moby", 0.25, "The Pequod's carpenter kept exactly twenty-six spare oars lashed beneath the booms.",
     "How many spare oars did the Pequod's carpenter keep?", ["twenty-six", "twenty six", "26"]),
    ("mm-s5", "mm", 0.52, "The new fever hospital in Middlemarch was opened on the 2nd of May, 1831.",
     "On what date was the new fever hospital in Middlemarch opened?", ["2nd", "second of may", "may 2", "2 may"]),
    ("wp-s5", "wp", 0.24, "Count Rostóv's cellar held one hundred and twelve bottles of Hungarian wine.",
     "How many bottles of Hungarian wine did Count Rostóv's cellar hold?", ["hundred and twelve", "112"]),
    ("pp-s6", "pp", 0.72, "The Meryton assembly was moved to the 14th of November because the river had flooded.",
     "To what date was the Meryton assembly moved?", ["14th", "fourteenth", "november 14", "14 november"]),
    ("moby-s6", "moby", 0.75, "The blacksmith Perth had once apprenticed under a Dutch smith named Hendrik Vos.",
     "Under which Dutch smith had the blacksmith Perth once apprenticed?", ["hendrik", "vos"]),
    ("mm-s6", "mm", 0.06, "Mr. Brooke's library at Tipton Grange held a stuffed owl that he called Admiral Tibbs.",
     "What did Mr. Brooke call the stuffed owl in his library?", ["tibbs"]),
    ("wp-s6", "wp", 0.57, "Pierre's fencing master in Paris had been a Gascon called Armand Lescure.",
     "What was the name of Pierre's fencing master in Paris?", ["lescure", "armand"]),
]
# twohop: (id, book, (depth, bridge sentence), (depth, fact sentence), question naming the first entity, keywords)
TWOHOP = [
    ("pp-t1", "pp", (0.15, "Mrs. Phillips's nephew Edwin Marsh was apprenticed to a clockmaker named Josiah Pell."),
     (0.80, "Josiah Pell kept his workshop in the village of Hartlebury."),
     "In which village did the clockmaker to whom Edwin Marsh was apprenticed keep his workshop?", ["hartlebury"]),
    ("moby-t1", "moby", (0.12, "Captain Obed Sturgis commanded a brig called the Morning Wren."),
     (0.78, "The Morning Wren carried three hundred and forty barrels of sperm oil home from the Azores."),
     "How many barrels of sperm oil did Captain Obed Sturgis's ship carry home?",
     ["three hundred and forty", "three hundred forty", "340"]),
    ("mm-t1", "mm", (0.10, "Celia's godmother was a widow named Lady Ormiston."),
     (0.82, "Lady Ormiston lived in a tall stone house in the cathedral town of Wellminster."),
     "In which town did Celia's godmother live?", ["wellminster"]),
    ("wp-t1", "wp", (0.14, "Princess Mary's drawing master was an Italian named Carlo Benedetti."),
     (0.83, "Carlo Benedetti had painted the ceiling of a chapel in the town of Borovets."),
     "In which town had Princess Mary's drawing master painted the ceiling of a chapel?", ["borovets"]),
    ("pp-t2", "pp", (0.85, "Colonel Forster bought his new bay horse from a dealer called Amos Rudd."),
     (0.30, "Amos Rudd asked ninety guineas for every horse he sold."),
     "How many guineas did the dealer who sold Colonel Forster his new horse ask for each horse?", ["ninety", "90"]),
    ("moby-t2", "moby", (0.88, "Flask's cousin Tobias served as cooper aboard the schooner Halcyon."),
     (0.20, "The schooner Halcyon was wrecked on a reef off the island of Rarotonga."),
     "Off which island was the ship of Flask's cousin Tobias wrecked?", ["rarotonga"]),
    ("mm-t2", "mm", (0.75, "Mr. Vincy's warehouse clerk was a young man called Silas Drewe."),
     (0.25, "Silas Drewe could recite eleven of Shakespeare's sonnets from memory."),
     "How many of Shakespeare's sonnets could Mr. Vincy's warehouse clerk recite from memory?", ["eleven", "11"]),
    ("wp-t2", "wp", (0.90, "Denísov lost his sabre at cards to a hussar named Yakov Burin."),
     (0.30, "Yakov Burin had fought seven duels before his twentieth birthday."),
     "How many duels had the hussar who won Denísov's sabre at cards fought before his twentieth birthday?",
     ["seven", "7"]),
]
# aggregation: (id, book, template with {}, items, first-depth offset, question)
AGG = [
    ("pp-a1", "pp", "Mary Bennet gave a recital of Scottish airs at {}.",
     ["Ellerby Hall", "Coombe Lodge", "Ravensworth House", "Pilton Grange"], 0.3,
     "At how many houses did Mary Bennet give a recital of Scottish airs? Name them."),
    ("moby-a1", "moby", "The harpooneer Daggoo carved a small wooden whale for a child in the port of {}.",
     ["Tumbes", "Coquimbo", "Mollendo", "Huasco", "Arica"], 0.3,
     "In how many ports did Daggoo carve a wooden whale for a child? Name them."),
    ("mm-a1", "mm", "Mr. Casaubon ordered a rare pamphlet from a bookseller in {}.",
     ["Leyden", "Utrecht", "Padua", "Uppsala"], 0.3,
     "From booksellers in how many cities did Mr. Casaubon order a rare pamphlet? Name the cities."),
    ("wp-a1", "wp", "Pierre bought a snuffbox with a painted lid in the town of {}.",
     ["Torzhok", "Valdai", "Kolomna", "Serpukhov", "Kashira"], 0.3,
     "In how many towns did Pierre buy a snuffbox with a painted lid? Name them."),
    ("pp-a2", "pp", "Mr. Collins lost an umbrella in the parish of {}.", ["Stokeley", "Wendham", "Brayfield"], 0.7,
     "List every parish where Mr. Collins lost an umbrella."),
    ("moby-a2", "moby", "Starbuck posted a letter to his wife from the island of {}.",
     ["Mocha", "Pitcairn", "Raivavae", "Tubuai", "Nuku Hiva", "Mangareva"], 0.7,
     "List every island from which Starbuck posted a letter to his wife."),
    ("mm-a2", "mm", "Rosamond Vincy sang a duet at a supper party at {}.",
     ["Hollins Farm", "Marsden Lodge", "Larkhill House"], 0.7,
     "List every house where Rosamond Vincy sang a duet at a supper party."),
    ("wp-a2", "wp", "Old Prince Bolkónski sent a basket of pears from Bald Hills to General {}.",
     ["Tarkhov", "Yermilov", "Pechersky", "Samarin", "Krivtsov", "Lazarev", "Dubenko"], 0.7,
     "List every general to whom old Prince Bolkónski sent a basket of pears from Bald Hills."),
]
# short: (id, book, sentence, question, keywords); ~400 words from 60 % into the book, the fact at mid-depth
SHORT = [
    ("pp-short", "pp", "Lady Catherine's cook, Mrs. Plumtree, was famous for her lemon syllabub.",
     "What was Lady Catherine's cook famous for?", ["syllabub"]),
    ("moby-short", "moby", "The cabin boy Pip once owned a tambourine painted with a red lighthouse.",
     "What was painted on Pip's tambourine?", ["lighthouse"]),
    ("mm-short", "mm", "Mr. Trumbull's spectacles had been mended fourteen times by the same optician.",
     "How many times had Mr. Trumbull's spectacles been mended?", ["fourteen", "14"]),
    ("wp-short", "wp", "The Rostóvs' old nurse kept a jar of cloudberry jam under her bed for the children.",
     "What did the Rostóvs' old nurse keep under her bed for the children?", ["cloudberry"]),
]


@dataclass
class Question:
    id: str
    kind: str
    book: str
    question: str
    plants: list[tuple[float, str]]  # (depth, sentence); every one is a gold citation
    keywords: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # aggregation only


def all_questions() -> list[Question]:
    qs = [Question(i, "short", b, q, [(0.5, s)], kw) for i, b, s, q, kw in SHORT]
    qs += [Question(i, "single", b, q, [(d, s)], kw) for i, b, d, s, q, kw in SINGLE]
    qs += [Question(i, "twohop", b, q, [bridge, fact], kw) for i, b, bridge, fact, q, kw in TWOHOP]
    for i, b, template, items, offset, q in AGG:
        depths = [round(0.05 + 0.9 * (j + offset) / len(items), 3) for j in range(len(items))]
        qs.append(Question(i, "aggregation", b, q, [(d, template.format(it)) for d, it in zip(depths, items)],
                           items=items))
    return qs


def select(qs: list[Question], kinds: list[str], subset: int | None) -> list[Question]:
    out = []
    for kind in kinds:
        mine = [q for q in qs if q.kind == kind]
        out += mine[:subset] if subset else mine
    return out


def long_subset(selected: list[Question], n: int) -> list[Question]:
    """The first ``n`` long-document questions, taken round robin over single, twohop, aggregation."""
    by_kind = [[q for q in selected if q.kind == k] for k in ("single", "twohop", "aggregation")]
    return [q for row in itertools.zip_longest(*by_kind) for q in row if q is not None][:n]


# -- documents ----------------------------------------------------------------------------------
def _fix_mojibake(text: str) -> str:
    """UTF-8 read as Latin-1 / cp1252 (War and Peace's 'BolkÃ³nski', 'Ã‰chkino') back to its letters."""
    def fix(m: re.Match) -> str:
        for enc in ("latin-1", "cp1252"):
            try:
                return m.group(0).encode(enc).decode("utf-8")
            except UnicodeError:
                continue
        return m.group(0)
    text = re.sub(r"[\xc2-\xf4][\x80-\xbf\u02dc\u20ac\u2030\u2122\u0152\u0153\u0160\u0161\u017d\u017e]+", fix, text)
    return text.replace("Ã ", "à ")  # its no-break space became a space


def book_paragraphs(data: Path, book: str) -> list[str]:
    """The story's paragraphs: Gutenberg header and footer and the front matter skipped."""
    name, first_words = BOOKS[book]
    text = _fix_mojibake((data / "books" / name).read_text(encoding="utf-8").replace("\r\n", "\n"))
    if (start := text.find("*** START OF")) >= 0:
        text = text[text.find("\n", start) + 1:]
    if (end := text.find("*** END OF")) >= 0:
        text = text[:end]
    text = text[max(0, text.find(first_words)):]
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def take(paras: list[str], size: int, count: Count) -> list[str]:
    """Paragraphs from the first while at least half of the next one fits ``size`` (its own units)."""
    kept, used = [], 0
    for para in paras:
        cost = count(para) + 1
        if used + cost / 2 > size:
            break
        kept.append(para)
        used += cost
    return kept


def plant(paras: list[str], plants: list[tuple[float, str]]) -> str:
    """Each sentence as its own paragraph at the paragraph boundary nearest its depth (share of chars)."""
    starts, pos = [], 0
    for p in paras:
        starts.append(pos)
        pos += len(p) + 2
    slots: dict[int, list[str]] = {}
    starts.append(pos)
    for depth, sentence in sorted(plants):
        target = depth * pos
        i = min(bisect.bisect_left(starts, target), len(paras))
        i = max(1, i - 1 if i > 0 and target - starts[i - 1] < starts[i] - target else i)
        slots.setdefault(i, []).append(sentence)
    out = [s for i, p in enumerate(paras) for s in slots.get(i, []) + [p]] + slots.get(len(paras), [])
    return "\n\n".join(out) + "\n"


@dataclass
class Doc:
    id: str
    path: Path
    text: str = ""
    tokens: int = 0
    corpus: str = ""
    index_s: float | None = None
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


def make_doc(al: Any, folder: Path, doc_id: str, paras: list[str], plants: list[tuple[float, str]],
             count: Count) -> Doc:
    """Write the planted document once; spans are taken from the text agentlong itself loads."""
    from agentlong.graphs.router import auto_corpus_name

    path = folder / f"{doc_id}.txt"
    path.write_text(plant(paras, plants), encoding="utf-8")
    text = al.load(path).documents[0].text
    spans = {}
    for _, s in plants:
        if text.count(s) != 1:
            raise SystemExit(f"planted sentence not unique in {doc_id}: {s!r}")
        spans[s] = (text.find(s), text.find(s) + len(s))
    return Doc(doc_id, path, text, count(text), auto_corpus_name([path]), None, spans)


def build_docs(al: Any, args: argparse.Namespace, selected: list[Question], longs: list[Question], folder: Path,
               count: Count) -> dict[str, Doc]:
    everything = all_questions()
    docs: dict[str, Doc] = {}
    for q in selected:
        if q.kind == "short" and q.id not in docs:
            paras = book_paragraphs(args.data, q.book)
            docs[q.id] = make_doc(al, folder, q.id, take(paras[int(0.6 * len(paras)):], 400, _words), q.plants, count)
    for scale, books in ((args.scale, {q.book for q in selected if q.kind != "short"}),
                         (LONG_SCALE, {q.book for q in longs})):
        for book in sorted(b for b in books if f"{b}@{scale}" not in docs):
            plants = [p for q in everything if q.book == book and q.kind != "short" for p in q.plants]
            paras = take(book_paragraphs(args.data, book), scale * args.n_ctx, count)
            docs[f"{book}@{scale}"] = make_doc(al, folder, f"{book}-x{scale}", paras, plants, count)
    return docs


def _words(text: str) -> int:
    return len(text.split())


def token_counter(al: Any) -> Count:
    try:
        al.backend.count_tokens("probe")
        return al.backend.count_tokens
    except Exception:  # no tokenizer available: ~1.3 tokens a word
        return lambda text: int(len(text.split()) * 1.3) + 1


# -- methods ------------------------------------------------------------------------------------
def _budget(ctx: Any, question: str) -> int:
    from agentlong.packing import prompt_budget

    fixed = ctx.llm.fixed_tokens("answer_direct", question=question, document="")
    return prompt_budget(ctx.llm.window, fixed, min(ctx.settings.chunking.output_reserve, 256))


def _direct(ctx: Any, document: str, question: str) -> str:
    reserve = min(ctx.settings.chunking.output_reserve, 256)
    return ctx.llm.call("answer_direct", max_tokens=reserve, question=question, document=document).text.strip()


def baseline(al: Any, method: str, doc: Doc, question: str) -> dict[str, Any] | None:
    """truncated / rag / plain: one ``answer_direct`` call; None when ``plain`` does not fit."""
    from agentlong.graphs.common import RunContext
    from agentlong.packing import fit, truncate_to_tokens

    ctx = RunContext.from_app(al)
    budget = _budget(ctx, question)
    if method == "plain" and ctx.llm.tokens(doc.text) > budget:
        return None
    if method == "rag":
        hits = al.search(doc.corpus, question, k=8)
        text = "\n\n".join(fit([h.chunk.text for h in hits], budget, lambda t: ctx.llm.tokens(t) + 2))
    elif method == "truncated":
        text = truncate_to_tokens(doc.text[: budget * 8], budget, ctx.llm.tokens)
    else:
        text = doc.text
    answer = _direct(ctx, text, question)
    u = ctx.llm.usage
    return {"answer": answer, "found": not NOT_FOUND.search(answer), "citations": None, "calls": u.calls,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens}


def sdk(al: Any, method: str, doc: Doc, question: str) -> dict[str, Any]:
    ans = al.ask(str(doc.path), question, strategy=method)
    u = ans.usage
    return {"answer": ans.text, "found": ans.found, "strategy": ans.strategy, "reason": ans.strategy_reason,
            "citations": [(c.evidence.char_start, c.evidence.char_end, c.evidence.quote) for c in ans.citations],
            "calls": u.calls, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens}


# -- scoring ------------------------------------------------------------------------------------
def first_number(text: str) -> int | None:
    m = FIRST_NUMBER.search(text)
    if not m:
        return None
    word = m.group(1).lower()
    return int(word) if word.isdigit() else NUMBER_WORDS.index(word)


def score(q: Question, doc: Doc, result: dict[str, Any]) -> dict[str, Any]:
    low = CITE_MARK.sub(" ", result["answer"]).lower()  # "[1]" is no count, "[17]" no date
    out: dict[str, Any] = {}
    if q.kind == "aggregation":
        out["count_pred"] = first_number(low)
        out["correct"] = out["count_pred"] == len(q.items)
        out["item_recall"] = sum(it.split()[0].lower() in low for it in q.items) / len(q.items)
    else:
        out["correct"] = bool(result["found"]) and any(k in low for k in q.keywords)
        out["item_recall"] = None
    gold = [doc.spans[s] for _, s in q.plants]
    out["gold_n"] = len(gold)
    cites = result.get("citations")
    if cites is None:
        out.update(cites=None, verbatim=None, cites_on_gold=None, gold_hit=None)
        return out
    overlaps = lambda c, g: c[0] < g[1] and g[0] < c[1]  # noqa: E731
    out.update(cites=len(cites), verbatim=sum(doc.text[a:b] == quote for a, b, quote in cites),
               cites_on_gold=sum(any(overlaps(c, g) for g in gold) for c in cites),
               gold_hit=sum(any(overlaps(c, g) for c in cites) for g in gold))
    return out


def run_one(al: Any, method: str, doc: Doc, q: Question, group: str, scale: int | None) -> dict[str, Any] | None:
    """One (question, method): the answer scored, usage, wall seconds around the call; None when skipped."""
    started = time.perf_counter()
    try:
        result = sdk(al, method, doc, q.question) if method in SDK_METHODS else baseline(al, method, doc, q.question)
        if result is None:
            return None
        result["error"] = ""
    except Exception as exc:  # a failed run counts as wrong; the error is reported
        result = {"answer": "", "found": None, "citations": [] if method in SDK_METHODS else None,
                  "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                  "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    result["seconds"] = time.perf_counter() - started
    result.update(score(q, doc, result))
    result.pop("citations", None)
    return {"qid": q.id, "kind": q.kind, "group": group, "book": q.book, "scale": scale, "doc": doc.id,
            "method": method, **result, "answer": result["answer"][:300], "seconds": round(result["seconds"], 2)}


# -- report -------------------------------------------------------------------------------------
COLUMNS = [  # (header, stats key, width, format)
    ("n", "n", 4, "d"), ("acc", "acc", 7, ".2f"), ("items", "items", 7, ".2f"), ("not found", "nf", 10, ".2f"),
    ("errors", "err", 7, "d"), ("verbatim", "verb", 9, ".2f"), ("cite prec", "prec", 10, ".2f"),
    ("cite rec", "rec", 9, ".2f"), ("calls/q", "calls", 9, ".1f"), ("prompt/q", "prompt_tokens", 9, ".0f"),
    ("gen/q", "completion_tokens", 7, ".0f"), ("cached/q", "cached_tokens", 9, ".0f"), ("s/q", "seconds", 8, ".1f"),
    ("acc/trunc", "acc/truncated", 10, ".2f"), ("s/trunc", "seconds/truncated", 8, ".2f"),
    ("acc/rag", "acc/rag", 8, ".2f"), ("s/rag", "seconds/rag", 7, ".2f"),
]


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _share(rows: list[dict], num: str, den: str) -> float | None:
    total = sum(r[den] for r in rows)
    return sum(r[num] for r in rows) / total if total else None


def _stats(rows: list[dict]) -> dict[str, Any]:
    ok = [r for r in rows if not r["error"]]
    cited = [r for r in rows if r["cites"] is not None]  # SDK methods; baselines have no citations
    return {"n": len(rows), "acc": _mean([float(r["correct"]) for r in rows]), "err": len(rows) - len(ok),
            "items": _mean([r["item_recall"] for r in rows]), "nf": _mean([float(not r["found"]) for r in ok]),
            "verb": _share(cited, "verbatim", "cites"), "prec": _share(cited, "cites_on_gold", "cites"),
            "rec": _share(cited, "gold_hit", "gold_n"),
            **{k: _mean([r[k] for r in rows]) for k in ("calls", "prompt_tokens", "completion_tokens",
                                                         "cached_tokens", "seconds")}}


def report(rows: list[dict], methods: list[str], docs: list[dict]) -> None:
    for group in GROUPS:
        stats = {m: _stats(g) for m in methods if (g := [r for r in rows if r["group"] == group and r["method"] == m])}
        if not stats:
            continue
        for s in stats.values():
            for base in ("truncated", "rag"):
                for key in ("acc", "seconds"):
                    b = stats.get(base, {}).get(key)
                    s[f"{key}/{base}"] = s[key] / b if b and s[key] is not None else None
        print(f"\n== {group} (acc: {'count exact' if group == 'aggregation' else 'keyword and found'}; "
              "items: item recall of aggregation questions)")
        print(f"{'method':<10}" + "".join(f"{h:>{w}}" for h, _, w, _ in COLUMNS))
        for m, s in stats.items():
            print(f"{m:<10}" + "".join(f"{'–' if s[k] is None else format(s[k], f):>{w}}" for _, k, w, f in COLUMNS))
    picks = Counter(f"{r['group']}->{r['strategy']}" for r in rows if r["method"] == "auto" and r.get("strategy"))
    if picks:
        print("\nauto picked: " + ", ".join(f"{k} {v}" for k, v in sorted(picks.items())))
    print("\ndocuments: " + "; ".join(f"{d['id']} {d['tokens']:,} tokens" + (
        f", indexed in {d['index_s']:.1f}s" if d.get("index_s") is not None else "") for d in docs))
    print("(indexing, the first one with the embedder load, is shared by rtr, rag and auto and not in the "
          "per-question seconds; –: none, or no citations)")


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                                    text=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


# -- driver -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the shared evals data folder")
    ap.add_argument("--model", default="llama:qwen2.5-coder-0.5b", help="model string (fake: offline smoke test)")
    ap.add_argument("--reasoner", default=None, help="a second model for the answer step (settings.reasoner), "
                                                     "e.g. llama:qwen2.5-coder-1.5b")
    ap.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context window (all methods)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--scale", type=int, default=4, help="excerpt size in multiples of --n-ctx tokens")
    ap.add_argument("--long-subset", type=int, default=6, help=f"questions also asked at scale {LONG_SCALE} (0: skip)")
    ap.add_argument("--subset", type=int, default=None, help="only the first N questions of each kind")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma list of " + ",".join(KINDS))
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0, help="llama.cpp sampling seed and the per-question method order")
    ap.add_argument("--json", type=Path, default=None, help="write all per-question rows here (updated as it goes)")
    ap.add_argument("--report", type=Path, nargs="+", default=None, help="re-print the tables of saved JSON files")
    args = ap.parse_args(argv)
    for name, allowed in (("kinds", KINDS), ("methods", METHODS)):
        values = [v.strip() for v in getattr(args, name).split(",") if v.strip()]
        if bad := [v for v in values if v not in allowed]:
            ap.error(f"unknown {name}: {', '.join(bad)} (use {', '.join(allowed)})")
        setattr(args, name, values)
    return args


def doc_meta(docs: dict[str, Doc]) -> list[dict[str, Any]]:
    return [{"id": d.id, "tokens": d.tokens, "chars": len(d.text), "index_s": d.index_s} for d in docs.values()]


def save(path: Path, args: argparse.Namespace, rows: list[dict], docs: dict[str, Doc], git: dict) -> None:
    path.write_text(json.dumps({**git, "model": args.model, "args": {k: str(v) for k, v in vars(args).items()},
                                "methods": args.methods, "docs": doc_meta(docs), "rows": rows}, indent=1))


def print_saved(paths: list[Path]) -> int:
    for path in paths:
        saved = json.loads(path.read_text())
        print(f"\n#### {path}: model {saved['model']}, commit {saved['commit']}{' (dirty)' if saved['dirty'] else ''}, "
              f"{len(saved['rows'])} rows")
        report(saved["rows"], saved["methods"], saved["docs"])
    return 0


def index_docs(al: Any, docs: dict[str, Doc]) -> None:
    for d in docs.values():
        started = time.perf_counter()
        al.index([str(d.path)], name=d.corpus)
        d.index_s = round(time.perf_counter() - started, 2)
        print(f"indexed {d.id} ({d.tokens:,} tokens) in {d.index_s:.1f}s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return print_saved(args.report)
    if not (args.data / "books").is_dir():
        raise SystemExit(f"benchmark data not found: {args.data / 'books'} (pass --data)")
    home = Path(tempfile.mkdtemp(prefix="planted_qa_"))
    os.environ.update(AGENTLONG_HOME=str(home), ANONYMIZED_TELEMETRY="False",
                      AGENTLONG_MODELS_DIR=os.environ.get("AGENTLONG_MODELS_DIR")
                      or str(Path.home() / ".cache/agentlong/models"))
    from agentlong import Agentlong

    al = Agentlong(model=args.model, llama={"n_ctx": args.n_ctx, "n_threads": args.threads, "seed": args.seed},
                   confirm_minutes=None, reasoner=args.reasoner)  # unattended: long reads go ahead
    count = token_counter(al)
    selected = select(all_questions(), args.kinds, args.subset)
    longs = long_subset(selected, args.long_subset)
    (home / "docs").mkdir()
    docs = build_docs(al, args, selected, longs, home / "docs", count)
    window = al.backend.context_window()
    print(f"model {args.model}" + (f" + reasoner {args.reasoner}" if args.reasoner else "") + f", window {window}, {len(selected)} questions + {len(longs)} at scale {LONG_SCALE}, "
          f"methods {','.join(args.methods)}; AGENTLONG_HOME={home}; documents: " + ", ".join(
              f"{d.id} {d.tokens:,} tok ({d.tokens / window:.1f}x)" for d in docs.values()), file=sys.stderr)
    if {"rtr", "rag", "auto"} & set(args.methods):
        index_docs(al, docs)
    git, rng, rows = git_state(), random.Random(args.seed), []
    jobs = [(q, q.kind, None if q.kind == "short" else args.scale) for q in selected]
    jobs += [(q, "scale16", LONG_SCALE) for q in longs]
    for n, (q, group, scale) in enumerate(jobs, start=1):
        doc = docs[q.id] if q.kind == "short" else docs[f"{q.book}@{scale}"]
        for method in rng.sample(args.methods, len(args.methods)):  # order shuffled per question
            row = run_one(al, method, doc, q, group, scale)
            if row is None:
                continue
            rows.append(row)
            print(f"[{n}/{len(jobs)}] {q.id:<10} {group:<11} {method:<9} {row['seconds']:7.1f}s "
                  f"{'ok' if row['correct'] else 'wrong':<5} {row['answer'][:70]!r} {row['error'][:100]}",
                  file=sys.stderr, flush=True)
        if args.json:  # after every question: a long run keeps its partial results
            save(args.json, args, rows, docs, git)
    if args.json:
        save(args.json, args, rows, docs, git)
    report(rows, args.methods, doc_meta(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
