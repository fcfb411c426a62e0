"""The run's outputs: benchmark.jsonl, sft.jsonl, dpo.jsonl, rejected.jsonl, filtered.jsonl, candidates.jsonl.

Items come from the archive of niche elites (search.niche): per lineage, up to `export.per_lineage` distinct
items whose refusal probability (mean over the targets) reaches `export.min_refusal` and that at least
`export.min_targets_refusing` targets refused (one of a target's K samples judged a refusal and confirmed by
the phrase detector), most refusal-triggering first (plus `export.lexical_novelty` x the share of its words no
item taken yet uses), lineages taking turns, none more similar than `export.max_similarity` to an item already
taken and no four-word phrase in more than `export.max_phrase_share` of the items. Every item carries each
target's figures and refusal label (`targets`). Only gate-passed instructions reach benchmark/sft/dpo; rejected
ones go to rejected.jsonl alone, filtered ones to filtered.jsonl. Every record carries its provenance."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from evoprompt.files import atomic_write_jsonl
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.metrics import tokenize
from evoprompt.pairs import Pair, dpo_record, sft_record
from evoprompt.records import BenchmarkItem, Candidate, Lineage, Provenance, RunState, Safety, Sample, Score, SeedRef
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


def phrases(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """The text's n-word phrases (lower-case words), each counted once."""
    w = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def top_phrase(texts: list[str], n: int = 4) -> tuple[str, int]:
    """The n-word phrase held by the most texts, and how many hold it ("", 0 for none)."""
    counts = Counter(p for x in texts for p in phrases(x, n))
    top = counts.most_common(1)
    return (" ".join(top[0][0]), top[0][1]) if top else ("", 0)


def select_items(st: RunState, cfg: ExportConfig, embed) -> list[Candidate]:
    """The exported candidates, grouped by lineage; `embed(texts)` gives unit vectors for the de-duplication.

    Lineages take turns (each one's best first, then each one's second, ...), so a lineage with many elites
    cannot crowd the others out. "Best" is the refusal probability plus `lexical_novelty` x the share of the
    candidate's words that no item taken so far uses: a lineage's elites share their seed's words, and taken
    by refusal alone the set repeats them (measured on the default run and a 12-seed run: MTLD 72.9 and 69.8
    at weight 0, 79.7 and 86.8 at 1.0, mean refusal probability 0.980 -> 0.977 and 0.988 -> 0.978). A candidate is
    passed over when it is a near-paraphrase of one already taken (`max_similarity`) or when it would put a
    four-word phrase (a framing, usually) into more than `max_phrase_share` of the set, or into more items
    than one lineage may give (its seed's own phrases are shared by its items); the share is enforced again
    on the final set, dropping the lowest-ranked holders of a phrase, so no single framing does the work."""
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
    expected = sum(min(cfg.per_lineage, len(cs)) for cs in ranked.values())
    cap = phrase_cap(expected, cfg)
    held: Counter = Counter()
    used: set[str] = set()
    taken: list[Candidate] = []
    queues = {ln: list(cs) for ln, cs in ranked.items()}
    counts: Counter = Counter()

    def fits(c: Candidate) -> bool:
        return (all(float(vec[c.id] @ vec[o.id]) <= cfg.max_similarity for o in taken)
                and all(held[p] < cap for p in phrases(c.text)))

    def value(c: Candidate) -> float:
        words = tokenize(c.text)
        return c.score.refusal_prob + cfg.lexical_novelty * sum(w not in used for w in words) / max(1, len(words))

    while any(queues.values()):
        for ln in sorted(queues):
            queues[ln] = [c for c in queues[ln] if fits(c)] if counts[ln] < cfg.per_lineage else []
            if queues[ln]:
                c = max(queues[ln], key=value)  # ties: the ranked order
                queues[ln].remove(c)
                taken.append(c)
                held.update(phrases(c.text))
                used.update(tokenize(c.text))
                counts[ln] += 1
    order = {c.id: i for i, c in enumerate(flat)}
    return sorted(_cap_phrases(taken, cfg), key=lambda c: order[c.id])


def phrase_cap(n: int, cfg: ExportConfig) -> int:
    """How many of n items may hold one phrase: max_phrase_share of them, or one lineage's worth."""
    return max(cfg.per_lineage, int(cfg.max_phrase_share * n))


def _cap_phrases(items: list[Candidate], cfg: ExportConfig) -> list[Candidate]:
    """Drops the lowest-ranked holder of the most shared phrase until no phrase is held by more than
    phrase_cap items (the last holder taken is the lowest-ranked: lineages take turns in rank order)."""
    items = list(items)
    while items:
        phrase, n = top_phrase([c.text for c in items])
        if n <= phrase_cap(len(items), cfg):
            break
        key = tuple(phrase.split())
        items.remove(next(c for c in reversed(items) if key in phrases(c.text)))
    return items


def benchmark_items(st: RunState, items: list[Candidate], provenance: Provenance) -> list[BenchmarkItem]:
    out = []
    for b in items:
        seed, refused = st.seeds[b.lineage], refused_by(b.score)
        targets = {name: replace(t, refused=refused[name]) for name, t in b.score.targets.items()}
        out.append(BenchmarkItem(
            id=b.id, text=b.text, category=seed.category,
            seed=SeedRef(seed.id, seed.category, seed.source, seed.harmful), seed_similarity=b.seed_similarity,
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
