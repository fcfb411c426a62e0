"""Which strategies a lineage's next mutants use: uniform, fixed weights, or adaptive.

Adaptive treats each strategy's success (a mutant that passes the gate and beats its parent's fitness)
as a Bernoulli arm with a Beta prior whose mean is the configured weight scaled so the largest is 0.5
(prior strength PRIOR_TRIALS trials), and draws without replacement proportionally to the posterior means."""
from __future__ import annotations

import random

from evoprompt.errors import UserError, unknown
from evoprompt.operators.strategies import STRATEGIES

MODES = ("uniform", "weighted", "adaptive")
PRIOR_TRIALS = 10.0


class StrategyChooser:
    def __init__(self, mode: str, weights: dict[str, float]):
        if mode not in MODES:
            raise unknown("strategy choice", mode, MODES)
        for name in weights:
            if name not in STRATEGIES:
                raise unknown("strategy", name, STRATEGIES)
        self.mode = mode
        self.prior = {s: float(weights.get(s, STRATEGIES[s].prior)) for s in STRATEGIES}  # a file's own prior by default
        if mode != "uniform" and sum(self.prior.values()) <= 0:
            raise UserError("search.strategy_weights must give some strategy a positive weight")
        self.trials = {s: 0 for s in STRATEGIES}
        self.successes = {s: 0 for s in STRATEGIES}

    def weight(self, s: str) -> float:
        if self.mode == "uniform":
            return 1.0
        if self.mode == "weighted":
            return self.prior[s]
        mean = 0.5 * self.prior[s] / max(self.prior.values())
        return (mean * PRIOR_TRIALS + self.successes[s]) / (PRIOR_TRIALS + self.trials[s])

    def choose(self, k: int, rng: random.Random) -> list[str]:
        pool = [s for s in STRATEGIES if self.weight(s) > 0]
        picked = []
        while pool and len(picked) < k:
            s = rng.choices(pool, weights=[self.weight(x) for x in pool])[0]
            picked.append(s)
            pool.remove(s)
        return picked

    def record(self, strategy: str, success: bool) -> None:
        self.trials[strategy] += 1
        self.successes[strategy] += int(success)

    def state(self) -> dict:
        return {"trials": dict(self.trials), "successes": dict(self.successes)}

    def restore(self, state: dict) -> None:
        self.trials.update(state["trials"])
        self.successes.update(state["successes"])
