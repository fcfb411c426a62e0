"""The golden run: a small real run whose items, pairs and per-generation table are pinned in
tests/data/golden_run.json (captured before the records/roles/schema refactor, format version 2).

`python tests/golden.py OUT_DIR` runs it and rewrites the file; test_golden.py runs it and compares."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_run.json"
SEEDS = ("h003", "h008", "h034", "h042")
# target, judges, diversity weight and items per lineage pinned: the golden run stays what it was captured as,
# whatever the defaults become
ARGS = ["target=embedded", "generations=3", "seeds.limit=4", "fitness.K=6", "search.L=3", "search.N=1",
        "target.decoding.max_new_tokens=24", "rewriter.decoding.max_new_tokens=64",
        "helper.decoding.max_new_tokens=40", "gate.threshold=0.92", "export.min_refusal=0.1",
        "fitness.judge=classifier", "export.pair_judge=classifier", "fitness.mu=0.0",
        "export.per_lineage=5", "search.repeat_ngram=null",
        "search.strategy_weights.trigger=0", "search.saturation=null", "search.min_request_kept=null",
        "search.llm_share=0.5"]
TABLE_KEYS = ("gen", "candidates", "filtered", "rejected", "accepted", "lineages", "elites", "tau", "refusal_prob",
              "judge_refusal_rate", "opener_prob", "best_ever", "target_samples")


def _r(x):
    return None if x is None else round(float(x), 4)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def run(out: Path) -> subprocess.CompletedProcess:
    """The golden configuration, float32, with its own empty call cache, into out/run."""
    out.mkdir(parents=True, exist_ok=True)
    seeds = out / "seeds.jsonl"
    seeds.write_text("".join(l for l in open(ROOT / "seeds" / "harmless.jsonl", encoding="utf-8")
                             if json.loads(l)["id"] in SEEDS), encoding="utf-8")
    env = {**os.environ, "EVOPROMPT_CPU_BF16": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "evoprompt", "run", *ARGS, f"seeds.path={seeds}",
                           f"cache.path={out / 'cache.sqlite'}", f"hydra.run.dir={out / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800, env=env)


def summary(run_dir: Path) -> dict:
    """What the contract pins: items, pairs and the per-generation table (numbers to 4 places)."""
    items = [{"id": b["id"], "text": b["text"], "lineage": b["seed"]["id"],
              "fitness": _r(b["fitness"] if "fitness" in b else b["score"]["fitness"]),
              "refusal_prob": _r(b["refusal_prob"] if "refusal_prob" in b else b["score"]["refusal_prob"]),
              "samples": [s["text"] for s in (b["samples"] if "samples" in b else b["score"]["samples"])]}
             for b in _jsonl(run_dir / "benchmark.jsonl")]
    sft = [[m["content"] for m in r["messages"]] for r in _jsonl(run_dir / "sft.jsonl")]
    dpo = [[r["prompt"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"]]
           for r in _jsonl(run_dir / "dpo.jsonl")]
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text(encoding="utf-8"))
    table = [{k: (_r(g[k]) if isinstance(g[k], float) else g[k]) for k in TABLE_KEYS}
             | {"mean_F": _r(g["population"]["mean"]), "max_F": _r(g["population"]["max"])}
             for g in checkpoint["logbook"]]
    return {"items": items, "sft": sft, "dpo": dpo, "table": table}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    r = run(out)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    GOLDEN.write_text(json.dumps(summary(out / "run"), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
