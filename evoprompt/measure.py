"""Responses of a target to prompt sets, judged and counted with the paper's metrics: what `eval` reports and
what `align` measures before and after training."""
from __future__ import annotations

from collections import Counter

import numpy as np

from evoprompt import metrics
from evoprompt.fitness.refusal import CLASS_NAMES, three_classes
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge, SubstringPhraseJudge
from evoprompt.llm import Decoding


def rate_row(values, n_boot: int, seed: int) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = metrics.bootstrap_ci(v, n=n_boot, seed=seed)
    return float(v.mean()), float(lo), float(hi)


def measure_target(backend, tname: str, sets: dict[str, list[str]], sp: str | None, dec: Decoding, judge, seed: int,
                   n_boot: int, add, console) -> list[dict]:
    """One response per prompt of every set in one batched call; adds the per-set rates through
    add(set, target, metric, value, lo, hi) and returns the judged responses."""
    anchored, substring = AnchoredPhraseJudge(), SubstringPhraseJudge()
    chats = [([{"role": "system", "content": sp}] if sp else []) + [{"role": "user", "content": x}]
             for texts in sets.values() for x in texts]
    console.print(f"[bold]{tname}[/]: {len(chats)} responses")
    samples = [s[0] for s in backend.generate(chats, 1, dec, seed)]
    pos, responses = 0, []
    for name, texts in sets.items():
        ys = [s.text for s in samples[pos:pos + len(texts)]]
        lps = [s.logprob for s in samples[pos:pos + len(texts)]]
        pos += len(texts)
        p_ref = judge.prob(texts, ys)
        classes = three_classes(judge, texts, ys, p_ref)
        prr = anchored.prob(texts, ys)
        add(name, tname, "PRR", *rate_row(prr, n_boot, seed))
        add(name, tname, "PRR-substring", *rate_row(substring.prob(texts, ys), n_boot, seed))
        add(name, tname, "CRR", *rate_row([p >= 0.5 for p in p_ref], n_boot, seed))
        counts = Counter(classes)
        for k, label in enumerate(CLASS_NAMES):
            add(name, tname, label, counts.get(k, 0))
        add(name, tname, "mean log p(y|x)", *rate_row(lps, n_boot, seed))
        responses += [{"set": name, "prompt": x, "response": y, "logprob": lp, "p_refusal": p, "phrase_refusal": float(r),
                       "class": CLASS_NAMES[k]} for x, y, lp, p, r, k in zip(texts, ys, lps, p_ref, prr, classes)]
    return responses
