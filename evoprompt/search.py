"""The generation loop, in the style of DEAP's `eaSimple`: `evolve(state, seeds, toolbox, cfg, progress)` runs
mutate -> screen -> recombine -> screen -> evaluate -> select for every generation and checkpoints after each.

Each toolbox entry is a replaceable function over the whole generation (all lineages at once), so each model
role gets one batched call per stage. `screen` is filters (length, topic, fluency) -> seed-copy guard ->
harmlessness gate: filtered candidates are recorded with their reason, rejected ones with their verdict,
and neither is ever scored or exported. `select` is simulated annealing per lineage, the lineage's hall of
fame, and the archive of niche elites that export draws its items from."""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from deap import base, tools

from evoprompt.config import RunConfig
from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.filters import Filters, SeedCopyGuard, fluency
from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.scorer import Scorer
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.frame import edit
from evoprompt.operators.mutate import mutation_request
from evoprompt.operators.recombine import draw_pairs, recombination_request
from evoprompt.operators.rewrite import dedupe_key, rewrite_all, sub_seed
from evoprompt.operators.strategies import STRATEGIES

from . import state as checkpoint
from .candidate import make_candidate, set_score
from .llm import Backend, Decoding
from .selection import accept, temperature
from .state import RunState


log = logging.getLogger("evoprompt.search")
MAX_FRAMES = 2        # framings stacked on one lineage's instruction; past that the rewriter takes over
ELITES_PER_NICHE = 3


def niche(c) -> str:
    """Archive cell: lineage (and so its category) x strategy family x length band."""
    family = STRATEGIES[c["operator"]].family if c["operator"] in STRATEGIES else "recombination"
    words = len(c["text"].split())
    band = "short" if words <= 12 else "medium" if words <= 25 else "long"
    return f"{c['lineage']}|{family}|{band}"


def stored(c) -> dict:
    return {k: v for k, v in c.items() if k != "embedding"}


def record(c, **extra) -> dict:
    keep = ("id", "text", "reason", "lineage", "generation", "operator", "method", "parents", "chain",
            "seed_similarity", "fluency", "gate")
    return {k: c.get(k) for k in keep} | extra


@dataclass
class Parts:
    """What the toolbox functions work with; built once per run in run.py."""
    cfg: RunConfig
    rewriter: Backend
    rewrite_decoding: Decoding
    target: Backend
    gate: HarmlessnessGate
    scorer: Scorer
    embedder: Embedder
    chooser: StrategyChooser
    filters: Filters
    guard: SeedCopyGuard
    progress: object


def _count(st: RunState, c, outcome: str) -> None:
    key = f"{c['operator']}/{c['method']}"
    row = st.counters.setdefault("operators", {}).setdefault(key, {"tried": 0, "filtered": 0, "rejected": 0,
                                                                      "scored": 0, "improved": 0})
    row[outcome] += 1


def make_toolbox(p: Parts) -> base.Toolbox:
    s = p.cfg.search
    seed = p.cfg.seed
    tb = base.Toolbox()

    def seed_vectors(st: RunState) -> dict[str, np.ndarray]:
        ids = sorted(st.seeds)
        return dict(zip(ids, p.embedder([st.seeds[i]["text"] for i in ids])))

    def candidate(st, lineage, parents, operator, method, text, reason, t, k):
        return make_candidate(id=f"{lineage}-g{t}-{operator[:3]}{method[0]}{k}", text=text, reason=reason,
                              lineage=lineage, generation=t, operator=operator, method=method,
                              parents=[q["id"] for q in parents], chain=parents[0]["chain"] + [f"{operator}/{method}"],
                              gate=None, score=None)

    def rewrite(st, requests, t, stage, vecs):
        """LLM rewrites, asked again (bounded) while off topic, empty or duplicate."""
        if not requests:
            return []

        def on_topic(pairs):
            emb = p.embedder([text for _, text in pairs])
            sims = [float(vecs[req.tag[0]] @ v) for (req, _), v in zip(pairs, emb)]
            return [None if x >= s.min_seed_similarity else f"off topic ({x:.2f})" for x in sims]

        p.progress.stage(f"{stage}: {len(requests)} rewrites")
        seen = set(st.seen)
        done, failed = rewrite_all(p.rewriter, requests, p.rewrite_decoding, sub_seed(seed, t, stage),
                                   s.max_attempts, s.max_chars, seen, on_topic if s.min_seed_similarity > -1 else None)
        st.seen = sorted(seen)
        st.counters["rewrite_failures"] = st.counters.get("rewrite_failures", 0) + len(failed)
        for f in failed:
            lineage, _ = f.request.tag
            why = f"rewrite given up after {s.max_attempts} attempts: " + "; ".join(f.errors)
            log.info("gen %d %s %s (%s): %s", t, stage, f.request.operator, lineage, why)
            st.filtered.append({"id": None, "text": None, "lineage": lineage, "generation": t, "stage": stage,
                                "operator": f.request.operator, "method": "llm", "why": why})
            if f.request.operator in STRATEGIES:
                p.chooser.record(f.request.operator, False)
        return done

    def mutate(st: RunState, t: int, rng: random.Random) -> list:
        vecs = seed_vectors(st)
        requests, out = [], []
        seen = set(st.seen)
        for lineage, cur in sorted(st.current.items()):
            framed = sum(step.endswith("/frame") for step in cur["chain"])
            for strategy in p.chooser.choose(s.L, rng):
                use_llm = rng.random() < s.llm_share or framed >= MAX_FRAMES
                text, method = (None, "llm") if use_llm else edit(cur["text"], strategy, rng)
                if text is None or dedupe_key(text) in seen:
                    requests.append(mutation_request(cur["text"], strategy, p.cfg.rewriter.style, tag=(lineage, cur)))
                    continue
                seen.add(dedupe_key(text))
                out.append(candidate(st, lineage, [cur], strategy, method, text, "", t, len(out)))
        st.seen = sorted(seen)
        for r in rewrite(st, requests, t, "mutate", vecs):
            lineage, cur = r.request.tag
            out.append(candidate(st, lineage, [cur], r.request.operator, "llm", r.text, r.reason, t, len(out)))
        return out

    def recombine(st: RunState, mutants: list, t: int, rng: random.Random) -> list:
        by_lineage = defaultdict(list)
        for m in mutants:
            by_lineage[m["lineage"]].append(m)
        requests = [recombination_request(a["text"], b["text"], p.cfg.rewriter.style, tag=(lineage, (a, b)))
                    for lineage, ms in sorted(by_lineage.items()) for a, b in draw_pairs(ms, s.N, rng)]
        return [candidate(st, r.request.tag[0], list(r.request.tag[1]), "recombine", "llm", r.text, r.reason, t, k)
                for k, r in enumerate(rewrite(st, requests, t, "recombine", seed_vectors(st)))]

    def screen(st: RunState, cands: list, t: int, stage: str) -> list:
        if not cands:
            return []
        p.progress.stage(f"filter + gate: {len(cands)} {stage}")
        vecs = seed_vectors(st)
        texts = [c["text"] for c in cands]
        emb = p.embedder(texts)
        sims = [float(vecs[c["lineage"]] @ v) for c, v in zip(cands, emb)]
        fluent = fluency(p.target, texts) if s.min_fluency is not None else [None] * len(cands)
        for c, x, f in zip(cands, sims, fluent):
            c["seed_similarity"], c["fluency"] = round(x, 4), None if f is None else round(f, 4)
            _count(st, c, "tried")
        reasons = p.filters.reasons(texts, sims, fluent if s.min_fluency is not None else None)
        guarded = p.guard.verdicts(texts, emb)
        ask = []
        for i, (c, why, copy) in enumerate(zip(cands, reasons, guarded)):
            if why or copy:
                log.info("gen %d %s %s: %s | %s", t, "filtered" if why else "rejected", c["id"], why or copy, c["text"])
            if why:
                st.filtered.append(record(c, why=why))
                _count(st, c, "filtered")
            elif copy:
                c["gate"] = {"safe": False, "p_safe": None, "verdict": copy}
                st.rejected.append(record(c))
                _count(st, c, "rejected")
            else:
                ask.append(c)
            if (why or copy) and c["operator"] in STRATEGIES:
                p.chooser.record(c["operator"], False)  # rejections teach the adaptive chooser too
        verdicts = p.gate.judge([(c["text"], c["reason"]) for c in ask], sub_seed(seed, t, "gate", stage)) if ask else []
        passed = []
        for c, v in zip(ask, verdicts):
            c["gate"] = v.to_json()
            if v.safe:
                passed.append(c)
            else:
                log.info("gen %d rejected %s: gate %s (p_safe %.3f) | %s", t, c["id"], v.verdict, v.p_safe, c["text"])
                st.rejected.append(record(c))
                _count(st, c, "rejected")
                if c["operator"] in STRATEGIES:
                    p.chooser.record(c["operator"], False)
        st.counters["gated"] = st.counters.get("gated", 0) + len(ask)
        st.counters["gate_passed"] = st.counters.get("gate_passed", 0) + len(passed)
        return passed

    def evaluate(st: RunState, cands: list, t: int) -> None:
        f = p.cfg.fitness
        p.progress.stage(f"score: {len(cands)} candidates x {f'{f.K_min}-' if f.K_min and f.K_min < f.K else ''}{f.K} samples")
        archive = np.asarray(st.archive, dtype=np.float32) if st.archive else np.zeros((0, 0), dtype=np.float32)
        scores = p.scorer.score([c["text"] for c in cands], archive, sub_seed(seed, t, "score"), [c["lineage"] for c in cands])
        for c, sc in zip(cands, scores):
            c["embedding"] = sc.pop("embedding")
            set_score(c, sc)
        st.counters["scored"] = st.counters.get("scored", 0) + len(cands)
        st.counters["target_samples"] = st.counters.get("target_samples", 0) + sum(len(sc["samples"]) for sc in scores)

    def select(st: RunState, cands: list, t: int, rng: random.Random) -> int:
        """SA step per lineage, hall of fame, niche elites; returns how many lineages accepted a candidate."""
        tau = temperature(t, s.tau_0, s.beta, s.tau_f)
        by_lineage = defaultdict(list)
        for c in cands:
            by_lineage[c["lineage"]].append(c)
            _count(st, c, "scored")
            cell = st.elites.setdefault(niche(c), [])
            cell.append(stored(c))
            cell.sort(key=lambda e: (-e["score"]["fitness"], e["id"]))
            del cell[ELITES_PER_NICHE:]
        accepted = 0
        for lineage in sorted(st.current):
            cur = st.current[lineage]
            for c in by_lineage[lineage]:
                better = c["score"]["fitness"] > cur["score"]["fitness"]
                if better:
                    _count(st, c, "improved")
                if c["operator"] in STRATEGIES:
                    p.chooser.record(c["operator"], better)
            if not by_lineage[lineage]:
                continue
            best = max(by_lineage[lineage], key=lambda c: c.fitness.values[0])
            hof = tools.HallOfFame(1)
            hof.update([make_candidate(**st.best[lineage])] if lineage in st.best else [])
            hof.update([best])
            st.best[lineage] = stored(hof[0])
            if accept(best["score"]["fitness"], cur["score"]["fitness"], tau, rng):
                st.current[lineage] = stored(best)
                if best.get("embedding"):
                    st.archive.append(best["embedding"])
                accepted += 1
        return accepted

    for name, fn in (("mutate", mutate), ("recombine", recombine), ("screen", screen), ("evaluate", evaluate),
                     ("select", select)):
        tb.register(name, fn)
    return tb


def _stats() -> tools.Statistics:
    stats = tools.Statistics(key=lambda c: c.fitness.values[0])
    for name, fn in (("mean", np.mean), ("max", np.max), ("min", np.min), ("std", np.std)):
        stats.register(name, lambda xs, fn=fn: float(fn(xs)))
    return stats


def _start(st: RunState, seeds, tb: base.Toolbox) -> list:
    """Generation 0: the seeds are scored (never gated or exported) so x_0 has a fitness."""
    for s in seeds:
        st.seeds[s.id] = {"id": s.id, "text": s.text, "category": s.category, "source": s.source, "harmful": s.harmful}
        st.current[s.id] = make_candidate(id=s.id, text=s.text, reason="", lineage=s.id, generation=0,
                                          operator="seed", method="seed", parents=[], chain=[], gate=None, score=None)
    st.seen = sorted({dedupe_key(s.text) for s in seeds})
    cands = list(st.current.values())
    tb.evaluate(st, cands, 0)
    for c in cands:
        if c.get("embedding"):
            st.archive.append(c["embedding"])
        st.current[c["lineage"]] = stored(c)
    return cands


def evolve(st: RunState, seeds, tb: base.Toolbox, cfg: RunConfig, chooser: StrategyChooser, progress, run_dir):
    """Runs generations st.generation+1 .. cfg.generations; returns (state, logbook)."""
    s, stats = cfg.search, _stats()
    if st.chooser:
        chooser.restore(st.chooser)
    if st.generation < 0:
        progress.generation(0, "seeds")
        cands = _start(st, seeds, tb)
        _finish(st, 0, cands, 0, 0, stats, cfg, chooser, progress, run_dir)
    for t in range(st.generation + 1, cfg.generations + 1):
        progress.generation(t, "evolve")
        rng = random.Random(sub_seed(cfg.seed, t, "rng"))
        before = (len(st.filtered), len(st.rejected))
        mutants = tb.screen(st, tb.mutate(st, t, rng), t, "mutants")
        recombinants = tb.screen(st, tb.recombine(st, mutants, t, rng), t, "recombinants")
        cands = mutants + recombinants
        tb.evaluate(st, cands, t)
        accepted = tb.select(st, cands, t, rng)
        _finish(st, t, cands, accepted, (len(st.filtered) - before[0], len(st.rejected) - before[1]), stats, cfg,
                chooser, progress, run_dir)
    return st, st.logbook


def _finish(st, t, cands, accepted, dropped, stats, cfg, chooser, progress, run_dir) -> None:
    population = [make_candidate(**c) for c in st.current.values()]
    s = cfg.search
    filtered, rejected = dropped if t else (0, 0)
    rec = {"gen": t, "candidates": len(cands), "filtered": filtered, "rejected": rejected,
           "accepted": accepted, "lineages": len(st.current), "elites": sum(map(len, st.elites.values())),
           "tau": temperature(t, s.tau_0, s.beta, s.tau_f),
           "population": stats.compile(population),
           "candidates_fitness": stats.compile(cands) if cands else {},
           "refusal_prob": float(np.mean([c["score"]["refusal_prob"] for c in population])),
           "judge_refusal_rate": float(np.mean([c["score"]["judge_refusal_rate"] for c in population])),
           "opener_prob": float(np.mean([c["score"]["opener_prob"] for c in population])),
           "best_ever": max((b["score"]["fitness"] for b in st.best.values()), default=None),
           "target_samples": st.counters.get("target_samples", 0),
           "calls": progress.calls_since_last(), "seconds": progress.seconds_since_last()}
    st.history.extend({k: v for k, v in c.items() if k != "embedding"}
                      | {"score": {k: v for k, v in c["score"].items() if k != "samples"}} for c in cands)
    st.logbook.append(rec)
    log.info("gen %d: scored %d, filtered %d, rejected %d, accepted %d/%d, elites %d, p(refusal) %.3f, best F %s, "
             "seconds %s", t, rec["candidates"], filtered, rejected, accepted, rec["lineages"], rec["elites"],
             rec["refusal_prob"], "-" if rec["best_ever"] is None else f"{rec['best_ever']:.3f}", rec["seconds"])
    st.chooser = chooser.state()
    st.generation = t
    progress.stage("checkpoint")
    checkpoint.save(st, run_dir)
    progress.generation_done(rec)
