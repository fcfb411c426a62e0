import math
import random

import pytest

from evoprompt.selection import accept, acceptance_probability, temperature


def test_linear_cooling_paper_schedule():
    assert temperature(0, 0.1, 0.005, 0.05) == pytest.approx(0.1)
    assert temperature(5, 0.1, 0.005, 0.05) == pytest.approx(0.075)
    assert temperature(10, 0.1, 0.005, 0.05) == pytest.approx(0.05)
    assert temperature(100, 0.1, 0.005, 0.05) == pytest.approx(0.05)  # floor tau_f


def test_acceptance_probability():
    assert acceptance_probability(-1.0, -2.0, 0.1) == 1.0
    assert acceptance_probability(-2.0, -2.0, 0.1) == 1.0
    assert acceptance_probability(-2.1, -2.0, 0.1) == pytest.approx(math.exp(-1.0))
    assert acceptance_probability(-2.1, -2.0, 0.0) == 0.0


def test_accept_frequency_matches_probability():
    rng = random.Random(0)
    n = 20000
    rate = sum(accept(-2.05, -2.0, 0.1, rng) for _ in range(n)) / n
    assert rate == pytest.approx(math.exp(-0.5), abs=0.015)


def test_worse_candidates_accepted_less_as_it_cools():
    hot = acceptance_probability(-2.05, -2.0, temperature(0, 0.1, 0.005, 0.05))
    cold = acceptance_probability(-2.05, -2.0, temperature(10, 0.1, 0.005, 0.05))
    assert hot > cold
