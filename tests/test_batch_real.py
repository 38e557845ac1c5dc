"""A batch job over 20 tiny documents on the default GGUF model (llama.cpp), plus a summarize task
through the router: real tokens, real schema-constrained JSON, one record per document."""

from __future__ import annotations

import json

from agentlong import Agentlong
from agentlong.batch import parse_spec, run

PEOPLE = ["Greta Lindqvist", "Omar Haddad", "Mei Chen", "Lukas Brandt", "Sofia Rossi", "Kwame Mensah",
          "Ana Souza", "Ivan Petrov", "Hana Sato", "Liam Walsh", "Nora Berg", "Ravi Kumar", "Elena Garcia",
          "Jonas Weber", "Zara Ali", "Pedro Alves", "Yuki Mori", "Clara Dubois", "Tariq Aziz", "Emma Smith"]
SCHEMA = {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]}


def test_extract_job_over_20_documents_on_the_default_model(tmp_path, llama_backend):
    docs = tmp_path / "invoices"
    docs.mkdir()
    for i, name in enumerate(PEOPLE):
        (docs / f"inv{i:02d}.txt").write_text(f"Invoice {i + 1}. Customer: {name}. Amount due: {40 + i} euros.\n")
    spec = parse_spec({"inputs": ["invoices/*.txt"], "output": "out.jsonl", "concurrency": 2, "retries": 1,
                       "backoff_s": 0, "tasks": [{"type": "extract", "schema": SCHEMA, "max_tokens": 24,
                                                  "instructions": "customer = the customer's full name"}]},
                      "job.json", tmp_path)
    app = Agentlong(backend=llama_backend, model="llama:qwen2.5-coder-0.5b")
    summary = run(spec, app=app)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) == 20 and len({r["document"] for r in records}) == 20
    assert summary.ok == 20 and summary.failed == 0
    right = sum(r["answer"]["customer"].strip() == PEOPLE[int(r["document"][-6:-4])] for r in records)
    assert right >= 18, [r["answer"] for r in records]
    assert all(r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0 for r in records)
    cited = [r for r in records if r["citations"]]
    assert len(cited) >= 18 and all(c["citations"][0]["evidence"]["quote"] in open(c["path"]).read() for c in cited)
    assert summary.job_usage.calls >= 20


def test_summarize_task_through_the_router_on_the_default_model(tmp_path, llama_backend):
    (tmp_path / "a.txt").write_text("The river flooded the village in April. Volunteers rebuilt the bridge in two weeks.\n")
    (tmp_path / "b.txt").write_text("The bakery on Main Street won a prize for its rye bread and hired three bakers.\n")
    spec = parse_spec({"inputs": ["*.txt"], "output": "sum.jsonl", "strategy": "full",
                       "tasks": [{"type": "summarize", "words": 10}]}, "job.json", tmp_path)
    summary = run(spec, app=Agentlong(backend=llama_backend, model="llama:qwen2.5-coder-0.5b"))
    records = [json.loads(line) for line in (tmp_path / "sum.jsonl").read_text().splitlines()]
    assert summary.ok == 2, [r["error"] for r in records]
    for r in records:
        assert r["strategy"] and 2 <= len(r["answer"].split()) <= 40 and r["usage"]["calls"] >= 1
