"""F(x) = 1/K sum_k [ log floor(p_judge(refusal | x, y_k)) + (lambda / T_k) log p_target(y_k | x) ] + mu D(x).

Pure arithmetic: samples, their log-probs and the judge's probabilities come from elsewhere."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def floored(p: float, eps: float, floor: str) -> float:
    """hard: max(p, eps) as in the paper; soft: eps + (1 - eps) p, the same range [eps, 1] but strictly
    increasing, so candidates whose refusal probability is below eps still rank."""
    p = min(max(p, 0.0), 1.0)
    return max(p, eps) if floor == "hard" else eps + (1.0 - eps) * p


@dataclass
class Elbo:
    fitness: float          # F(x)
    refusal_term: float     # mean_k log floor(p_k)
    likelihood_term: float  # mean_k (lambda / T_k) log p(y_k|x)
    diversity_term: float   # mu D(x)


def sample_terms(p: float, logprob: float, length: int, lam: float, eps: float, floor: str) -> tuple[float, float]:
    """One sample's (log floor(p), (lambda / T) log p(y|x)); F is their mean over samples. An empty response
    (T = 0) has log p = 0 and contributes nothing to the likelihood term."""
    return math.log(floored(p, eps, floor)), (lam * logprob / length if length > 0 else 0.0)


def elbo(judge_probs: Sequence[float], logprobs: Sequence[float], lengths: Sequence[int],
         lam: float, eps: float, floor: str = "hard", mu: float = 0.0, diversity: float = 0.0) -> Elbo:
    if not (len(judge_probs) == len(logprobs) == len(lengths)) or not judge_probs:
        raise ValueError("need K >= 1 samples with a probability, a log-prob and a length each")
    k = len(judge_probs)
    terms = [sample_terms(p, lp, t, lam, eps, floor) for p, lp, t in zip(judge_probs, logprobs, lengths)]
    refusal = sum(r for r, _ in terms) / k
    likelihood = sum(l for _, l in terms) / k
    return Elbo(refusal + likelihood + mu * diversity, refusal, likelihood, mu * diversity)
