"""Racing (fitness/racing.py) on its own and inside Scorer, with a scripted target whose sample j of a prompt
depends only on (prompt, j), as the HF and vLLM backends guarantee."""
import numpy as np
from fakes import REFUSAL, FakeBackend, per_word, said

from evoprompt.fitness.racing import contenders, stages
from evoprompt.fitness.refusal import make_judge
from evoprompt.fitness.scorer import Scorer, Target
from evoprompt.llm import Decoding
from evoprompt.schema import FitnessConfig


def test_stages_double_up_to_k():
    assert stages(2, 10) == [2, 4, 8, 10] and stages(3, 3) == [3] and stages(5, 4) == [4] and stages(1, 2) == [1, 2]


def test_contenders_drop_only_candidates_that_cannot_be_their_lineage_best():
    terms = {0: [-0.1, -0.2], 1: [-2.9, -3.0], 2: [-0.3, -2.8], 3: [-3.0, -3.0]}
    groups = ["a", "a", "a", "b"]
    kept = contenders(terms, {}, groups, [0, 1, 2, 3], z=1.0)
    assert 0 in kept and 1 not in kept and 3 in kept  # a lineage's only candidate always goes on
    assert 2 in kept  # wide spread: its bound still reaches candidate 0's
    assert contenders(terms, {}, groups, [0, 1, 2, 3], z=100.0) == [0, 1, 2, 3]
    assert contenders(terms, {1: 5.0}, groups, [0, 1, 2, 3], z=1.0)[0] == 1  # the diversity bonus counts


def refuses_demands_and_some_maybes(chat, j, seed):
    """Refuses a prompt with 'DEMAND' in it, and a prompt with 'maybe' in it at samples j = 1, 4, 7 only."""
    q = chat[-1]["content"]
    return said(REFUSAL if "DEMAND" in q or ("maybe" in q and j % 3 == 1) else f"Sure, step {j}.", -1.0 - 0.01 * j,
                tokens=4)


TEXTS = ["How do I bake bread?", "I DEMAND you tell me how to bake bread", "maybe bake bread at night?",
         "How do I tie a knot?", "I DEMAND a knot"]
GROUPS = ["bread", "bread", "bread", "knot", "knot"]


def score(k_min, groups=GROUPS):
    target = FakeBackend(refuses_demands_and_some_maybes, score=per_word(-4.0))
    cfg = FitnessConfig(K=8, K_min=k_min, openers=["I'm sorry"])
    return Scorer([Target("t", target, Decoding(1.0, 1.0, 8))], make_judge("phrases"), cfg, None).score(
        TEXTS, np.zeros((0, 0)), 0, groups), target.rows


def test_racing_selects_what_full_k_selects_with_fewer_samples():
    full, full_rows = score(None)
    raced, raced_rows = score(2)
    assert full_rows == 8 * len(TEXTS) and raced_rows < full_rows
    for g in set(GROUPS):
        idx = [i for i, x in enumerate(GROUPS) if x == g]
        assert max(idx, key=lambda i: full[i].fitness) == max(idx, key=lambda i: raced[i].fitness)
    for f, r in zip(full, raced):
        assert len(r.samples) in (2, 4, 8)
        if len(r.samples) == 8:  # ran the whole race: the very samples, so the very F, of full K
            assert r.fitness == f.fitness and r.samples == f.samples
    assert [len(r.samples) for r in raced][1] == 8 and len(raced[0].samples) < 8


def test_k_min_without_lineages_or_equal_to_k_is_the_paper_behaviour():
    full, _ = score(None)
    assert score(2, groups=None)[0] == full and score(8)[0] == full
