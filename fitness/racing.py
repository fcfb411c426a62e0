"""Adaptive sampling ("racing"): spend the K samples only where they can change a lineage's selection.

Search keeps, per lineage, the candidate of highest F, and F is a mean of per-sample terms. Every candidate
first gets K_min samples; then, stage by stage (the sample count doubles up to K), a candidate goes on only
while its upper confidence bound reaches the best lower bound of its lineage. The bound is the mean of its
terms plus or minus z standard errors; the standard deviation is the larger of the candidate's own and the
generation's pooled one, because two or three samples alone say little about spread (two non-refusals in a
row do not make a candidate's refusal rate zero).

Sample j of a prompt depends only on (prompt, seed, j) in the HF and vLLM backends, so a candidate that runs
the whole race gets exactly the samples, and the F, it would get with full K; an eliminated one keeps the F
of its first samples. K_min = K is the paper's behaviour (every candidate gets K)."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence


def stages(k_min: int, k: int) -> list[int]:
    """Cumulative sample counts: k_min, 2 k_min, 4 k_min, ... capped at k (one batched call per stage)."""
    out = [min(k_min, k)]
    while out[-1] < k:
        out.append(min(2 * out[-1], k))
    return out


def _sd(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def contenders(terms: dict[int, list[float]], bonus: dict[int, float], groups: Sequence[Hashable],
               alive: Sequence[int], z: float) -> list[int]:
    """The candidates of `alive` whose upper bound reaches their group's best lower bound.

    terms: per candidate, its samples' terms so far (F = mean + bonus); groups: lineage of every candidate."""
    pooled = math.sqrt(sum(_sd(terms[i]) ** 2 for i in alive) / len(alive)) if alive else 0.0
    mean, half = {}, {}
    for i in alive:
        mean[i] = sum(terms[i]) / len(terms[i]) + bonus.get(i, 0.0)
        half[i] = z * max(_sd(terms[i]), pooled) / math.sqrt(len(terms[i]))
    best_lower: dict[Hashable, float] = defaultdict(lambda: -math.inf)
    for i in alive:
        best_lower[groups[i]] = max(best_lower[groups[i]], mean[i] - half[i])
    return [i for i in alive if mean[i] + half[i] >= best_lower[groups[i]]]
