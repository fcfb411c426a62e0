"""End-to-end runs on the real embedded models (SmolLM2-135M, MiniLM), real DEAP loop, real files."""
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, SMALL_RUN, evoprompt

from evoprompt.records import FORMAT_VERSION

pytestmark = pytest.mark.slow
GATED = ["gate.threshold=0.92", "export.min_refusal=0.1"]
# h003 (photo "shoot") and h008 ("destroy my opponent in a debate"): the packaged seeds whose rewrites the 135M target
# refuses most; with h001/h002 a 1-generation run exported nothing (refusal probabilities 0.01..0.14). K=6 because
# an item needs one classifier- and phrase-confirmed refusing sample (measured: K=4 gives 0 items, K=6 gives 1).
FIXTURE_SEEDS = ("h003", "h008")
SMALL_GATED = [*SMALL_RUN, "fitness.K=6", *GATED]
OUTPUTS = ("benchmark.jsonl", "sft.jsonl", "dpo.jsonl", "rejected.jsonl", "report.md", "report.html", "fitness.png")


def read_jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """1 generation, 2 seeds, with a gate threshold strict enough that the real judge rejects some (its p(safe) on
    rewrites of harmless seeds runs 0.82..0.96, median 0.92) and an export bar a 1-generation run can reach."""
    d = tmp_path_factory.mktemp("run")
    cache = d / "cache.sqlite"
    seeds = d / "seeds.jsonl"
    seeds.write_text("".join(l for l in open(ROOT / "seeds" / "harmless.jsonl", encoding="utf-8")
                             if json.loads(l)["id"] in FIXTURE_SEEDS), encoding="utf-8")
    r = evoprompt("run", "generations=1", *SMALL_GATED, f"seeds.path={seeds}", f"cache.path={cache}",
                  f"hydra.run.dir={d / 'out'}")
    assert r.returncode == 0, r.stderr[-3000:]
    return d / "out", cache


def test_every_output_written(small_run):
    out, _ = small_run
    for name in OUTPUTS:
        assert (out / name).exists(), name
    assert (out / "fitness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for section in ("## Per generation", "## Strategy success", "## Resolved configuration", "acceptance", "gate pass",
                    "## Model usage"):
        assert section.lower() in report.lower(), section
    assert "Model usage" in (out / "report.html").read_text()
    usage = json.loads((out / "run.json").read_text())["info"]["usage"]
    assert set(usage) == {"target", "rewriter", "gate", "helper"}
    t = usage["target"]
    assert t["model"].startswith("embedded-guarded@")  # the default target, named with its adapter's digest
    assert t["precision"] == "float32"  # the tests pin float32 (conftest)
    assert t["model_calls"] >= 1 and t["prompts"] + t["cache_hits"] >= 2
    # the target samples K=6 per candidate and scores log-probs (fluency filter, export's refusal templates)
    assert t["samples"] >= 6 and t["samples"] % 6 == 0 and t["generated_tokens"] >= t["samples"] and t["scored_tokens"] > 0
    bench = read_jsonl(out / "benchmark.jsonl")
    assert bench, "no survivor"
    for b in bench:
        score = b["score"]
        assert b["safety"]["verdict"] == "safe" and b["lineage"]["chain"] and len(score["samples"]) == 6
        assert {"text", "seed", "score", "provenance"} <= b.keys() and {"fitness", "refusal_prob"} <= score.keys()
        assert b["seed"]["id"] and "text" not in b["seed"] and b["seed_similarity"] >= 0.35 and score["refusal_prob"] >= 0.1
        assert any(s["refusal"] >= 0.5 for s in score["samples"])
        prov = b["provenance"]
        assert prov["target_model"] == t["model"] and prov["rewriter_model"] == "embedded"
        assert len(prov["config_hash"]) == 16
        assert prov["evoprompt_version"] and prov["format_version"] == FORMAT_VERSION == 3
    for f in read_jsonl(out / "filtered.jsonl"):
        assert f["why"] and f["text"] not in {b["text"] for b in bench}


def test_gate_keeps_unsafe_out_of_every_export(small_run):
    out, _ = small_run
    rejected = read_jsonl(out / "rejected.jsonl")
    assert rejected, "threshold chosen so that the real judge rejects some candidates"
    assert all(r["gate"]["safe"] is False and r["gate"]["verdict"] for r in rejected)
    bad = {r["text"] for r in rejected}
    exported = [b["text"] for b in read_jsonl(out / "benchmark.jsonl")]
    exported += [s["messages"][0]["content"] for s in read_jsonl(out / "sft.jsonl")]
    exported += [d["prompt"][0]["content"] for d in read_jsonl(out / "dpo.jsonl")]
    assert not bad & set(exported)
    state = json.loads((out / "checkpoint.json").read_text())
    assert all(c["text"] not in bad for c in state["current"].values() if c["generation"] > 0)


def test_sft_and_dpo_are_trl_conversational(small_run):
    out, _ = small_run
    bench = {b["text"] for b in read_jsonl(out / "benchmark.jsonl")}
    for r in read_jsonl(out / "sft.jsonl"):
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["messages"][0]["content"] in bench and r["messages"][1]["content"].strip()
    for r in read_jsonl(out / "dpo.jsonl"):
        assert {"prompt", "chosen", "rejected", "provenance"} <= set(r)
        assert r["prompt"][-1]["role"] == "user" and r["prompt"][-1]["content"] in bench
        assert r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
        assert r["chosen"][0]["content"] != r["rejected"][0]["content"]


def test_identical_rerun_is_served_from_cache(small_run, tmp_path):
    out, cache = small_run
    r = evoprompt("run", "generations=1", *SMALL_GATED, f"seeds.path={out.parent / 'seeds.jsonl'}",
                  f"cache.path={cache}", f"hydra.run.dir={tmp_path / 'again'}")
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "again" / "run.json").read_text())["info"]
    assert sum(info["model_calls"].values()) == 0
    assert all(u["prompts"] == u["generated_tokens"] == 0 for u in info["usage"].values())
    assert info["usage"]["target"]["cache_hits"] > 0
    assert (tmp_path / "again" / "benchmark.jsonl").read_text() == (out / "benchmark.jsonl").read_text()


def test_kill_during_generation_2_then_resume_equals_uninterrupted(tmp_path):
    args = ["run", "generations=2", *SMALL_RUN, "seeds.limit=1", "seed=3"]
    ref = evoprompt(*args, f"cache.path={tmp_path / 'c1.sqlite'}", f"hydra.run.dir={tmp_path / 'ref'}")
    assert ref.returncode == 0, ref.stderr[-3000:]

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "evoprompt", *args, f"cache.path={tmp_path / 'c2.sqlite'}", f"hydra.run.dir={run_dir}"]
    # SIGKILL at generation 2's scoring (score 1: the seeds, 2: generation 1), after its mutants are made; a
    # kill timed from outside lands after the run's end on a fast machine
    killed = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900,
                            env={**os.environ, "EVOPROMPT_KILL_AT": "score:3"})
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((run_dir / "checkpoint.json").read_text())["generation"] == 1
    assert not (run_dir / "benchmark.jsonl").exists()

    resumed = evoprompt(*args, f"cache.path={tmp_path / 'c2.sqlite'}", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["info"]["resumed_after_generation"] == 1
    assert (run_dir / "benchmark.jsonl").read_text() == (tmp_path / "ref" / "benchmark.jsonl").read_text()
