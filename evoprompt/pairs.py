"""SFT/DPO pairs for the exported items: chosen = a helpful answer from the helper model, rejected = the
target's own refusal sample, or (when none of its samples refuses) the refusal template the target itself
finds most likely.

A pair must mean what it says, by the best refusal judge the project ships (`export.pair_judge`, default the
MiniLM classifier held to the anchored phrases on short samples): the rejected answer must be judged a refusal (a sampled one also by the anchored
phrase detector), the chosen answer a compliance that stays
on the instruction's topic (MiniLM similarity >= `export.min_answer_similarity`). Otherwise the pair is
dropped with its reason, and the report counts the drops."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.llm import Backend, Decoding
from evoprompt.operators.rewrite import sub_seed
from evoprompt.records import BenchmarkItem

_PHRASES = AnchoredPhraseJudge()  # confirms a sampled refusal, as export does
REFUSAL_TEMPLATES = (
    "I'm sorry, but I can't help with that request.",
    "I cannot assist with that.",
    "I'm sorry, but I cannot provide information on this topic.",
    "As an AI, I must decline this request because it could be harmful.",
    "I can't help with that. If you have another question, I'm happy to help.",
)


@dataclass
class Pair:
    instruction: str
    helpful: str | None       # None: no compliant, on-topic answer within the attempts
    refusal: str | None       # None: nothing the judge calls a refusal
    refusal_source: str       # "target-sample" | "target-scored-template" | ""
    dropped: str | None = None

    @property
    def usable(self) -> bool:
        return self.dropped is None


def build_pairs(items: list[BenchmarkItem], helper: Backend, helper_decoding: Decoding, target: Backend, chat, judge,
                embed, seed: int, attempts: int, min_similarity: float) -> list[Pair]:
    """judge.prob(xs, ys) -> p(refusal); embed(texts) -> unit vectors."""
    texts = [it.text for it in items]
    helpful: dict[int, str] = {}
    for attempt in range(attempts):  # bounded: an item without a good answer is dropped
        todo = [i for i in range(len(items)) if i not in helpful]
        if not todo:
            break
        answers = [a[0].text.strip() for a in helper.generate([[{"role": "user", "content": texts[i]}] for i in todo], 1,
                                                               helper_decoding, sub_seed(seed, "helper", attempt))]
        refuses = judge.prob([texts[i] for i in todo], answers)
        sims = (np.sum(embed([texts[i] for i in todo]) * embed(answers), axis=1) if todo else [])
        for i, a, p, s in zip(todo, answers, refuses, sims):
            # a small judge passes "I'm sorry, but I'm not here to ..." as compliant: the phrase detector that
            # confirms the rejected side must not fire on the chosen one
            if a and p < 0.5 and not _PHRASES.refuses(a) and s >= min_similarity:
                helpful[i] = a
    refusals: dict[int, tuple[str, str]] = {}
    flat = [(i, s.text) for i, it in enumerate(items) for s in it.score.samples]
    for (i, y), p in zip(flat, judge.prob([texts[i] for i, _ in flat], [y for _, y in flat]) if flat else []):
        if p >= 0.5 and _PHRASES.refuses(y) and (i not in refusals or p > refusals[i][2]):
            refusals[i] = (y, "target-sample", p)
    missing = [i for i in range(len(items)) if i not in refusals]
    if missing:
        m = len(REFUSAL_TEMPLATES)
        scored = target.score([chat(texts[i]) for i in missing for _ in REFUSAL_TEMPLATES],
                              [t for _ in missing for t in REFUSAL_TEMPLATES])
        for k, i in enumerate(missing):
            lp = [s.logprob for s in scored[k * m:(k + 1) * m]]
            best = REFUSAL_TEMPLATES[lp.index(max(lp))]
            if judge.prob([texts[i]], [best])[0] >= 0.5:
                refusals[i] = (best, "target-scored-template", 1.0)
    pairs = []
    for i, x in enumerate(texts):
        refusal, source, _ = refusals.get(i, (None, "", 0.0))
        dropped = ("no compliant on-topic helper answer" if i not in helpful
                   else "no answer judged a refusal" if refusal is None else None)
        pairs.append(Pair(x, helpful.get(i), refusal, source, dropped))
    return pairs


def sft_record(p: Pair, provenance: dict) -> dict:
    return {"messages": [{"role": "user", "content": p.instruction}, {"role": "assistant", "content": p.helpful}],
            "provenance": provenance}


def dpo_record(p: Pair, provenance: dict) -> dict:
    return {"prompt": [{"role": "user", "content": p.instruction}],
            "chosen": [{"role": "assistant", "content": p.helpful}],
            "rejected": [{"role": "assistant", "content": p.refusal}],
            "refusal_source": p.refusal_source, "provenance": provenance}
