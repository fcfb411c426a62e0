"""Scores a whole generation's candidates: one target call for all K samples of all candidates, one
for the refusal-opener prior, the refusal judge on every (x, y_k), then F(x) per candidate.

Two estimators (`fitness.estimator`):
- elbo: the paper's evidence lower bound, mean_k log floor(p_judge(r | x, y_k)) + likelihood + diversity.
- surrogate (default): the same with p_k replaced by max(p_k, q(x)), where q(x) is the target's own
  probability of opening its answer with a refusal phrase (refusal/openers.py). It is NOT a lower bound:
  max(p_k, q) >= p_k, so it sits above the ELBO. It is a smoothed surrogate that still ranks candidates when
  none of K samples from a model that rarely refuses (the embedded 135M target) is judged a refusal.

Several targets (`fitness.targets`): each is scored as above with one batched call per stage, and F(x) is
their `fitness.aggregate`: mean, min (an item must work on every target) or softmin, -t log mean exp(-F_i / t),
between the two. Racing runs per target. The per-target figures stay on the record (`targets`), and every
sample names its target."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evoprompt.fitness.diversity import Embedder, novelty
from evoprompt.fitness.elbo import elbo, sample_terms
from evoprompt.fitness.racing import contenders, stages
from evoprompt.fitness.refusal.base import RefusalJudge
from evoprompt.fitness.refusal.openers import opener_probability
from evoprompt.llm import Backend, Decoding
from evoprompt.records import Sample, Score, TargetScore
from evoprompt.schema import FitnessConfig

PER_TARGET = ("fitness", "refusal_term", "likelihood_term", "refusal_prob", "judge_refusal_rate", "opener_prob",
              "mean_logprob")


@dataclass
class Target:
    name: str
    backend: Backend
    decoding: Decoding
    system_prompt: str | None = None

    def chat(self, text: str) -> list[dict]:
        sys = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return sys + [{"role": "user", "content": text}]


def aggregate(values: Sequence[float], how: str, temperature: float = 0.5) -> float:
    if how == "min":
        return float(min(values))
    if how == "softmin":
        lo = min(values)  # shifted for numerical stability
        return float(lo - temperature * math.log(sum(math.exp(-(v - lo) / temperature) for v in values) / len(values)))
    return float(np.mean(values))


class Scorer:
    def __init__(self, targets: Sequence[Target], judge: RefusalJudge, cfg: FitnessConfig, embedder: Embedder | None):
        if not targets:
            raise ValueError("a scorer needs at least one target")
        self.targets, self.judge, self.cfg, self.embedder = list(targets), judge, cfg, embedder

    def chat(self, text: str) -> list[dict]:
        """The first target's chat: the one export's refusal templates are scored on."""
        return self.targets[0].chat(text)

    def score(self, texts: list[str], archive: np.ndarray, seed: int, groups: list | None = None) -> list[Score]:
        """Score per text, with the text's embedding (`Score.embedding`, never written); archive holds unit embeddings of instructions already kept. groups (the
        lineage of each text) turns on racing when fitness.K_min < K (racing.py); without it every text gets K."""
        if not texts:
            return []
        embeddings = self.embedder(texts) if self.embedder else np.zeros((len(texts), 0))
        novel = novelty(embeddings, archive) if self.embedder else np.zeros(len(texts))
        per = {t.name: self._score_target(t, texts, novel, seed, groups) for t in self.targets}
        out = []
        for i in range(len(texts)):
            rows = {name: recs[i] for name, recs in per.items()}
            mean = {k: float(np.mean([getattr(r, k) for r, _ in rows.values()])) for k in PER_TARGET}
            mean["fitness"] = aggregate([r.fitness for r, _ in rows.values()], self.cfg.aggregate,
                                        self.cfg.softmin_temperature)
            out.append(Score(**mean, diversity=float(novel[i]),
                             samples=[Sample(**s.to_json() | {"target": name}) for name, (_, ss) in rows.items()
                                      for s in ss],
                             targets={name: r for name, (r, _) in rows.items()},
                             embedding=embeddings[i].tolist() if len(embeddings[i]) else None))
        return out

    def _score_target(self, target: Target, texts: list[str], novel: np.ndarray, seed: int,
                      groups: list | None) -> list[tuple[TargetScore, list[Sample]]]:
        cfg = self.cfg
        chats = [target.chat(t) for t in texts]
        prior = (opener_probability(target.backend, chats, cfg.openers) if cfg.estimator == "surrogate"
                 else [0.0] * len(texts))
        k_min = cfg.K_min if cfg.K_min and groups is not None else cfg.K
        samples: list[list] = [[] for _ in texts]
        judged: list[list[float]] = [[] for _ in texts]
        terms: dict[int, list[float]] = {i: [] for i in range(len(texts))}
        alive, done = list(range(len(texts))), 0
        for upto in stages(k_min, cfg.K):
            new = target.backend.generate([chats[i] for i in alive], upto - done, target.decoding, seed, first=done)
            flat_p = self.judge.prob([texts[i] for i, ss in zip(alive, new) for _ in ss], [s.text for ss in new for s in ss])
            flat_p = [1.0 if s.filtered else p for s, p in zip((s for ss in new for s in ss), flat_p)]  # a filter stop refuses
            pos = 0
            for i, ss in zip(alive, new):
                for s in ss:
                    samples[i].append(s)
                    judged[i].append(flat_p[pos])
                    pos += 1
                    terms[i].append(sum(sample_terms(max(flat_p[pos - 1], prior[i]), s.logprob, s.n_tokens, cfg.lam,
                                                     cfg.eps, cfg.floor)))
            done = upto
            if upto < cfg.K:
                alive = contenders(terms, {i: cfg.mu * float(novel[i]) for i in alive}, groups, alive, cfg.race_z)
        out = []
        for i, ss in enumerate(samples):
            p = [max(j, prior[i]) for j in judged[i]]  # a refusing sample, or the prior if larger
            e = elbo(p, [s.logprob for s in ss], [s.n_tokens for s in ss], cfg.lam, cfg.eps, cfg.floor,
                     cfg.mu, float(novel[i]))
            out.append((TargetScore(e.fitness, e.refusal_term, e.likelihood_term, float(np.mean(p)),
                                    float(np.mean(judged[i])), prior[i], float(np.mean([s.logprob for s in ss]))),
                        [Sample(s.text, round(s.logprob, 3), s.n_tokens, round(j, 4)) for s, j in zip(ss, judged[i])]))
        return out
