"""SFT/DPO pairs for the survivors: chosen = a helpful answer from the helper model, rejected = the
target's own refusal sample, or (when the target never refused) the refusal template the target itself
finds most likely."""
from __future__ import annotations

from dataclasses import dataclass

from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.operators.rewrite import sub_seed

from .llm import Backend, Decoding

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
    helpful: str | None      # None: the helper refused on every attempt
    refusal: str
    refusal_source: str      # "target-sample" | "target-scored-template"


def build_pairs(items: list[dict], helper: Backend, helper_decoding: Decoding, target: Backend, chat,
                seed: int, attempts: int) -> list[Pair]:
    """items: benchmark records with "text" and "samples" (each with "text", "refusal")."""
    detector = AnchoredPhraseJudge()
    helpful: dict[int, str] = {}
    for attempt in range(attempts):  # bounded: an answer that still refuses is left out
        todo = [i for i in range(len(items)) if i not in helpful]
        if not todo:
            break
        answers = helper.generate([[{"role": "user", "content": items[i]["text"]}] for i in todo], 1,
                                  helper_decoding, sub_seed(seed, "helper", attempt))
        for i, a in zip(todo, answers):
            if a[0].text.strip() and not detector.refuses(a[0].text):
                helpful[i] = a[0].text.strip()
    refusals: dict[int, tuple[str, str]] = {}
    for i, it in enumerate(items):
        best = max(it["samples"], key=lambda s: s["refusal"], default=None)
        if best and best["refusal"] >= 0.5:
            refusals[i] = (best["text"], "target-sample")
    missing = [i for i in range(len(items)) if i not in refusals]
    if missing:
        m = len(REFUSAL_TEMPLATES)
        scored = target.score([chat(items[i]["text"]) for i in missing for _ in REFUSAL_TEMPLATES],
                              [t for _ in missing for t in REFUSAL_TEMPLATES])
        for k, i in enumerate(missing):
            lp = [s.logprob for s in scored[k * m:(k + 1) * m]]
            refusals[i] = (REFUSAL_TEMPLATES[lp.index(max(lp))], "target-scored-template")
    return [Pair(it["text"], helpful.get(i), *refusals[i]) for i, it in enumerate(items)]


def sft_record(p: Pair) -> dict:
    return {"messages": [{"role": "user", "content": p.instruction}, {"role": "assistant", "content": p.helpful}]}


def dpo_record(p: Pair) -> dict:
    return {"prompt": [{"role": "user", "content": p.instruction}],
            "chosen": [{"role": "assistant", "content": p.helpful}],
            "rejected": [{"role": "assistant", "content": p.refusal}]}
