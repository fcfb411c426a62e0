"""Simulated-annealing acceptance with the paper's linear cooling schedule."""
from __future__ import annotations

import math
import random


def temperature(t: int, tau_0: float, beta: float, tau_f: float) -> float:
    """tau_t = max(tau_f, tau_0 - beta t)."""
    return max(tau_f, tau_0 - beta * t)


def acceptance_probability(f_new: float, f_old: float, tau: float) -> float:
    """min(1, exp((F(x') - F(x_t)) / tau))."""
    delta = f_new - f_old
    if delta >= 0:
        return 1.0
    return math.exp(delta / tau) if tau > 0 else 0.0


def accept(f_new: float, f_old: float, tau: float, rng: random.Random) -> bool:
    return rng.random() < acceptance_probability(f_new, f_old, tau)
