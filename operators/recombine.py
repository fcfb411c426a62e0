"""Recombination: merge the refusal-triggering parts of two instructions into one."""
from __future__ import annotations

import random

from evoprompt.llm import completion
from evoprompt.operators.mutate import few_shot
from evoprompt.operators.rewrite import TEMPLATES, RewriteRequest, chat_request

_RECOMBINE = (TEMPLATES / "recombine.txt").read_text(encoding="utf-8")


def recombination_request(a: str, b: str, style: str = "chat", tag=None) -> RewriteRequest:
    if style == "completion":
        return RewriteRequest(completion(few_shot("recombine", f"A: {a}\nB: {b}", "Merged")), "recombine", [a, b],
                              tag, style)
    return chat_request(_RECOMBINE.format(a=a, b=b), "recombine", [a, b], tag)


def draw_pairs(items: list, n: int, rng: random.Random) -> list[tuple]:
    """n random distinct pairs (fewer when fewer exist)."""
    pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1:]]
    return rng.sample(pairs, min(n, len(pairs)))
