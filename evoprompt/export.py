"""The run's outputs: benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl, filtered.jsonl, candidates.jsonl.

Items come from the archive of niche elites (search.niche): per lineage, up to `export.per_lineage` distinct
items whose refusal probability (mean over the targets) reaches `export.min_refusal` and that at least
`export.min_targets_refusing` targets refused (one of a target's K samples judged a refusal and confirmed by
the phrase detector), most refusal-triggering first, none more similar than `export.max_similarity` to an
item already taken. Every item carries each target's figures and refusal label (`targets`). Only gate-passed
instructions reach benchmark/sft/dpo; rejected ones go to rejected.jsonl alone, filtered ones to
filtered.jsonl. Every record carries its provenance."""
from __future__ import annotations

from pathlib import Path

from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge

from .alignment import Pair, dpo_record, sft_record
from .config import ExportConfig
from .io import atomic_write_jsonl
from .state import RunState

FORMAT_VERSION = 2
_PHRASES = AnchoredPhraseJudge()




def refusing_sample(c: dict, target: str | None = None) -> dict | None:
    """The sample (of `target`, or of any target) that most clearly refuses: judged a refusal by the fitness
    judge (p >= 0.5) and confirmed by the anchored phrase detector, so a judge's false positive on odd text
    alone never makes an item."""
    hits = [x for x in (c.get("score") or {}).get("samples", []) if x["refusal"] >= 0.5 and _PHRASES.refuses(x["text"])
            and (target is None or x.get("target") == target)]
    return max(hits, key=lambda x: x["refusal"], default=None)


def refused_by(c: dict) -> dict[str, bool]:
    """Per target: did one of its samples refuse (refusing_sample's rule)?"""
    names = list((c.get("score") or {}).get("targets") or {}) or [None]
    return {n: refusing_sample(c, n) is not None for n in names}


def _eligible(c: dict, cfg: ExportConfig) -> bool:
    s = c.get("score") or {}
    return (bool((c.get("gate") or {}).get("safe")) and s.get("refusal_prob", 0.0) >= cfg.min_refusal
            and sum(refused_by(c).values()) >= cfg.min_targets_refusing)


def select_items(st: RunState, cfg: ExportConfig, embed) -> list[dict]:
    """The exported candidates, by lineage; `embed(texts)` gives unit vectors for the de-duplication."""
    pool: dict[str, dict[str, dict]] = {}
    for c in [e for cell in st.elites.values() for e in cell] + list(st.best.values()):
        if c["generation"] > 0 and _eligible(c, cfg):  # never a seed; never anything the gate did not pass
            pool.setdefault(c["lineage"], {})[c["id"]] = c
    ranked = {ln: sorted(cs.values(), key=lambda c: (-c["score"]["refusal_prob"], -c["score"]["fitness"], c["id"]))
              for ln, cs in pool.items()}
    flat = [c for ln in sorted(ranked) for c in ranked[ln]]
    if not flat:
        return []
    vec = dict(zip((c["id"] for c in flat), embed([c["text"] for c in flat])))
    taken: list[dict] = []
    for ln in sorted(ranked):
        n = 0
        for c in ranked[ln]:
            if n >= cfg.per_lineage:
                break
            if all(float(vec[c["id"]] @ vec[o["id"]]) <= cfg.max_similarity for o in taken):
                taken.append(c)
                n += 1
    return taken


def benchmark_records(st: RunState, items: list[dict], provenance: dict) -> list[dict]:
    out = []
    for b in items:
        seed = st.seeds[b["lineage"]]
        s = b["score"]
        refused = refused_by(b)
        out.append({
            "id": b["id"], "text": b["text"], "category": seed["category"],
            "seed": {"id": seed["id"], "text": seed["text"], "source": seed["source"], "harmful": seed.get("harmful")},
            "seed_similarity": b.get("seed_similarity"), "fluency": b.get("fluency"),
            "lineage": {"chain": b["chain"], "parents": b["parents"], "generation": b["generation"],
                        "operator": b["operator"], "method": b.get("method")},
            "fitness": s["fitness"], "refusal_prob": s["refusal_prob"], "judge_refusal_rate": s["judge_refusal_rate"],
            "opener_prob": s["opener_prob"], "mean_logprob": s["mean_logprob"], "diversity": s["diversity"],
            "samples": s["samples"],
            "targets": {name: t | {"refused": refused[name]} for name, t in (s.get("targets") or {}).items()},
            "targets_refusing": sum(refused.values()),
            "safety": {"verdict": b["gate"]["verdict"], "p_safe": b["gate"]["p_safe"], "reason": b["reason"]},
            "provenance": provenance,
        })
    return out


def write_outputs(run_dir: Path, st: RunState, benchmark: list[dict], pairs: list[Pair], provenance: dict) -> dict:
    usable = [p for p in pairs if p.usable]
    return {
        "benchmark": atomic_write_jsonl(run_dir / "benchmark.jsonl", benchmark),
        "sft": atomic_write_jsonl(run_dir / "sft.jsonl", (sft_record(p, provenance) for p in usable)),
        "dpo": atomic_write_jsonl(run_dir / "dpo.jsonl", (dpo_record(p, provenance) for p in usable)),
        "rejected": atomic_write_jsonl(run_dir / "rejected.jsonl", st.rejected),
        "filtered": atomic_write_jsonl(run_dir / "filtered.jsonl", st.filtered),
        "candidates": atomic_write_jsonl(run_dir / "candidates.jsonl", st.history),
        "pairs_dropped": {why: sum(p.dropped == why for p in pairs) for why in sorted({p.dropped for p in pairs} - {None})},
        "dpo_template_refusals": sum(p.refusal_source == "target-scored-template" for p in usable),
    }
