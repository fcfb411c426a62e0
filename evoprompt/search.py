"""The generation loop on a DEAP toolbox: mutate -> gate -> recombine -> gate -> score -> accept (SA) ->
hall of fame. Each stage takes every lineage's candidates at once, so each role gets one batched call."""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from deap import base, tools

from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.scorer import Scorer
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.mutate import mutation_request
from evoprompt.operators.recombine import draw_pairs, recombination_request
from evoprompt.operators.rewrite import Rewrite, dedupe_key, rewrite_all, sub_seed
from evoprompt.operators.topic import SeedTopic

from . import state as checkpoint
from .candidate import make_candidate, set_score
from .llm import Backend, Decoding
from .selection import accept, temperature
from .state import RunState


@dataclass
class SearchConfig:
    seed: int
    generations: int
    L: int
    N: int
    tau_0: float
    beta: float
    tau_f: float
    max_attempts: int
    max_chars: int


class Evolution:
    def __init__(self, cfg: SearchConfig, rewriter: Backend, rewrite_decoding: Decoding, gate: HarmlessnessGate,
                 scorer: Scorer, chooser: StrategyChooser, run_dir: Path, progress, topic: SeedTopic | None = None):
        self.cfg, self.rewriter, self.rewrite_decoding = cfg, rewriter, rewrite_decoding
        self.topic = topic
        self.gate, self.scorer, self.chooser = gate, scorer, chooser
        self.run_dir, self.progress = run_dir, progress
        self.toolbox = base.Toolbox()
        self.toolbox.register("mutate", self.mutate)
        self.toolbox.register("recombine", self.recombine)
        self.toolbox.register("gate", self.screen)
        self.toolbox.register("evaluate", self.evaluate)
        self.toolbox.register("select", self.anneal)
        self.stats = tools.Statistics(key=lambda c: c.fitness.values[0])
        for name, fn in (("mean", np.mean), ("max", np.max), ("min", np.min), ("std", np.std)):
            self.stats.register(name, lambda xs, fn=fn: float(fn(xs)))

    # ---- stages -------------------------------------------------------------------------------
    def mutate(self, st: RunState, t: int, rng: random.Random) -> list:
        requests = []
        for lineage, cur in st.current.items():
            for s in self.chooser.choose(self.cfg.L, rng):
                requests.append(mutation_request(cur["text"], s, tag=(lineage, [cur["id"]])))
        return self._rewrite(st, requests, t, "mutate")

    def recombine(self, st: RunState, mutants: list, t: int, rng: random.Random) -> list:
        by_lineage = defaultdict(list)
        for m in mutants:
            by_lineage[m["lineage"]].append(m)
        requests = [recombination_request(a["text"], b["text"], tag=(lineage, [a["id"], b["id"]]))
                    for lineage, ms in sorted(by_lineage.items()) for a, b in draw_pairs(ms, self.cfg.N, rng)]
        return self._rewrite(st, requests, t, "recombine")

    def _rewrite(self, st: RunState, requests, t: int, stage: str) -> list:
        self.progress.stage(f"{stage}: {len(requests)} rewrites")
        seen = set(st.seen)
        check = None
        if self.topic:
            def check(pairs):
                return self.topic([(st.seeds[req.tag[0]]["text"], text) for req, text in pairs])
        done, failed = rewrite_all(self.rewriter, requests, self.rewrite_decoding, sub_seed(self.cfg.seed, t, stage),
                                   self.cfg.max_attempts, self.cfg.max_chars, seen, check)
        st.seen = sorted(seen)
        st.counters["rewrite_failures"] = st.counters.get("rewrite_failures", 0) + len(failed)
        return [self._candidate(st, r, t, k) for k, r in enumerate(done)]

    def _candidate(self, st: RunState, r: Rewrite, t: int, k: int):
        lineage, parent_ids = r.request.tag
        chain = st.current[lineage]["chain"] + [r.request.operator]
        return make_candidate(id=f"{lineage}-g{t}-{r.request.operator[:3]}{k}", text=r.text, reason=r.reason,
                              lineage=lineage, generation=t, operator=r.request.operator, parents=parent_ids,
                              chain=chain, gate=None, score=None)

    def screen(self, st: RunState, cands: list, t: int, stage: str) -> list:
        self.progress.stage(f"gate: {len(cands)} {stage}")
        verdicts = self.gate.judge([(c["text"], c["reason"]) for c in cands], sub_seed(self.cfg.seed, t, "gate", stage))
        passed = []
        for c, v in zip(cands, verdicts):
            c["gate"] = v.to_json()
            if v.safe:
                passed.append(c)
            else:
                st.rejected.append({k: c[k] for k in ("id", "text", "reason", "lineage", "generation", "operator",
                                                      "parents", "chain", "gate")})
        st.counters["gated"] = st.counters.get("gated", 0) + len(cands)
        st.counters["gate_passed"] = st.counters.get("gate_passed", 0) + len(passed)
        return passed

    def evaluate(self, st: RunState, cands: list, t: int) -> None:
        self.progress.stage(f"score: {len(cands)} candidates x K samples")
        archive = np.asarray(st.archive, dtype=np.float32) if st.archive else np.zeros((0, 0), dtype=np.float32)
        for c, s in zip(cands, self.scorer.score([c["text"] for c in cands], archive, sub_seed(self.cfg.seed, t, "score"))):
            c["embedding"] = s.pop("embedding")
            set_score(c, s)
        st.counters["scored"] = st.counters.get("scored", 0) + len(cands)

    def anneal(self, st: RunState, cands: list, t: int, rng: random.Random) -> int:
        """SA step per lineage; returns how many lineages accepted their best candidate."""
        tau = temperature(t, self.cfg.tau_0, self.cfg.beta, self.cfg.tau_f)
        by_lineage = defaultdict(list)
        for c in cands:
            by_lineage[c["lineage"]].append(c)
        accepted = 0
        for lineage in sorted(st.current):
            cur = st.current[lineage]
            for c in by_lineage[lineage]:
                if c["operator"] != "recombine":
                    self.chooser.record(c["operator"], c["score"]["fitness"] > cur["score"]["fitness"])
            if not by_lineage[lineage]:
                continue
            best = max(by_lineage[lineage], key=lambda c: c.fitness.values[0])
            hof = tools.HallOfFame(1)
            hof.update([make_candidate(**st.best[lineage])] if lineage in st.best else [])
            hof.update([best])
            st.best[lineage] = _stored(hof[0])
            if accept(best["score"]["fitness"], cur["score"]["fitness"], tau, rng):
                st.current[lineage] = _stored(best)
                if best.get("embedding"):
                    st.archive.append(best["embedding"])
                accepted += 1
        return accepted

    # ---- loop ---------------------------------------------------------------------------------
    def start(self, st: RunState, seeds) -> None:
        """Generation 0: the seeds are scored (never gated or exported) so x_0 has a fitness."""
        for s in seeds:
            st.seeds[s.id] = {"id": s.id, "text": s.text, "category": s.category, "source": s.source}
            st.current[s.id] = make_candidate(id=s.id, text=s.text, reason="", lineage=s.id, generation=0,
                                              operator="seed", parents=[], chain=[], gate=None, score=None)
        st.seen = sorted({dedupe_key(s.text) for s in seeds})
        cands = list(st.current.values())
        self.evaluate(st, cands, 0)
        for c in cands:
            if c.get("embedding"):
                st.archive.append(c["embedding"])
            st.current[c["lineage"]] = _stored(c)
        self._finish_generation(st, 0, cands, cands, accepted=0, gated=0)

    def run(self, st: RunState, seeds) -> RunState:
        if st.generation < 0:
            self.progress.generation(0, "seeds")
            self.start(st, seeds)
        if st.chooser:
            self.chooser.restore(st.chooser)
        for t in range(st.generation + 1, self.cfg.generations + 1):
            self.progress.generation(t, "evolve")
            rng = random.Random(sub_seed(self.cfg.seed, t, "rng"))
            gated_before = st.counters.get("gated", 0)
            mutants = self.toolbox.gate(st, self.toolbox.mutate(st, t, rng), t, "mutants")
            recombinants = self.toolbox.gate(st, self.toolbox.recombine(st, mutants, t, rng), t, "recombinants")
            cands = mutants + recombinants
            self.toolbox.evaluate(st, cands, t)
            accepted = self.toolbox.select(st, cands, t, rng)
            self._finish_generation(st, t, cands, list(st.current.values()), accepted,
                                    st.counters["gated"] - gated_before)
        return st

    def _finish_generation(self, st: RunState, t: int, cands: list, population: list, accepted: int, gated: int):
        population = [make_candidate(**c) for c in population]
        record = {"gen": t, "candidates": len(cands), "gated": gated, "gate_passed": len(cands) if t else 0,
                  "accepted": accepted, "lineages": len(st.current),
                  "tau": temperature(t, self.cfg.tau_0, self.cfg.beta, self.cfg.tau_f),
                  "population": self.stats.compile(population),
                  "candidates_fitness": self.stats.compile(cands) if cands else {},
                  "refusal_prob": float(np.mean([c["score"]["refusal_prob"] for c in population])),
                  "judge_refusal_rate": float(np.mean([c["score"]["judge_refusal_rate"] for c in population])),
                  "opener_prob": float(np.mean([c["score"]["opener_prob"] for c in population])),
                  "best_ever": max((b["score"]["fitness"] for b in st.best.values()), default=None),
                  "calls": self.progress.calls_since_last()}
        st.history.extend({k: v for k, v in c.items() if k != "embedding"} | {"score": _brief(c["score"])} for c in cands)
        st.logbook.append(record)
        st.chooser = self.chooser.state()
        st.generation = t
        checkpoint.save(st, self.run_dir)
        self.progress.generation_done(record)


def _stored(c) -> dict:
    return {k: v for k, v in c.items() if k != "embedding"}


def _brief(score: dict) -> dict:
    return {k: v for k, v in score.items() if k != "samples"}
