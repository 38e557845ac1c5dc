"""The evidence core on its own: units with exact spans, phrase → unit selection, bridge terms,
aggregation in code, citation numbering and the answer step (fake backend, no graphs)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentlong.backends.fake import FakeBackend
from agentlong.evidence.aggregate import counts_occurrences, is_aggregation, items
from agentlong.evidence.answer import answer_aggregate, answer_fact, write_summary
from agentlong.evidence.cite import (
    NOT_FOUND,
    attribute,
    grounded,
    number_citations,
    says_not_found,
)
from agentlong.evidence.hops import MAX_TERMS, bridge_terms, hop_query
from agentlong.evidence.select import MAX_ITEMS, locate_units, select, shown_blocks
from agentlong.evidence.units import MAX_UNIT_CHARS, Unit, split_units, units_of
from agentlong.llm import LLM
from agentlong.settings import Settings
from agentlong.types import Chunk, Evidence
from agentlong.wordcount import bounds, count_words

READ = "Numbered sentences from the user's files"
ANSWER = "Answer the question using only the sentences above"
SUMMARY = "Write a summary of the text these sentences come from"
CONTINUE = "Continue the summary"
REPAIR = "Your previous reply was not valid JSON"


def chunk_of(doc_text: str, start: int, end: int, source: str = "notes.txt", index: int = 0) -> Chunk:
    """The chunk ``doc_text[start:end]`` with its real offsets and line numbers."""
    return Chunk(doc_id="d", source=source, index=index, text=doc_text[start:end], char_start=start, char_end=end,
                 line_start=doc_text.count("\n", 0, start) + 1, line_end=doc_text.count("\n", 0, end) + 1)


def unit(i: int, text: str, source: str = "s.txt") -> Unit:
    return Unit(doc_id="d", source=source, chunk_index=0, char_start=i * 100, char_end=i * 100 + len(text),
                line_start=i, line_end=i, text=text)


def llm_with(responses, **kw) -> tuple[LLM, FakeBackend]:
    fake = FakeBackend(mode="keyed", responses=responses, **kw)
    return LLM(fake, Settings(model="fake")), fake


def shown_units(prompt: str) -> list[tuple[int, str]]:
    return [(int(n), t) for n, t in re.findall(r"^\[(\d+)\] (.*)$", prompt, re.M)]


# -- units -----------------------------------------------------------------------------------------
def test_prose_units_are_sentences_at_their_exact_spans_and_lines():
    doc = ("Preface.\n\nIntro line.\nThe key is under the mat. Mr. Bell hid it on St. Agnes day!\n\n"
           "Dr. Moss said \"Yes.\" Then she left.\nLast words")
    start = doc.index("Intro")
    units = split_units(chunk_of(doc, start, len(doc)))
    assert [u.text for u in units] == ["Intro line.", "The key is under the mat.",
                                      "Mr. Bell hid it on St. Agnes day!", 'Dr. Moss said "Yes."', "Then she left.",
                                      "Last words"]
    for u in units:
        assert doc[u.char_start:u.char_end] == u.text
        assert u.line_start == doc.count("\n", 0, u.char_start) + 1
        assert u.line_end == doc.count("\n", 0, u.char_end) + 1
    ev = units[1].evidence()
    assert (ev.quote, ev.char_start, ev.char_end, ev.match, ev.where()) == (
        "The key is under the mat.", doc.index("The key"), doc.index("The key") + 25, "exact", "notes.txt:4")


def test_a_sentence_running_over_a_line_break_keeps_both_line_numbers():
    doc = "First line runs\non to the next line. Short one."
    units = split_units(chunk_of(doc, 0, len(doc)))
    assert [(u.text, u.line_start, u.line_end) for u in units] == [
        ("First line runs\non to the next line.", 1, 2), ("Short one.", 2, 2)]


def test_code_is_cut_into_stripped_lines_with_their_line_numbers():
    doc = "import os\n\n\ndef secret():\n    # read VAULT_KEY. Never log it.\n    return os.environ['VAULT_KEY']\n"
    units = split_units(chunk_of(doc, 0, len(doc), source="pkg/vault.py"))
    assert [(u.text, u.line_start) for u in units] == [
        ("import os", 1), ("def secret():", 4), ("# read VAULT_KEY. Never log it.", 5),
        ("return os.environ['VAULT_KEY']", 6)]
    assert all(doc[u.char_start:u.char_end] == u.text for u in units)
    assert units[2].evidence().where() == "pkg/vault.py:5"
    # the same text as prose is cut at sentence ends instead; code=True forces lines on any file
    assert [u.text for u in split_units(chunk_of(doc, 0, len(doc), source="notes.txt"))] != [u.text for u in units]
    assert [u.text for u in split_units(chunk_of(doc, 0, len(doc), source="notes.txt"), code=True)] == \
        [u.text for u in units]


def test_a_chunk_with_a_symbol_is_code_whatever_its_name():
    doc = "x = 1\ny = 2\n"
    chunk = chunk_of(doc, 0, len(doc), source="README").model_copy(update={"symbol": "module"})
    assert [u.text for u in split_units(chunk)] == ["x = 1", "y = 2"]


def test_long_sentences_are_capped_at_word_boundaries_and_lose_no_text():
    words = " ".join(f"word{i}" for i in range(400))  # one 2,700-character "sentence"
    doc = "Before. " + words + ". After."
    units = split_units(chunk_of(doc, 0, len(doc)))
    assert units[0].text == "Before." and units[-1].text == "After."
    middle = units[1:-1]
    assert len(middle) >= len(words) // MAX_UNIT_CHARS
    assert all(len(u.text) <= MAX_UNIT_CHARS for u in units)
    assert all(doc[u.char_start:u.char_end] == u.text for u in units)
    assert all(re.fullmatch(r"word\d+", w) for u in middle for w in u.text.rstrip(".").split())  # no word cut
    assert " ".join(u.text for u in middle) == words + "."
    hard = "x" * (3 * MAX_UNIT_CHARS)  # no space at all: hard cuts
    assert [len(u.text) for u in split_units(chunk_of(hard, 0, len(hard)))] == [MAX_UNIT_CHARS] * 3


def test_units_never_cross_their_chunk():
    doc = "The brig Sea Lantern sailed at dawn and carried three hundred barrels of oil home. Then rain."
    cut = doc.index("three")
    chunks = [chunk_of(doc, 0, cut, index=0), chunk_of(doc, cut, len(doc), index=1)]
    units = units_of(chunks)
    assert [u.text for u in units] == ["The brig Sea Lantern sailed at dawn and carried",
                                      "three hundred barrels of oil home.", "Then rain."]
    assert [u.chunk_index for u in units] == [0, 1, 1]
    assert all(doc[u.char_start:u.char_end] == u.text for u in units)


_PIECES = st.sampled_from(["The", "key", "Mr.", "Dr.", "e.g.", "A.", "mat", "—", "“quoted”", "(aside)", "42", "x" * 70,
                           ".", "!", "?", "…", ",", " ", " ", " ", "\n", "\n\n", "\t", "  "])


@settings(max_examples=300, deadline=None)
@given(prefix=st.lists(_PIECES, max_size=20).map("".join), body=st.lists(_PIECES, max_size=120).map("".join),
       suffix=st.lists(_PIECES, max_size=10).map("".join), code=st.booleans())
def test_property_units_lie_inside_their_chunk_in_order_and_cover_its_text(prefix, body, suffix, code):
    doc = prefix + body + suffix
    chunk = chunk_of(doc, len(prefix), len(prefix) + len(body), source="a.py" if code else "a.txt")
    units = split_units(chunk)
    covered = set()
    last_end = chunk.char_start
    for u in units:
        assert chunk.char_start <= u.char_start < u.char_end <= chunk.char_end
        assert u.char_start >= last_end  # in order, non-overlapping
        last_end = u.char_end
        assert doc[u.char_start:u.char_end] == u.text and u.text == u.text.strip() and u.text
        assert len(u.text) <= MAX_UNIT_CHARS
        assert u.line_start == doc.count("\n", 0, u.char_start) + 1
        assert u.line_end == doc.count("\n", 0, u.char_end) + 1
        assert u.chunk_index == chunk.index and u.source == chunk.source
        covered.update(range(u.char_start, u.char_end))
    if code:
        assert all("\n" not in u.text for u in units)
    # no text is lost: every non-space character of the chunk is in some unit
    assert all(i in covered for i in range(chunk.char_start, chunk.char_end) if not doc[i].isspace())


# -- locating a phrase ----------------------------------------------------------------------------
SHIP = [unit(1, "Ships came and went all summer."), unit(2, "The Sea Lantern carried 300 barrels of oil."),
        unit(3, "Captain Hale commanded the brig Sea Lantern.")]


def test_a_verbatim_or_near_verbatim_phrase_selects_its_unit_exactly():
    q = "How many barrels did Captain Hale's ship carry?"
    for phrase in ["300 barrels of oil", "  300   BARRELS of oil ", "the brig Sea Lantern", "The Sea Lantern carryed 300"]:
        found, exact = locate_units(phrase, SHIP, q)
        assert len(found) == 1 and exact, phrase
    assert locate_units("300 barrels of oil", SHIP, q)[0][0].text == SHIP[1].text
    assert locate_units("the brig Sea Lantern", SHIP, q)[0][0].text == SHIP[2].text


def test_a_reworded_phrase_selects_the_unit_sharing_most_of_its_new_words_but_not_exactly():
    q = "How many barrels did Captain Hale's ship carry?"
    found, exact = locate_units("oil, 300 barrels", SHIP, q)  # reordered: not verbatim
    assert [u.text for u in found] == [SHIP[1].text] and not exact
    # words the question has do not count: "Captain Hale" alone would otherwise pick unit 3
    found, _ = locate_units("Captain Hale: 300", SHIP, q)
    assert [u.text for u in found] == [SHIP[1].text]


@pytest.mark.parametrize("phrase", ["The code was changed to 9999", "a purple elephant named Rufus", "", "   "])
def test_a_phrase_that_is_not_in_the_text_selects_nothing(phrase):
    assert locate_units(phrase, SHIP, "How many barrels did Captain Hale's ship carry?") == ([], False)


def test_fewer_than_half_of_the_new_words_shared_selects_nothing():
    q = "What did the keeper hide?"
    units = [unit(1, "The keeper hid a brass key.")]
    assert locate_units("brass key", units, q)[0]  # all new words shared
    assert locate_units("brass trumpet violin drum", units, q) == ([], False)  # 1 of 4 new words


def test_a_short_name_copied_word_for_word_is_exact():
    units = [unit(1, "Flask's cousin Tobias served as cooper aboard the schooner Halcyon.")]
    found, exact = locate_units("Halcyon", units, "Off which island was the ship of Flask's cousin wrecked?")
    assert found and exact


def test_a_verbatim_phrase_selects_the_unit_holding_it_not_an_earlier_near_copy():
    units = [unit(1, "The sailors mended nets number 30 all day long."),
             unit(2, "The sailors mended nets number 3 all day long.")]
    found, exact = locate_units("The sailors mended nets number 3 all day long.", units, "What did the sailors do?")
    assert [u.text for u in found] == [units[1].text] and exact


# -- one reading call ------------------------------------------------------------------------------
def units_in(text: str, source: str = "n.txt") -> list[Unit]:
    return split_units(chunk_of(text, 0, len(text), source=source))


def test_select_shows_units_numbered_and_maps_the_reply_phrase_to_its_unit():
    text = "Rain fell all day.\nThe vault code is 4721. Nobody else knew it."
    llm, fake = llm_with({READ: {"answer": "vault code is 4721"}})
    sel = select(llm, "What is the vault code?", units_in(text), hints=["Bell", "Sea Lantern"])
    assert [u.text for u in sel.units] == ["The vault code is 4721."] and sel.exact == [True]
    assert sel.labels == ["vault code is 4721"] and sel.error is None and sel.relevant
    (call,) = fake.calls
    assert shown_units(call.prompt) == [(1, "Rain fell all day."), (2, "The vault code is 4721."),
                                        (3, "Nobody else knew it.")]
    assert "Names found elsewhere in the text that may matter: Bell, Sea Lantern" in call.prompt
    assert '<document source="n.txt" lines="1-2">' in call.prompt
    assert call.schema is not None and set(call.schema["properties"]) == {"answer"}


@pytest.mark.parametrize("reply", [{"answer": ""}, {"answer": "The text does not mention it."}, {"answer": "[2]"}])
def test_an_empty_or_negative_reply_selects_nothing(reply):
    llm, _ = llm_with({READ: reply})
    sel = select(llm, "What is the vault code?", units_in("Rain fell. The vault code is 4721."))
    assert sel.units == [] and sel.error is None and not sel.relevant


def test_aggregate_mode_selects_each_unit_once_however_many_labels_name_it():
    text = "Wren planted a tree in Ashby. She rested. Wren planted a tree in Carrow."
    llm, fake = llm_with({READ: {"items": ["Ashby", "a tree in Ashby", "Carrow", "Mars"]}})
    sel = select(llm, "In how many towns did Wren plant a tree?", units_in(text), mode="aggregate")
    assert [u.text for u in sel.units] == ["Wren planted a tree in Ashby.", "Wren planted a tree in Carrow."]
    assert sel.labels == ["Ashby", "Carrow"]  # the first label of a unit names it; "Mars" is in no unit
    assert fake.calls[0].schema["properties"]["items"]["maxItems"] == MAX_ITEMS


def test_summary_mode_maps_points_to_units():
    text = "The mill burned in May. Nobody was hurt. The town rebuilt it by autumn."
    llm, _ = llm_with({READ: {"points": ["The mill burned in May.", "rebuilt it by autumn"]}})
    sel = select(llm, "Summarize.", units_in(text), mode="summary")
    assert [u.text for u in sel.units] == ["The mill burned in May.", "The town rebuilt it by autumn."]


def test_two_occurrences_labelled_alike_in_one_reading_are_both_selected():
    text = ("The white owl was seen at the mill. Rain fell. The white owl was seen at the mill again. "
            "The white owl was seen on the church roof.")
    llm, _ = llm_with({READ: {"items": ["at the mill", "at the mill", "the church roof"]}})
    q = "How many times was the white owl seen?"
    sel = select(llm, q, units_in(text), mode="aggregate")
    assert answer_aggregate(q, sel.units, sel.labels).text.startswith("3 — ")


def test_an_unreadable_reply_twice_is_an_empty_selection_with_the_error():
    llm, fake = llm_with({READ: "{ not json"})
    sel = select(llm, "What is the vault code?", units_in("The vault code is 4721."))
    assert sel.units == [] and "invalid JSON twice" in sel.error
    assert len(fake.calls) == 2 and REPAIR in fake.calls[1].messages[-1].content


def test_no_units_is_no_call():
    llm, fake = llm_with({READ: {"answer": "x"}})
    assert select(llm, "Q?", []).units == [] and fake.calls == []


def test_shown_blocks_group_consecutive_units_of_one_chunk():
    doc = "One. Two.\nThree. Four."
    a, b = chunk_of(doc, 0, 10, index=0), chunk_of(doc, 10, len(doc), index=1)
    blocks = shown_blocks(units_of([a, b]))
    assert [(b["chunk"], b["lines"], [u["n"] for u in b["units"]]) for b in blocks] == [
        (0, "1-1", [1, 2]), (1, "2-2", [3, 4])]


# -- bridges for the next hop ---------------------------------------------------------------------
def test_bridge_terms_are_names_the_question_lacks_best_first():
    q = "How many barrels did Captain Hale's ship carry?"
    assert bridge_terms(q, [SHIP[2]]) == ["Sea Lantern"]
    text = 'Rain fell on "the old mill" where Captain Hale met Dr Ann Blythe of the Navy. Then Tom left.'
    terms = bridge_terms(q, [unit(1, text)])
    assert terms[0] == "the old mill"  # a quoted phrase ranks first
    assert "Dr Ann Blythe" in terms and "Captain Hale" not in terms
    assert "Rain" not in terms and "Then" not in terms  # one capitalised word starting a sentence is no name
    assert bridge_terms(q, [SHIP[2]], tried=["Sea Lantern"]) == []
    assert bridge_terms(q, [SHIP[0]]) == []
    many = unit(1, "Ann Bray, Bo Cole, Cy Dunn, Di Eyre, Ed Ford and Flo Gray came.")
    assert len(bridge_terms(q, [many])) == MAX_TERMS


def test_hop_query_puts_the_bridge_terms_before_the_question():
    q = "Where did Captain Hale's ship drop anchor?"
    assert hop_query(q, ["Sea Lantern", "Port Varrow"]) == f"Sea Lantern Port Varrow {q}"


# -- aggregation in code --------------------------------------------------------------------------
@pytest.mark.parametrize("question, aggregate, occurrences", [
    ("How many rooms did the inn have?", False, False),
    ("In how many towns did Miss Wren plant an apple tree? Name them.", True, False),
    ("How many times was the owl seen?", True, True),
    ("How often did the bell ring?", True, True),
    ("List every island from which Starbuck posted a letter.", True, False),
    ("From booksellers in how many cities did he order a pamphlet?", True, False),
    ("Who wrote the letter?", False, False),
])
def test_is_aggregation(question, aggregate, occurrences):
    assert is_aggregation(question) is aggregate
    assert counts_occurrences(question) is occurrences


WREN = "In how many towns did Miss Wren plant an apple tree? Name them."
TOWNS = [unit(1, "Miss Wren planted an apple tree in Ashby."), unit(2, "Miss Wren planted an apple tree in Carrow."),
         unit(3, "In Ashby, Miss Wren planted an apple tree."), unit(4, "Miss Wren planted an apple tree in Dunmore.")]


def test_items_merge_repeats_and_never_count_a_unit_twice():
    found = items(WREN, TOWNS + [TOWNS[0]], ["Ashby", "Carrow", "the town of Ashby", "Dunmore", "Ashby"])
    assert [i.label for i in found] == ["Ashby", "Carrow", "Dunmore"]
    assert [u.text for u in found[0].units] == [TOWNS[0].text, TOWNS[2].text]
    assert sum(len(i.units) for i in found) == 4  # the repeated unit counted once


def test_a_label_that_restates_the_question_is_replaced_by_the_units_own_words():
    found = items(WREN, TOWNS[:2], ["apple tree", "Miss Wren"])
    assert len(found) == 2 and "Ashby" in found[0].label and "Carrow" in found[1].label


def test_how_many_times_counts_every_unit():
    q = "How many times was the owl seen?"
    owls = [unit(1, "The owl was seen at the mill."), unit(2, "The owl was seen at the mill again."),
            unit(3, "The owl was seen on the church roof.")]
    assert len(items(q, owls, ["the mill", "the mill", "church roof"])) == 3
    assert len(items("At how many places was the owl seen?", owls, ["the mill", "the mill", "church roof"])) == 2


def test_answer_aggregate_computes_the_count_and_cites_each_item_at_its_span():
    r = answer_aggregate(WREN, TOWNS + [TOWNS[0]], ["Ashby", "Carrow", "the town of Ashby", "Dunmore", "Ashby"])
    assert r.found and r.text == "3 — Ashby [1][2]; Carrow [3]; Dunmore [4]."
    assert [c.evidence.quote for c in r.citations] == [TOWNS[0].text, TOWNS[2].text, TOWNS[1].text, TOWNS[3].text]
    assert [c.n for c in r.citations] == [1, 2, 3, 4]
    assert "counted in code" in r.detail
    nothing = answer_aggregate(WREN, [], [])
    assert not nothing.found and nothing.text == NOT_FOUND and nothing.citations == []


# -- citations and checks -------------------------------------------------------------------------
def ev(i: int, quote: str | None = None) -> Evidence:
    return Evidence(quote=quote or f"quote number {i}", doc_id="d", source="a.txt", char_start=i * 10,
                    char_end=i * 10 + 5)


def test_number_citations_renumbers_in_order_of_first_use_and_drops_bogus_markers():
    text, cites = number_citations("First [3]. Second [1, 3]. Bogus [9].", [ev(0), ev(1), ev(2)])
    assert text == "First [1]. Second [2][1]. Bogus."
    assert [(c.n, c.evidence.char_start) for c in cites] == [(1, 20), (2, 0)]


def test_number_citations_appends_cited_or_all_when_no_marker():
    text, cites = number_citations("The answer is yes.", [ev(0), ev(1)], cited=[2])
    assert text == "The answer is yes. [1]" and [c.evidence.char_start for c in cites] == [10]
    text, cites = number_citations("The answer is yes.", [ev(0), ev(1)])
    assert text == "The answer is yes. [1][2]" and len(cites) == 2
    assert number_citations("Plain.", [ev(0)], cite_all_if_none=False) == ("Plain.", [])


def test_attribute_picks_the_evidence_sharing_the_answers_own_words():
    evidence = [ev(0, "Mr. Bingley came to town."), ev(1, "His horse was a grey mare called Moonlight.")]
    assert attribute("Moonlight.", "What was Mr. Bingley's horse called?", evidence) == [2]
    assert attribute("Bingley", "What was Mr. Bingley's horse called?", evidence) == []  # only question words


@pytest.mark.parametrize("answer, negative", [
    ("[1]", True), ("", True), ("The documents do not mention a parrot.", True), ("It is not stated [2].", True),
    ("Blue Heron Seven [2].", False), ("No, 7:40 in the morning.", False)])
def test_says_not_found(answer, negative):
    assert says_not_found(answer) is negative


def test_grounded_rejects_new_words_that_no_evidence_has():
    evidence = [ev(0, "The call sign was Blue Heron Seven.")]
    assert grounded("It was Blue Heron Seven [1].", "What was the call sign?", evidence)
    assert not grounded("The call sign was John Smith [1].", "What was the call sign?", evidence)
    assert grounded("3 [1].", "How many call signs?", evidence)  # numbers are computed, not copied


# -- the answer step ------------------------------------------------------------------------------
VAULT = [unit(1, "Rain fell all day."), unit(2, "The vault code is 4721."), unit(3, "Nobody else knew it.")]


def test_answer_fact_cites_the_units_its_markers_name():
    llm, fake = llm_with({ANSWER: {"answer": "It is 4721 [2]."}})
    r = answer_fact(llm, "What is the vault code?", VAULT, max_tokens=64)
    assert r.found and r.text == "It is 4721 [1]." and [c.evidence.quote for c in r.citations] == [VAULT[1].text]
    prompt = fake.calls[0].prompt
    assert "[2] The vault code is 4721." in prompt and fake.calls[0].max_tokens == 64


def test_answer_fact_cites_the_units_sharing_its_words_else_the_question_s_else_all():
    llm, _ = llm_with({ANSWER: {"answer": "The code is 4721."}})
    r = answer_fact(llm, "What is the vault code?", VAULT, max_tokens=64)
    assert r.text == "The code is 4721. [1]" and [c.evidence.quote for c in r.citations] == [VAULT[1].text]
    # "Yes." (or a choice letter) is in no unit: it rests on the unit about the question
    llm, _ = llm_with({ANSWER: {"answer": "Yes. [1][2][3]"}})
    r = answer_fact(llm, "Is there a vault code?", VAULT, max_tokens=64)
    assert r.found and r.text == "Yes. [1]" and [c.evidence.quote for c in r.citations] == [VAULT[1].text]
    llm, _ = llm_with({ANSWER: {"answer": "B"}})
    r = answer_fact(llm, "Which option is right?", VAULT, max_tokens=64)  # shares no word with any unit
    assert r.found and len(r.citations) == 3


@pytest.mark.parametrize("reply", ["The sentences do not say.", "[1]", "It is 9999, set by Captain Morgan [2]."])
def test_answer_fact_that_says_not_found_or_is_ungrounded_is_not_found(reply):
    llm, _ = llm_with({ANSWER: {"answer": reply}})
    r = answer_fact(llm, "What is the vault code?", VAULT, max_tokens=64)
    assert not r.found and r.text == NOT_FOUND and r.citations == []


def test_answer_fact_with_no_units_makes_no_call():
    llm, fake = llm_with({ANSWER: {"answer": "4721"}})
    assert answer_fact(llm, "What is the vault code?", [], max_tokens=64).text == NOT_FOUND and fake.calls == []


STORY = [unit(i, t) for i, t in enumerate([
    "The mill on the river burned down in May.", "Nobody in the village was hurt by the fire.",
    "The baker and the smith rebuilt the mill by autumn.", "A new wheel was carved from oak."], 1)]


def sentences(n_words: int, topic: str) -> str:
    """Plain sentences about ``topic`` (every one shares words with a unit), at most ``n_words`` words."""
    out, base = [], f"The {topic} was the talk of the whole village that year."
    while count_words(" ".join(out + [base])) <= n_words:
        out.append(base)
    return " ".join(out)


def test_a_short_summary_is_continued_until_it_is_within_15_percent():
    asked = 120
    first, more = sentences(50, "mill fire"), sentences(40, "new oak wheel")
    llm, fake = llm_with({CONTINUE: more, SUMMARY: first})
    r = write_summary(llm, STORY, asked)
    low, high = bounds(asked)
    assert low <= count_words(r.text) <= high, r.text
    steps = [c.messages[-1].content for c in fake.calls]
    assert len(steps) == 3 and CONTINUE in steps[1] and CONTINUE in steps[2]  # 50 words, then 50 + 40: still short
    assert f"about {asked - count_words(first)} more words" in steps[1]
    assert f"about {asked - count_words(first) - count_words(more)} more words" in steps[2]
    pieces = re.findall(r"[^.!?]+[.!?](?:\s*\[\d+\])*", r.text)
    assert len(pieces) >= 7 and all(re.search(r"\[\d+\]$", p) for p in pieces)  # every sentence cited
    assert {c.evidence.quote for c in r.citations} <= {u.text for u in STORY}
    assert "wheel" in r.citations[-1].evidence.quote


def test_a_long_summary_is_cut_at_a_sentence_end_within_15_percent():
    asked = 60
    llm, fake = llm_with({SUMMARY: sentences(200, "mill fire")})
    r = write_summary(llm, STORY, asked)
    assert bounds(asked)[0] <= count_words(r.text) <= bounds(asked)[1]
    assert r.text.rstrip().endswith("]") and re.sub(r"\s*\[\d+\]", "", r.text).endswith("year.")
    assert len(fake.calls) == 1 and fake.calls[0].max_tokens == int(asked * 1.6) + 48


CAT = [unit(1, "Late in the afternoon, old Tom tied the boats to the pier."),
       unit(2, "The lighthouse keeper's cat was a grey tabby named Biscuit.")]


def test_a_phrase_restating_the_question_does_not_select_a_sentence_sharing_only_its_new_word():
    # the model reworded its answer; "Tom" alone is no reason to cite a sentence about boats
    found, exact = locate_units("The lighthouse keeper's cat is Tom.", CAT[:1], "What was the lighthouse keeper's cat called?")
    assert found == [] and not exact


def test_answer_fact_drops_a_marker_naming_a_unit_without_the_answers_words():
    llm, _ = llm_with({ANSWER: {"answer": "[1] Biscuit"}})
    r = answer_fact(llm, "What was the lighthouse keeper's cat called?", CAT, max_tokens=64)
    assert r.found and [c.evidence.quote for c in r.citations] == [CAT[1].text] and r.text == "Biscuit [1]"


LEVEE = [unit(1, "Only think what an establishment it would be for one of them."),
         unit(2, "Sir William Lucas once counted exactly forty-three carriages at the levee.")]


def test_a_number_in_digits_selects_the_sentence_that_spells_it_and_a_bare_one_selects_nothing():
    q = "How many carriages did Sir William Lucas count at the levee?"
    assert locate_units("43", LEVEE, q)[0] == [LEVEE[1]]
    assert locate_units("1", LEVEE[:1], q)[0] == []  # "one of them" is no answer to the question


def test_number_words_are_one_number():
    from agentlong.lexical import stems

    assert {"340", "43", "2", "3"} <= stems("three hundred and forty; forty-three; two and three")


def test_an_answer_of_none_is_not_found():
    llm, _ = llm_with({ANSWER: {"answer": "[1] None."}})
    r = answer_fact(llm, "What was the password?", VAULT, max_tokens=64)
    assert not r.found and r.text == NOT_FOUND and r.citations == []


def test_a_count_stated_in_one_sentence_is_that_count_not_one_occurrence():
    q = "How many times had Mr. Trumbull's spectacles been mended?"
    u = unit(4, "Mr. Trumbull's spectacles had been mended fourteen times by the same optician.")
    r = answer_aggregate(q, [u], ["fourteen times"])
    assert r.text == "14 [1]" and [c.evidence.quote for c in r.citations] == [u.text]
    # two sightings are counted, whatever numbers they hold
    owls = [unit(5, "A white owl sat on the chimney on the 3 of May."), unit(6, "A white owl sat on the chimney again.")]
    assert answer_aggregate("How many times did a white owl sit on the chimney?", owls, ["3 of May", "again"]).text.startswith("2 — ")
