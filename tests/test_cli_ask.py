"""`agentlong ask` / `agentlong summarize`: output format, --json, and one-line errors (no tracebacks)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentlong import Agentlong
from agentlong.backends.fake import FakeBackend
from agentlong.cli import main as cli_main
from agentlong.cli import render
from agentlong.evidence.cite import NOT_FOUND
from agentlong.types import Answer

FACT = "The observatory's spare lens is stored in crate forty-two."


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentlong.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "AGENTLONG_SHOW_PROGRESS": "0"})


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("agentlong: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]
    assert proc.stdout == ""
    return lines[0]


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("Inventory of the hill observatory.\n" + FACT + "\nThe dome was repainted in May.\n")
    return path


SUMMARY_TEXT = ("An inventory of the hill observatory lists its stores. The spare lens is stored in crate forty-two. "
                "The dome of the observatory was repainted in May by the keepers.")  # 30 words


@pytest.fixture
def keyed_fake(monkeypatch) -> FakeBackend:
    """Route the CLI's Agentlong to a scripted fake backend (in-process runs of main())."""
    fake = FakeBackend(mode="keyed", responses={
        "Answer the question using only the sentences above": {"answer": "It is in crate forty-two [1]."},
        "Write a summary of the text these sentences come from": SUMMARY_TEXT,
        "Numbered sentences from the user's files": {"answer": "crate forty-two"}})
    monkeypatch.setattr(render, "make_agentlong", lambda args: Agentlong(model="fake", backend=fake))
    return fake


# -- in-process: output ------------------------------------------------------------------------------------
def test_ask_prints_answer_then_sources_and_usage(notes, keyed_fake, capsys):
    assert cli_main.main(["-q", "ask", str(notes), "Where is the spare lens?"]) == 0
    out, err = capsys.readouterr()
    answer, sources = out.split("\n\nSources:\n")
    assert answer == "It is in crate forty-two [1]."
    lines = sources.splitlines()
    assert lines[0] == f"[1] {notes}:2"  # an exact span: no "(fuzzy match ...)" note
    assert lines[1] == f"    “{FACT}”"  # the whole sentence, as it stands in the file
    assert len(lines) == 2
    assert "strategy full" in err and "2 calls" in err
    prompts = [c.messages[-1].content for c in keyed_fake.calls]
    assert "[2] " + FACT in prompts[0] and "[1] " + FACT in prompts[1]  # read, then answered from the one unit


def test_ask_json_is_the_whole_answer(notes, keyed_fake, capsys):
    assert cli_main.main(["ask", str(notes), "Where is the spare lens?", "--json", "-q"]) == 0
    answer = Answer.model_validate(json.loads(capsys.readouterr().out))
    assert answer.strategy == "full" and answer.strategy_reason and answer.found
    ev = answer.citations[0].evidence
    assert ev.quote == FACT and notes.read_text()[ev.char_start:ev.char_end] == FACT and ev.line_start == 2
    assert answer.record is not None and answer.usage.calls == 2
    assert [e.quote for e in answer.evidence] == [FACT]


def test_ask_that_finds_nothing_prints_not_found_without_sources(notes, keyed_fake, capsys):
    keyed_fake.responses = {"Numbered sentences from the user's files": {"answer": ""}}
    assert cli_main.main(["-q", "ask", str(notes), "Who painted the dome?", "--strategy", "full"]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == NOT_FOUND and "Sources:" not in out


def test_an_answer_from_the_text_read_says_so(notes, keyed_fake, capsys):
    keyed_fake.responses = {"Numbered sentences from the user's files": {"answer": ""},
                            "Answer the question using only the sentences above": {"answer": "It is in crate forty-two [1]."}}
    assert cli_main.main(["-q", "ask", str(notes), "Why keep a spare lens?", "--strategy", "full"]) == 0
    out, _ = capsys.readouterr()
    answer, note, sources = out.split("\n", 2)
    assert answer.startswith("It is in crate forty-two") and answer.endswith("[1]")
    assert note == "(no sentence was selected as the answer; answered from the text read)"
    assert sources.lstrip("\n").startswith(f"Sources:\n[1] {notes}:2\n    “{FACT}”")


def test_summarize_prints_summary(notes, keyed_fake, capsys):
    assert cli_main.main(["-q", "summarize", str(notes), "--words", "30"]) == 0
    out, err = capsys.readouterr()
    summary = out.split("\n\nSources:\n")[0]
    assert re.sub(r"\s*\[\d+\]", "", summary) == SUMMARY_TEXT
    assert re.findall(r"\[\d+\]", summary)  # its sentences cite the file's lines
    assert "strategy full" in err
    assert keyed_fake.calls[0].max_tokens == int(30 * 1.6) + 48  # derived from --words 30
    assert len(keyed_fake.calls) == 1  # 30 words asked, 30 written: no continuation


def test_store_errors_reach_the_user_as_one_line(notes, keyed_fake, capsys, monkeypatch):
    from agentlong.errors import StoreError
    from agentlong.graphs import router

    def mismatch(app, resolved, emit):
        raise StoreError("corpus books was indexed with E1, current embedder is E2",
                         hint="re-index with agentlong index PATH --name books --reindex")

    monkeypatch.setattr(router, "open_for_rtr", mismatch)
    assert cli_main.main(["-q", "ask", str(notes), "Where?", "--strategy", "rtr"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--reindex" in err and "Traceback" not in err


# -- subprocess: errors ------------------------------------------------------------------------------------
def test_unknown_source_is_one_line():
    proc = run_cli("--model", "fake", "ask", "no-such-corpus", "What?")
    assert_one_line_error(proc, "no file, folder or corpus named 'no-such-corpus'", "agentlong index")


def test_empty_and_binary_files_are_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(run_cli("--model", "fake", "ask", str(empty), "What?"), "empty")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    assert_one_line_error(run_cli("--model", "fake", "summarize", str(binary)), "binary")


def test_bad_options_are_one_line(notes):
    assert_one_line_error(run_cli("--model", "fake", "summarize", str(notes), "--words", "0"), "between 10 and 20000")
    assert_one_line_error(run_cli("--model", "fake", "ask", str(notes), "   "), "empty question")
    assert_one_line_error(run_cli("--model", "fake", "summarize", str(notes), "--strategy", "rtr"),
                          "invalid choice: 'rtr'", "(see agentlong summarize --help)")
    assert_one_line_error(run_cli("ask", str(notes)), "the following arguments are required: question")
    assert_one_line_error(run_cli("--no-such-flag"), "unrecognized arguments: --no-such-flag")


def test_one_file_over_max_file_mb_is_refused_with_the_setting(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("The keeper counted gulls. " * 2000)  # 52 KB
    proc = subprocess.run([sys.executable, "-m", "agentlong.cli.main", "--model", "fake", "ask", str(big), "Who?"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AGENTLONG_SHOW_PROGRESS": "0", "AGENTLONG_CHUNKING__MAX_FILE_MB": "0.01"})
    assert_one_line_error(proc, "big.txt is 0 MB, over chunking.max_file_mb (0.01)", "AGENTLONG_CHUNKING__MAX_FILE_MB")


def test_a_guessed_encoding_is_shown_to_the_user(tmp_path, keyed_fake, capsys):
    odd = tmp_path / "odd.txt"
    odd.write_bytes("Inventory of the hill observatory. ".encode() + "Çiçek dağı güzel ve ılık. ".encode("cp1254") * 40
                    + FACT.encode())
    assert cli_main.main(["ask", str(odd), "Where is the spare lens?"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"odd\.txt: not UTF-8: decoded as \S+", err), err


def test_an_interrupt_says_what_survives_it(notes, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("agentlong.store.corpus.index_paths", interrupted)
    assert cli_main.main(["-q", "index", str(notes)]) == 130
    assert capsys.readouterr().err.strip() == ("agentlong: interrupted — what was embedded is kept; "
                                               "run the same command again to index the rest")
    monkeypatch.setattr("agentlong.cli.cmd_models.run_list", interrupted)  # nothing of a listing survives
    assert cli_main.main(["models", "list"]) == 130
    assert capsys.readouterr().err.strip() == "agentlong: interrupted"


def test_embedder_mismatch_from_the_store_is_one_line(notes, tmp_path):
    """A corpus registered with another embedder: the store's StoreError reaches the CLI as one line."""
    from agentlong.store.corpus import index_paths, registry

    app = Agentlong(model="fake")
    index_paths(app, [str(notes)], name="observatory", emit=lambda e: None)
    reg = registry(app)
    info = reg.corpus("observatory")
    reg.save_corpus(info.model_copy(update={"embedder": "some-other-embedder"}))  # as if indexed with another one
    proc = run_cli("--model", "fake", "ask", "observatory", "Where is the lens?")
    assert_one_line_error(proc, "some-other-embedder", "--reindex")
