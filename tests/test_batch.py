"""Batch jobs on the fake backend: spec validation, exactly-once results, resume, retries, bad input,
concurrency, the CLI; plus a flaky OpenAI-compatible HTTP server that the job survives via retries."""

from __future__ import annotations

import errno
import json
import re
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentlong import Agentlong
from agentlong.backends.fake import FakeBackend
from agentlong.batch import iter_results, load_spec, parse_spec, run, status
from agentlong.batch.state import JobState, ResultsFile, state_paths
from agentlong.locks import ProcessLock
from agentlong.cli.main import main
from agentlong.errors import ConfigError, InputError, RateLimited

SCHEMA = {"type": "object", "properties": {"author": {"type": "string"}}, "required": ["author"]}
ROOT = Path(__file__).resolve().parents[1]


def make_docs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"doc{i:02d}.txt"
        p.write_text(f"Report number {i}. It was written by Author Number{i} in the spring.\n")
        paths.append(p)
    return paths


def spec_dict(tmp_path: Path, **extra) -> dict:
    data = {"inputs": ["docs/*.txt"], "model": "fake", "output": "out/results.jsonl", "backoff_s": 0,
            "fake": {"mode": "keyed", "default": {"author": "Author Number0"}},
            "tasks": [{"type": "extract", "schema": SCHEMA}]}
    data.update(extra)
    return data


def write_spec(tmp_path: Path, data: dict, name: str = "job.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def extract_app(responses: dict | None = None, default=None, **kw) -> tuple[Agentlong, FakeBackend]:
    fb = FakeBackend(mode="keyed", responses=responses or {}, default=default or {"author": "Someone Named"}, **kw)
    return Agentlong(backend=fb, model="fake"), fb


# -- spec ------------------------------------------------------------------------------


@pytest.mark.parametrize("data, expected", [
    ({"inputs": ["a"], "tasks": [{"type": "ask"}]}, "job.yaml: tasks[0]: an ask task needs `question:`"),
    ({"inputs": ["a"], "tasks": [{"type": "summarize", "wordz": 3}]}, "job.yaml: tasks[0].wordz: unknown key"),
    ({"inputs": ["a"], "tasks": [{"type": "summarize", "words": "many"}]}, "job.yaml: tasks[0].words: input should be a valid integer"),
    ({"inputs": ["a"], "tasks": [{"type": "summarize"}], "concurrency": 0}, "job.yaml: concurrency: input should be greater than or equal to 1"),
    ({"inputs": ["a"], "tasks": [{"type": "translate"}]}, "job.yaml: tasks[0]: input tag 'translate'"),
    ({"inputs": ["a"], "tasks": [{"type": "extract", "schema": {"type": "banana"}}]}, "job.yaml: tasks[0].schema:"),
    ({"inputs": ["a"], "tasks": [{"type": "summarize"}], "settings": {"llama": {"n_ctxx": 1}}}, "job.yaml: settings.llama.n_ctxx: unknown key"),
    ({"tasks": [{"type": "summarize"}]}, "give `inputs:`"),
    ({"inputs": ["a"], "tasks": [{"type": "summarize", "name": "x"}, {"type": "ask", "question": "q", "name": "x"}]}, "share the name"),
])
def test_bad_spec_names_the_field(data, expected):
    with pytest.raises(ConfigError) as info:
        parse_spec(data, "job.yaml")
    assert expected in info.value.message


def test_yaml_and_toml_specs_load_with_paths_relative_to_the_spec(tmp_path):
    (tmp_path / "a.yaml").write_text("inputs: docs/\ntasks:\n  - type: ask\n    questions: ['Who?', 'When?']\n")
    (tmp_path / "b.toml").write_text('inputs = ["x.txt"]\noutput = "r/out.jsonl"\n[[tasks]]\ntype = "summarize"\nwords = 20\n')
    a, b = load_spec(tmp_path / "a.yaml"), load_spec(tmp_path / "b.toml")
    assert a.inputs == ["docs/"] and a.tasks[0].all_questions() == ["Who?", "When?"]
    assert a.output_path() == tmp_path / "a.results.jsonl"
    assert b.output_path() == tmp_path / "r" / "out.jsonl" and b.tasks[0].words == 20


def test_broken_yaml_and_missing_spec_are_one_line_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("inputs: [a\ntasks: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+: invalid YAML"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_init_template_and_example_spec_are_valid(tmp_path, capsys):
    target = tmp_path / "job.yaml"
    assert main(["batch", "init", str(target)]) == 0
    spec = load_spec(target)
    assert {t.type for t in spec.tasks} == {"summarize", "ask", "extract"}
    assert main(["batch", "init", str(target)]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    example = load_spec(ROOT / "examples" / "batch_spec.yaml")
    assert example.tasks


# -- running ---------------------------------------------------------------------------


def test_extract_job_writes_one_record_per_document_with_citations(tmp_path):
    make_docs(tmp_path / "docs", 5)
    spec = parse_spec(spec_dict(tmp_path), "job.json", tmp_path)
    responses = {f"Report number {i}.": {"author": f"Author Number{i}"} for i in range(5)}
    app, fb = extract_app(responses)
    summary = run(spec, app=app)
    assert (summary.total, summary.ok, summary.failed, summary.exit_code) == (5, 5, 0, 0)
    records = lines(tmp_path / "out" / "results.jsonl")
    assert sorted(r["document"] for r in records) == [f"docs/doc{i:02d}.txt" for i in range(5)]
    for r in records:
        i = int(r["document"][8:10])
        assert r["status"] == "ok" and r["answer"] == {"author": f"Author Number{i}"} and r["error"] is None
        assert r["usage"]["calls"] == 1 and r["usage"]["prompt_tokens"] > 0 and r["duration_s"] >= 0
        ev = r["citations"][0]["evidence"]
        assert r["citations"][0]["field"] == "$.author" and ev["quote"] == f"Author Number{i}"
        assert Path(r["path"]).read_text()[ev["char_start"]:ev["char_end"]] == ev["quote"]
    assert all(c.schema == SCHEMA for c in fb.calls)
    assert summary.usage.calls == 5 and summary.job_usage.prompt_tokens == summary.usage.prompt_tokens


def test_failed_document_does_not_stop_others_and_rerun_redoes_nothing(tmp_path):
    make_docs(tmp_path / "docs", 4)
    (tmp_path / "docs" / "doc02.txt").write_text("Report number 2. Nobody signed it.\n")
    spec = parse_spec(spec_dict(tmp_path), "job.json", tmp_path)
    app, fb = extract_app({"Nobody signed": {"wrong": 1}})  # never matches the schema → ParseError after repair
    first = run(spec, app=app)
    assert (first.ok, first.failed, first.exit_code) == (3, 1, 1)
    bad = [r for r in lines(spec.output_path()) if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["document"] == "docs/doc02.txt" and "ParseError" in bad[0]["error"]
    assert bad[0]["attempts"] == 3  # 2 retries after the first attempt
    assert bad[0]["usage"]["calls"] == 6  # each attempt: a call and its repair; failed tokens are counted
    calls = len(fb.calls)
    again = run(spec, app=app)
    assert len(fb.calls) == calls and again.ran == 0 and again.done_before == 4
    assert len(lines(spec.output_path())) == 4
    fb.responses.clear()
    fixed = run(spec, app=app, retry_failed=True)
    assert (fixed.ok, fixed.failed, fixed.ran, fixed.exit_code) == (4, 0, 1, 0)
    records = lines(spec.output_path())
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)


def test_transient_errors_are_retried_with_backoff(tmp_path):
    make_docs(tmp_path / "docs", 2)
    spec = parse_spec(spec_dict(tmp_path, retries=3), "job.json", tmp_path)
    attempts = {"n": 0}

    def flaky(messages):
        if "Report number 1." in messages[-1].content:
            attempts["n"] += 1
            if attempts["n"] <= 2:
                return RateLimited("429 from the server")
        return {"author": "Author Number1"}

    app, _ = extract_app({"Report number": flaky})
    seen = []
    summary = run(spec, app=app, on_event=seen.append)
    assert summary.ok == 2
    rec = next(r for r in lines(spec.output_path()) if r["document"].endswith("doc01.txt"))
    assert rec["attempts"] == 3 and rec["status"] == "ok"
    assert sum("retry" in getattr(e, "message", "") for e in seen) == 2


def test_input_errors_are_not_retried(tmp_path):
    make_docs(tmp_path / "docs", 1)
    (tmp_path / "docs" / "empty.txt").write_bytes(b"   \n")
    spec = parse_spec(spec_dict(tmp_path, retries=5), "job.json", tmp_path)
    app, _ = extract_app()
    summary = run(spec, app=app)
    rec = next(r for r in lines(spec.output_path()) if r["document"].endswith("empty.txt"))
    assert summary.failed == 1 and rec["attempts"] == 1 and rec["error"].startswith("InputError")


def test_a_bug_in_a_task_keeps_its_traceback_in_the_record(tmp_path):
    make_docs(tmp_path / "docs", 1)
    spec = parse_spec(spec_dict(tmp_path, retries=2), "job.json", tmp_path)
    app, _ = extract_app(default=KeyError("choices"))  # not an AgentlongError: agentlong's own bug
    summary = run(spec, app=app)
    rec = lines(spec.output_path())[0]
    assert summary.failed == 1 and rec["attempts"] == 1 and rec["error"].startswith("KeyError")
    assert "Traceback (most recent call last)" in rec["extra"]["traceback"]
    assert "KeyError: 'choices'" in rec["extra"]["traceback"]


def test_long_document_is_extracted_per_chunk_within_the_window_and_merged(tmp_path):
    from agentlong.batch.extract import extract
    from agentlong.errors import ParseError

    path = tmp_path / "long.txt"
    filler = "A filler sentence about the weather and nothing else. "
    path.write_text(filler * 150 + "The author of this report is Ada Lovelace. " + filler * 150)
    schema = {"type": "object", "required": ["author"],
              "properties": {"author": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}

    def answer(messages):
        if "Ada Lovelace" in messages[-1].content:
            return {"author": "Ada Lovelace", "tags": ["math", "weather"]}
        return {"author": None, "tags": ["weather"]}

    fb = FakeBackend(mode="keyed", responses={"<document>": answer}, context_window=1024)
    app = Agentlong(backend=fb, model="fake")
    data, cites, usage = extract(app, path, schema)
    assert usage.calls == len(fb.calls) > 3
    assert data == {"author": "Ada Lovelace", "tags": ["weather", "math"]}
    assert cites[0]["evidence"]["quote"] == "Ada Lovelace"
    for call in fb.calls:
        assert "required" not in call.schema  # each part may lack a field
        assert sum(fb.count_tokens(m.content) + 8 for m in call.messages) + call.max_tokens <= 1024
    fb.responses["<document>"] = {"author": None}
    with pytest.raises(ParseError, match="do not fill the schema"):
        extract(app, path, schema)


def test_units_run_concurrently_up_to_the_limit(tmp_path):
    make_docs(tmp_path / "docs", 8)
    spec = parse_spec(spec_dict(tmp_path, concurrency=4), "job.json", tmp_path)
    barrier = threading.Barrier(4, timeout=30)  # breaks unless 4 calls are in flight at once
    active, peak, lock = [0], [0], threading.Lock()

    def gate(messages):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        with lock:
            active[0] -= 1
        return {"author": "Someone Named"}

    app, _ = extract_app({"Report": gate})
    summary = run(spec, app=app)
    assert summary.ok == 8 and not barrier.broken
    assert peak[0] == 4


def test_iter_results_yields_done_records_then_new_ones(tmp_path):
    make_docs(tmp_path / "docs", 3)
    spec = parse_spec(spec_dict(tmp_path), "job.json", tmp_path)
    app, _ = extract_app()
    first = list(iter_results(spec, app=app))
    assert len(first) == 3 and len({r["id"] for r in first}) == 3
    make_docs(tmp_path / "docs", 4)  # a new document arrives
    again = list(iter_results(spec, app=app))
    assert len(again) == 4 and {r["id"] for r in first} < {r["id"] for r in again}


def test_stopping_iter_results_early_stops_the_job_and_it_resumes(tmp_path):
    make_docs(tmp_path / "docs", 6)
    spec = parse_spec(spec_dict(tmp_path, concurrency=1), "job.json", tmp_path)
    app, fb = extract_app(delay_s=0.05)
    taken = []
    for rec in iter_results(spec, app=app):
        taken.append(rec["id"])
        if len(taken) == 2:
            break
    st = status(spec)
    assert st["running_pid"] is None and st["ok"] >= 2 and st["pending"] >= 1
    summary = run(spec, app=app)
    ids = [r["id"] for r in lines(spec.output_path())]
    assert summary.ok == 6 and sorted(ids) == sorted(set(ids)) and len(ids) == 6
    assert len(fb.calls) == 6  # nothing was done twice


def test_summarize_ask_and_write_tasks_call_the_sdk_and_map_its_results(tmp_path):
    from agentlong.types import Answer, Citation, Evidence, Usage

    calls = []

    class StubApp(Agentlong):
        def _answer(self, kind, source, text, on_event):
            ev = Evidence(quote="Report number", doc_id="d", source=str(source), char_start=0, char_end=13)
            return Answer(question=kind, text=text, strategy="full", strategy_reason="fits",
                          citations=[Citation(n=1, evidence=ev)], usage=Usage(prompt_tokens=11, calls=1))

        def summarize(self, source, *, words=300, strategy="auto", on_event=None):
            calls.append(("summarize", Path(source).name, words, strategy))
            return self._answer("summary", source, "a short summary", on_event)

        def ask(self, source, question, *, strategy="auto", on_event=None):
            calls.append(("ask", Path(source).name, question, strategy))
            return self._answer(question, source, f"answer to {question}", on_event)

        def write(self, instruction, *, words, sources=None, outline=None, on_event=None):
            calls.append(("write", instruction, words, [Path(s).name for s in sources]))
            from types import SimpleNamespace
            return SimpleNamespace(text="# Note\nbody", usage=Usage(completion_tokens=30, calls=2), words=2)

    make_docs(tmp_path / "docs", 1)
    spec = parse_spec(spec_dict(tmp_path, strategy="rtr", tasks=[
        {"type": "summarize", "words": 12}, {"type": "ask", "questions": ["Who?", "When?"], "strategy": "coa"},
        {"type": "write", "instruction": "Brief on {document}", "words": 80}]), "job.json", tmp_path)
    summary = run(spec, app=StubApp(model="fake"))
    assert summary.ok == 4
    assert sorted(calls, key=str) == sorted([("summarize", "doc00.txt", 12, "rtr"), ("ask", "doc00.txt", "Who?", "coa"),
                                             ("ask", "doc00.txt", "When?", "coa"),
                                             ("write", "Brief on doc00.txt", 80, ["doc00.txt"])], key=str)
    recs = {(r["task"], r["question"]): r for r in lines(spec.output_path())}
    assert recs[("ask", "When?")]["answer"] == "answer to When?" and recs[("ask", "When?")]["strategy"] == "full"
    assert recs[("summarize", None)]["citations"][0]["evidence"]["quote"] == "Report number"
    assert recs[("summarize", None)]["usage"]["prompt_tokens"] == 11  # the answer's usage
    assert recs[("write", None)]["answer"].startswith("# Note") and recs[("write", None)]["extra"]["target"] == 80


def test_ask_with_many_questions_plans_one_unit_per_question(tmp_path):
    from agentlong.batch.plan import plan_units

    make_docs(tmp_path / "docs", 2)
    spec = parse_spec(spec_dict(tmp_path, tasks=[{"type": "ask", "questions": ["Who?", "When?"]},
                                                 {"type": "summarize", "words": 10}]), "job.json", tmp_path)
    units = plan_units(spec, sorted((tmp_path / "docs").glob("*.txt")))
    assert [(u.task, u.question) for u in units[:3]] == [("ask", "Who?"), ("ask", "When?"), ("summarize", None)]
    assert len({u.id for u in units}) == 6
    assert [u.id for u in plan_units(spec, sorted((tmp_path / "docs").glob("*.txt")))] == [u.id for u in units]


# -- durability ------------------------------------------------------------------------


def _state(tmp_path: Path, n: int = 3) -> tuple[JobState, Path]:
    out = tmp_path / "r.jsonl"
    st = JobState(state_paths(out)[0])
    st.add_units([{"id": f"u{i}", "document": f"d{i}", "path": f"/d{i}", "task": "t"} for i in range(n)])
    return st, out


def _rec(uid: str) -> dict:
    return {"id": uid, "status": "ok", "answer": uid, "attempts": 1, "usage": {"calls": 1}}


def test_reconcile_restores_a_committed_unit_missing_from_the_file(tmp_path):
    st, out = _state(tmp_path)
    st.finish([_rec("u0"), _rec("u1")])
    rf = ResultsFile(out)
    rf.append([json.dumps(_rec("u0"))])  # killed before u1's line was appended
    report = rf.reconcile(st)
    assert report.appended == 1 and [r["id"] for r in lines(out)] == ["u0", "u1"]


def test_reconcile_cuts_a_torn_line_and_rewrites_duplicates(tmp_path):
    st, out = _state(tmp_path)
    st.finish([_rec("u0"), _rec("u1")])
    out.write_text(json.dumps(_rec("u0")) + "\n" + json.dumps(_rec("u0")) + "\n" + '{"id": "u1", "sta')
    rf = ResultsFile(out)
    report = rf.reconcile(st)
    assert report.truncated_bytes > 0 and report.rewritten
    assert sorted(r["id"] for r in lines(out)) == ["u0", "u1"]
    rf.append([json.dumps(_rec("u2"))])  # the reopened file still appends
    assert len(lines(out)) == 3


def test_reconcile_adopts_lines_when_the_state_was_lost(tmp_path):
    st, out = _state(tmp_path)
    out.write_text(json.dumps(_rec("u0")) + "\n")
    report = ResultsFile(out).reconcile(st)
    assert report.adopted == 1 and st.pending_ids() == ["u1", "u2"] and len(lines(out)) == 1


def test_disk_full_stops_cleanly_and_the_job_resumes_exactly_once(tmp_path, monkeypatch):
    make_docs(tmp_path / "docs", 6)
    spec = parse_spec(spec_dict(tmp_path, concurrency=1), "job.json", tmp_path)
    real_write = ResultsFile._write
    calls = {"n": 0}

    def full_disk(self, data):
        calls["n"] += 1
        if calls["n"] == 3:
            real_write(self, data[: len(data) // 2])  # half a line lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(ResultsFile, "_write", full_disk)
    app, _ = extract_app()
    with pytest.raises(InputError) as info:
        run(spec, app=app)
    assert "the disk is full" in info.value.one_line() and "\n" not in info.value.one_line()
    assert "run the same command again" in info.value.one_line()
    text = spec.output_path().read_text()
    assert text.endswith("\n") and len(lines(spec.output_path())) == 2  # no torn line left behind
    monkeypatch.setattr(ResultsFile, "_write", real_write)
    summary = run(spec, app=app)
    ids = [r["id"] for r in lines(spec.output_path())]
    assert summary.ok == 6 and len(ids) == 6 and len(set(ids)) == 6


def test_second_run_of_the_same_job_is_refused(tmp_path):
    make_docs(tmp_path / "docs", 1)
    spec = parse_spec(spec_dict(tmp_path), "job.json", tmp_path)
    spec.output_path().parent.mkdir(parents=True)
    with ProcessLock(state_paths(spec.output_path())[1], "held"):
        with pytest.raises(InputError, match=rf"already running \(pid {os.getpid()}\)"):
            run(spec, app=extract_app()[0])
    assert run(spec, app=extract_app()[0]).ok == 1  # the lock is released afterwards


def test_unwritable_output_and_no_inputs_fail_before_any_call(tmp_path):
    make_docs(tmp_path / "docs", 1)
    (tmp_path / "file").write_text("x")
    app, fb = extract_app()
    with pytest.raises(InputError, match="not writable"):
        run(parse_spec(spec_dict(tmp_path, output="file/results.jsonl"), "job.json", tmp_path), app=app)
    with pytest.raises(InputError, match="no input files matched"):
        run(parse_spec(spec_dict(tmp_path, inputs=["nothing/*.md"]), "job.json", tmp_path), app=app)
    assert fb.calls == []


def test_unreachable_server_stops_the_job_with_one_error_and_keeps_units_pending(tmp_path):
    import socket

    from agentlong.errors import BackendUnavailable

    make_docs(tmp_path / "docs", 3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens there once closed
    data = spec_dict(tmp_path, model=f"openai:m@{url}", retries=1, backoff_s=0, concurrency=1,
                     settings={"openai": {"max_retries": 0, "api_key": "sk-test", "context_window": 4096, "timeout_s": 5}})
    spec = parse_spec(data, "job.json", tmp_path)
    with pytest.raises(BackendUnavailable) as info:
        run(spec)
    assert "127.0.0.1" in info.value.one_line()
    assert spec.output_path().read_text() == ""  # no record: nothing failed because of the documents
    st = status(spec)
    assert (st["pending"], st["failed"], st["ok"]) == (3, 0, 0)


def test_changed_spec_is_refused_until_restart(tmp_path):
    make_docs(tmp_path / "docs", 2)
    app, _ = extract_app()
    run(parse_spec(spec_dict(tmp_path), "job.json", tmp_path), app=app)
    changed = spec_dict(tmp_path, tasks=[{"type": "extract", "schema": SCHEMA, "instructions": "new"}])
    with pytest.raises(ConfigError, match="changed since"):
        run(parse_spec(changed, "job.json", tmp_path), app=app)
    summary = run(parse_spec(changed, "job.json", tmp_path), app=app, restart=True)
    assert summary.ran == 2 and (tmp_path / "out" / "results.jsonl.prev").exists()


def test_folder_inputs_skip_binary_and_hidden_files(tmp_path):
    make_docs(tmp_path / "docs", 2)
    (tmp_path / "docs" / "blob.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "docs" / ".hidden.txt").write_text("secret")
    (tmp_path / "docs" / "node_modules").mkdir()
    (tmp_path / "docs" / "node_modules" / "x.txt").write_text("vendored")
    spec = parse_spec(spec_dict(tmp_path, inputs=["docs"]), "job.json", tmp_path)
    notes = []
    summary = run(spec, app=extract_app()[0], on_event=notes.append)
    assert summary.total == 2
    assert any("blob.txt (binary)" in getattr(n, "message", "") for n in notes)


# -- CLI -------------------------------------------------------------------------------


def test_cli_run_status_and_exit_codes(tmp_path, capsys):
    make_docs(tmp_path / "docs", 3)
    spec_path = write_spec(tmp_path, spec_dict(tmp_path))
    assert main(["-q", "batch", "run", str(spec_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] == 3 and out["failed"] == 0
    assert main(["batch", "status", str(spec_path), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["ok"], st["pending"], st["running_pid"]) == (3, 0, None)
    assert main(["batch", "status", str(spec_path)]) == 0
    assert "finished — 3/3 done" in capsys.readouterr().out
    # a document that always fails → exit 1 and a table with the failure
    (tmp_path / "docs" / "doc09.txt").write_text("Report number 9, nobody.\n")
    spec2 = write_spec(tmp_path, spec_dict(tmp_path, fake={"mode": "keyed", "responses": {"nobody": {"x": 1}},
                                                          "default": {"author": "Author Number0"}},
                                           output="out2.jsonl"), "job2.json")
    assert main(["-q", "batch", "run", str(spec2)]) == 1
    captured = capsys.readouterr()
    assert "total" in captured.out and "failed docs/doc09.txt" in captured.err


def test_cli_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("inputs: [a.txt]\ntasks:\n  - type: ask\n    questoin: Who?\n")
    assert main(["batch", "run", str(spec_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "job.yaml: tasks[0].questoin: unknown key" in err and "Traceback" not in err


# -- a flaky OpenAI-compatible server ----------------------------------------------------


class FlakyHandler(BaseHTTPRequestHandler):
    """Answers chat completions; every 3rd request gets a 500 and every 4th a 429."""

    counter = 0
    lock = threading.Lock()
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        if not self.path.endswith("/chat/completions"):
            return self.do_GET()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with FlakyHandler.lock:
            FlakyHandler.counter += 1
            n = FlakyHandler.counter
        if n % 3 == 0 or n % 4 == 0:
            code = 500 if n % 3 == 0 else 429
            payload = json.dumps({"error": {"message": "try again", "type": "server_error"}}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        prompt = body["messages"][-1]["content"]
        who = "Author Number" + prompt.split("Report number ")[1].split(".")[0]
        content = json.dumps({"author": who})
        payload = json.dumps({
            "id": f"c{n}", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_job_completes_through_500s_and_429s_via_retries(tmp_path):
    make_docs(tmp_path / "docs", 8)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        data = spec_dict(tmp_path, model=f"openai:flaky@{url}", concurrency=4, retries=6, backoff_s=0.01,
                         settings={"openai": {"max_retries": 0, "api_key": "sk-test", "context_window": 4096}})
        summary = run(parse_spec(data, "job.json", tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    records = lines(tmp_path / "out" / "results.jsonl")
    assert summary.ok == 8 and summary.failed == 0 and len(records) == 8
    assert any(r["attempts"] > 1 for r in records)  # some documents needed a retry
    for r in records:
        assert r["answer"] == {"author": "Author Number" + str(int(r["document"][8:10]))}
    assert FlakyHandler.counter > 8


def test_a_document_decoded_by_a_guess_is_named_in_a_warning(tmp_path):
    make_docs(tmp_path / "docs", 1)
    (tmp_path / "docs" / "doc01.txt").write_bytes("Report by Author Number1. ".encode()
                                                  + "Çiçek dağı güzel ve ılık. ".encode("cp1254") * 30)
    spec = parse_spec(spec_dict(tmp_path), "job.json", tmp_path)
    notes = []
    assert run(spec, app=extract_app()[0], on_event=notes.append).ok == 2
    warned = [n.message for n in notes if getattr(n, "level", "") == "warning"]
    assert len(warned) == 1 and re.search(r"doc01\.txt: not UTF-8: decoded as \S+", warned[0])


def test_a_servers_retry_after_sets_the_wait_before_a_job_level_retry(tmp_path):
    from agentlong.batch.plan import plan_units
    from agentlong.batch.tasks import execute_unit

    make_docs(tmp_path / "docs", 1)
    spec = parse_spec(spec_dict(tmp_path, retries=2, backoff_s=0.01), "job.json", tmp_path)
    (unit,) = plan_units(spec, sorted((tmp_path / "docs").glob("*.txt")))
    replies = iter([RateLimited("429 from the server", retry_after=7.0), {"author": "Author Number0"}])
    app, _ = extract_app({"Report number": lambda messages: next(replies)})
    waits: list[float] = []
    rec = execute_unit(app, spec, unit, sleep=waits.append)
    assert rec["status"] == "ok" and rec["attempts"] == 2
    assert waits == [7.0]  # not the 0.01 s backoff
