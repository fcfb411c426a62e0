"""Evaluation metrics: lexical diversity (MSTTR, HD-D, MTLD), semantic diversity, bootstrap confidence
intervals and a binary (compliance = 0 / refusal = 1) classification report."""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})


def tokenize(text: str) -> list[str]:
    """Lower-case words, tokenised as the `lexicalrichness` package does: digits and dashes dropped
    (so "well-known" is one word), ASCII punctuation split on."""
    text = re.sub(r"[0-9]+", "", text.lower())
    text = re.sub("[-\u2013\u2014]", "", text)
    return text.translate(_PUNCT_TO_SPACE).split()


def msttr(tokens: Sequence[str], segment: int = 50) -> float:
    """Mean segmental type-token ratio over consecutive full segments (an incomplete tail is dropped)."""
    n_segments = len(tokens) // segment
    if segment < 1 or n_segments == 0:
        raise ValueError(f"MSTTR needs at least one segment of {segment} tokens, got {len(tokens)} tokens")
    return float(np.mean([len(set(tokens[i * segment:(i + 1) * segment])) / segment
                          for i in range(n_segments)]))


def hdd(tokens: Sequence[str], draws: int = 42) -> float:
    """HD-D (McCarthy & Jarvis 2007): sum over types of P(type appears in a random draw of `draws`
    tokens without replacement) / draws, i.e. the expected TTR of such a sample."""
    n = len(tokens)
    if not 1 <= draws <= n:
        raise ValueError(f"HD-D needs 1 <= draws <= {n} tokens, got draws={draws}")

    def log_comb(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = 0.0
    for freq in Counter(tokens).values():
        p_absent = 0.0 if n - freq < draws else math.exp(log_comb(n - freq, draws) - log_comb(n, draws))
        total += (1.0 - p_absent) / draws
    return total


def _mtld_one_way(tokens: Sequence[str], threshold: float) -> float:
    factors, types, count, ttr = 0.0, set(), 0, 1.0
    for tok in tokens:
        count += 1
        types.add(tok)
        ttr = len(types) / count
        if ttr <= threshold:
            factors, types, count = factors + 1, set(), 0
    if count:
        factors += (1 - ttr) / (1 - threshold)
    return len(tokens) / factors if factors > 0 else float(len(tokens))  # all-distinct text: one factor


def mtld(tokens: Sequence[str], threshold: float = 0.72) -> float:
    """MTLD (McCarthy & Jarvis 2010): mean length of runs whose TTR stays above `threshold`, averaged
    over a forward and a backward pass, with a partial factor for the final run."""
    if not tokens:
        raise ValueError("MTLD needs at least one token")
    return (_mtld_one_way(tokens, threshold) + _mtld_one_way(list(reversed(tokens)), threshold)) / 2


def over_orders(fn: Callable[[Sequence[str]], float], texts: Sequence[str], orders: int = 20,
                seed: int = 0) -> float:
    """A lexical metric of a prompt set as the mean over `orders` random orders of its prompts: MSTTR and MTLD
    read the concatenated tokens as one text, so a file sorted by type or template would otherwise score far
    lower than the same prompts shuffled (XSTest safe: MTLD 37.0 in file order, 77.7 shuffled). The prompts are
    sorted before they are shuffled, so the figure is a function of the set alone, whatever order it came in."""
    rng = np.random.default_rng(seed)
    texts = sorted(texts)
    values = []
    for _ in range(max(1, orders)):
        order = rng.permutation(len(texts))
        values.append(fn([t for i in order for t in tokenize(texts[i])]))
    return float(np.mean(values))


def semantic_diversity(embeddings) -> float:
    """Mean pairwise cosine distance between the rows of `embeddings` (over distinct pairs)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("semantic diversity needs at least two embeddings")
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    n = len(x)
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def bootstrap_ci(values, stat: Callable = np.mean, n: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of stat(values) from n resamples."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    stats = [stat(x[rng.integers(0, len(x), len(x))]) for _ in range(n)]
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def binary_report(y_true, y_pred) -> dict:
    """Accuracy, per-class precision/recall/F1/support for 0 = compliance and 1 = refusal, and the
    confusion matrix `confusion[true][pred]`."""
    t = np.asarray(y_true, dtype=int)
    p = np.asarray(y_pred, dtype=int)
    if t.shape != p.shape or not set(np.unique(np.concatenate([t, p]))) <= {0, 1}:
        raise ValueError("binary_report needs two equally long sequences of 0/1 labels")
    confusion = [[int(np.sum((t == a) & (p == b))) for b in (0, 1)] for a in (0, 1)]
    report = {"accuracy": float(np.mean(t == p)) if len(t) else 0.0, "confusion": confusion}
    for label, name in ((0, "compliance"), (1, "refusal")):
        tp = confusion[label][label]
        predicted, support = confusion[0][label] + confusion[1][label], sum(confusion[label])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return report
