"""Batch jobs on a real local Ray cluster (2 CPUs, no dashboard), fake model: same results and
resume behaviour as the local executor, and file shipping to workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentlong.batch import parse_spec, run

SCHEMA = {"type": "object", "properties": {"author": {"type": "string"}}}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


def make_job(tmp_path: Path, n: int, **extra) -> dict:
    (tmp_path / "docs").mkdir(exist_ok=True)
    for i in range(n):
        (tmp_path / "docs" / f"d{i}.txt").write_text(f"Paper {i}, written by Grace Hopper{i} in 1952.\n")
    data = {"inputs": ["docs/*.txt"], "model": "fake", "executor": "ray", "concurrency": 4, "output": "out.jsonl",
            "fake": {"mode": "keyed", "responses": {f"Paper {i},": {"author": f"Grace Hopper{i}"} for i in range(n)}},
            "tasks": [{"type": "extract", "schema": SCHEMA}]}
    data.update(extra)
    return data


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ray_job_matches_local_and_resumes(ray_cluster, tmp_path):
    data = make_job(tmp_path, 6)
    summary = run(parse_spec(data, "job.json", tmp_path))
    assert (summary.ok, summary.failed, summary.total) == (6, 0, 6)
    got = records(tmp_path / "out.jsonl")
    assert sorted(r["answer"]["author"] for r in got) == [f"Grace Hopper{i}" for i in range(6)]
    assert all(r["citations"] and r["model"] == "fake" for r in got)
    again = run(parse_spec(data, "job.json", tmp_path))
    assert again.ran == 0 and again.done_before == 6 and len(records(tmp_path / "out.jsonl")) == 6
    # the same spec on the local executor gives the same answers
    local = run(parse_spec({**data, "executor": "local", "output": "local.jsonl"}, "job.json", tmp_path))
    assert local.ok == 6
    by_doc = {r["document"]: r["answer"] for r in records(tmp_path / "local.jsonl")}
    assert by_doc == {r["document"]: r["answer"] for r in got}


def test_ray_ships_file_bytes_and_reports_driver_paths(ray_cluster, tmp_path):
    summary = run(parse_spec(make_job(tmp_path, 3, ray_ship_files=True, output="shipped.jsonl"), "job.json", tmp_path))
    assert summary.ok == 3
    assert all(r["path"].startswith(str(tmp_path)) for r in records(tmp_path / "shipped.jsonl"))


def test_worker_runs_a_file_it_only_has_as_bytes(tmp_path):
    """A cluster node without the driver's files: the worker materializes the shipped bytes."""
    from agentlong.batch.ray_executor import _Worker, portable_spec
    from agentlong.batch.plan import plan_units

    data = make_job(tmp_path, 1)
    spec = parse_spec(data, "job.json", tmp_path)
    unit = plan_units(spec, [tmp_path / "docs" / "d0.txt"])[0]
    blob = (tmp_path / "docs" / "d0.txt").read_bytes()
    (tmp_path / "docs" / "d0.txt").unlink()  # the driver's path does not exist on this "node"
    worker = _Worker(portable_spec(spec), str(tmp_path), "job.json")
    rec = worker.run(unit.to_dict(), blob)
    assert rec["status"] == "ok" and rec["answer"] == {"author": "Grace Hopper0"}
    assert rec["path"] == unit.path and rec["citations"][0]["evidence"]["source"] == unit.path


def test_ray_job_stops_on_an_unreachable_server_like_the_local_one(ray_cluster, tmp_path):
    import socket

    from agentlong.batch import status
    from agentlong.errors import BackendUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    data = make_job(tmp_path, 2, model=f"openai:m@{url}", retries=0, output="down.jsonl",
                    settings={"openai": {"max_retries": 0, "api_key": "sk-test", "context_window": 4096}})
    spec = parse_spec(data, "job.json", tmp_path)
    with pytest.raises(BackendUnavailable):
        run(spec)
    assert status(spec)["pending"] == 2 and (tmp_path / "down.jsonl").read_text() == ""


SECRET = "sk-live-do-not-leak-4f9a"


def test_an_api_key_in_the_spec_reaches_workers_only_through_their_environment(ray_cluster, tmp_path):
    """The key is in no shipped spec, no file the job wrote, and the workers' settings still hold it;
    rotating it does not block the resume."""
    import threading

    from agentlong.batch.ray_executor import RayExecutor, portable_spec

    data = make_job(tmp_path, 2, output="keyed.jsonl", settings={"openai": {"api_key": SECRET, "timeout_s": 30}})
    spec = parse_spec(data, "job.json", tmp_path)
    assert SECRET not in repr(spec) and SECRET not in json.dumps(portable_spec(spec))
    assert run(spec).ok == 2
    written = [p for root in (tmp_path, Path(__import__("os").environ["AGENTLONG_HOME"])) if root.exists()
               for p in root.rglob("*") if p.is_file()]
    assert written and not [p for p in written if SECRET.encode() in p.read_bytes()]
    workers = RayExecutor(spec, lambda e: None, threading.Event())._workers()
    keys = ray_cluster.get([w.__ray_call__.remote(lambda self: self.app.settings.openai.api_key.get_secret_value())
                            for w in workers])
    assert keys == [SECRET] * len(workers)
    for w in workers:
        ray_cluster.kill(w)
    rotated = parse_spec({**data, "settings": {"openai": {"api_key": "sk-rotated", "timeout_s": 30}}}, "job.json", tmp_path)
    again = run(rotated)
    assert again.ran == 0 and again.done_before == 2
