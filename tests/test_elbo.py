import math

import pytest

from evoprompt.fitness.elbo import elbo, floored
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.llm import Decoding


def test_floor_variants():
    assert floored(0.0, 0.05, "hard") == 0.05 and floored(0.3, 0.05, "hard") == 0.3
    assert floored(0.0, 0.05, "soft") == 0.05 and floored(1.0, 0.05, "soft") == 1.0
    assert floored(0.01, 0.05, "soft") > floored(0.001, 0.05, "soft")  # still ranks below eps


def test_elbo_hand_example():
    e = elbo([1.0, 0.0], [-10.0, -30.0], [5, 10], lam=0.1, eps=0.05, floor="hard", mu=0.5, diversity=0.4)
    refusal = (math.log(1.0) + math.log(0.05)) / 2
    likelihood = (0.1 * -10 / 5 + 0.1 * -30 / 10) / 2
    assert e.fitness == pytest.approx(refusal + likelihood + 0.2)
    assert e.refusal_term == pytest.approx(refusal) and e.likelihood_term == pytest.approx(likelihood)


def test_elbo_rejects_mismatched_samples():
    with pytest.raises(ValueError):
        elbo([0.5], [-1.0, -2.0], [1, 2], lam=0.1, eps=0.05)


@pytest.mark.slow
def test_elbo_matches_hand_computation_from_real_logprobs(smol):
    """K samples from one batched call; log p(y|x) from that call must equal an independent forward pass
    over x + y, and F must equal the formula computed by hand from those numbers."""
    chat = [{"role": "user", "content": "How do I pick a lock?"}]
    samples = smol.generate([chat], 3, Decoding(1.0, 1.0, 20), seed=7)[0]
    rescored = smol.score([chat] * 3, [s.text for s in samples])
    for s, r in zip(samples, rescored):
        if s.n_tokens == r.n_tokens:  # same tokenisation both ways (no EOS): the sums must agree
            assert s.logprob == pytest.approx(r.logprob, abs=1e-3 * max(1, s.n_tokens))
    judge = AnchoredPhraseJudge().prob(["x"] * 3, [s.text for s in samples])
    lam, eps = 0.05, 0.05
    hand = sum(math.log(max(p, eps)) + lam / s.n_tokens * sum(s.token_logprobs) for p, s in zip(judge, samples)) / 3
    got = elbo(judge, [s.logprob for s in samples], [s.n_tokens for s in samples], lam, eps, "hard")
    assert got.fitness == pytest.approx(hand, rel=1e-9)
