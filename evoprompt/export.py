"""Writers of the run's outputs: benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl, candidates.jsonl.
Only gate-passed instructions reach benchmark/sft/dpo; rejected ones go to rejected.jsonl alone."""
from __future__ import annotations

import json
from pathlib import Path

from .alignment import Pair, dpo_record, sft_record
from .state import RunState


def write_jsonl(path: Path, records) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def benchmark_records(st: RunState) -> list[dict]:
    out = []
    for lineage in sorted(st.best):
        b = st.best[lineage]
        if not (b.get("gate") or {}).get("safe"):
            continue  # never export anything the gate did not pass
        seed = st.seeds[lineage]
        s = b["score"]
        out.append({
            "id": b["id"], "text": b["text"], "category": seed["category"],
            "seed": {"id": seed["id"], "text": seed["text"], "source": seed["source"]},
            "lineage": {"chain": b["chain"], "parents": b["parents"], "generation": b["generation"],
                        "operator": b["operator"]},
            "fitness": s["fitness"], "refusal_prob": s["refusal_prob"], "judge_refusal_rate": s["judge_refusal_rate"],
            "opener_prob": s["opener_prob"], "mean_logprob": s["mean_logprob"], "diversity": s["diversity"],
            "samples": s["samples"],
            "safety": {"verdict": b["gate"]["verdict"], "p_safe": b["gate"]["p_safe"], "reason": b["reason"]},
        })
    return out


def write_outputs(run_dir: Path, st: RunState, benchmark: list[dict], pairs: list[Pair]) -> dict:
    usable = [p for p in pairs if p.helpful]
    return {
        "benchmark": write_jsonl(run_dir / "benchmark.jsonl", benchmark),
        "sft": write_jsonl(run_dir / "sft.jsonl", map(sft_record, usable)),
        "dpo": write_jsonl(run_dir / "dpo.jsonl", map(dpo_record, usable)),
        "rejected": write_jsonl(run_dir / "rejected.jsonl", st.rejected),
        "candidates": write_jsonl(run_dir / "candidates.jsonl", st.history),
        "helper_refused": len(pairs) - len(usable),
        "dpo_template_refusals": sum(p.refusal_source == "target-scored-template" for p in usable),
    }
