"""q(x) = sum_o p_target(o | x) over refusal openers o: the target's own probability that its answer to
x starts with a refusal. An exact marginal of a refusal event, so log q(x) <= log p(r|x), and it moves
smoothly with x even when none of the K samples refuses.

Openers must be refusal heads by the phrase judge's rule (phrases.py): an AI disclaimer ("As an AI, I don't have
opinions. However, ...") is no refusal there, so "As an AI" is no opener either (tests/test_refusal_judges.py)."""
from __future__ import annotations

import math

from evoprompt.llm import Backend, Chat


def opener_probability(backend: Backend, chats: list[Chat], openers: list[str]) -> list[float]:
    """One batched scoring call for every (chat, opener) pair."""
    if not chats or not openers:
        return [0.0] * len(chats)
    scored = backend.score([c for c in chats for _ in openers], [o for _ in chats for o in openers])
    m = len(openers)
    return [min(1.0, sum(math.exp(s.logprob) for s in scored[i * m:(i + 1) * m])) for i in range(len(chats))]
