"""The run's outputs: benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl, filtered.jsonl, candidates.jsonl.

Items come from the archive of niche elites (search.niche): per lineage, up to `export.per_lineage` distinct
items whose refusal probability (mean over the targets) reaches `export.min_refusal` and that at least
`export.min_targets_refusing` targets refused (one of a target's K samples judged a refusal and confirmed by
the phrase detector), most refusal-triggering first, none more similar than `export.max_similarity` to an
item already taken. Every item carries each target's figures and refusal label (`targets`). Only gate-passed
instructions reach benchmark/sft/dpo; rejected ones go to rejected.jsonl alone, filtered ones to
filtered.jsonl. Every record carries its provenance."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.files import atomic_write_jsonl
from evoprompt.pairs import Pair, dpo_record, sft_record
from evoprompt.records import BenchmarkItem, Candidate, Lineage, Provenance, RunState, Safety, Sample, Score
from evoprompt.schema import ExportConfig

_PHRASES = AnchoredPhraseJudge()


def refusing_sample(score: Score, target: str | None = None) -> Sample | None:
    """The sample (of `target`, or of any target) that most clearly refuses: judged a refusal by the fitness
    judge (p >= 0.5) and confirmed by the anchored phrase detector, so a judge's false positive on odd text
    alone never makes an item."""
    hits = [x for x in score.samples if x.refusal >= 0.5 and _PHRASES.refuses(x.text)
            and (target is None or x.target == target)]
    return max(hits, key=lambda x: x.refusal, default=None)


def refused_by(score: Score) -> dict[str | None, bool]:
    """Per target: did one of its samples refuse (refusing_sample's rule)?"""
    return {n: refusing_sample(score, n) is not None for n in (list(score.targets) or [None])}


def _eligible(c: Candidate, cfg: ExportConfig) -> bool:
    return (c.gate is not None and c.gate.safe and c.score is not None and c.score.refusal_prob >= cfg.min_refusal
            and sum(refused_by(c.score).values()) >= cfg.min_targets_refusing)


def select_items(st: RunState, cfg: ExportConfig, embed) -> list[Candidate]:
    """The exported candidates, by lineage; `embed(texts)` gives unit vectors for the de-duplication."""
    pool: dict[str, dict[str, Candidate]] = {}
    for c in [e for cell in st.elites.values() for e in cell] + list(st.best.values()):
        if c.generation > 0 and _eligible(c, cfg):  # never a seed; never anything the gate did not pass
            pool.setdefault(c.lineage, {})[c.id] = c
    ranked = {ln: sorted(cs.values(), key=lambda c: (-c.score.refusal_prob, -c.fitness, c.id))
              for ln, cs in pool.items()}
    flat = [c for ln in sorted(ranked) for c in ranked[ln]]
    if not flat:
        return []
    vec = dict(zip((c.id for c in flat), embed([c.text for c in flat])))
    taken: list[Candidate] = []
    for ln in sorted(ranked):
        n = 0
        for c in ranked[ln]:
            if n >= cfg.per_lineage:
                break
            if all(float(vec[c.id] @ vec[o.id]) <= cfg.max_similarity for o in taken):
                taken.append(c)
                n += 1
    return taken


def benchmark_items(st: RunState, items: list[Candidate], provenance: Provenance) -> list[BenchmarkItem]:
    out = []
    for b in items:
        seed, refused = st.seeds[b.lineage], refused_by(b.score)
        targets = {name: replace(t, refused=refused[name]) for name, t in b.score.targets.items()}
        out.append(BenchmarkItem(
            id=b.id, text=b.text, category=seed.category, seed=seed, seed_similarity=b.seed_similarity,
            fluency=b.fluency,
            lineage=Lineage(b.chain, b.parents, b.generation, b.operator, b.method),
            score=replace(b.score, targets=targets, embedding=None),
            targets_refusing=sum(refused.values()),
            safety=Safety(b.gate.verdict, b.gate.p_safe, b.reason), provenance=provenance))
    return out


def write_outputs(run_dir: Path, st: RunState, benchmark: list[BenchmarkItem], pairs: list[Pair],
                  provenance: Provenance) -> dict:
    usable, prov = [p for p in pairs if p.usable], provenance.to_json()
    return {
        "benchmark": atomic_write_jsonl(run_dir / "benchmark.jsonl", (b.to_json() for b in benchmark)),
        "sft": atomic_write_jsonl(run_dir / "sft.jsonl", (sft_record(p, prov) for p in usable)),
        "dpo": atomic_write_jsonl(run_dir / "dpo.jsonl", (dpo_record(p, prov) for p in usable)),
        "rejected": atomic_write_jsonl(run_dir / "rejected.jsonl", (r.to_json() for r in st.rejected)),
        "filtered": atomic_write_jsonl(run_dir / "filtered.jsonl", (r.to_json() for r in st.filtered)),
        "candidates": atomic_write_jsonl(run_dir / "candidates.jsonl", (c.to_json() for c in st.history)),
        "pairs_dropped": {why: sum(p.dropped == why for p in pairs) for why in sorted({p.dropped for p in pairs} - {None})},
        "dpo_template_refusals": sum(p.refusal_source == "target-scored-template" for p in usable),
    }
